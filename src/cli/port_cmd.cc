#include "cli/port_cmd.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <csignal>
#include <cstdio>
#include <memory>

#include "cli/daemon_socket.h"
#include "cli/daemon_verb.h"
#include "cli/exit_codes.h"
#include "cli/query_string.h"

namespace airlock::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using WsStream = websocket::stream<DaemonSocket>;

constexpr const char* kUsage =
    "usage: airlock port <command> ID [args]\n"
    "\n"
    "commands:\n"
    "  ls ID                         the sandbox's exposed ports and their URLs\n"
    "  expose ID PORT [--public]     expose PORT through the daemon's proxy (--public: no token needed)\n"
    "  rm ID PORT                    stop exposing PORT (its tokens go too)\n"
    "  token ID PORT [--name N] [--expires-in SECONDS]\n"
    "                                create an access token for PORT and print it (shown once)\n";

int fail(const Error& error) {
  print_error(error);
  return kExitAirlockError;
}

std::optional<uint16_t> port_number(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  unsigned long v = std::stoul(text);
  if (v < 1 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

void print_port(const nlohmann::json& p) {
  std::string host = p.contains("host_url") && p["host_url"].is_string() ? p["host_url"].get<std::string>() : "-";
  std::printf("%-6d %-7s %s  %s\n", p.value("port", 0), p.value("public", false) ? "public" : "token",
              p.value("url", std::string("-")).c_str(), host.c_str());
}

int port_command(const std::vector<std::string>& args, GlobalOptions globals) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? kExitAirlockError : 0;
  }
  std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  CLI::App app{"Exposed ports of a sandbox.", "airlock port " + command};
  std::string id, port_text, name;
  bool is_public = false, json = false;
  long long expires_in = 0;
  app.add_option("ID", id, "sandbox id")->required();
  if (command != "ls") app.add_option("PORT", port_text, "port inside the sandbox (1-65535)")->required();
  if (command == "expose") app.add_flag("--public", is_public, "reachable without an access token");
  if (command == "token") {
    app.add_option("--name", name, "a label for the token");
    app.add_option("--expires-in", expires_in, "seconds until it expires (default: until revoked)");
  }
  app.add_flag("--json", json, "print what the API returns");
  add_connection_options(app, globals);
  if (command != "ls" && command != "expose" && command != "rm" && command != "token") {
    print_error("unknown port command \"" + command + "\"");
    std::fputs(kUsage, stderr);
    return kExitAirlockError;
  }
  if (auto code = parse_verb(app, rest)) return *code;
  std::optional<uint16_t> port;
  if (command != "ls") {
    port = port_number(port_text);
    if (!port) return fail(plain_error("invalid port \"" + port_text + "\" (expected 1-65535)"));
  }
  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  std::string base = sandbox_target(id, "/ports");
  if (command == "ls") {
    auto r = api->get(base);
    if (!r.ok()) return fail(r.error());
    if (json) return std::printf("%s\n", dump_json(*r, 2).c_str()), 0;
    for (const auto& p : (*r)["ports"]) print_port(p);
    return 0;
  }
  if (command == "expose") {
    auto r = api->post(base, {{"port", *port}, {"public", is_public}});
    if (!r.ok()) return fail(r.error());
    if (json) return std::printf("%s\n", dump_json(*r, 2).c_str()), 0;
    print_port(*r);
    return 0;
  }
  if (command == "rm") {
    auto r = api->request("DELETE", base + "/" + std::to_string(*port));
    if (!r.ok()) return fail(r.error());
    if (!r->ok()) return fail(r->error());
    return 0;
  }
  nlohmann::json body = nlohmann::json::object();
  if (!name.empty()) body["name"] = name;
  if (expires_in > 0) body["expires_in"] = expires_in;
  auto r = api->post(base + "/" + std::to_string(*port) + "/tokens", body);
  if (!r.ok()) return fail(r.error());
  if (json) return std::printf("%s\n", dump_json(*r, 2).c_str()), 0;
  std::printf("%s\n", r->value("token", std::string()).c_str());
  return 0;
}

// --- port-forward ----------------------------------------------------------------------------------

struct Forward {
  uint16_t local = 0, remote = 0;
};

// One accepted local connection <-> one /connect WebSocket. Each direction has one buffer and one
// operation at a time, so neither side is read faster than the other takes it.
class ForwardedConnection : public std::enable_shared_from_this<ForwardedConnection> {
 public:
  ForwardedConnection(tcp::socket local, WsStream ws) : local_(std::move(local)), ws_(std::move(ws)), up_(64 * 1024) {}
  void start() {
    ws_.binary(true);
    read_local();
    read_ws();
  }

 private:
  void read_local() {
    local_.async_read_some(asio::buffer(up_), [self = shared_from_this()](error_code ec, size_t n) {
      if (ec) {  // the local client is done: close the WebSocket (the daemon closes the port's connection)
        return self->ws_.async_close(websocket::close_code::normal, [self](error_code) { self->stop(); });
      }
      self->ws_.async_write(asio::buffer(self->up_.data(), n), [self](error_code ec2, size_t) {
        if (ec2) return self->stop();
        self->read_local();
      });
    });
  }
  void read_ws() {
    ws_.async_read(down_, [self = shared_from_this()](error_code ec, size_t) {
      if (ec) return self->stop();  // the port closed (close frame) or the daemon went away
      asio::async_write(self->local_, self->down_.data(), [self](error_code ec2, size_t) {
        if (ec2) return self->stop();
        self->down_.consume(self->down_.size());
        self->read_ws();
      });
    });
  }
  void stop() {
    error_code ignored;
    local_.shutdown(tcp::socket::shutdown_both, ignored);
    local_.close(ignored);
    beast::get_lowest_layer(ws_).close(ignored);
  }

  tcp::socket local_;
  WsStream ws_;
  std::vector<char> up_;
  beast::flat_buffer down_;
};

// Opens the WebSocket to the port (blocking: the handshake is quick; the relay itself is async).
Result<WsStream> open_connect(asio::io_context& io, const ApiClient& api, const std::string& id, uint16_t port) {
  TRY(auto socket, connect_daemon(io, api.config().endpoint));
  WsStream ws(std::move(socket));
  ws.read_message_max(1 << 20);
  auto headers = api.auth_headers();
  ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    for (const auto& h : headers) req.set(h.name, h.value);
    req.set(beast::http::field::user_agent, "airlock-cli/0.1.0");
  }));
  error_code ec;
  ws.handshake(api.config().endpoint.host_header(), sandbox_target(id, "/ports/" + std::to_string(port) + "/connect"), ec);
  if (ec) return plain_error("connect to port " + std::to_string(port) + " in " + id + ": " + ec.message());
  return ws;
}

int port_forward(const std::vector<std::string>& args, GlobalOptions globals) {
  CLI::App app{"Forward local TCP ports to ports inside a sandbox (Ctrl-C stops).", "airlock port-forward"};
  std::string id;
  std::vector<std::string> specs;
  std::string address = "127.0.0.1";
  app.add_option("ID", id, "sandbox id")->required();
  app.add_option("PORTS", specs, "[LOCAL:]REMOTE (LOCAL 0: any free port)")->required();
  app.add_option("--address", address, "local address to listen on")->capture_default_str();
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;
  std::vector<Forward> forwards;
  for (const auto& spec : specs) {
    size_t colon = spec.find(':');
    Forward f;
    auto remote = port_number(colon == std::string::npos ? spec : spec.substr(colon + 1));
    std::string local_text = colon == std::string::npos ? spec : spec.substr(0, colon);
    auto local = local_text == "0" ? std::optional<uint16_t>(0) : port_number(local_text);
    if (!remote || !local) return fail(plain_error("invalid port pair \"" + spec + "\" (expected [LOCAL:]REMOTE)"));
    f.local = *local;
    f.remote = *remote;
    forwards.push_back(f);
  }
  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  // The sandbox must exist and run: say so now rather than at the first connection.
  if (auto r = api->get(sandbox_target(id)); !r.ok()) return fail(r.error());

  asio::io_context io(1);
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec) return fail(plain_error("invalid --address \"" + address + "\""));
  for (const auto& f : forwards) {
    auto acceptor = std::make_unique<tcp::acceptor>(io);
    tcp::endpoint endpoint(ip, f.local);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail(plain_error("listen on " + address + ":" + std::to_string(f.local) + ": " + ec.message()));
    std::printf("Forwarding from %s:%d -> %s:%d\n", address.c_str(), acceptor->local_endpoint().port(), id.c_str(), f.remote);
    acceptors.push_back(std::move(acceptor));
  }
  std::fflush(stdout);
  const ApiClient& client = *api;
  std::function<void(size_t)> accept_next = [&](size_t i) {
    acceptors[i]->async_accept([&, i](error_code aec, tcp::socket socket) {
      if (aec == asio::error::operation_aborted) return;
      if (!aec) {
        auto ws = open_connect(io, client, id, forwards[i].remote);
        if (ws.ok()) {
          error_code ignored;
          socket.set_option(tcp::no_delay(true), ignored);
          std::make_shared<ForwardedConnection>(std::move(socket), std::move(ws).value())->start();
        } else {
          print_error(ws.error());
        }
      }
      accept_next(i);
    });
  };
  for (size_t i = 0; i < acceptors.size(); ++i) accept_next(i);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](error_code, int) { io.stop(); });
  io.run();
  return 0;
}

}  // namespace

int port_verb(const std::vector<std::string>& args, const GlobalOptions& globals) { return port_command(args, globals); }
int port_forward_verb(const std::vector<std::string>& args, const GlobalOptions& globals) {
  return port_forward(args, globals);
}

}  // namespace airlock::cli
