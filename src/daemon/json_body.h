// JSON request bodies: media type (415), syntax and UTF-8 (400 `invalid_json`), and field-by-field
// reading that rejects unknown fields and wrong types (400 `invalid_field` with the field's dotted name).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/errors.h"
#include "daemon/http_message.h"

namespace airlock::daemon {

// Deeper documents are refused before parsing: no schema in the contract nests beyond a few levels, and
// a bound keeps recursion in the library and in our own code trivially safe.
inline constexpr int kMaxJsonDepth = 64;

// "application/json", optionally with "; charset=utf-8" (case-insensitive).
bool is_json_media_type(std::string_view content_type);
// 415 `unsupported_media_type` unless the request says its body is JSON.
std::optional<ApiError> check_json_content_type(const HttpRequest& request);
// True when arrays/objects nest deeper than max_depth (strings are skipped correctly).
bool json_nesting_exceeds(std::string_view text, int max_depth);
// Parses a body that must be one JSON object: 400 `invalid_json` otherwise.
ApiResult<nlohmann::json> parse_json_object(std::string_view body);

// Reads an object's fields; the first problem found is kept and reported by finish(), which also
// rejects fields that were never asked for.
class JsonFields {
 public:
  struct StringRule {
    size_t min_chars = 0;
    size_t max_chars = SIZE_MAX;
    std::function<bool(std::string_view)> valid;  // optional extra check (a pattern)
    std::string_view expected;                    // for the message: "a tenant name (^[a-z0-9]...$)"
  };

  // `object` must outlive this reader; `prefix` names it in errors ("files[2].").
  explicit JsonFields(const nlohmann::json& object, std::string prefix = "");

  std::optional<std::string> string(std::string_view name, const StringRule& rule, bool required = false);
  std::optional<bool> boolean(std::string_view name, bool required = false);
  std::optional<ApiError> finish();

 private:
  const nlohmann::json* find(std::string_view name, bool required);
  void fail(std::string_view name, std::string message);

  const nlohmann::json& object_;
  std::string prefix_;
  std::vector<std::string> known_;
  std::optional<ApiError> error_;
};

// Unicode code points in a valid UTF-8 string (JSON Schema lengths count characters, not bytes).
size_t utf8_length(std::string_view s);

}  // namespace airlock::daemon
