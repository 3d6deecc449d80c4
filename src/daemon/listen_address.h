// --listen HOST:PORT ("127.0.0.1:7070", "[::1]:7070", "localhost:0"; port 0 picks a free port).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace airlock::daemon {

struct ListenAddress {
  std::string host;  // an IP literal or a name resolved at bind time; brackets stripped
  uint16_t port = 0;
};

Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace airlock::daemon
