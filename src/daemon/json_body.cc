#include "daemon/json_body.h"

#include <algorithm>

namespace airlock::daemon {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

ApiError invalid_json(std::string message) { return api_error(ErrorCode::kInvalidJson, std::move(message)); }

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest is useful to a client.
std::string parse_error_message(const std::string& what) {
  std::string_view s = what;
  if (!s.empty() && s.front() == '[') {
    size_t end = s.find("] ");
    if (end != std::string_view::npos) s.remove_prefix(end + 2);
  }
  return "body is not valid JSON: " + std::string(s);
}

}  // namespace

bool is_json_media_type(std::string_view content_type) {
  size_t semi = content_type.find(';');
  if (!ascii_iequals(trim(content_type.substr(0, semi)), "application/json")) return false;
  while (semi != std::string_view::npos) {
    content_type.remove_prefix(semi + 1);
    semi = content_type.find(';');
    std::string_view param = trim(content_type.substr(0, semi));
    if (param.empty()) continue;
    size_t eq = param.find('=');
    if (eq == std::string_view::npos) return false;
    std::string_view key = trim(param.substr(0, eq));
    std::string_view value = trim(param.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    // JSON is UTF-8 (RFC 8259); a charset parameter may only confirm it.
    if (ascii_iequals(key, "charset") && !ascii_iequals(value, "utf-8")) return false;
  }
  return true;
}

std::optional<ApiError> check_json_content_type(const HttpRequest& request) {
  auto type = request.header("Content-Type");
  if (type && request.header_count("Content-Type") == 1 && is_json_media_type(*type)) return std::nullopt;
  return api_error(ErrorCode::kUnsupportedMediaType, "this operation needs Content-Type: application/json")
      .with_field("Content-Type");
}

bool json_nesting_exceeds(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

ApiResult<nlohmann::json> parse_json_object(std::string_view body) {
  if (body.empty()) return invalid_json("body is empty; this operation needs a JSON object");
  if (json_nesting_exceeds(body, kMaxJsonDepth)) {
    return invalid_json("body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    return invalid_json(parse_error_message(e.what()));
  }
  if (!value.is_object()) return invalid_json("body must be a JSON object, not " + std::string(value.type_name()));
  return value;
}

size_t utf8_length(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

JsonFields::JsonFields(const nlohmann::json& object, std::string prefix)
    : object_(object), prefix_(std::move(prefix)) {}

void JsonFields::fail(std::string_view name, std::string message) {
  if (error_) return;
  std::string field = prefix_ + std::string(name);
  error_ = api_error(ErrorCode::kInvalidField, field + " " + message).with_field(field);
}

const nlohmann::json* JsonFields::find(std::string_view name, bool required) {
  known_.emplace_back(name);
  auto it = object_.find(name);
  if (it == object_.end()) {
    if (required) fail(name, "is required");
    return nullptr;
  }
  return &*it;
}

std::optional<std::string> JsonFields::string(std::string_view name, const StringRule& rule, bool required) {
  const nlohmann::json* v = find(name, required);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    fail(name, "must be a string, not " + std::string(v->type_name()));
    return std::nullopt;
  }
  const std::string& s = v->get_ref<const std::string&>();
  size_t chars = utf8_length(s);
  if (chars < rule.min_chars || chars > rule.max_chars) {
    fail(name, "must be " + std::to_string(rule.min_chars) + " to " + std::to_string(rule.max_chars) +
                   " characters long");
    return std::nullopt;
  }
  if (rule.valid && !rule.valid(s)) {
    fail(name, "must be " + std::string(rule.expected));
    return std::nullopt;
  }
  return s;
}

std::optional<bool> JsonFields::boolean(std::string_view name, bool required) {
  const nlohmann::json* v = find(name, required);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) {
    fail(name, "must be true or false, not " + std::string(v->type_name()));
    return std::nullopt;
  }
  return v->get<bool>();
}

std::optional<ApiError> JsonFields::finish() {
  if (error_) return error_;
  for (const auto& [key, value] : object_.items()) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) {
      // An empty member name still gets a visible `field` ("" quoted), as the contract promises.
      std::string field = prefix_ + (key.empty() ? std::string("\"\"") : key);
      return api_error(ErrorCode::kInvalidField, "unknown field " + field).with_field(field);
    }
  }
  return std::nullopt;
}

}  // namespace airlock::daemon
