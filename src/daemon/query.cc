#include "daemon/query.h"

#include <cmath>
#include <cstdlib>

#include <charconv>

#include "daemon/url.h"

namespace airlock::daemon {
namespace {

ApiError bad_parameter(std::string_view name, std::string message) {
  // An empty parameter name still gets a visible `field` ("" quoted), as the contract promises.
  return api_error(ErrorCode::kInvalidParameter, std::move(message))
      .with_field(name.empty() ? std::string("\"\"") : std::string(name));
}

}  // namespace

ApiResult<QueryParams> QueryParams::parse(std::string_view query) {
  QueryParams q;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string_view raw_name = piece.substr(0, eq);
    std::string_view raw_value = eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
    auto name = percent_decode(raw_name, true);
    if (!name) return bad_parameter(raw_name, "malformed percent-encoding in a query parameter name");
    auto value = percent_decode(raw_value, true);
    if (!value) return bad_parameter(*name, "malformed percent-encoding in query parameter " + *name);
    q.params_.emplace_back(std::move(*name), std::move(*value));
  }
  return q;
}

std::optional<ApiError> QueryParams::check_names(std::initializer_list<std::string_view> known,
                                                 std::initializer_list<std::string_view> repeatable) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    bool is_known = false;
    for (auto k : known) is_known = is_known || k == name;
    if (!is_known) return bad_parameter(name, "unknown query parameter " + name);
    bool may_repeat = false;
    for (auto r : repeatable) may_repeat = may_repeat || r == name;
    if (may_repeat) continue;
    for (size_t j = 0; j < i; ++j) {
      if (params_[j].first == name) return bad_parameter(name, "query parameter " + name + " given more than once");
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> QueryParams::get(std::string_view name) const {
  for (const auto& [n, v] : params_) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

ApiResult<std::optional<int64_t>> QueryParams::integer(std::string_view name, int64_t min, int64_t max) const {
  auto raw = get(name);
  if (!raw) return std::optional<int64_t>();
  int64_t value = 0;
  auto [end, ec] = std::from_chars(raw->data(), raw->data() + raw->size(), value);
  if (raw->empty() || ec != std::errc() || end != raw->data() + raw->size()) {
    return bad_parameter(name, std::string(name) + " must be an integer");
  }
  if (value < min || value > max) {
    return bad_parameter(name, std::string(name) + " must be between " + std::to_string(min) + " and " +
                                   std::to_string(max));
  }
  return std::optional<int64_t>(value);
}

ApiResult<std::optional<bool>> QueryParams::boolean(std::string_view name) const {
  auto raw = get(name);
  if (!raw) return std::optional<bool>();
  if (*raw == "true") return std::optional<bool>(true);
  if (*raw == "false") return std::optional<bool>(false);
  return bad_parameter(name, std::string(name) + " must be true or false");
}

ApiResult<std::optional<std::string>> QueryParams::string(std::string_view name,
                                                          const std::function<bool(std::string_view)>& valid,
                                                          std::string_view rule) const {
  auto raw = get(name);
  if (!raw) return std::optional<std::string>();
  if (!valid(*raw)) return bad_parameter(name, std::string(name) + " must be " + std::string(rule));
  return std::optional<std::string>(std::string(*raw));
}

ApiResult<double> wait_timeout_seconds(const QueryParams& query) {
  double seconds = 30;
  if (auto t = query.get("timeout")) {
    char* end = nullptr;
    std::string text(*t);
    seconds = std::strtod(text.c_str(), &end);
    if (text.empty() || *end || !std::isfinite(seconds) || seconds < 0 || seconds > 300) {
      return api_error(ErrorCode::kInvalidParameter, "timeout must be a number of seconds from 0 to 300")
          .with_field("timeout");
    }
  }
  return seconds;
}

}  // namespace airlock::daemon
