// A connected stream socket to the daemon, TCP or unix, as one Asio type (the generic stream
// protocol), so that the HTTP client and the WebSocket attach share one code path for both.
// Included only from .cc files: it pulls in Asio.
#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include "cli/client_config.h"
#include "common/result.h"

namespace airlock::cli {

using DaemonSocket = boost::asio::generic::stream_protocol::socket;

// Connects to the endpoint. Host names are resolved with getaddrinfo; IP literals never are (the
// binary is static, and a literal needs no NSS modules).
Result<DaemonSocket> connect_daemon(boost::asio::io_context& io, const DaemonEndpoint& endpoint);

}  // namespace airlock::cli
