// GET /metrics (admin: it covers every tenant): Prometheus text format 0.0.4. The daemon's own
// instruments (DaemonMetrics), then what is read at scrape time: sandboxes by state from the store,
// each live sandbox's cgroup usage, and the daemon process's memory and CPU from /proc/self.
#include <unistd.h>

#include <sstream>

#include "common/fs.h"
#include "daemon/metrics.h"
#include "daemon/quota_store.h"
#include "daemon/routes/routes.h"
#include "daemon/sandbox_manager.h"

namespace airlock::daemon {
namespace {

void write_sandbox_states(QuotaStore& quotas, MetricsText& out) {
  auto counts = quotas.sandboxes_by_state();
  if (!counts.ok()) return;  // the other families are still worth serving
  out.family("airlock_sandboxes", "gauge", "sandboxes by state, every tenant");
  for (const auto& [state, count] : counts.value()) {
    out.sample("airlock_sandboxes", {{"state", state}}, static_cast<double>(count));
  }
}

void write_sandbox_usage(SandboxManager& sandboxes, MetricsText& out) {
  struct Row {
    std::string sandbox_id, tenant;
    SandboxUsage usage;
  };
  std::vector<Row> rows;
  sandboxes.for_each_live([&](const std::string& sandbox_id, const std::string& tenant) {
    rows.push_back(Row{sandbox_id, tenant, {}});
  });
  std::vector<Row> measured;
  for (auto& row : rows) {
    if (auto usage = sandboxes.usage(row.sandbox_id)) {
      row.usage = *usage;
      measured.push_back(std::move(row));
    }
  }
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out.family(name, type, help);
    for (const auto& row : measured) {
      out.sample(name, {{"sandbox_id", row.sandbox_id}, {"tenant", row.tenant}}, value(row.usage));
    }
  };
  family("airlock_sandbox_cpu_seconds_total", "counter", "CPU time of a live sandbox's cgroup",
         [](const SandboxUsage& u) { return u.cpu_seconds; });
  family("airlock_sandbox_memory_bytes", "gauge", "memory of a live sandbox's cgroup now",
         [](const SandboxUsage& u) { return static_cast<double>(u.memory_bytes); });
  family("airlock_sandbox_memory_peak_bytes", "gauge", "highest memory of a live sandbox's cgroup",
         [](const SandboxUsage& u) { return static_cast<double>(u.memory_peak_bytes); });
}

// process_cpu_seconds_total and process_resident_memory_bytes, as Prometheus client libraries name them.
void write_process_metrics(MetricsText& out) {
  auto stat = read_file("/proc/self/stat", 4096);
  auto statm = read_file("/proc/self/statm", 4096);
  if (stat.ok()) {
    // Fields after the command name, which is in parentheses and may hold spaces.
    size_t close = stat->rfind(')');
    std::istringstream fields(close == std::string::npos ? std::string() : stat->substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; fields >> field; ++i) {
      if (i == 14 || i == 15) ticks += std::strtod(field.c_str(), nullptr);  // utime, stime
      if (i == 15) break;
    }
    out.family("process_cpu_seconds_total", "counter", "user and system CPU time of airlockd");
    out.sample("process_cpu_seconds_total", {}, ticks / static_cast<double>(::sysconf(_SC_CLK_TCK)));
  }
  if (statm.ok()) {
    std::istringstream fields(statm.value());
    double size = 0, resident = 0;
    fields >> size >> resident;
    out.family("process_resident_memory_bytes", "gauge", "resident memory of airlockd");
    out.sample("process_resident_memory_bytes", {}, resident * static_cast<double>(::sysconf(_SC_PAGESIZE)));
  }
}

ApiResult<HttpResponse> get_metrics(ApiServices& services, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  MetricsText out;
  services.metrics->render(out);
  if (services.quotas) write_sandbox_states(*services.quotas, out);
  if (services.sandboxes) write_sandbox_usage(*services.sandboxes, out);
  write_process_metrics(out);
  HttpResponse response;
  response.status = 200;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = out.take();
  return response;
}

}  // namespace

void add_metrics_routes(Router& router, ApiServices& services) {
  // On the I/O threads, like the store reads of other routes: a scrape is one query and a few cgroup
  // files (kernel memory) per live sandbox, and must not wait behind a pool full of long commands.
  router.add({"GET", "/metrics", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit,
              [&services](const RequestContext& ctx) { return get_metrics(services, ctx); }});
}

}  // namespace airlock::daemon
