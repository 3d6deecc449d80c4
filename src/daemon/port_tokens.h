// Access tokens of exposed ports (issue 4): "apt_" + 43 base64url characters, shown once at creation
// and stored only as a SHA-256 hash (like API keys). A token opens one port of one sandbox, until it
// is revoked, it expires, the port is unexposed or the sandbox ends. It is not an API key and an API
// key is not a port token: a leaked URL gives access to that port only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "daemon/database.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {

inline constexpr std::string_view kPortTokenScheme = "apt_";
inline constexpr size_t kMaxTokensPerPort = 100;

struct PortToken {
  std::string token_id;  // ptk-<16 of [0-9a-z]>
  std::string sandbox_id;
  uint16_t port = 0;
  std::string name;
  UnixMillis created_at = 0;
  std::optional<UnixMillis> expires_at;
};

struct NewPortToken {
  PortToken token;
  std::string secret;  // returned once, never stored
};

class PortTokenStore {
 public:
  explicit PortTokenStore(Database& db) : db_(db) {}

  // nullopt when the port already has kMaxTokensPerPort tokens.
  Result<std::optional<NewPortToken>> create(const std::string& sandbox_id, uint16_t port, std::string name,
                                             UnixMillis now, std::optional<UnixMillis> expires_at);
  Result<std::vector<PortToken>> list(const std::string& sandbox_id, uint16_t port);
  Result<bool> revoke(const std::string& sandbox_id, uint16_t port, const std::string& token_id);
  // True when `secret` is an unexpired token of exactly this port.
  Result<bool> valid(const std::string& sandbox_id, uint16_t port, std::string_view secret, UnixMillis now);
  Status remove_port(const std::string& sandbox_id, uint16_t port);
  Status remove_sandbox(const std::string& sandbox_id);
  // Tokens of sandboxes the store no longer has starting or running (they ended while no daemon ran).
  Status remove_ended();

 private:
  Database& db_;
};

}  // namespace airlock::daemon
