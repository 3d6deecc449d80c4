// The port proxy (issue 4, "Exposed ports"): requests for /p/{sandbox_id}/{port}/... or, with a proxy
// domain, for the host {port}-{sandbox_id}.{domain} are authorised (public port, or an access token of
// that port) and handed to the HTTP server as a byte relay to 127.0.0.1:PORT (then ::1) *inside* the
// sandbox's network namespace: the socket is created there through its init's pidfd, so no route,
// address or firewall rule is involved and it works for sandboxes without an interface.
//
// Per sandbox it keeps, while the sandbox is live and has been used: its tenant, exposed ports, a
// pidfd of its init and the open relays. One monitor thread watches those pidfds: when init exits
// (DELETE, deadline, crash) the relays are closed and the tokens deleted at once, so no socket keeps
// the ended sandbox's network namespace (and its veth) alive. The same thread probes ports for
// `/ports/{port}/wait` every 100 ms (no worker waits).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "daemon/errors.h"
#include "daemon/http_server.h"
#include "daemon/log.h"
#include "daemon/port_address.h"
#include "daemon/port_tokens.h"
#include "daemon/sandbox_manager.h"
#include "daemon/worker_pool.h"

namespace airlock::daemon {

struct PortServiceOptions {
  std::string proxy_domain;  // "" : no host-based URLs
};

class PortService {
 public:
  PortService(SandboxManager& sandboxes, PortTokenStore& tokens, WorkerPool& workers, const Logger& log,
              PortServiceOptions options);
  ~PortService();
  PortService(const PortService&) = delete;
  PortService& operator=(const PortService&) = delete;

  // nullopt: not a request for the proxy (the API router takes it).
  std::optional<Admission> admit(const HttpRequest& head);

  const std::string& proxy_domain() const { return options_.proxy_domain; }
  PortTokenStore& tokens() { return tokens_; }

  // The exposed ports changed (routes): the cache follows; an unexposed port's relays are closed.
  void ports_changed(const std::string& sandbox_id, std::optional<uint16_t> removed);
  // A socket connected to the port inside the tenant's live sandbox (the owner's /connect and /wait).
  // 404 sandbox_not_found / 409 (not live) / 502 port_unreachable.
  ApiResult<UniqueFd> connect_owned(const std::string& tenant, const std::string& sandbox_id, uint16_t port);
  // Registers a relay of the sandbox so that it is closed when the sandbox ends.
  void track(const std::string& sandbox_id, uint16_t port, std::shared_ptr<Tunnel> tunnel);
  // Long poll: `done(true)` once something accepts on the port, `done(false)` at the deadline or when
  // the sandbox ends. Called from the monitor thread.
  void wait_for(const std::string& sandbox_id, uint16_t port, std::chrono::milliseconds timeout,
                std::function<void(bool)> done);

 private:
  struct Entry {
    std::string sandbox_id;
    std::string tenant;
    std::vector<ExposedPort> ports;
    std::shared_ptr<UniqueFd> pidfd;  // shared: a connect under way keeps it open
    std::vector<std::pair<uint16_t, std::weak_ptr<Tunnel>>> tunnels;
  };
  struct Wait {
    std::string sandbox_id;
    uint16_t port;
    std::chrono::steady_clock::time_point deadline;
    std::function<void(bool)> done;
  };

  // The cached entry (created from the manager on first use); null when the sandbox is not live.
  std::shared_ptr<Entry> entry(const std::string& sandbox_id);
  void forward(HttpRequest head, PortAddress address, Admission::Done done);
  void monitor_loop();
  void sandbox_ended(const std::string& sandbox_id);
  void wake();

  SandboxManager& sandboxes_;
  PortTokenStore& tokens_;
  WorkerPool& workers_;
  const Logger& log_;
  PortServiceOptions options_;

  std::mutex mu_;  // guards entries_, waits_, stopping_, and each Entry's ports and tunnels
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::vector<Wait> waits_;
  bool stopping_ = false;
  UniqueFd epoll_, wake_fd_;
  std::thread monitor_;
};

// A stream socket connected to 127.0.0.1:port, else [::1]:port, inside the netns of `pidfd`'s
// process. ECONNREFUSED (both) when nothing listens there.
Result<UniqueFd> connect_in_netns(int pidfd, uint16_t port);

}  // namespace airlock::daemon
