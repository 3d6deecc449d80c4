#include "daemon/daemon.h"

#include <sys/resource.h>

#include <chrono>
#include <csignal>

#include "daemon/admin_key.h"
#include "daemon/api.h"
#include "daemon/auth.h"
#include "daemon/data_dir.h"
#include "daemon/database.h"
#include "daemon/http_server.h"
#include "daemon/key_store.h"
#include "daemon/listen_address.h"
#include "daemon/routes/routes.h"
#include "daemon/version.h"

namespace airlock::daemon {
namespace {

// Each connection is a descriptor; the default soft limit (1024) is far below what the daemon serves.
void raise_fd_limit(const Logger& log) {
  struct rlimit lim;
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) log.warn("cannot raise the open-file limit");
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

  Router router;
  ApiServices services{keys, log, started};
  add_all_routes(router, services);
  Authenticator auth(keys);
  Api api(router, auth, log);

  HttpServerOptions server_options;
  if (!options.listen.empty() && options.listen != "none") {
    auto address = parse_listen_address(options.listen);
    if (!address.ok()) return fail(log, address.error());
    server_options.tcp.push_back(address.value());
  }
  if (options.unix_enabled) server_options.unix_path = options.unix_path.value_or(dir->socket_path());
  server_options.threads = options.threads;
  auto server = HttpServer::create(std::move(server_options), api, log);
  if (!server.ok()) return fail(log, server.error());

  for (const auto& address : server.value()->addresses()) {
    log.info("airlockd " + std::string(kDaemonVersion) + " listening on " + address);
  }
  server.value()->run();
  log.info("stopped");
  return 0;
}

}  // namespace airlock::daemon
