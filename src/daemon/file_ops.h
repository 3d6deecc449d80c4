// File requests to a sandbox's agent (docs/PROTOCOL.md FileRead..WatchStop) as blocking calls for
// the file routes, and the mapping of their errno replies to the contract's error codes. Every path
// is resolved by the agent inside the sandbox; the daemon never touches the sandbox's files.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/agent_hub.h"
#include "daemon/errors.h"

namespace airlock::daemon {

struct FileInfo {
  uint32_t kind = 0;  // 1 file, 2 dir, 3 symlink, 4 other
  uint32_t mode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint32_t uid = 0, gid = 0;  // inside the sandbox
};

struct FileEntryInfo {
  FileInfo info;
  std::string path;  // relative to the listed directory (clean, checked by the codec)
};

// The replies to one request, collected.
struct FileReply {
  uint32_t errnum = 0;  // an Error reply
  std::string message;
  std::optional<FileInfo> info;
  std::vector<FileEntryInfo> entries;
  std::string data;         // FileData bytes, in order
  uint64_t done_value = 0;  // Done
  bool connection_lost = false;
};

// Sends `request` (its id is filled in) and waits for its complete reply. Returns an ApiError for a
// lost connection (502 agent_error) or a timeout; an agent Error reply is returned in FileReply.
ApiResult<FileReply> file_call(AgentConnection& conn, agentproto::Message request,
                               std::chrono::milliseconds timeout = std::chrono::seconds(30),
                               size_t max_entries = 100000);

// Sends every request at once (ids filled in), then waits for all their replies, returned in the
// same order: a run of FileWrites costs one round trip instead of one per frame (the agent handles
// them in order). The first lost connection or timeout is the error, as for file_call.
ApiResult<std::vector<FileReply>> file_calls(AgentConnection& conn, std::vector<agentproto::Message> requests,
                                             std::chrono::milliseconds timeout = std::chrono::seconds(30));

// An agent's errno as the contract's error (path_not_found, permission_denied, disk_full, ...).
ApiError file_error(uint32_t errnum, const std::string& path, const std::string& message);

// The contract's EntryInfo for `path` (absolute inside the sandbox).
nlohmann::json entry_json(const std::string& path, const FileInfo& info);
std::string_view entry_type(uint32_t kind);

}  // namespace airlock::daemon
