// Errors as values: Result<T> carries either a T or an Error (errno + message + context).
// Exceptions are reserved for bugs and out-of-memory; nothing here throws across modules.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace airlock {

struct Error {
  int errnum = 0;       // 0 when the failure is not a syscall's
  std::string message;  // short, lowercase, no "failed to": "mount /proc: EPERM"

  // Prefixes context on the way up: "create sandbox sb-1: mount /proc: ...".
  Error&& with_context(std::string_view ctx) && {
    message = std::string(ctx) + ": " + message;
    return std::move(*this);
  }
  std::string describe() const;
};

// "open /x" + errno -> Error{errno, "open /x: No such file or directory"}.
Error sys_error(std::string_view what, int errnum = errno);
Error plain_error(std::string_view what);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                // NOLINT(implicit)
  Result(Error error) : v_(std::move(error)) {}            // NOLINT(implicit)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT(implicit)
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  void value() const {}
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace airlock

#define AIRLOCK_CONCAT_INNER(a, b) a##b
#define AIRLOCK_CONCAT(a, b) AIRLOCK_CONCAT_INNER(a, b)

// TRY(auto x, expr): binds the value of a Result or returns its error.
#define TRY(decl, expr) TRY_IMPL(AIRLOCK_CONCAT(try_result_, __LINE__), decl, expr)
#define TRY_IMPL(tmp, decl, expr)               \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  decl = std::move(tmp).value()

// TRY_STATUS(expr): returns the error of a Result<void>.
#define TRY_STATUS(expr)                                                \
  do {                                                                  \
    auto try_status_ = (expr);                                          \
    if (!try_status_.ok()) return std::move(try_status_).error();       \
  } while (0)

// TRY_CTX(expr, "context"): like TRY_STATUS but adds context to the error.
#define TRY_CTX(expr, ctx)                                                        \
  do {                                                                            \
    auto try_status_ = (expr);                                                    \
    if (!try_status_.ok()) return std::move(try_status_).error().with_context(ctx); \
  } while (0)
