#include "daemon/file_ops.h"

#include <string.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "daemon/timestamp.h"

namespace airlock::daemon {

namespace proto = protocol::agent;

namespace {

// FileData bytes one call may collect. A call grants no Credit, so the read's initial window is
// all an honest agent sends (callers ask for at most that); more is sending beyond the window.
constexpr size_t kMaxReplyData = proto::kInitialWindow;

// Collects the replies to one file request; the hub thread fills it, the caller waits.
class FileCallSink final : public AgentSink {
 public:
  FileCallSink(proto::Type request, size_t max_entries) : request_(request), max_entries_(max_entries) {}

  Verdict on_message(const proto::Message& m) override {
    std::lock_guard guard(mu_);
    if (done_) return Verdict::kViolation;
    switch (m.type) {
      case proto::Type::kError:
        reply_.errnum = m.error.code;
        reply_.message = std::string(proto::to_string_view(m.error.message));
        return finish();
      case proto::Type::kFileInfo:
        if (request_ != proto::Type::kFileStat) return Verdict::kViolation;
        reply_.info = FileInfo{m.file_info.kind, m.file_info.mode, m.file_info.size, m.file_info.mtime_ns, m.file_info.uid,
                              m.file_info.gid};
        return finish();
      case proto::Type::kFileEntry:
        if (request_ != proto::Type::kFileList) return Verdict::kViolation;
        if (reply_.entries.size() >= max_entries_) return Verdict::kMore;  // counted, not kept
        reply_.entries.push_back({{m.file_entry.info.kind, m.file_entry.info.mode, m.file_entry.info.size,
                                   m.file_entry.info.mtime_ns, m.file_entry.info.uid, m.file_entry.info.gid},
                                  std::string(proto::to_string_view(m.file_entry.path))});
        return Verdict::kMore;
      case proto::Type::kFileData:
        if (request_ != proto::Type::kFileRead) return Verdict::kViolation;
        if (reply_.data.size() + m.file_data.data.size > kMaxReplyData) return Verdict::kViolation;
        reply_.data.append(reinterpret_cast<const char*>(m.file_data.data.data), m.file_data.data.size);
        if (m.flags & proto::kFlagEnd) return finish();
        return Verdict::kMore;
      case proto::Type::kDone:
        if (request_ == proto::Type::kFileRead || request_ == proto::Type::kFileStat) return Verdict::kViolation;
        reply_.done_value = m.done.value;
        return finish();
      default:
        return Verdict::kViolation;
    }
  }

  void on_disconnect(const Error& why) override {
    std::lock_guard guard(mu_);
    if (done_) return;
    reply_.connection_lost = true;
    reply_.message = why.message;
    done_ = true;
    cv_.notify_all();
  }

  std::optional<FileReply> wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return done_; })) return std::nullopt;
    return std::move(reply_);
  }

 private:
  Verdict finish() {
    done_ = true;
    cv_.notify_all();
    return Verdict::kDone;
  }

  const proto::Type request_;
  const size_t max_entries_;
  std::mutex mu_;
  std::condition_variable cv_;
  FileReply reply_;
  bool done_ = false;
};

}  // namespace

ApiResult<FileReply> file_call(AgentConnection& conn, proto::Message request, std::chrono::milliseconds timeout,
                               size_t max_entries) {
  request.id = conn.next_id();
  auto sink = std::make_shared<FileCallSink>(request.type, max_entries);
  conn.expect(request.id, sink);
  if (auto sent = conn.send(request); !sent.ok()) {
    conn.forget(request.id);
    return api_error(ErrorCode::kAgentError, "the sandbox's agent is unreachable: " + sent.error().message);
  }
  auto reply = sink->wait(timeout);
  if (!reply) {
    conn.forget(request.id);
    return api_error(ErrorCode::kAgentError, "the sandbox's agent did not answer the file request in time");
  }
  if (reply->connection_lost) {
    return api_error(ErrorCode::kAgentError, "the sandbox's agent connection was lost: " + reply->message);
  }
  return std::move(*reply);
}

ApiResult<std::vector<FileReply>> file_calls(AgentConnection& conn, std::vector<proto::Message> requests,
                                             std::chrono::milliseconds timeout) {
  std::vector<std::pair<uint32_t, std::shared_ptr<FileCallSink>>> calls;
  auto forget_all = [&] {
    for (auto& [id, sink] : calls) conn.forget(id);
  };
  for (auto& request : requests) {
    request.id = conn.next_id();
    auto sink = std::make_shared<FileCallSink>(request.type, 100000);
    conn.expect(request.id, sink);
    calls.emplace_back(request.id, sink);
    if (auto sent = conn.send(request); !sent.ok()) {
      forget_all();
      return api_error(ErrorCode::kAgentError, "the sandbox's agent is unreachable: " + sent.error().message);
    }
  }
  std::vector<FileReply> replies;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& [id, sink] : calls) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto reply = sink->wait(std::max(left, std::chrono::milliseconds(0)));
    if (!reply) {
      forget_all();
      return api_error(ErrorCode::kAgentError, "the sandbox's agent did not answer the file request in time");
    }
    if (reply->connection_lost) {
      return api_error(ErrorCode::kAgentError, "the sandbox's agent connection was lost: " + reply->message);
    }
    replies.push_back(std::move(*reply));
  }
  return replies;
}

ApiError file_error(uint32_t errnum, const std::string& path, const std::string& message) {
  const char* name = ::strerrorname_np(static_cast<int>(errnum));
  std::string errname = name ? name : "E" + std::to_string(errnum);
  std::string shown = path.substr(0, 512);
  auto with = [&](ApiError e) { return std::move(e).with_details({{"errno", errname}, {"path", shown}}); };
  switch (errnum) {
    case ENOENT: return with(api_error(ErrorCode::kPathNotFound, shown + ": no such file or directory"));
    case EEXIST: return with(api_error(ErrorCode::kPathExists, shown + ": already exists"));
    case ENOTDIR: return with(api_error(ErrorCode::kNotADirectory, shown + ": not a directory"));
    case EISDIR: return with(api_error(ErrorCode::kIsADirectory, shown + ": is a directory"));
    case ENOTEMPTY: return with(api_error(ErrorCode::kDirectoryNotEmpty, shown + ": directory not empty"));
    case EACCES:
    case EPERM:
    case EROFS:
    case EBUSY: return with(api_error(ErrorCode::kPermissionDenied, shown + ": " + errname));
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return with(api_error(ErrorCode::kDiskFull, shown + ": the sandbox's disk is full"));
    default:
      return with(api_error(ErrorCode::kFileError, shown + ": " + errname + (message.empty() ? "" : " (" + message.substr(0, 200) + ")")));
  }
}

std::string_view entry_type(uint32_t kind) {
  switch (kind) {
    case 1: return "file";
    case 2: return "dir";
    case 3: return "symlink";
    default: return "other";
  }
}

nlohmann::json entry_json(const std::string& path, const FileInfo& info) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", info.mode & 07777);
  size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty()) name = "/";
  return {{"name", name},
          {"path", path},
          {"type", entry_type(info.kind)},
          {"size", info.size},
          {"mode", mode},
          {"uid", std::min<uint32_t>(info.uid, 65535)},  // 65534 (overflow) for ids not mapped in the sandbox
          {"gid", std::min<uint32_t>(info.gid, 65535)},
          {"modified_at", format_timestamp(info.mtime_ns / 1000000)},
          {"symlink_target", nullptr}};
}

}  // namespace airlock::daemon
