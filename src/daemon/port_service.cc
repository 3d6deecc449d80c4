#include "daemon/port_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "network/netns.h"

namespace airlock::daemon {
namespace {

constexpr auto kProbeInterval = std::chrono::milliseconds(100);
constexpr int kConnectTimeoutMs = 2000;  // a loopback connect is answered at once; a full backlog is not

// One blocking connect, bounded (SO_SNDTIMEO bounds connect(2) too).
Status connect_local(int fd, int family, uint16_t port) {
  timeval tv{kConnectTimeoutMs / 1000, (kConnectTimeoutMs % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  if (family == AF_INET) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    sa.sin6_addr = in6addr_loopback;
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  if (rc != 0) return sys_error("connect");
  timeval none{0, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small requests: no Nagle delay
  return {};
}

ApiError port_not_found(const std::string& sandbox_id, uint16_t port) {
  return api_error(ErrorCode::kPortNotFound, "no live sandbox " + sandbox_id + " exposing port " + std::to_string(port));
}

ApiError unreachable(uint16_t port, const Error& cause) {
  return api_error(ErrorCode::kPortUnreachable, "nothing accepts connections on port " + std::to_string(port) +
                                                    " inside the sandbox (" + cause.describe() + ")")
      .with_details({{"port", port}});
}

}  // namespace

Result<UniqueFd> connect_in_netns(int pidfd, uint16_t port) {
  Error last{ECONNREFUSED, "connect"};
  for (int family : {AF_INET, AF_INET6}) {
    TRY(auto fd, net::socket_in_netns(pidfd, family, SOCK_STREAM));
    auto connected = connect_local(fd.get(), family, port);
    if (connected.ok()) return fd;
    last = connected.error();
  }
  return last;
}

PortService::PortService(SandboxManager& sandboxes, PortTokenStore& tokens, WorkerPool& workers, const Logger& log,
                         PortServiceOptions options)
    : sandboxes_(sandboxes), tokens_(tokens), workers_(workers), log_(log), options_(std::move(options)) {
  // Tokens of sandboxes that ended while no daemon ran go now.
  if (auto removed = tokens_.remove_ended(); !removed.ok()) log_.warn("port tokens: " + removed.error().describe());
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
  monitor_ = std::thread([this] { monitor_loop(); });
}

PortService::~PortService() {
  {
    std::lock_guard guard(mu_);
    stopping_ = true;
  }
  wake();
  monitor_.join();
  std::vector<Wait> waits;
  std::vector<std::shared_ptr<Tunnel>> open;
  {
    std::lock_guard guard(mu_);
    waits.swap(waits_);
    for (auto& [id, e] : entries_) {
      for (auto& [port, weak] : e->tunnels) {
        if (auto t = weak.lock()) open.push_back(std::move(t));
      }
    }
    entries_.clear();
  }
  for (auto& w : waits) w.done(false);
  for (auto& t : open) t->close();
}

void PortService::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
}

std::shared_ptr<PortService::Entry> PortService::entry(const std::string& sandbox_id) {
  {
    std::lock_guard guard(mu_);
    if (auto it = entries_.find(sandbox_id); it != entries_.end()) return it->second;
  }
  auto target = sandboxes_.port_target(sandbox_id);
  if (!target) return nullptr;
  auto e = std::make_shared<Entry>();
  e->sandbox_id = sandbox_id;
  e->tenant = std::move(target->tenant);
  e->ports = std::move(target->ports);
  e->pidfd = std::make_shared<UniqueFd>(std::move(target->pidfd));
  std::lock_guard guard(mu_);
  if (stopping_) return nullptr;
  auto [it, inserted] = entries_.emplace(sandbox_id, e);
  if (!inserted) return it->second;  // another thread got there first
  // The monitor hears of init's exit through its pidfd (readable when the process ends).
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = e.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, e->pidfd->get(), &ev);
  return e;
}

void PortService::ports_changed(const std::string& sandbox_id, std::optional<uint16_t> removed) {
  auto target = sandboxes_.port_target(sandbox_id);
  std::vector<std::shared_ptr<Tunnel>> closing;
  {
    std::lock_guard guard(mu_);
    auto it = entries_.find(sandbox_id);
    if (it == entries_.end()) return;
    if (target) it->second->ports = target->ports;
    if (removed) {
      auto& tunnels = it->second->tunnels;
      for (auto t = tunnels.begin(); t != tunnels.end();) {
        if (t->first != *removed) {
          ++t;
          continue;
        }
        if (auto open = t->second.lock()) closing.push_back(std::move(open));
        t = tunnels.erase(t);
      }
    }
  }
  for (auto& t : closing) t->close();
}

void PortService::track(const std::string& sandbox_id, uint16_t port, std::shared_ptr<Tunnel> tunnel) {
  {
    std::lock_guard guard(mu_);
    auto it = entries_.find(sandbox_id);
    if (it != entries_.end()) {
      auto& tunnels = it->second->tunnels;
      std::erase_if(tunnels, [](const auto& t) { return t.second.expired(); });
      tunnels.emplace_back(port, tunnel);
      return;
    }
  }
  tunnel->close();  // the sandbox ended while the relay was being set up
}

ApiResult<UniqueFd> PortService::connect_owned(const std::string& tenant, const std::string& sandbox_id, uint16_t port) {
  auto e = entry(sandbox_id);
  if (!e || e->tenant != tenant) {
    return api_error(ErrorCode::kSandboxNotFound, "no running sandbox " + sandbox_id);
  }
  auto fd = connect_in_netns(e->pidfd->get(), port);
  if (!fd.ok()) return unreachable(port, fd.error());
  return std::move(fd).value();
}

void PortService::wait_for(const std::string& sandbox_id, uint16_t port, std::chrono::milliseconds timeout,
                           std::function<void(bool)> done) {
  {
    std::lock_guard guard(mu_);
    if (!stopping_) {
      waits_.push_back({sandbox_id, port, std::chrono::steady_clock::now() + timeout, std::move(done)});
      done = nullptr;
    }
  }
  if (done) return done(false);
  wake();
}

std::optional<Admission> PortService::admit(const HttpRequest& head) {
  PortAddressMatch match;
  if (!options_.proxy_domain.empty()) {
    if (auto host = head.header("Host")) match = match_port_host(*host, options_.proxy_domain, head.target);
  }
  if (std::holds_alternative<std::monostate>(match)) match = match_port_path(head.target);
  if (std::holds_alternative<std::monostate>(match)) return std::nullopt;
  if (auto* bad = std::get_if<PortAddressError>(&match)) {
    return Admission{error_response(api_error(ErrorCode::kPortNotFound, bad->message)), 0, {}};
  }
  Admission admission;
  admission.run_tunnel = [this, address = std::get<PortAddress>(std::move(match))](HttpRequest request,
                                                                                  Admission::Done done) mutable {
    // On a worker: the token lookup is a store read, and the connect a thread joining the sandbox's netns.
    auto job = [this, request = std::move(request), address = std::move(address), done]() mutable {
      forward(std::move(request), std::move(address), done);
    };
    if (!workers_.submit(std::move(job))) {
      done(error_response(api_error(ErrorCode::kUnavailable, "the daemon is shutting down").with_header("Retry-After", "1")));
    }
  };
  return admission;
}

void PortService::forward(HttpRequest head, PortAddress address, Admission::Done done) {
  auto fail = [&](ApiError error) {
    HttpResponse r = error_response(error);
    r.close = true;
    done(std::move(r));
  };
  auto e = entry(address.sandbox_id);
  std::optional<ExposedPort> exposed;
  if (e) {
    std::lock_guard guard(mu_);
    for (const auto& p : e->ports) {
      if (p.port == address.port) exposed = p;
    }
  }
  if (!exposed) return fail(port_not_found(address.sandbox_id, address.port));
  auto credential = find_port_token(head, head.target);
  if (!exposed->is_public) {
    bool ok = false;
    if (credential) {
      auto valid = tokens_.valid(address.sandbox_id, address.port, credential->token, unix_millis_now());
      if (!valid.ok()) return fail(internal_error(valid.error()));
      ok = valid.value();
    }
    if (!ok) {
      return fail(api_error(ErrorCode::kPortTokenRequired,
                            std::string(credential ? "the access token is not valid for this port (revoked, expired or another port's)"
                                                   : "this port needs an access token") +
                                ": header " + std::string(kPortTokenHeader) + ", query parameter " +
                                std::string(kPortTokenQuery) + " or cookie " + std::string(kPortTokenCookie))
                      .with_header("WWW-Authenticate", "Bearer realm=\"airlock port\""));
    }
  }
  auto preamble = forwarded_head(head, address);
  if (!preamble) {
    return fail(api_error(ErrorCode::kInvalidParameter, "a header or the target holds CR, LF or NUL"));
  }
  auto fd = connect_in_netns(e->pidfd->get(), address.port);
  if (!fd.ok()) return fail(unreachable(address.port, fd.error()));
  auto target = std::make_shared<TunnelTarget>();
  target->socket = std::move(fd).value();
  target->preamble = std::move(*preamble);
  if (credential && credential->from_query && !exposed->is_public) {
    target->response_header = "Set-Cookie: " + port_token_cookie(address, credential->token, head.tls) + "\r\n";
  }
  // The relay ends with this response (the request went with Connection: close): say so to the
  // client too, whatever the sandbox's server says, so that it does not send a next request into it.
  if (!is_upgrade(head)) target->response_header += "Connection: close\r\n";
  target->opened = [this, id = address.sandbox_id, port = address.port](std::shared_ptr<Tunnel> t) {
    track(id, port, std::move(t));
  };
  HttpResponse r;
  r.tunnel = std::move(target);
  done(std::move(r));
}

void PortService::sandbox_ended(const std::string& sandbox_id) {
  std::shared_ptr<Entry> e;
  {
    std::lock_guard guard(mu_);
    auto it = entries_.find(sandbox_id);
    if (it == entries_.end()) return;
    e = it->second;
    entries_.erase(it);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, e->pidfd->get(), nullptr);
  }
  for (auto& [port, weak] : e->tunnels) {
    if (auto t = weak.lock()) t->close();
  }
  if (auto removed = tokens_.remove_sandbox(sandbox_id); !removed.ok()) {
    log_.warn("sandbox " + sandbox_id + ": port tokens: " + removed.error().describe());
  }
}

void PortService::monitor_loop() {
  while (true) {
    int timeout_ms;
    {
      std::lock_guard guard(mu_);
      if (stopping_) return;
      timeout_ms = waits_.empty() ? -1 : static_cast<int>(kProbeInterval.count());
    }
    epoll_event events[16];
    int n = ::epoll_wait(epoll_.get(), events, 16, timeout_ms);
    std::vector<std::string> ended;
    {
      std::lock_guard guard(mu_);
      if (stopping_) return;
      for (int i = 0; i < n; ++i) {
        if (!events[i].data.ptr) {
          uint64_t v;
          [[maybe_unused]] auto r = ::read(wake_fd_.get(), &v, sizeof v);
          continue;
        }
        // The pointer is only used to find the id: entries leave epoll before they are freed.
        for (auto& [id, e] : entries_) {
          if (e.get() == events[i].data.ptr) ended.push_back(id);
        }
      }
    }
    for (const auto& id : ended) sandbox_ended(id);
    // Readiness probes, outside the lock (each is a connect inside the sandbox).
    std::vector<Wait> waits;
    {
      std::lock_guard guard(mu_);
      waits.swap(waits_);
    }
    auto now = std::chrono::steady_clock::now();
    std::vector<Wait> pending;
    for (auto& w : waits) {
      auto e = entry(w.sandbox_id);
      bool ready = e && connect_in_netns(e->pidfd->get(), w.port).ok();
      if (ready || !e || now >= w.deadline) {
        w.done(ready);
      } else {
        pending.push_back(std::move(w));
      }
    }
    std::lock_guard guard(mu_);
    for (auto& w : pending) waits_.push_back(std::move(w));
  }
}

}  // namespace airlock::daemon
