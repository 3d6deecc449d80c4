#include "cli/http_client.h"

#include <strings.h>
#include <unistd.h>

#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <limits>
#include <optional>

#include "cli/daemon_socket.h"

namespace airlock::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

constexpr const char* kUserAgent = "airlock-cli/0.1.0";

Error transport_error(std::string_view what, const error_code& ec) {
  if (ec == http::error::partial_message || ec == asio::error::eof || ec == asio::error::connection_reset)
    return plain_error(std::string(what) + ": the daemon closed the connection");
  return plain_error(std::string(what) + ": " + ec.message());  // errnum 0: EPIPE here is not our stdout
}

template <class Body>
void fill_head(http::request<Body>& req, const HttpRequestHead& head, const std::string& host) {
  req.version(11);
  req.method_string(head.method);
  req.target(head.target);
  req.set(http::field::host, host);
  req.set(http::field::user_agent, kUserAgent);
  for (const auto& h : head.headers) req.set(h.name, h.value);
}

}  // namespace

const std::string* HttpResponseHead::find(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name.size() == name.size() && ::strncasecmp(h.name.data(), name.data(), name.size()) == 0) return &h.value;
  }
  return nullptr;
}

struct HttpConnection::Impl {
  Impl(DaemonSocket s, std::string h) : socket(std::move(s)), host(std::move(h)) {}
  // io must outlive the socket: declared first, destroyed last. Owned by the connection so that a
  // moved connection keeps working.
  std::unique_ptr<asio::io_context> io;
  DaemonSocket socket;
  std::string host;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::buffer_body>> parser;
};

HttpConnection::HttpConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpConnection::HttpConnection(HttpConnection&&) noexcept = default;
HttpConnection& HttpConnection::operator=(HttpConnection&&) noexcept = default;
HttpConnection::~HttpConnection() = default;

Result<HttpConnection> HttpConnection::connect(const DaemonEndpoint& endpoint) {
  auto io = std::make_unique<asio::io_context>(1);
  auto socket = connect_daemon(*io, endpoint);
  if (!socket.ok()) return std::move(socket).error();
  auto impl = std::make_unique<Impl>(std::move(*socket), endpoint.host_header());
  impl->io = std::move(io);
  return HttpConnection(std::move(impl));
}

Status HttpConnection::send(const HttpRequestHead& head, std::string_view body) {
  http::request<http::string_body> req;
  fill_head(req, head, impl_->host);
  req.body() = std::string(body);
  req.prepare_payload();
  error_code ec;
  http::write(impl_->socket, req, ec);
  if (ec) return transport_error("send " + head.method + " " + head.target, ec);
  return {};
}

Status HttpConnection::send_from_fd(const HttpRequestHead& head, int fd, uint64_t length) {
  http::request<http::empty_body> req;
  fill_head(req, head, impl_->host);
  req.content_length(length);
  http::request_serializer<http::empty_body> serializer(req);
  error_code ec;
  http::write_header(impl_->socket, serializer, ec);
  if (ec) return transport_error("send " + head.method + " " + head.target, ec);
  std::vector<char> chunk(256 * 1024);
  uint64_t sent = 0;
  while (sent < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), length - sent));
    ssize_t n = ::read(fd, chunk.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("read");
    // The file shrank under us: stop here; the daemon sees a short body and keeps the old file.
    if (n == 0) return plain_error("the file shrank while it was being sent");
    asio::write(impl_->socket, asio::buffer(chunk.data(), static_cast<size_t>(n)), ec);
    if (ec) return transport_error("send " + head.target, ec);
    sent += static_cast<uint64_t>(n);
  }
  return {};
}

Result<HttpResponseHead> HttpConnection::read_head() {
  auto& parser = impl_->parser.emplace();
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  error_code ec;
  http::read_header(impl_->socket, impl_->buffer, parser, ec);
  if (ec) return transport_error("read the response", ec);
  HttpResponseHead head;
  head.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    head.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  return head;
}

Result<size_t> HttpConnection::read_body(char* buffer, size_t cap) {
  if (!impl_->parser) return plain_error("read_body before read_head");
  auto& parser = *impl_->parser;
  for (;;) {
    if (parser.is_done()) return size_t{0};
    auto& body = parser.get().body();
    body.data = buffer;
    body.size = cap;
    error_code ec;
    // read_some returns as soon as the parser made progress: a live stream is not held back
    // until the buffer fills.
    http::read_some(impl_->socket, impl_->buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return transport_error("read the response body", ec);
    size_t n = cap - body.size;
    if (n > 0) return n;
  }
}

Result<std::string> HttpConnection::read_body_all(size_t limit) {
  std::string out;
  char chunk[16384];
  for (;;) {
    auto n = read_body(chunk, sizeof chunk);
    if (!n.ok()) return std::move(n).error();
    if (*n == 0) return out;
    if (out.size() + *n > limit) return plain_error("the daemon's response exceeds " + std::to_string(limit) + " bytes");
    out.append(chunk, *n);
  }
}

}  // namespace airlock::cli
