#include "daemon/page_cursor.h"

#include <charconv>

#include "common/hex.h"

namespace airlock::daemon {

std::string make_page_cursor(std::string_view kind, int64_t position, std::string_view filters) {
  return hex_encode(std::string(kind) + "|" + std::to_string(position) + "|" + std::string(filters));
}

ApiResult<int64_t> read_page_cursor(std::string_view cursor, std::string_view kind, std::string_view filters,
                                    std::string_view filter_names) {
  auto bad = [](std::string message) {
    return api_error(ErrorCode::kInvalidParameter, std::move(message)).with_field("cursor");
  };
  constexpr const char* kForeign = "cursor is not one this daemon made";
  auto text = hex_decode(cursor);
  std::string prefix = std::string(kind) + "|";
  if (!text || text->rfind(prefix, 0) != 0) return bad(kForeign);
  std::string_view rest = std::string_view(*text).substr(prefix.size());
  size_t bar = rest.find('|');
  if (bar == std::string_view::npos) return bad(kForeign);
  int64_t position = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + bar, position);
  if (ec != std::errc() || end != rest.data() + bar || position <= 0) return bad(kForeign);
  if (rest.substr(bar + 1) != filters) {
    return bad("cursor was made for other filters (" + std::string(filter_names) + "); start again without it");
  }
  return position;
}

}  // namespace airlock::daemon
