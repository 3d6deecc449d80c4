// Opaque list cursors shared by every paginated route: hex of "<kind>|<position>|<filters>".
// A cursor is honoured only by the list it was made for, with the same filters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/errors.h"

namespace airlock::daemon {

// kind: a short tag per list ("k1" keys, "s1" sandboxes); position > 0; filters: a canonical text.
std::string make_page_cursor(std::string_view kind, int64_t position, std::string_view filters);
// The position, or 400 `invalid_parameter` (field "cursor") naming `filter_names` when the filters differ.
ApiResult<int64_t> read_page_cursor(std::string_view cursor, std::string_view kind, std::string_view filters,
                                    std::string_view filter_names);

}  // namespace airlock::daemon
