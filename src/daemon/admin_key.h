// The first admin key: when no active admin key exists (a fresh install), one is created and its
// secret written to DATA_DIR/admin-key with mode 0600. The secret itself is never printed or logged.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"
#include "daemon/key_store.h"

namespace airlock::daemon {

inline constexpr const char* kBootstrapTenant = "default";
inline constexpr const char* kBootstrapKeyName = "admin";

// The new key's id, or nullopt when an active admin key already exists.
Result<std::optional<std::string>> bootstrap_admin_key(KeyStore& keys, const std::string& key_file);

}  // namespace airlock::daemon
