#include "daemon/daemon.h"

#include <sys/resource.h>

#include <chrono>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include "daemon/admin_key.h"
#include "daemon/api.h"
#include "daemon/auth.h"
#include "daemon/data_dir.h"
#include "daemon/database.h"
#include "daemon/http_server.h"
#include "daemon/idempotency.h"
#include "daemon/key_store.h"
#include "daemon/listen_address.h"
#include "daemon/metrics.h"        // [obs]
#include "daemon/quota_store.h"    // [obs]
#include "daemon/sandbox_logs.h"   // [obs]
#include "daemon/sandbox_usage.h"  // [obs]
#include "daemon/port_service.h"
#include "daemon/port_tokens.h"
#include "daemon/routes/routes.h"
#include "daemon/sandbox_manager.h"
#include "daemon/timers.h"
#include "daemon/sandbox_store.h"
#include "daemon/version.h"
#include "daemon/worker_pool.h"

namespace airlock::daemon {
namespace {

// Each connection is a descriptor; the default soft limit (1024) is far below what the daemon serves.
void raise_fd_limit(const Logger& log) {
  struct rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) log.warn("cannot raise the open-file limit");
}

// The engine's directories and init binary: the same environment variables as the `airlock` CLI, so
// that both share templates, id-range locks and cgroups; airlock-init is found next to airlockd.
EngineConfig engine_config() {
  EngineConfig config;
  if (const char* dir = std::getenv("AIRLOCK_DATA_DIR"); dir && *dir) config.data_dir = dir;
  if (const char* dir = std::getenv("AIRLOCK_RUN_DIR"); dir && *dir) config.run_dir = dir;
  if (const char* init = std::getenv("AIRLOCK_INIT"); init && *init) {
    config.init_path = init;
    return config;
  }
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string("./airlockd");
  dir.resize(dir.rfind('/'));
  config.init_path = dir + "/airlock-init";
  if (::access(config.init_path.c_str(), X_OK) != 0) config.init_path = dir + "/../libexec/airlock/airlock-init";
  return config;
}

int fail(const Logger& log, const Error& error) {
  log.error(error.describe());
  return 1;
}

}  // namespace

int run_daemon(const DaemonOptions& options) {
  Logger log(options.log_level);
  auto started = std::chrono::steady_clock::now();
  // Writes to a client that went away must be an error, not a signal that kills the daemon.
  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(log);

  auto dir = DataDir::open_exclusive(options.data_dir);
  if (!dir.ok()) return fail(log, dir.error());
  auto db = Database::open(dir->database_path());
  if (!db.ok()) return fail(log, db.error());
  KeyStore keys(*db.value());

  auto admin = bootstrap_admin_key(keys, dir->admin_key_path());
  if (!admin.ok()) return fail(log, admin.error());
  if (admin.value()) {
    log.info("created admin API key " + **admin + " (tenant " + kBootstrapTenant + "); its secret is in " +
             dir->admin_key_path() + " (mode 0600)");
  }

  // Sandboxes: without a usable engine (no cgroups, no airlock-init) the daemon still serves keys
  // and health, and the sandbox routes are absent (404) rather than failing at each call.
  SandboxStore sandbox_store(*db.value());
  Timers timers;  // keepalives and long polls; outlives the server and the manager
  // [obs] Quotas, metrics and logs: declared before the manager, which reports to them until it stops.
  DaemonMetrics metrics;
  SandboxLogs sandbox_logs(dir->path() + "/logs", log);
  QuotaStore quotas(*db.value(), sandbox_store, QuotaLimits{options.default_max_sandboxes, options.default_max_memory_mb});
  std::optional<SandboxUsageReader> usage_reader;
  if (auto roots = CgroupRoots::detect(); roots.ok()) usage_reader.emplace(std::move(roots).value());
  SandboxPolicy policy;
  policy.accounting = SandboxAccounting{&quotas, &metrics, &sandbox_logs, usage_reader ? &*usage_reader : nullptr};
  EngineConfig engine_cfg = engine_config();
  NetworkServiceOptions network_options = options.network;
  if (network_options.state_dir.empty()) network_options.state_dir = engine_cfg.run_dir + "/net";
  NetworkService network(std::move(network_options), log, &sandbox_logs);  // outlives the manager, which uses it
  std::unique_ptr<SandboxManager> sandboxes;
  if (auto engine = Engine::open(engine_cfg); engine.ok()) {
    sandboxes = std::make_unique<SandboxManager>(std::move(engine).value(), IdRangeAllocator(engine_cfg.run_dir + "/ids"),
                                                 sandbox_store, log, policy);  // [obs] policy
    sandboxes->set_network_service(&network);
    sandboxes->recover();  // before serving: re-takes each live sandbox's id-range lock
    sandboxes->start_timer();
  } else {
    log.warn("sandboxes unavailable: engine: " + engine.error().describe());
  }

  // Idempotency-Key replays: startProcess keys live as long as their sandbox is starting or running.
  // Asked of the store, not the manager, whose lookups count as activity (idle_timeout).
  IdempotencyStore idempotency(*db.value(), log, IdempotencyLimits{},
                               [&sandbox_store](const std::string& tenant, const std::string& sandbox_id) {
                                 auto record = sandbox_store.get(tenant, sandbox_id);
                                 // A store error keeps the keys: only a sandbox known to have ended drops them.
                                 return !record.ok() || (record.value() && is_live(record.value()->state));
                               });

  WorkerPool workers(options.workers);
  // Exposed ports (issue 4): the proxy ahead of the router, and the port routes.
  PortTokenStore port_tokens(*db.value());
  std::unique_ptr<PortService> ports;
  if (sandboxes) {
    ports = std::make_unique<PortService>(*sandboxes, port_tokens, workers, log, PortServiceOptions{options.proxy_domain});
  }

  Router router;
  ApiServices services{keys, log, started, sandboxes.get()};
  services.ports = ports.get();
  services.timers = &timers;
  services.idempotency = &idempotency;
  services.quotas = &quotas;        // [obs]
  services.metrics = &metrics;      // [obs]
  services.logs = &sandbox_logs;    // [obs]
  add_all_routes(router, services);
  Authenticator auth(keys);
  Api api(router, auth, log, &workers, &metrics);  // [obs] metrics
  api.set_port_proxy(ports.get());

  HttpServerOptions server_options;
  if (!options.listen.empty() && options.listen != "none") {
    auto address = parse_listen_address(options.listen);
    if (!address.ok()) return fail(log, address.error());
    server_options.tcp.push_back(address.value());
  }
  if (options.unix_enabled) server_options.unix_path = options.unix_path.value_or(dir->socket_path());
  server_options.threads = options.threads;
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    server_options.tls = TlsFiles{options.tls_cert, options.tls_key};
    if (server_options.tcp.empty()) log.warn("--tls-cert/--tls-key without a TCP listener: nothing will use them");
  }
  auto server = HttpServer::create(std::move(server_options), api, log);
  if (!server.ok()) return fail(log, server.error());

  for (const auto& address : server.value()->addresses()) {
    log.info("airlockd " + std::string(kDaemonVersion) + " listening on " + address);
  }
  server.value()->run();
  if (sandboxes) sandboxes->begin_shutdown();  // blocking commands end now rather than at their timeout
  workers.stop();  // before the server goes: a finishing job posts its response to the server's threads
  ports.reset();   // closes what relays are left and answers pending waits
  if (sandboxes) sandboxes->stop_timer();  // the sandboxes themselves keep running for the next start
  network.shutdown();  // the bridge and tables stay while a sandbox with an interface runs
  log.info("stopped");
  return 0;
}

}  // namespace airlock::daemon
