// The HTTP server's streamed request bodies (Admission::run_stream) over real loopback sockets: what
// the handler reads is the body, in pieces of at most 256 KiB, with Content-Length or chunked; 100
// Continue is sent only when the handler reads; the body limit ends in 413; a client that stalls
// or goes away, and a server that stops, end the handler's read with an error.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/unique_fd.h"
#include "daemon/body_reader.h"
#include "daemon/http_server.h"

namespace airlock::daemon {
namespace {

constexpr size_t kLimit = 4 << 20;

uint64_t fnv1a(std::string_view data, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 4096) & 0xff);
  return s;
}

// What one streamed handler saw.
struct Outcome {
  uint64_t bytes = 0;
  uint64_t hash = 1469598103934665603ull;
  size_t largest_piece = 0;
  std::string error;
};

// Reads the body on its own thread (as the daemon's worker pool does) and answers with what it
// read: "bytes hash". /noread answers at once without reading.
class StreamingHandler final : public HttpHandler {
 public:
  Admission admit(const HttpRequest& head) override {
    Admission a;
    a.body_limit = kLimit;
    if (head.target == "/noread") {
      a.run_stream = [](HttpRequest, std::shared_ptr<BodyReader>, Admission::Done done) {
        HttpResponse r;
        r.body = "not read";
        done(std::move(r));
      };
      return a;
    }
    a.run_stream = [this](HttpRequest, std::shared_ptr<BodyReader> body, Admission::Done done) {
      {
        std::lock_guard guard(mu_);
        ++started_;
        cv_.notify_all();
      }
      std::thread([this, body, done] {
        Outcome o;
        {
          BlockingBodyReader reader(*body);
          while (true) {
            auto piece = reader.next();
            if (!piece.ok()) {
              o.error = piece.error().message;
              break;
            }
            if (piece.value().empty()) break;
            o.bytes += piece.value().size();
            o.hash = fnv1a(piece.value(), o.hash);
            o.largest_piece = std::max(o.largest_piece, piece.value().size());
          }
        }
        HttpResponse r;
        r.status = o.error.empty() ? 200 : 400;
        r.body = std::to_string(o.bytes) + " " + std::to_string(o.hash);
        done(std::move(r));
        std::lock_guard guard(mu_);
        outcomes_.push_back(o);
        cv_.notify_all();
      }).detach();
    };
    return a;
  }

  // Waits for the n-th handler to finish (the test fails by its own timeout otherwise).
  Outcome outcome(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return outcomes_.size() >= n; });
    return outcomes_[n - 1];
  }
  size_t finished() {
    std::lock_guard guard(mu_);
    return outcomes_.size();
  }
  void wait_started(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return started_ >= n; });
  }
  void wait_all_finished() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return outcomes_.size() == started_; });
  }

 private:
  std::mutex mu_;  // guards started_ and outcomes_
  std::condition_variable cv_;
  size_t started_ = 0;
  std::vector<Outcome> outcomes_;
};

struct Response {
  int status = 0;
  std::string head;
  std::string body;
};

class HttpServerBodyTest : public ::testing::Test {
 protected:
  void SetUp() override { start(std::chrono::seconds(30)); }
  void start(std::chrono::seconds body_timeout) {
    HttpServerOptions options;
    options.tcp.push_back({"127.0.0.1", 0});
    options.stop_on_signals = false;
    options.body_timeout = body_timeout;
    options.shutdown_grace = std::chrono::seconds(1);
    auto server = HttpServer::create(std::move(options), handler_, log_);
    ASSERT_TRUE(server.ok()) << server.error().describe();
    server_ = std::move(server).value();
    std::string address = server_->addresses().at(0);  // http://127.0.0.1:PORT
    port_ = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override { stop(); }
  void stop() {
    if (!server_) return;
    server_->shutdown();
    thread_.join();
    // Handlers still reading were answered when run() returned; they post their answers to the
    // server, so they must be done before it goes (the daemon stops its worker pool first likewise).
    handler_.wait_all_finished();
    server_.reset();
  }

  UniqueFd connect_client() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{30, 0};  // a broken server fails the test instead of hanging it
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
  }
  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // One response (a 100 Continue is returned as such); the body by Content-Length.
  static Response read_response(int fd, std::string& buffered) {
    Response r;
    size_t end;
    while ((end = buffered.find("\r\n\r\n")) == std::string::npos) {
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return r;  // status 0: closed
      buffered.append(buf, static_cast<size_t>(n));
    }
    r.head = buffered.substr(0, end + 4);
    buffered.erase(0, end + 4);
    r.status = std::stoi(r.head.substr(9, 3));
    size_t length = 0;
    if (auto at = r.head.find("Content-Length: "); at != std::string::npos) length = std::stoul(r.head.substr(at + 16));
    while (buffered.size() < length) {
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      buffered.append(buf, static_cast<size_t>(n));
    }
    r.body = buffered.substr(0, length);
    buffered.erase(0, length);
    return r;
  }
  // True when the server closes the connection (after draining what it sent).
  static bool closed_by_server(int fd) {
    char buf[4096];
    while (true) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  static std::string expected(const std::string& body) {
    return std::to_string(body.size()) + " " + std::to_string(fnv1a(body));
  }

  Logger log_{LogLevel::kError};
  StreamingHandler handler_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

TEST_F(HttpServerBodyTest, ContentLengthBodyArrivesWholeInBoundedPieces) {
  std::string body = pattern(3 << 20);
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                                     "\r\n\r\n" + body));
  std::string buffered;
  Response r = read_response(fd.get(), buffered);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, expected(body));
  Outcome o = handler_.outcome(1);
  EXPECT_EQ(o.bytes, body.size());
  EXPECT_GT(o.largest_piece, 0u);
  EXPECT_LE(o.largest_piece, BodyReader::kMaxPiece);

  // The connection stays usable: a second streamed request on it.
  std::string small = "hello";
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n" + small));
  Response again = read_response(fd.get(), buffered);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.body, expected(small));
}

TEST_F(HttpServerBodyTest, ChunkedBodyIsDecoded) {
  std::string body = pattern(700 * 1024 + 3);
  std::string wire = "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t at = 0; at < body.size(); at += 100000) {
    std::string part = body.substr(at, 100000);
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", part.size());
    wire += size + part + "\r\n";
  }
  wire += "0\r\n\r\n";
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), wire));
  std::string buffered;
  Response r = read_response(fd.get(), buffered);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, expected(body));
}

TEST_F(HttpServerBodyTest, ContinueIsSentWhenTheHandlerReads) {
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"));
  std::string buffered;
  Response interim = read_response(fd.get(), buffered);
  EXPECT_EQ(interim.status, 100);
  ASSERT_TRUE(send_all(fd.get(), "abcd"));
  Response r = read_response(fd.get(), buffered);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, expected("abcd"));
}

TEST_F(HttpServerBodyTest, AnAnswerWithoutReadingSendsNoContinueAndCloses) {
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /noread HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"));
  std::string buffered;
  Response r = read_response(fd.get(), buffered);
  EXPECT_EQ(r.status, 200);  // the final answer, not 100
  EXPECT_EQ(r.body, "not read");
  EXPECT_NE(r.head.find("Connection: close"), std::string::npos) << r.head;
  EXPECT_TRUE(closed_by_server(fd.get()));
}

TEST_F(HttpServerBodyTest, DeclaredLengthOverTheLimitIs413BeforeTheHandler) {
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(kLimit + 1) + "\r\n\r\n"));
  std::string buffered;
  Response r = read_response(fd.get(), buffered);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("\"payload_too_large\""), std::string::npos) << r.body;
  EXPECT_TRUE(closed_by_server(fd.get()));
  EXPECT_EQ(handler_.finished(), 0u);
}

TEST_F(HttpServerBodyTest, ChunkedBodyOverTheLimitIs413AndTheHandlerSeesAnError) {
  std::string chunk(1 << 20, 'z');
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  // Sent from another thread: the server stops reading at the limit, and this would block.
  std::thread sender([&] {
    for (size_t sent = 0; sent <= kLimit; sent += chunk.size()) {
      if (!send_all(fd.get(), size + chunk + "\r\n")) return;
    }
  });
  std::string buffered;
  Response r = read_response(fd.get(), buffered);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("\"limit_bytes\":" + std::to_string(kLimit)), std::string::npos) << r.body;
  Outcome o = handler_.outcome(1);
  EXPECT_NE(o.error.find("exceeds"), std::string::npos) << o.error;
  EXPECT_LE(o.bytes, kLimit);
  ::shutdown(fd.get(), SHUT_RDWR);
  sender.join();
}

TEST_F(HttpServerBodyTest, MalformedChunkedBodyIs400) {
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nzz\r\n"));
  std::string buffered;
  Response r = read_response(fd.get(), buffered);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("malformed HTTP request"), std::string::npos) << r.body;
  EXPECT_NE(handler_.outcome(1).error, "");
}

TEST_F(HttpServerBodyTest, AClientThatGoesAwayEndsTheHandlersRead) {
  {
    UniqueFd fd = connect_client();
    ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + pattern(300000)));
  }  // closed mid-body
  Outcome o = handler_.outcome(1);
  EXPECT_NE(o.error.find("went away"), std::string::npos) << o.error;
  EXPECT_LE(o.bytes, 300000u);
  // The server still serves.
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"));
  std::string buffered;
  EXPECT_EQ(read_response(fd.get(), buffered).body, expected("ok"));
}

TEST_F(HttpServerBodyTest, AClientThatStallsIsTimedOut) {
  stop();
  start(std::chrono::seconds(1));
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"));
  Outcome o = handler_.outcome(1);  // after the body timeout
  EXPECT_NE(o.error.find("sent nothing"), std::string::npos) << o.error;
  EXPECT_EQ(o.bytes, 3u);
  EXPECT_TRUE(closed_by_server(fd.get()));  // no answer for a client that stalled
}

TEST_F(HttpServerBodyTest, AServerThatStopsAnswersAReadUnderWay) {
  UniqueFd fd = connect_client();
  ASSERT_TRUE(send_all(fd.get(), "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"));
  handler_.wait_started(1);
  stop();  // the grace period ends with the client still silent; the handler must not hang
  Outcome o = handler_.outcome(1);
  EXPECT_FALSE(o.error.empty());
}

}  // namespace
}  // namespace airlock::daemon
