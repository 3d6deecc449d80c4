// Tenant quotas: at most `max_sandboxes` sandboxes and `max_memory_mb` MiB of their memory_mb at once,
// counting only starting and running sandboxes (the contract's Quota). A tenant's row in the `quotas`
// table wins; a tenant without one gets the daemon's defaults (airlockd --default-max-sandboxes,
// --default-max-memory-mb). nullopt (SQL NULL) is unlimited.
//
// SandboxManager::create admits each new sandbox through admit(), which checks and inserts its record
// under one lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "daemon/database.h"
#include "daemon/errors.h"
#include "daemon/sandbox_store.h"

namespace airlock::daemon {

struct QuotaLimits {
  std::optional<int64_t> max_sandboxes;  // nullopt: unlimited
  std::optional<int64_t> max_memory_mb;  // nullopt: unlimited
  bool operator==(const QuotaLimits&) const = default;
};

struct QuotaUsage {
  int64_t sandboxes = 0;  // starting + running
  int64_t memory_mb = 0;  // their memory_mb, summed
};

class QuotaStore {
 public:
  QuotaStore(Database& db, SandboxStore& sandboxes, QuotaLimits defaults)
      : db_(db), sandboxes_(sandboxes), defaults_(defaults) {}

  // The tenant's own limits, else the defaults.
  Result<QuotaLimits> limits(std::string_view tenant);
  // Replaces both limits of the tenant (stops nothing that runs).
  Status set(std::string_view tenant, const QuotaLimits& limits);
  Result<QuotaUsage> usage(std::string_view tenant);
  // Inserts a new sandbox's record (SandboxStore::insert) unless one more sandbox of its memory_mb
  // would pass its tenant's quota: then 429 `quota_exceeded`, or 500 when the store fails; nullopt
  // when it was inserted. The check and the insert happen under admission_mu_, and the record counts
  // from its insert on, so two concurrent creates cannot both take the last slot.
  std::optional<ApiError> admit(SandboxRecord& record);
  // Sandboxes of every tenant by state ("running" -> 12), for the airlock_sandboxes gauge. Lives here
  // with the other read of the sandboxes table that is about usage rather than about one record.
  Result<std::vector<std::pair<std::string, int64_t>>> sandboxes_by_state();
  const QuotaLimits& defaults() const { return defaults_; }

 private:
  Database& db_;
  SandboxStore& sandboxes_;
  QuotaLimits defaults_;
  std::mutex admission_mu_;  // held from the usage read to the insert in admit()
};

// 429 `quota_exceeded` (details: quota, limit, used, requested) when one more sandbox of `memory_mb`
// would pass a limit; nullopt when it fits.
std::optional<ApiError> quota_violation(std::string_view tenant, const QuotaLimits& limits, const QuotaUsage& usage,
                                        int64_t memory_mb);

}  // namespace airlock::daemon
