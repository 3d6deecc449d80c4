#include "engine/agent_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace airlock {
namespace {

namespace proto = protocol::agent;
using proto::Message;
using proto::Type;

int poll_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

Error protocol_error(const std::string& what) { return Error{EPROTO, "agent protocol: " + what}; }

AgentFileInfo to_info(const proto::FileInfo& f) { return {f.kind, f.mode, f.size, f.mtime_ns}; }

Error reply_error(const proto::ErrorReply& e) {
  return Error{static_cast<int>(e.code), std::string(proto::to_string_view(e.message))};
}

}  // namespace

uint32_t AgentClient::allocate_id() {
  while (next_id_ == 0 || processes_.count(next_id_) || requests_.count(next_id_) || watches_.count(next_id_))
    ++next_id_;
  return next_id_++;
}

Error AgentClient::fail(Error e) {
  failed_ = true;
  fd_.reset();
  return e;
}

Result<AgentClient> AgentClient::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return plain_error("agent socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sys_error("agent socket");
  // A unix connect completes at once (into the listener's backlog) or fails.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error("connect to agent at " + socket_path);
  AgentClient client(std::move(fd));
  Message hello{};
  hello.type = Type::kHello;
  hello.id = client.next_id_++;
  hello.hello = {proto::kVersion, proto::kVersion};
  TRY_STATUS(client.send_simple(hello));
  auto deadline = Clock::now() + timeout;
  while (!client.handshake_done_) {
    if (Clock::now() >= deadline) return Error{ETIMEDOUT, "agent at " + socket_path + ": no HelloAck"};
    TRY_CTX(client.receive(deadline), "agent at " + socket_path);
  }
  return client;
}

Status AgentClient::send(const std::vector<uint8_t>& frame) {
  if (!connected()) return Error{EPIPE, "agent connection is closed"};
  size_t sent = 0;
  auto deadline = Clock::now() + kIoTimeout;
  while (sent < frame.size()) {
    ssize_t n = ::send(fd_.get(), frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return fail(sys_error("send to agent"));
    // The agent's side is full. Keep taking its frames meanwhile: it may be waiting for room
    // to send before it reads again.
    struct pollfd p = {fd_.get(), POLLOUT | POLLIN, 0};
    int r = ::poll(&p, 1, poll_ms(deadline));
    if (r < 0 && errno != EINTR) return fail(sys_error("poll agent socket"));
    if (r == 0) return fail(Error{ETIMEDOUT, "send to agent: timed out"});
    if (p.revents & POLLIN) TRY_STATUS(receive(Clock::now()));
  }
  return {};
}

Status AgentClient::send_simple(Message m) {
  TRY(auto frame, proto::encode_frame(m));
  return send(frame);
}

Status AgentClient::receive(Clock::time_point deadline) {
  if (!connected()) return Error{EPIPE, "agent connection is closed"};
  struct pollfd p = {fd_.get(), POLLIN, 0};
  int r = ::poll(&p, 1, poll_ms(deadline));
  if (r < 0) return errno == EINTR ? Status{} : fail(sys_error("poll agent socket"));
  if (r == 0) return {};
  auto space = reader_.writable();
  ssize_t n = ::read(fd_.get(), space.data(), space.size());
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return {};
  if (n < 0) return fail(sys_error("read from agent"));
  if (n == 0) return fail(Error{EPIPE, "agent closed the connection"});
  reader_.commit(static_cast<size_t>(n));
  for (;;) {
    Message m;
    auto got = reader_.next(m);
    if (!got.ok()) return fail(std::move(got).error());
    if (!*got) return {};
    if (auto taken = take(m); !taken.ok()) return fail(std::move(taken).error());
  }
}

// Checks one decoded frame against what we asked for, and records it.
Status AgentClient::take(const Message& m) {
  if (!handshake_done_) {
    if (m.type != Type::kHelloAck) return protocol_error("expected HelloAck");
    if (m.hello_ack.version != proto::kVersion) return protocol_error("unsupported agent version");
    agent_version_ = m.hello_ack.version;
    handshake_done_ = true;
    return {};
  }
  auto queue = [this](AgentEvent e) -> Status {
    queued_bytes_ += e.data.size() + sizeof e;
    if (queued_bytes_ > kMaxQueuedBytes) return protocol_error("too many unread events");
    events_.push_back(std::move(e));
    return {};
  };
  bool pending_exec = waiting_exec_ != 0 && m.id == waiting_exec_;
  auto it = processes_.find(m.id);
  switch (m.type) {
    case Type::kStarted:
    case Type::kExecFailed:
      if (!pending_exec || exec_reply_) return protocol_error("unexpected Started/ExecFailed");
      exec_reply_ = StartedProcess{m.id, m.type == Type::kStarted ? m.started.pid : 0,
                                   m.type == Type::kExecFailed ? m.exec_failed.errnum : 0};
      if (m.type == Type::kStarted) processes_[m.id] = Tracked{};
      return {};
    case Type::kOutput: {
      if (it == processes_.end()) return protocol_error("Output for an unknown process");
      if (m.output.data.size > it->second.window) return protocol_error("Output beyond the granted credit");
      it->second.window -= m.output.data.size;
      AgentEvent e;
      e.kind = AgentEvent::Kind::kOutput;
      e.id = m.id;
      e.stream = m.output.stream;
      e.data.assign(reinterpret_cast<const char*>(m.output.data.data), m.output.data.size);
      return queue(std::move(e));
    }
    case Type::kExited: {
      if (it == processes_.end()) return protocol_error("Exited for an unknown process");
      processes_.erase(it);
      AgentEvent e;
      e.kind = AgentEvent::Kind::kExited;
      e.id = m.id;
      e.code = m.exited.code;
      e.signal = m.exited.signal;
      e.timed_out = m.exited.reason == proto::kExitTimeout;
      return queue(std::move(e));
    }
    case Type::kPong:
      if (!waiting_pong_) return protocol_error("unexpected Pong");
      waiting_pong_ = false;
      pong_ = m.pong.processes;
      return {};
    case Type::kFileData:
    case Type::kFileInfo:
    case Type::kFileEntry: return take_file_reply(m);
    case Type::kWatchEvent: return take_watch_reply(m);
    case Type::kDone:
      if (requests_.count(m.id)) return take_file_reply(m);
      if (watches_.count(m.id)) return take_watch_reply(m);
      return protocol_error("Done for no request in flight");
    case Type::kError: {
      if (requests_.count(m.id)) return take_file_reply(m);
      if (watches_.count(m.id)) return take_watch_reply(m);
      AgentEvent e;
      e.kind = AgentEvent::Kind::kError;
      e.id = m.id;
      e.errnum = m.error.code;
      e.data = std::string(proto::to_string_view(m.error.message));
      if (pending_exec && !exec_reply_) {
        exec_error_ = std::move(e);
        return {};
      }
      // A process may have exited just before our Stdin/CloseStdin reached the agent: any id we
      // have used is fine.
      if (m.id >= next_id_) return protocol_error("Error about an unknown request");
      return queue(std::move(e));
    }
    default: return protocol_error("unexpected message type");
  }
}

Result<StartedProcess> AgentClient::exec(const AgentExecRequest& request, std::chrono::milliseconds timeout) {
  if (request.argv.empty()) return plain_error("exec: no command");
  uint32_t id = allocate_id();
  TRY(auto frame, proto::encode_exec(id, request));
  waiting_exec_ = id;
  exec_reply_.reset();
  exec_error_.reset();
  struct Reset {
    uint32_t& waiting;
    ~Reset() { waiting = 0; }
  } reset{waiting_exec_};
  TRY_STATUS(send(frame));
  auto deadline = Clock::now() + timeout;
  while (!exec_reply_ && !exec_error_) {
    if (Clock::now() >= deadline) return Error{ETIMEDOUT, "exec " + request.argv[0] + ": no reply from the agent"};
    TRY_STATUS(receive(deadline));
  }
  if (exec_error_) return Error{static_cast<int>(exec_error_->errnum), "exec " + request.argv[0] + ": " + exec_error_->data};
  return *exec_reply_;
}

Result<std::optional<AgentEvent>> AgentClient::next_event(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (events_.empty()) {
    TRY_STATUS(receive(deadline));
    if (events_.empty() && Clock::now() >= deadline) return std::optional<AgentEvent>{};
  }
  AgentEvent e = std::move(events_.front());
  events_.pop_front();
  queued_bytes_ -= e.data.size() + sizeof e;
  return std::optional<AgentEvent>(std::move(e));
}

Status AgentClient::send_stdin(uint32_t id, std::string_view data) {
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), proto::kMaxChunk);
    Message m{};
    m.type = Type::kStdin;
    m.id = id;
    m.input.data = {reinterpret_cast<const uint8_t*>(data.data()), static_cast<uint32_t>(n)};
    TRY_STATUS(send_simple(m));
    data.remove_prefix(n);
  }
  return {};
}

Status AgentClient::close_stdin(uint32_t id) {
  Message m{};
  m.type = Type::kCloseStdin;
  m.id = id;
  return send_simple(m);
}

Status AgentClient::signal(uint32_t id, int sig) {
  Message m{};
  m.type = Type::kSignal;
  m.id = id;
  m.signal.number = static_cast<uint32_t>(sig);
  return send_simple(m);
}

Status AgentClient::resize(uint32_t id, uint16_t rows, uint16_t cols) {
  Message m{};
  m.type = Type::kResize;
  m.id = id;
  m.resize = {rows, cols};
  return send_simple(m);
}

Status AgentClient::credit(uint32_t id, uint32_t bytes) {
  if (bytes == 0) return {};
  auto it = processes_.find(id);
  if (it == processes_.end()) return {};  // exited: nothing more will come
  Message m{};
  m.type = Type::kCredit;
  m.id = id;
  m.credit.bytes = bytes;
  TRY_STATUS(send_simple(m));
  it->second.window += bytes;
  return {};
}

Result<uint32_t> AgentClient::ping(std::chrono::milliseconds timeout) {
  Message m{};
  m.type = Type::kPing;
  m.id = allocate_id();
  pong_.reset();
  waiting_pong_ = true;
  TRY_STATUS(send_simple(m));
  auto deadline = Clock::now() + timeout;
  while (!pong_) {
    if (Clock::now() >= deadline) return Error{ETIMEDOUT, "ping: no Pong from the agent"};
    TRY_STATUS(receive(deadline));
  }
  return *pong_;
}

void AgentClient::adopt(uint32_t id) {
  if (id == 0) return;
  processes_[id] = Tracked{};
  if (next_id_ <= id) next_id_ = id + 1;
}

Result<AgentRunResult> AgentClient::run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                        std::string_view stdin_data, std::chrono::milliseconds timeout,
                                        size_t max_output) {
  AgentExecRequest request;
  request.argv = argv;
  request.env = env;
  auto deadline = Clock::now() + timeout;
  TRY(auto started, exec(request, timeout));
  AgentRunResult result;
  if (started.exec_errno) {
    result.exec_errno = started.exec_errno;
    result.exit_code = started.exec_errno == ENOENT ? 127 : 126;
    return result;
  }
  // The whole stdin goes first: the agent buffers a chunk per process and the pipe holds more;
  // a command that needs its output read before it takes more stdin has to use the event API.
  if (!stdin_data.empty()) TRY_STATUS(send_stdin(started.id, stdin_data));
  TRY_STATUS(close_stdin(started.id));
  std::vector<AgentEvent> others;  // events of other processes go back to the queue afterwards
  auto give_back = [&] {
    for (auto it = others.rbegin(); it != others.rend(); ++it) {
      queued_bytes_ += it->data.size() + sizeof *it;
      events_.push_front(std::move(*it));
    }
  };
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      (void)signal(started.id, SIGKILL);
      give_back();
      return Error{ETIMEDOUT, "run " + argv[0] + ": timed out"};
    }
    auto event = next_event(left);
    if (!event.ok()) {
      give_back();
      return std::move(event).error();
    }
    if (!*event) continue;
    AgentEvent& e = **event;
    if (e.id != started.id) {
      others.push_back(std::move(e));
      continue;
    }
    if (e.kind == AgentEvent::Kind::kOutput) {
      std::string& out = e.stream == proto::kStdout ? result.stdout_data : result.stderr_data;
      if (out.size() + e.data.size() > max_output) {
        (void)signal(started.id, SIGKILL);
        give_back();
        return Error{EFBIG, "run " + argv[0] + ": output over " + std::to_string(max_output) + " bytes"};
      }
      out += e.data;
      TRY_STATUS(credit(started.id, static_cast<uint32_t>(e.data.size())));
    } else if (e.kind == AgentEvent::Kind::kExited) {
      result.exit_code = e.code;
      result.signal = static_cast<int>(e.signal);
      result.timed_out = e.timed_out;
      give_back();
      return result;
    } else if (e.errnum != EPIPE && e.errnum != ESRCH) {  // those: stdin the process no longer wanted
      give_back();
      return Error{static_cast<int>(e.errnum), "run " + argv[0] + ": " + e.data};
    }
  }
}

// ---- files -----------------------------------------------------------------------------------------
Status AgentClient::wait(const std::function<bool()>& done, const std::function<uint64_t()>& progress,
                         std::chrono::milliseconds timeout, const std::string& what) {
  auto deadline = Clock::now() + timeout;
  uint64_t seen = progress();
  while (!done()) {
    if (Clock::now() >= deadline) return Error{ETIMEDOUT, what + ": no reply from the agent"};
    TRY_STATUS(receive(deadline));
    if (uint64_t now = progress(); now != seen) {
      seen = now;
      deadline = Clock::now() + timeout;
    }
  }
  return {};
}

Status AgentClient::send_file_request(Message& m, int kind) {
  m.id = allocate_id();
  TRY(auto frame, proto::encode_frame(m));
  FileRequest& r = requests_[m.id];
  r.kind = static_cast<FileRequest::Kind>(kind);
  if (auto sent = send(frame); !sent.ok()) {
    requests_.erase(m.id);
    return std::move(sent).error();
  }
  return {};
}

Result<AgentClient::FileRequest> AgentClient::file_request(Message m, int kind, std::chrono::milliseconds timeout,
                                                           const std::string& what) {
  auto sent = send_file_request(m, kind);
  if (!sent.ok()) return std::move(sent).error().with_context(what);
  uint32_t id = m.id;
  auto waited = wait([&] { return requests_.at(id).finished; }, [&] { return requests_.at(id).replies; }, timeout,
                     what);
  if (!waited.ok()) {
    // A late reply is still accepted (and dropped) rather than taken for a hostile one.
    if (auto it = requests_.find(id); it != requests_.end()) it->second.abandoned = true;
    return std::move(waited).error();
  }
  FileRequest done = std::move(requests_.at(id));
  requests_.erase(id);
  if (done.error) return std::move(*done.error);  // the agent's message names the request and path
  return done;
}

// Checks a reply to a file request against the request, and records it.
Status AgentClient::take_file_reply(const Message& m) {
  auto it = requests_.find(m.id);
  if (it == requests_.end() || it->second.finished) return protocol_error("file reply for no request in flight");
  FileRequest& r = it->second;
  ++r.replies;
  switch (m.type) {
    case Type::kFileData: {
      const auto& d = m.file_data;
      if (r.kind != FileRequest::kRead) return protocol_error("FileData for a request that is not a read");
      if (d.offset != r.next_offset) return protocol_error("FileData at the wrong offset");
      if (d.data.size > r.window) return protocol_error("FileData beyond the granted credit");
      r.window -= d.data.size;
      r.next_offset += d.data.size;
      bool end = m.flags & proto::kFlagEnd;
      if (!r.abandoned)
        r.chunks.push_back({d.offset, std::string(reinterpret_cast<const char*>(d.data.data), d.data.size), end});
      r.finished = end;
      break;
    }
    case Type::kFileInfo:
      if (r.kind != FileRequest::kStat) return protocol_error("FileInfo for a request that is not a stat");
      r.info = to_info(m.file_info);
      r.finished = true;
      break;
    case Type::kFileEntry: {
      if (r.kind != FileRequest::kList) return protocol_error("FileEntry for a request that is not a list");
      if (r.entry_count >= kMaxListEntries) return protocol_error("more FileEntry frames than the agent may send");
      ++r.entry_count;
      r.entry_bytes += m.file_entry.path.size + sizeof(AgentFileEntry);
      if (r.entry_bytes > kMaxQueuedBytes) return protocol_error("listing too large");
      if (!r.abandoned)
        r.entries.push_back({to_info(m.file_entry.info), std::string(proto::to_string_view(m.file_entry.path))});
      break;
    }
    case Type::kDone:
      if (r.kind == FileRequest::kRead || r.kind == FileRequest::kStat) return protocol_error("unexpected Done");
      if (r.kind == FileRequest::kList && m.done.value != r.entry_count)
        return protocol_error("Done does not count the entries sent");
      r.value = m.done.value;
      r.finished = true;
      break;
    case Type::kError:
      r.error = reply_error(m.error);
      r.finished = true;
      break;
    default: return protocol_error("unexpected message type");
  }
  if (r.finished && r.abandoned) requests_.erase(it);
  return {};
}

Result<AgentFileInfo> AgentClient::stat(const std::string& path, std::chrono::milliseconds timeout) {
  Message m{};
  m.type = Type::kFileStat;
  m.file_stat = {proto::to_str(path)};
  TRY(auto r, file_request(m, FileRequest::kStat, timeout, "stat " + path));
  return r.info;
}

Result<uint32_t> AgentClient::read_start(const std::string& path, uint64_t offset, uint64_t limit) {
  Message m{};
  m.type = Type::kFileRead;
  m.file_read = {proto::to_str(path), offset, limit};
  auto sent = send_file_request(m, FileRequest::kRead);
  if (!sent.ok()) return std::move(sent).error().with_context("read " + path);
  requests_.at(m.id).next_offset = offset;
  return m.id;
}

Result<std::optional<AgentFileChunk>> AgentClient::read_next(uint32_t id, std::chrono::milliseconds timeout) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second.kind != FileRequest::kRead || it->second.abandoned)
    return Error{EINVAL, "read " + std::to_string(id) + ": no such read"};
  auto deadline = Clock::now() + timeout;
  while (requests_.at(id).chunks.empty() && !requests_.at(id).finished) {
    if (Clock::now() >= deadline) return std::optional<AgentFileChunk>{};
    TRY_STATUS(receive(deadline));
  }
  FileRequest& r = requests_.at(id);
  if (r.chunks.empty()) {  // finished without (more) data: an Error
    Error e = r.error ? *r.error : protocol_error("read ended without its last chunk");
    requests_.erase(id);
    return e;
  }
  AgentFileChunk chunk = std::move(r.chunks.front());
  r.chunks.pop_front();
  if (r.finished && r.chunks.empty() && !r.error) {
    requests_.erase(id);
  } else if (!r.finished && !chunk.data.empty()) {
    // Taken by the caller: the agent may send as much again.
    Message c{};
    c.type = Type::kCredit;
    c.id = id;
    c.credit.bytes = static_cast<uint32_t>(chunk.data.size());
    TRY_STATUS(send_simple(c));
    if (auto again = requests_.find(id); again != requests_.end()) again->second.window += chunk.data.size();
  }
  return std::optional<AgentFileChunk>(std::move(chunk));
}

Result<std::string> AgentClient::read_file(const std::string& path, uint64_t offset, uint64_t limit,
                                           size_t max_bytes, std::chrono::milliseconds timeout) {
  TRY(uint32_t id, read_start(path, offset, limit));
  std::string data;
  auto give_up = [&](Error e) {
    if (auto it = requests_.find(id); it != requests_.end()) {
      it->second.abandoned = true;
      it->second.chunks.clear();
      if (it->second.finished) requests_.erase(it);
    }
    return e;
  };
  for (;;) {
    auto chunk = read_next(id, timeout);
    if (!chunk.ok()) return std::move(chunk).error();
    if (!*chunk) return give_up(Error{ETIMEDOUT, "read " + path + ": no data from the agent"});
    if (data.size() + (*chunk)->data.size() > max_bytes)
      return give_up(Error{EFBIG, "read " + path + ": over " + std::to_string(max_bytes) + " bytes"});
    data += (*chunk)->data;
    if ((*chunk)->end) return data;
  }
}

Result<uint64_t> AgentClient::write_file(const std::string& path, std::string_view data, uint32_t mode,
                                         uint32_t options, uint64_t offset, std::chrono::milliseconds timeout) {
  uint64_t written = 0;
  do {  // at least one frame: an empty write still creates or truncates
    size_t n = std::min<size_t>(data.size() - written, proto::kMaxChunk);
    Message m{};
    m.type = Type::kFileWrite;
    m.file_write = {proto::to_str(path), mode, written ? options & ~proto::kWriteTruncate : options,
                    offset + written, {reinterpret_cast<const uint8_t*>(data.data()) + written, static_cast<uint32_t>(n)}};
    TRY(auto r, file_request(m, FileRequest::kDone, timeout, "write " + path));
    if (r.value != n) return Error{EIO, "write " + path + ": short write"};
    written += n;
  } while (written < data.size());
  return written;
}

Result<std::vector<AgentFileEntry>> AgentClient::list(const std::string& path, uint32_t depth,
                                                      std::chrono::milliseconds timeout) {
  Message m{};
  m.type = Type::kFileList;
  m.file_list = {proto::to_str(path), depth};
  TRY(auto r, file_request(m, FileRequest::kList, timeout, "list " + path));
  return std::move(r.entries);
}

Status AgentClient::mkdir(const std::string& path, uint32_t mode, bool parents, std::chrono::milliseconds timeout) {
  Message m{};
  m.type = Type::kFileMkdir;
  m.file_mkdir = {proto::to_str(path), mode, parents ? proto::kMkdirParents : 0};
  TRY(auto r, file_request(m, FileRequest::kDone, timeout, "mkdir " + path));
  return {};
}

Result<uint64_t> AgentClient::remove(const std::string& path, bool recursive, std::chrono::milliseconds timeout) {
  Message m{};
  m.type = Type::kFileRemove;
  m.file_remove = {proto::to_str(path), recursive ? proto::kRemoveRecursive : 0};
  TRY(auto r, file_request(m, FileRequest::kDone, timeout, "remove " + path));
  return r.value;
}

Status AgentClient::rename(const std::string& from, const std::string& to, bool no_replace,
                           std::chrono::milliseconds timeout) {
  Message m{};
  m.type = Type::kFileRename;
  m.file_rename = {proto::to_str(from), proto::to_str(to), no_replace ? proto::kRenameNoReplace : 0};
  TRY(auto r, file_request(m, FileRequest::kDone, timeout, "rename " + from));
  return {};
}

// ---- watches ---------------------------------------------------------------------------------------
Status AgentClient::take_watch_reply(const Message& m) {
  auto it = watches_.find(m.id);
  if (it == watches_.end()) return protocol_error("watch reply for no watch");
  WatchState& w = it->second;
  bool live = w.started && !w.stopped && !w.end;
  switch (m.type) {
    case Type::kWatchEvent: {
      if (!live) return protocol_error("WatchEvent for a watch that is not running");
      AgentWatchEvent e;
      e.kind = static_cast<AgentWatchEvent::Kind>(m.watch_event.kind);
      e.path = std::string(proto::to_string_view(m.watch_event.path));
      // Bounded: what the caller does not take in time is dropped, and it hears of it.
      if (w.events.size() >= kMaxWatchEvents || w.bytes + e.path.size() > kMaxWatchBytes) {
        w.lost = true;
      } else {
        w.bytes += e.path.size();
        w.events.push_back(std::move(e));
      }
      return {};
    }
    case Type::kDone:
      if (!w.started && !w.start_error) w.started = true;
      else if (w.stopping && !w.stopped) w.stopped = true;
      else return protocol_error("unexpected Done for a watch");
      return {};
    case Type::kError:
      if (!w.started && !w.start_error) {
        w.start_error = reply_error(m.error);
      } else if (w.stopping && !w.stopped) {
        w.stopped = true;  // ended meanwhile: stopped all the same
      } else if (live) {
        AgentWatchEvent e;
        e.kind = AgentWatchEvent::Kind::kEnded;
        e.errnum = m.error.code;
        e.message = std::string(proto::to_string_view(m.error.message));
        w.end = std::move(e);
      } else {
        return protocol_error("unexpected Error for a watch");
      }
      return {};
    default: return protocol_error("unexpected message type");
  }
}

Result<uint32_t> AgentClient::watch_start(const std::string& path, bool recursive, std::chrono::milliseconds timeout) {
  uint32_t id = allocate_id();
  Message m{};
  m.type = Type::kWatchStart;
  m.id = id;
  m.watch_start = {proto::to_str(path), recursive ? proto::kWatchRecursive : 0};
  TRY(auto frame, proto::encode_frame(m));
  watches_[id] = WatchState{};
  if (auto sent = send(frame); !sent.ok()) {
    watches_.erase(id);
    return std::move(sent).error().with_context("watch " + path);
  }
  // On a timeout the state stays: a late Done starts a watch nobody reads, which stays bounded.
  TRY_STATUS(wait([&] { return watches_.at(id).started || watches_.at(id).start_error.has_value(); },
                  [] { return uint64_t{0}; }, timeout, "watch " + path));
  if (auto& w = watches_.at(id); w.start_error) {
    Error e = std::move(*w.start_error).with_context("watch " + path);
    watches_.erase(id);
    return e;
  }
  return id;
}

Result<std::optional<AgentWatchEvent>> AgentClient::next_watch_event(uint32_t watch, std::chrono::milliseconds timeout) {
  if (!watches_.count(watch) || !watches_.at(watch).started)
    return Error{ENOENT, "watch " + std::to_string(watch) + ": no such watch"};
  auto deadline = Clock::now() + timeout;
  auto ready = [&] {
    const WatchState& w = watches_.at(watch);
    return !w.events.empty() || w.lost || w.end.has_value();
  };
  while (!ready()) {
    if (Clock::now() >= deadline) return std::optional<AgentWatchEvent>{};
    TRY_STATUS(receive(deadline));
  }
  WatchState& w = watches_.at(watch);
  if (!w.events.empty()) {
    AgentWatchEvent e = std::move(w.events.front());
    w.events.pop_front();
    w.bytes -= e.path.size();
    return std::optional<AgentWatchEvent>(std::move(e));
  }
  if (w.lost) {
    w.lost = false;
    AgentWatchEvent e;
    e.kind = AgentWatchEvent::Kind::kOverflow;
    return std::optional<AgentWatchEvent>(std::move(e));
  }
  AgentWatchEvent e = std::move(*w.end);
  watches_.erase(watch);
  return std::optional<AgentWatchEvent>(std::move(e));
}

Status AgentClient::watch_stop(uint32_t watch, std::chrono::milliseconds timeout) {
  auto it = watches_.find(watch);
  if (it == watches_.end() || !it->second.started) return Error{ENOENT, "watch " + std::to_string(watch) + ": no such watch"};
  if (it->second.end) {  // the agent ended it already
    watches_.erase(it);
    return {};
  }
  Message m{};
  m.type = Type::kWatchStop;
  m.id = watch;
  it->second.stopping = true;
  TRY_STATUS(send_simple(m));
  TRY_STATUS(wait([&] { return watches_.at(watch).stopped; }, [] { return uint64_t{0}; }, timeout,
                  "stop watch " + std::to_string(watch)));
  watches_.erase(watch);
  return {};
}

}  // namespace airlock
