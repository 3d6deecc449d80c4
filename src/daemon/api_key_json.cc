#include "daemon/api_key_json.h"

#include "daemon/timestamp.h"

namespace airlock::daemon {
namespace {

nlohmann::json nullable_time(const std::optional<UnixMillis>& t) {
  return t ? nlohmann::json(format_timestamp(*t)) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json api_key_json(const ApiKeyRecord& key) {
  return {{"key_id", key.key_id},
          {"name", key.name},
          {"tenant", key.tenant},
          {"admin", key.admin},
          {"prefix", key.prefix},
          {"created_at", format_timestamp(key.created_at)},
          {"last_used_at", nullable_time(key.last_used_at)},
          {"revoked_at", nullable_time(key.revoked_at)}};
}

}  // namespace airlock::daemon
