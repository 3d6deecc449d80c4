#include "cli/daemon_socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

namespace airlock::cli {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

Error connect_error(const DaemonEndpoint& endpoint, const error_code& ec) {
  return Error{ec.value(), "cannot reach the daemon at " + endpoint.describe() + ": " + ec.message()};
}

}  // namespace

Result<DaemonSocket> connect_daemon(asio::io_context& io, const DaemonEndpoint& endpoint) {
  DaemonSocket socket(io);
  error_code ec;
  if (endpoint.kind == DaemonEndpoint::Kind::kUnix) {
    socket.connect(asio::generic::stream_protocol::endpoint(asio::local::stream_protocol::endpoint(endpoint.unix_path)), ec);
    if (ec) return connect_error(endpoint, ec);
    return socket;
  }
  std::vector<asio::ip::tcp::endpoint> candidates;
  auto literal = asio::ip::make_address(endpoint.host, ec);
  if (!ec) {
    candidates.emplace_back(literal, endpoint.port);
  } else {
    asio::ip::tcp::resolver resolver(io);
    auto results = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
    if (ec) return Error{ec.value(), "resolve " + endpoint.host + ": " + ec.message()};
    for (const auto& entry : results) candidates.push_back(entry.endpoint());
  }
  ec = asio::error::host_not_found;
  for (const auto& candidate : candidates) {
    socket.close();
    socket.connect(asio::generic::stream_protocol::endpoint(candidate), ec);
    if (!ec) {
      // Small request heads and interactive keystrokes must not wait for Nagle.
      int one = 1;
      ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return socket;
    }
  }
  return connect_error(endpoint, ec);
}

}  // namespace airlock::cli
