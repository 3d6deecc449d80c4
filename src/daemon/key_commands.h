// `airlockd keys create|list|revoke`: key management on DATA_DIR's database directly (no daemon
// needed, and safe while one runs: WAL plus a busy timeout). For the operator on the host, e.g. to
// recover after every admin key was revoked.
#pragma once

#include <optional>
#include <string>

namespace airlock::daemon {

struct KeyCreateOptions {
  std::string tenant = "default";
  std::string name = "cli";
  bool admin = false;
  bool json = false;
};

// Each returns the process exit status. create prints the secret on stdout (alone, so that
// `KEY=$(airlockd keys create ...)` works) unless --json asks for the whole record.
int keys_create(const std::string& data_dir, const KeyCreateOptions& options);
int keys_list(const std::string& data_dir, const std::optional<std::string>& tenant, bool include_revoked, bool json);
int keys_revoke(const std::string& data_dir, const std::string& key_id, bool json);

}  // namespace airlock::daemon
