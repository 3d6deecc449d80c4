#include "daemon/key_commands.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include "daemon/api_key_json.h"
#include "daemon/data_dir.h"
#include "daemon/database.h"
#include "daemon/key_store.h"
#include "daemon/timestamp.h"

namespace airlock::daemon {
namespace {

struct OpenStore {
  std::unique_ptr<Database> db;
  std::unique_ptr<KeyStore> keys;
};

std::optional<OpenStore> open_store(const std::string& data_dir) {
  auto dir = DataDir::open(data_dir);
  if (!dir.ok()) {
    std::fprintf(stderr, "airlockd: %s\n", dir.error().describe().c_str());
    return std::nullopt;
  }
  auto db = Database::open(dir->database_path());
  if (!db.ok()) {
    std::fprintf(stderr, "airlockd: %s\n", db.error().describe().c_str());
    return std::nullopt;
  }
  OpenStore store;
  store.db = std::move(db).value();
  store.keys = std::make_unique<KeyStore>(*store.db);
  return store;
}

int report(const Error& error) {
  std::fprintf(stderr, "airlockd: %s\n", error.describe().c_str());
  return 1;
}

}  // namespace

int keys_create(const std::string& data_dir, const KeyCreateOptions& options) {
  if (!valid_tenant_name(options.tenant)) {
    std::fprintf(stderr, "airlockd: tenant must match ^[a-z0-9][a-z0-9_-]{0,62}$\n");
    return 2;
  }
  if (!valid_key_name(options.name)) {
    std::fprintf(stderr, "airlockd: name must be 1 to 64 characters without control characters\n");
    return 2;
  }
  auto store = open_store(data_dir);
  if (!store) return 1;
  auto created = store->keys->create({options.tenant, options.name, options.admin});
  if (!created.ok()) return report(created.error());
  if (options.json) {
    nlohmann::json out = api_key_json(created->record);
    out["secret"] = created->secret;
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fprintf(stderr, "airlockd: created API key %s (tenant %s%s); its secret is shown once:\n",
                 created->record.key_id.c_str(), options.tenant.c_str(), options.admin ? ", admin" : "");
    std::printf("%s\n", created->secret.c_str());
  }
  return 0;
}

int keys_list(const std::string& data_dir, const std::optional<std::string>& tenant, bool include_revoked, bool json) {
  auto store = open_store(data_dir);
  if (!store) return 1;
  nlohmann::json all = nlohmann::json::array();
  KeyListQuery query{tenant, include_revoked, 1000, std::nullopt};
  if (!json) std::printf("%-20s  %-16s  %-5s  %-10s  %-24s  %s\n", "KEY ID", "TENANT", "ADMIN", "PREFIX", "CREATED", "NAME");
  while (true) {
    auto page = store->keys->list(query);
    if (!page.ok()) return report(page.error());
    for (const auto& key : page->keys) {
      if (json) {
        all.push_back(api_key_json(key));
      } else {
        std::string name = key.name + (key.revoked_at ? " (revoked " + format_timestamp(*key.revoked_at) + ")" : "");
        std::printf("%-20s  %-16s  %-5s  %-10s  %-24s  %s\n", key.key_id.c_str(), key.tenant.c_str(),
                    key.admin ? "yes" : "no", key.prefix.c_str(), format_timestamp(key.created_at).c_str(), name.c_str());
      }
    }
    if (!page->next_before) break;
    query.before_seq = page->next_before;
  }
  if (json) std::printf("%s\n", all.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

int keys_revoke(const std::string& data_dir, const std::string& key_id, bool json) {
  auto store = open_store(data_dir);
  if (!store) return 1;
  auto key = store->keys->revoke(key_id);
  if (!key.ok()) return report(key.error());
  if (!key.value()) {
    std::fprintf(stderr, "airlockd: no API key %s\n", key_id.c_str());
    return 1;
  }
  if (json) {
    std::printf("%s\n", api_key_json(**key).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::fprintf(stderr, "airlockd: revoked API key %s\n", key_id.c_str());
  }
  return 0;
}

}  // namespace airlock::daemon
