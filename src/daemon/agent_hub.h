// AgentHub: the daemon's connections to its sandboxes' agents, multiplexed. One connection per
// sandbox carries every command, file request and watch of that sandbox at once; one thread
// (epoll) reads all connections and hands each frame to the sink registered for its id.
//
// Everything from an agent is hostile (docs/PROTOCOL.md): frames are decoded by the strict codec,
// a frame for an id nobody asked about (beyond late events of earlier processes) or of a type the
// sink did not expect drops the connection, and reading never waits on a slow consumer: sinks are
// called on the hub thread and must not block (they copy what they keep and return).
//
// Writes are bounded: at most kMaxQueued bytes wait per connection; a sender finding it full
// waits (up to its timeout) for the agent to drain it, so a sandbox that stops reading slows only
// its own senders.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "daemon/log.h"
#include "protocol/agent_protocol_host.h"

namespace airlock::daemon {

namespace agentproto = protocol::agent;

// Receives the frames of one id. Called on the hub thread, never with hub locks held; must not
// block. A Message's strings and bytes point into the reader's buffer: copy what is kept.
class AgentSink {
 public:
  enum class Verdict {
    kMore,       // keep this sink for the id
    kDone,       // the exchange is over: forget the id
    kViolation,  // the agent broke the protocol: drop the connection
  };
  virtual ~AgentSink() = default;
  virtual Verdict on_message(const agentproto::Message& m) = 0;
  // The connection ended (or was dropped) before kDone: no more messages will come.
  virtual void on_disconnect(const Error& why) = 0;
};

class AgentHub;

class AgentConnection : public std::enable_shared_from_this<AgentConnection> {
 public:
  static constexpr size_t kMaxQueued = 1u << 20;

  // A fresh id for a request (ids only grow over a sandbox's life; see SandboxManager).
  uint32_t next_id() { return next_id_++; }
  uint32_t peek_next_id() const { return next_id_; }
  // Registers the sink for `id`; do this before sending the request that makes replies come.
  void expect(uint32_t id, std::shared_ptr<AgentSink> sink);
  void forget(uint32_t id);
  // Encodes and queues a frame; waits up to `wait` for room. EPIPE once the connection is gone.
  Status send(const agentproto::Message& m, std::chrono::milliseconds wait = std::chrono::seconds(10));
  Status send_frame(std::vector<uint8_t> frame, std::chrono::milliseconds wait = std::chrono::seconds(10));
  // For small control frames (Credit) sent from the hub thread: queued past the limit, never waits.
  void send_control(std::vector<uint8_t> frame);
  bool alive() const { return alive_; }
  // Drops the connection: every registered sink gets on_disconnect.
  void close(const Error& why);
  const std::string& name() const { return name_; }

  AgentConnection(AgentHub& hub, UniqueFd fd, std::string name, uint32_t first_id);

 private:
  friend class AgentHub;
  void on_readable();   // hub thread
  bool dispatch_buffered();  // hub thread; false once the connection is closed
  void on_writable();   // hub thread
  Status flush_locked();  // writes what it can without blocking; out_mu_ held

  AgentHub& hub_;
  UniqueFd fd_;
  std::string name_;
  std::atomic<uint32_t> next_id_;
  std::atomic<bool> alive_{true};
  agentproto::FrameReader reader_{agentproto::Direction::kToHost};  // hub thread only

  std::mutex sinks_mu_;
  std::map<uint32_t, std::shared_ptr<AgentSink>> sinks_;

  std::mutex out_mu_;
  std::condition_variable out_cv_;
  std::string out_;  // queued bytes not yet written
  bool want_write_ = false;
};

class AgentHub {
 public:
  explicit AgentHub(const Logger& log);
  ~AgentHub();
  AgentHub(const AgentHub&) = delete;
  AgentHub& operator=(const AgentHub&) = delete;

  // Connects to an agent's socket, does the Hello handshake (bounded by `timeout`) and starts
  // serving the connection. Ids handed out start at `first_id`.
  Result<std::shared_ptr<AgentConnection>> connect(const std::string& socket_path, const std::string& name,
                                                   uint32_t first_id, std::chrono::milliseconds timeout);
  size_t connections();

 private:
  friend class AgentConnection;
  void loop();
  void want_write(AgentConnection& c, bool on);
  void remove(AgentConnection& c);

  const Logger& log_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: stop
  std::atomic<bool> stopping_{false};
  std::mutex conns_mu_;
  std::map<int, std::shared_ptr<AgentConnection>> conns_;  // by fd
  std::thread thread_;
};

}  // namespace airlock::daemon
