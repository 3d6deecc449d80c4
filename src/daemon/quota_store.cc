#include "daemon/quota_store.h"

namespace airlock::daemon {

Result<QuotaLimits> QuotaStore::limits(std::string_view tenant) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT max_sandboxes, max_memory_mb FROM quotas WHERE tenant = ?1"));
  stmt.bind(1, tenant);
  TRY(bool row, stmt.step());
  if (!row) return defaults_;
  return QuotaLimits{stmt.optional_int_at(0), stmt.optional_int_at(1)};
}

Status QuotaStore::set(std::string_view tenant, const QuotaLimits& limits) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("INSERT INTO quotas (tenant, max_sandboxes, max_memory_mb, updated_at) "
                             "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (tenant) DO UPDATE SET "
                             "max_sandboxes = excluded.max_sandboxes, max_memory_mb = excluded.max_memory_mb, "
                             "updated_at = excluded.updated_at"));
  stmt.bind(1, tenant).bind(2, limits.max_sandboxes).bind(3, limits.max_memory_mb).bind(4, unix_millis_now());
  TRY(bool row, stmt.step());
  (void)row;
  return {};
}

Result<QuotaUsage> QuotaStore::usage(std::string_view tenant) {
  TRY(auto usage, sandboxes_.live_usage(tenant));
  return QuotaUsage{usage.first, usage.second};
}

std::optional<ApiError> QuotaStore::admit(SandboxRecord& record) {
  std::lock_guard admission(admission_mu_);
  auto limits = this->limits(record.tenant);
  if (!limits.ok()) return internal_error(limits.error());
  auto used = usage(record.tenant);
  if (!used.ok()) return internal_error(used.error());
  if (auto refused = quota_violation(record.tenant, limits.value(), used.value(), record.settings.memory_mb)) {
    return refused;
  }
  if (auto inserted = sandboxes_.insert(record); !inserted.ok()) return internal_error(inserted.error());
  return std::nullopt;
}

Result<std::vector<std::pair<std::string, int64_t>>> QuotaStore::sandboxes_by_state() {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT state, count(*) FROM sandboxes GROUP BY state"));
  std::vector<std::pair<std::string, int64_t>> out;
  for (auto s : {SandboxState::kStarting, SandboxState::kRunning, SandboxState::kStopped, SandboxState::kTerminated}) {
    out.emplace_back(std::string(state_name(s)), 0);  // every state, zeros included
  }
  for (;;) {
    TRY(bool row, stmt.step());
    if (!row) break;
    std::string state = stmt.text_at(0);
    for (auto& [name, count] : out) {
      if (name == state) count = stmt.int_at(1);
    }
  }
  return out;
}

std::optional<ApiError> quota_violation(std::string_view tenant, const QuotaLimits& limits, const QuotaUsage& usage,
                                        int64_t memory_mb) {
  std::string who(tenant);
  if (limits.max_sandboxes && usage.sandboxes + 1 > *limits.max_sandboxes) {
    return api_error(ErrorCode::kQuotaExceeded, "tenant " + who + " runs " + std::to_string(usage.sandboxes) +
                                                    " sandboxes (max " + std::to_string(*limits.max_sandboxes) + ")")
        .with_details({{"quota", "max_sandboxes"},
                       {"limit", *limits.max_sandboxes},
                       {"used", usage.sandboxes},
                       {"requested", 1}});
  }
  if (limits.max_memory_mb && usage.memory_mb + memory_mb > *limits.max_memory_mb) {
    return api_error(ErrorCode::kQuotaExceeded, "tenant " + who + " would use " +
                                                    std::to_string(usage.memory_mb + memory_mb) + " MiB of memory (max " +
                                                    std::to_string(*limits.max_memory_mb) + ")")
        .with_details({{"quota", "max_memory_mb"},
                       {"limit", *limits.max_memory_mb},
                       {"used", usage.memory_mb},
                       {"requested", memory_mb}});
  }
  return std::nullopt;
}

}  // namespace airlock::daemon
