// Who is calling: the API key a request was authenticated with, and so its tenant.
#pragma once

#include <string>

namespace airlock::daemon {

struct Principal {
  std::string key_id;
  std::string tenant;
  bool admin = false;
};

}  // namespace airlock::daemon
