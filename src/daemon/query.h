// Query parameters: parsed once per request, read with typed getters that produce the contract's
// 400 `invalid_parameter` (with `field`) for anything malformed or out of range.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/errors.h"

namespace airlock::daemon {

class QueryParams {
 public:
  QueryParams() = default;
  // "a=1&b=x%20y"; a malformed percent escape is 400 `invalid_parameter`.
  static ApiResult<QueryParams> parse(std::string_view query);

  // Unknown names are 400 (typos should not be silently ignored), and so is a repeat of a name that is
  // not in `repeatable`.
  std::optional<ApiError> check_names(std::initializer_list<std::string_view> known,
                                      std::initializer_list<std::string_view> repeatable = {}) const;

  std::optional<std::string_view> get(std::string_view name) const;
  // Integer in [min, max]; absent -> nullopt.
  ApiResult<std::optional<int64_t>> integer(std::string_view name, int64_t min, int64_t max) const;
  // "true" or "false"; absent -> nullopt.
  ApiResult<std::optional<bool>> boolean(std::string_view name) const;
  // A string that `valid` accepts (`rule` says what is expected, for the error message).
  ApiResult<std::optional<std::string>> string(std::string_view name, const std::function<bool(std::string_view)>& valid,
                                               std::string_view rule) const;

  const std::vector<std::pair<std::string, std::string>>& all() const { return params_; }

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

// The `timeout` parameter of a long poll: seconds, 0..300 (default 30); 400 invalid_parameter otherwise.
ApiResult<double> wait_timeout_seconds(const QueryParams& query);

}  // namespace airlock::daemon
