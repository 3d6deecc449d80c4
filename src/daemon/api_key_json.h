// The contract's ApiKey object (api/openapi.yaml#/components/schemas/ApiKey) for a stored key.
#pragma once

#include <nlohmann/json.hpp>

#include "daemon/key_store.h"

namespace airlock::daemon {

nlohmann::json api_key_json(const ApiKeyRecord& key);

}  // namespace airlock::daemon
