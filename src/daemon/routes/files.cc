// Files: /v1/sandboxes/{sandbox_id}/files/{read,write,write-many,list,stat,exists,mkdir,remove,rename,watch}.
// Every path goes to the sandbox's agent, which resolves it inside the sandbox (docs/SECURITY.md):
// the daemon only ever sees bytes and clean relative names back.
#include <algorithm>
#include <charconv>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "daemon/base64.h"
#include "daemon/body_reader.h"
#include "daemon/file_ops.h"
#include "daemon/json_body.h"
#include "daemon/process_stream.h"
#include "daemon/routes/routes.h"
#include "daemon/sandbox_manager.h"

namespace airlock::daemon {
namespace {

namespace proto = protocol::agent;

constexpr size_t kWriteLimit = size_t{1} << 30;       // files/write body (streamed: never held whole)
constexpr size_t kWriteManyLimit = size_t{32} << 20;  // the contract's write-many body
constexpr uint64_t kReadChunk = 256 * 1024;           // per FileRead: within the agent's initial window

struct Deps {
  SandboxManager& sandboxes;
  Timers& timers;
};

ApiError bad_field(const std::string& field, const std::string& message) {
  return api_error(ErrorCode::kInvalidField, field + " " + message).with_field(field);
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Absolute path inside the sandbox: relative ones are relative to its workdir.
ApiResult<std::string> sandbox_path(const std::string& raw, const std::string& workdir, const std::string& field,
                                    bool query) {
  if (raw.empty() || raw.size() > 4096 || has_nul(raw)) {
    ApiError e = api_error(query ? ErrorCode::kInvalidParameter : ErrorCode::kInvalidField,
                           field + " must be 1 to 4096 characters without NUL");
    return std::move(e).with_field(field);
  }
  std::string path = raw[0] == '/' ? raw : workdir + "/" + raw;
  if (path.size() > proto::kMaxPath) {
    return api_error(query ? ErrorCode::kInvalidParameter : ErrorCode::kInvalidField, field + " is too long")
        .with_field(field);
  }
  return path;
}

struct Target {
  std::shared_ptr<AgentConnection> conn;
  std::string workdir;
};

ApiResult<Target> target(Deps& d, const RequestContext& ctx) {
  API_TRY(auto record, d.sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  API_TRY(auto conn, d.sandboxes.agent(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  return Target{std::move(conn), record.settings.workdir};
}

ApiResult<std::string> path_query(const RequestContext& ctx, const Target& t) {
  auto raw = ctx.query.get("path");
  if (!raw) return api_error(ErrorCode::kInvalidParameter, "path is required").with_field("path");
  return sandbox_path(std::string(*raw), t.workdir, "path", true);
}

proto::Message request(proto::Type type) {
  proto::Message m{};
  m.type = type;
  return m;
}

ApiResult<std::optional<FileInfo>> stat(AgentConnection& conn, const std::string& path) {
  auto m = request(proto::Type::kFileStat);
  m.file_stat = {proto::to_str(path)};
  API_TRY(auto reply, file_call(conn, m));
  if (reply.errnum == ENOENT) return std::optional<FileInfo>();
  if (reply.errnum) return file_error(reply.errnum, path, reply.message);
  return reply.info;
}

ApiResult<std::monostate> simple(AgentConnection& conn, proto::Message m, const std::string& path) {
  API_TRY(auto reply, file_call(conn, m));
  if (reply.errnum) return file_error(reply.errnum, path, reply.message);
  return std::monostate{};
}

ApiResult<std::optional<uint32_t>> mode_value(const std::optional<std::string>& text, const std::string& field,
                                              bool query) {
  if (!text) return std::optional<uint32_t>();
  bool ok = text->size() >= 3 && text->size() <= 4 &&
            std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '7'; });
  if (!ok) {
    return api_error(query ? ErrorCode::kInvalidParameter : ErrorCode::kInvalidField,
                     field + " must be octal permission bits such as 644 or 0755")
        .with_field(field);
  }
  return std::optional<uint32_t>(static_cast<uint32_t>(std::stoul(*text, nullptr, 8)));
}

std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// Who new files and directories belong to (`user`): root needs nothing; anyone else is set with
// chown(1) run inside the sandbox (the agent protocol has no chown), on paths the daemon made.
struct Owner {
  SandboxManager* sandboxes = nullptr;  // null: root
  std::string tenant, sandbox_id, ids;  // ids: "UID:GID"
};

ApiResult<Owner> owner_of(Deps& d, const RequestContext& ctx, std::optional<std::string> user, const std::string& field,
                          bool query) {
  if (!user || *user == "root") return Owner{};
  auto ids = parse_user(*user);
  if (!ids.ok()) {
    ApiError e = ids.error();
    if (query && e.code == ErrorCode::kInvalidField) e.code = ErrorCode::kInvalidParameter;
    e.field = field;
    return e;
  }
  if (ids->first == 0 && ids->second == 0) return Owner{};
  return Owner{&d.sandboxes, ctx.principal.tenant, std::string(ctx.params.get("sandbox_id")),
               std::to_string(ids->first) + ":" + std::to_string(ids->second)};
}

ApiResult<std::monostate> chown_paths(const Owner& owner, const std::vector<std::string>& paths) {
  if (!owner.sandboxes || paths.empty()) return std::monostate{};
  RunCommandRequest run;
  run.argv = {"/bin/chown", "-h", owner.ids, "--"};
  run.argv.insert(run.argv.end(), paths.begin(), paths.end());
  run.cwd = "/";
  run.timeout = std::chrono::seconds(30);
  run.max_output_bytes = 4096;
  API_TRY(auto done, owner.sandboxes->run(owner.tenant, owner.sandbox_id, run));
  if (done.outcome.exit_code != 0) {
    return api_error(ErrorCode::kFileError, "chown " + owner.ids + ": " + done.outcome.stderr_tail.substr(0, 300))
        .with_details({{"errno", "EPERM"}});
  }
  return std::monostate{};
}

// Creates `dir` and its missing parents (mode 0755); returns the ones it made, outermost first.
ApiResult<std::vector<std::string>> make_parents_of(AgentConnection& conn, const std::string& dir) {
  std::vector<std::string> missing;
  for (std::string p = dir; p != "/" && !p.empty(); p = parent_of(p)) {
    API_TRY(auto st, stat(conn, p));
    if (st) break;
    missing.insert(missing.begin(), p);
    if (missing.size() > 64) break;
  }
  if (missing.empty()) return missing;
  auto mk = request(proto::Type::kFileMkdir);
  mk.file_mkdir = {proto::to_str(dir), 0755, 1};
  API_TRY(auto made, file_call(conn, mk));
  if (made.errnum && made.errnum != EEXIST) return file_error(made.errnum, dir, made.message);
  return missing;
}

// The bytes of one write, piece by piece (each valid until the next call); an empty piece ends them.
using NextPiece = std::function<ApiResult<std::string_view>()>;

// Writes what `next` yields to `path` atomically: a temporary file beside it, then a rename over it.
// Each piece goes to the agent as a run of FileWrite frames sent at once, and all are acknowledged
// before the next piece is sent, so a write holds at most one piece (and the reader's one piece
// ahead). Whatever fails after the temporary file exists (the agent, the body, the rename) removes it.
ApiResult<FileInfo> write_atomic(AgentConnection& conn, const std::string& path, const NextPiece& next,
                                 std::optional<uint32_t> mode, bool make_parents, const Owner& owner = {}) {
  if (make_parents) {
    API_TRY(auto made, make_parents_of(conn, parent_of(path)));
    API_TRY(auto owned, chown_paths(owner, made));
    (void)owned;
  }
  API_TRY(auto existing, stat(conn, path));
  if (existing && existing->kind == 2) return file_error(EISDIR, path, "");
  uint32_t new_mode = mode.value_or(existing ? existing->mode & 07777 : 0644);
  std::string temp = parent_of(path) + "/." + path.substr(path.find_last_of('/') + 1).substr(0, 200) + ".airlock-" +
                     std::to_string(conn.peek_next_id()) + ".tmp";
  auto cleanup = [&] {
    auto rm = request(proto::Type::kFileRemove);
    rm.file_remove = {proto::to_str(temp), 0};
    (void)file_call(conn, rm);
  };
  uint64_t offset = 0;
  bool created = false;  // the temporary file exists (the first frame creates it, even for no data)
  while (true) {
    auto piece = next();
    if (!piece.ok()) {
      if (created) cleanup();
      return piece.error();
    }
    std::string_view data = piece.value();
    if (data.empty() && created) break;
    std::vector<proto::Message> frames;
    size_t at = 0;
    do {  // at least one frame: the first creates the file, even with no data
      size_t n = std::min<size_t>(data.size() - at, proto::kMaxChunk);
      auto w = request(proto::Type::kFileWrite);
      w.file_write = {proto::to_str(temp), new_mode, created || at > 0 ? 0u : 3u, offset + at,
                      {reinterpret_cast<const uint8_t*>(data.data() + at), static_cast<uint32_t>(n)}};
      frames.push_back(w);
      at += n;
    } while (at < data.size());
    auto replies = file_calls(conn, std::move(frames));
    // Any frame may have created the file (the agent handles them in order): clean up after all.
    auto failed = [&](ApiError e) {
      cleanup();  // best effort: a lost connection cannot be cleaned up after
      return e;
    };
    if (!replies.ok()) return failed(replies.error());
    for (const auto& reply : replies.value()) {
      if (reply.errnum) return failed(file_error(reply.errnum, created ? path : parent_of(path), reply.message));
      created = true;
    }
    offset += data.size();
    if (data.empty()) break;  // an empty file
  }
  if (auto owned = chown_paths(owner, {temp}); !owned.ok()) {
    cleanup();
    return owned.error();
  }
  auto mv = request(proto::Type::kFileRename);
  mv.file_rename = {proto::to_str(temp), proto::to_str(path), 0};
  auto moved = file_call(conn, mv);
  if (!moved.ok() || moved->errnum) {
    cleanup();
    if (!moved.ok()) return moved.error();
    return file_error(moved->errnum, path, moved->message);
  }
  API_TRY(auto info, stat(conn, path));
  if (!info) return file_error(ENOENT, path, "");
  return *info;
}

ApiResult<FileInfo> write_atomic(AgentConnection& conn, const std::string& path, std::string_view data,
                                 std::optional<uint32_t> mode, bool make_parents, const Owner& owner = {}) {
  bool given = false;
  auto next = [&]() -> ApiResult<std::string_view> {
    if (given) return std::string_view();
    given = true;
    return data;
  };
  return write_atomic(conn, path, next, mode, make_parents, owner);
}

// --- handlers -------------------------------------------------------------------------------------------

// The file's bytes, pulled chunk by chunk as the client reads.
class FileReadSource final : public BodySource {
 public:
  FileReadSource(std::shared_ptr<AgentConnection> conn, std::string path, uint64_t offset, uint64_t length)
      : conn_(std::move(conn)), path_(std::move(path)), offset_(offset), left_(length) {}
  void pull(Deliver deliver) override {
    if (left_ == 0 || cancelled_) return deliver({}, true);
    auto m = request(proto::Type::kFileRead);
    uint64_t want = std::min(left_, kReadChunk);
    m.file_read = {proto::to_str(path_), offset_, want};
    auto reply = file_call(*conn_, m);
    if (!reply.ok() || reply->errnum) return deliver({}, true);  // ends short: the client sees a truncated body
    uint64_t n = reply->data.size();
    offset_ += n;
    left_ = n < want ? 0 : left_ - n;
    if (n == 0) left_ = 0;
    deliver(std::move(reply->data), left_ == 0);
  }
  void cancel() override { cancelled_ = true; }

 private:
  std::shared_ptr<AgentConnection> conn_;
  std::string path_;
  uint64_t offset_, left_;
  std::atomic<bool> cancelled_{false};
};

ApiResult<HttpResponse> read_file(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"path", "offset", "length"})) return *error;
  API_TRY(auto offset_q, ctx.query.integer("offset", 0, 9007199254740991));
  API_TRY(auto length_q, ctx.query.integer("length", 0, 9007199254740991));
  auto range = ctx.request.header("Range");
  if (range && (offset_q || length_q)) {
    return api_error(ErrorCode::kInvalidParameter, "use either Range or offset/length, not both").with_field("Range");
  }
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, path_query(ctx, t));
  API_TRY(auto info, stat(*t.conn, path));
  if (!info) return file_error(ENOENT, path, "");
  // stat describes a symlink itself; the read follows it. Its target's size is unknown here, and
  // so is that of /proc-like files that report 0: both are streamed to their end, unranged.
  bool unsized = info->kind == 3 || (info->kind == 1 && info->size == 0);
  if (info->kind == 3) {
    auto probe = request(proto::Type::kFileRead);
    probe.file_read = {proto::to_str(path), 0, 1};
    API_TRY(auto r, file_call(*t.conn, probe));
    if (r.errnum) return file_error(r.errnum, path, r.message);
  } else if (info->kind == 2) {
    return file_error(EISDIR, path, "");
  } else if (info->kind != 1) {
    return api_error(ErrorCode::kNotARegularFile, path.substr(0, 512) + " is not a regular file");
  }
  if (unsized) {
    if (range) return api_error(ErrorCode::kInvalidParameter, "Range is not supported for this file (its size is unknown)").with_field("Range");
    HttpResponse response;
    response.content_type = "application/octet-stream";
    response.stream = std::make_shared<FileReadSource>(
        t.conn, path, static_cast<uint64_t>(offset_q.value_or(0)),
        length_q ? static_cast<uint64_t>(*length_q) : std::numeric_limits<uint64_t>::max());
    return response;
  }
  uint64_t size = info->size;
  uint64_t start = offset_q.value_or(0), length = 0;
  int status = 200;
  if (range) {
    std::string r(*range);
    uint64_t a = 0, b = 0;
    bool ok = r.starts_with("bytes=") && r.size() <= 64;
    std::string spec = ok ? r.substr(6) : "";
    size_t dash = spec.find('-');
    ok = ok && dash != std::string::npos;
    auto num = [](std::string_view s, uint64_t& v) {
      auto [e, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      return ec == std::errc() && e == s.data() + s.size() && !s.empty();
    };
    if (ok && dash == 0) {  // suffix: the last N bytes
      ok = num(std::string_view(spec).substr(1), b);
      a = b >= size ? 0 : size - b;
      b = size ? size - 1 : 0;
    } else if (ok) {
      ok = num(std::string_view(spec).substr(0, dash), a);
      if (ok && dash + 1 < spec.size()) {
        ok = num(std::string_view(spec).substr(dash + 1), b) && b >= a;
      } else {
        b = size ? size - 1 : 0;
      }
    }
    if (!ok) return api_error(ErrorCode::kInvalidParameter, "Range must be one range in bytes=a-b form").with_field("Range");
    if (a >= size) {
      return api_error(ErrorCode::kRangeNotSatisfiable, "the range starts beyond the file's " + std::to_string(size) + " bytes")
          .with_header("Content-Range", "bytes */" + std::to_string(size));
    }
    start = a;
    length = std::min(b, size - 1) - a + 1;
    status = 206;
  } else {
    if (start > size) {
      return api_error(ErrorCode::kRangeNotSatisfiable, "offset is beyond the file's " + std::to_string(size) + " bytes")
          .with_header("Content-Range", "bytes */" + std::to_string(size));
    }
    length = std::min(length_q ? static_cast<uint64_t>(*length_q) : size - start, size - start);
  }
  HttpResponse response;
  response.status = status;
  response.content_type = "application/octet-stream";
  response.with_header("Accept-Ranges", "bytes");
  response.with_header("Last-Modified", format_timestamp(info->mtime_ns / 1000000));
  if (status == 206) {
    response.with_header("Content-Range", "bytes " + std::to_string(start) + "-" + std::to_string(start + length - 1) +
                                              "/" + std::to_string(size));
  }
  if (length <= kReadChunk) {  // small: one answer with a Content-Length
    if (length > 0) {
      auto m = request(proto::Type::kFileRead);
      m.file_read = {proto::to_str(path), start, length};
      API_TRY(auto r, file_call(*t.conn, m));
      if (r.errnum) return file_error(r.errnum, path, r.message);
      response.body = std::move(r.data);
    }
    return response;
  }
  // Streamed (chunked), read as the client takes it.
  response.stream = std::make_shared<FileReadSource>(t.conn, path, start, length);
  return response;
}

ApiResult<HttpResponse> write_file(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"path", "mode", "make_parents", "user"})) return *error;
  API_TRY(auto make_parents, ctx.query.boolean("make_parents"));
  auto mode_text = ctx.query.get("mode");
  API_TRY(auto mode, mode_value(mode_text ? std::optional<std::string>(std::string(*mode_text)) : std::nullopt, "mode", true));
  auto user = ctx.query.get("user");
  API_TRY(auto owner, owner_of(d, ctx, user ? std::optional<std::string>(std::string(*user)) : std::nullopt, "user", true));
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, path_query(ctx, t));
  // The body goes from the socket to the agent piece by piece (BodyKind::kStream).
  BlockingBodyReader body(*ctx.body);
  NextPiece next = [&body] { return body.next(); };
  API_TRY(auto info, write_atomic(*t.conn, path, next, mode, make_parents.value_or(true), owner));
  return json_response(200, entry_json(path, info));
}

ApiResult<HttpResponse> write_many(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "files" && it.key() != "make_parents" && it.key() != "user") return bad_field(it.key(), "is not a known field");
  }
  if (!body.contains("files") || !body["files"].is_array() || body["files"].empty() || body["files"].size() > 1000) {
    return bad_field("files", "must be an array of 1 to 1000 files");
  }
  bool make_parents = true;
  if (body.contains("make_parents")) {
    if (!body["make_parents"].is_boolean()) return bad_field("make_parents", "must be a boolean");
    make_parents = body["make_parents"].get<bool>();
  }
  std::optional<std::string> user;
  if (body.contains("user")) {
    if (!body["user"].is_string()) return bad_field("user", "must be a user name or UID[:GID]");
    user = body["user"].get<std::string>();
  }
  API_TRY(auto owner, owner_of(d, ctx, user, "user", false));
  API_TRY(auto t, target(d, ctx));
  struct Item {
    std::string path, data;
    std::optional<uint32_t> mode;
  };
  std::vector<Item> items;
  size_t index = 0;
  for (const auto& f : body["files"]) {
    std::string prefix = "files[" + std::to_string(index++) + "].";
    if (!f.is_object()) return bad_field(prefix.substr(0, prefix.size() - 1), "must be an object");
    for (auto it = f.begin(); it != f.end(); ++it) {
      if (it.key() != "path" && it.key() != "data" && it.key() != "encoding" && it.key() != "mode") {
        return bad_field(prefix + it.key(), "is not a known field");
      }
    }
    if (!f.contains("path") || !f["path"].is_string()) return bad_field(prefix + "path", "must be a string");
    if (!f.contains("data") || !f["data"].is_string()) return bad_field(prefix + "data", "must be a string");
    API_TRY(auto path, sandbox_path(f["path"].get<std::string>(), t.workdir, prefix + "path", false));
    std::string data = f["data"].get<std::string>();
    if (f.contains("encoding")) {
      if (f["encoding"] == "base64") {
        auto decoded = base64_decode(data);
        if (!decoded) return bad_field(prefix + "data", "is not valid base64");
        data = std::move(*decoded);
      } else if (f["encoding"] != "utf-8") {
        return bad_field(prefix + "encoding", "must be utf-8 or base64");
      }
    }
    std::optional<std::string> mode_text;
    if (f.contains("mode")) {
      if (!f["mode"].is_string()) return bad_field(prefix + "mode", "must be a string such as 0644");
      mode_text = f["mode"].get<std::string>();
    }
    API_TRY(auto mode, mode_value(mode_text, prefix + "mode", false));
    items.push_back({std::move(path), std::move(data), mode});
  }
  nlohmann::json written = nlohmann::json::array();
  for (const auto& item : items) {
    auto info = write_atomic(*t.conn, item.path, item.data, item.mode, make_parents, owner);
    if (!info.ok()) {
      ApiError e = info.error();
      e.details["written"] = written.size();
      return e;
    }
    written.push_back(entry_json(item.path, info.value()));
  }
  return json_response(200, {{"files", std::move(written)}});
}

ApiResult<HttpResponse> list_files(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"path", "depth", "limit"})) return *error;
  API_TRY(auto depth, ctx.query.integer("depth", 1, 32));
  API_TRY(auto limit, ctx.query.integer("limit", 1, 10000));
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, path_query(ctx, t));
  auto m = request(proto::Type::kFileList);
  m.file_list = {proto::to_str(path), static_cast<uint32_t>(depth.value_or(1))};
  size_t max = static_cast<size_t>(limit.value_or(1000));
  API_TRY(auto reply, file_call(*t.conn, m, std::chrono::seconds(60), 100000));
  if (reply.errnum) return file_error(reply.errnum, path, reply.message);
  auto& entries = reply.entries;
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  bool truncated = entries.size() > max || reply.done_value > entries.size();
  if (entries.size() > max) entries.resize(max);
  std::string base = path == "/" ? "" : path;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : entries) out.push_back(entry_json(base + "/" + e.path, e.info));
  return json_response(200, {{"entries", std::move(out)}, {"truncated", truncated}});
}

// A symlink's text (or, with `canonical`, the absolute path it leads to), read by readlink(1)
// inside the sandbox: the agent protocol has no readlink.
std::optional<std::string> link_text(Deps& d, const RequestContext& ctx, const std::string& path, bool canonical) {
  RunCommandRequest run;
  run.argv = {"/bin/readlink"};
  if (canonical) run.argv.push_back("-e");
  run.argv.push_back("--");
  run.argv.push_back(path);
  run.cwd = "/";
  run.timeout = std::chrono::seconds(10);
  run.max_output_bytes = 8192;
  auto done = d.sandboxes.run(ctx.principal.tenant, ctx.params.get("sandbox_id"), run);
  if (!done.ok() || done->outcome.exit_code != 0 || done->outcome.stdout_tail.empty()) return std::nullopt;
  std::string text = done->outcome.stdout_tail;
  if (text.back() == '\n') text.pop_back();
  return text;
}

ApiResult<HttpResponse> stat_file(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"path", "follow_symlinks"})) return *error;
  API_TRY(auto follow, ctx.query.boolean("follow_symlinks"));
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, path_query(ctx, t));
  API_TRY(auto info, stat(*t.conn, path));
  if (!info) return file_error(ENOENT, path, "");
  if (info->kind != 3) return json_response(200, entry_json(path, *info));
  if (follow.value_or(false)) {
    auto resolved = link_text(d, ctx, path, true);
    if (!resolved || resolved->empty() || (*resolved)[0] != '/') return file_error(ENOENT, path, "the link's target does not exist");
    API_TRY(auto target_info, stat(*t.conn, *resolved));
    if (!target_info) return file_error(ENOENT, path, "the link's target does not exist");
    nlohmann::json j = entry_json(path, *target_info);
    return json_response(200, j);
  }
  nlohmann::json j = entry_json(path, *info);
  if (auto text = link_text(d, ctx, path, false)) j["symlink_target"] = *text;
  return json_response(200, j);
}

ApiResult<HttpResponse> file_exists(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"path"})) return *error;
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, path_query(ctx, t));
  auto m = request(proto::Type::kFileStat);
  m.file_stat = {proto::to_str(path)};
  API_TRY(auto reply, file_call(*t.conn, m));
  if (reply.errnum == ENOENT || reply.errnum == ENOTDIR) return json_response(200, {{"exists", false}, {"type", nullptr}});
  if (reply.errnum) return file_error(reply.errnum, path, reply.message);
  return json_response(200, {{"exists", true}, {"type", entry_type(reply.info->kind)}});
}

ApiResult<HttpResponse> make_dir(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "path" && it.key() != "mode" && it.key() != "parents" && it.key() != "user") return bad_field(it.key(), "is not a known field");
  }
  if (!body.contains("path") || !body["path"].is_string()) return bad_field("path", "must be a string");
  bool parents = true;
  if (body.contains("parents")) {
    if (!body["parents"].is_boolean()) return bad_field("parents", "must be a boolean");
    parents = body["parents"].get<bool>();
  }
  std::optional<std::string> mode_text;
  if (body.contains("mode")) {
    if (!body["mode"].is_string()) return bad_field("mode", "must be a string such as 0755");
    mode_text = body["mode"].get<std::string>();
  }
  API_TRY(auto mode, mode_value(mode_text, "mode", false));
  std::optional<std::string> user;
  if (body.contains("user")) {
    if (!body["user"].is_string()) return bad_field("user", "must be a user name or UID[:GID]");
    user = body["user"].get<std::string>();
  }
  API_TRY(auto owner, owner_of(d, ctx, user, "user", false));
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, sandbox_path(body["path"].get<std::string>(), t.workdir, "path", false));
  API_TRY(auto existing, stat(*t.conn, path));
  if (existing) {
    if (existing->kind == 2 && parents) return json_response(200, entry_json(path, *existing));
    return file_error(EEXIST, path, "");
  }
  auto m = request(proto::Type::kFileMkdir);
  m.file_mkdir = {proto::to_str(path), mode.value_or(0755), parents ? 1u : 0u};
  std::vector<std::string> created;  // for `user`: what this call makes, outermost first
  if (owner.sandboxes) {
    for (std::string p = path; p != "/" && !p.empty() && created.size() <= 64; p = parent_of(p)) {
      API_TRY(auto st, stat(*t.conn, p));
      if (st) break;
      created.insert(created.begin(), p);
      if (!parents) break;
    }
  }
  API_TRY(auto done, simple(*t.conn, m, path));
  (void)done;
  API_TRY(auto owned, chown_paths(owner, created));
  (void)owned;
  API_TRY(auto info, stat(*t.conn, path));
  if (!info) return file_error(ENOENT, path, "");
  return json_response(201, entry_json(path, *info));
}

ApiResult<HttpResponse> remove_file(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "path" && it.key() != "recursive" && it.key() != "force") return bad_field(it.key(), "is not a known field");
  }
  if (!body.contains("path") || !body["path"].is_string()) return bad_field("path", "must be a string");
  bool flags[2] = {false, false};
  const char* names[2] = {"recursive", "force"};
  for (int i = 0; i < 2; ++i) {
    if (!body.contains(names[i])) continue;
    if (!body[names[i]].is_boolean()) return bad_field(names[i], "must be a boolean");
    flags[i] = body[names[i]].get<bool>();
  }
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, sandbox_path(body["path"].get<std::string>(), t.workdir, "path", false));
  auto m = request(proto::Type::kFileRemove);
  m.file_remove = {proto::to_str(path), flags[0] ? 1u : 0u};
  API_TRY(auto reply, file_call(*t.conn, m, std::chrono::seconds(120)));
  if (reply.errnum == ENOENT && flags[1]) return json_response(200, {{"removed", false}});
  if (reply.errnum) return file_error(reply.errnum, path, reply.message);
  return json_response(200, {{"removed", true}});
}

ApiResult<HttpResponse> rename_file(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({})) return *error;
  API_TRY(auto body, parse_json_object(ctx.request.body));
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() != "old_path" && it.key() != "new_path" && it.key() != "overwrite") return bad_field(it.key(), "is not a known field");
  }
  if (!body.contains("old_path") || !body["old_path"].is_string()) return bad_field("old_path", "must be a string");
  if (!body.contains("new_path") || !body["new_path"].is_string()) return bad_field("new_path", "must be a string");
  bool overwrite = false;
  if (body.contains("overwrite")) {
    if (!body["overwrite"].is_boolean()) return bad_field("overwrite", "must be a boolean");
    overwrite = body["overwrite"].get<bool>();
  }
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto from, sandbox_path(body["old_path"].get<std::string>(), t.workdir, "old_path", false));
  API_TRY(auto to, sandbox_path(body["new_path"].get<std::string>(), t.workdir, "new_path", false));
  auto m = request(proto::Type::kFileRename);
  m.file_rename = {proto::to_str(from), proto::to_str(to), overwrite ? 0u : 1u};
  API_TRY(auto reply, file_call(*t.conn, m));
  if (reply.errnum) return file_error(reply.errnum, reply.errnum == EEXIST ? to : from, reply.message);
  API_TRY(auto info, stat(*t.conn, to));
  if (!info) return file_error(ENOENT, to, "");
  return json_response(200, entry_json(to, *info));
}

// --- watch ----------------------------------------------------------------------------------------------

// A watch's events as a stream: the agent's WatchEvents are queued (bounded: past the limit an
// `overflow` replaces what is lost) and pulled by the HTTP server as the client reads.
class WatchSource final : public BodySource, public AgentSink, public std::enable_shared_from_this<WatchSource> {
 public:
  static constexpr size_t kMaxQueued = 4096;

  WatchSource(std::shared_ptr<AgentConnection> conn, std::string path, EventFormat format, Timers& timers)
      : conn_(std::move(conn)), path_(std::move(path)), format_(format), timers_(timers) {}

  void begin(uint32_t id) { id_ = id; }

  Verdict on_message(const proto::Message& m) override {
    std::unique_lock lock(mu_);
    if (m.type == proto::Type::kDone && !armed_) {
      armed_ = true;
      queue_.push_back(format_event({{"type", "ready"}, {"path", path_}}, format_));
    } else if (m.type == proto::Type::kError) {
      std::string message(proto::to_string_view(m.error.message));
      ApiError e = file_error(m.error.code, path_, message);
      queue_.push_back(format_event({{"type", "error"},
                                     {"error", {{"code", std::string(error_code_name(e.code))}, {"message", e.message}}}},
                                    format_));
      ended_ = true;
    } else if (m.type == proto::Type::kWatchEvent && armed_) {
      uint32_t kind = m.watch_event.kind;
      if (kind == 4 || queue_.size() >= kMaxQueued) {
        if (!overflowed_) queue_.push_back(format_event({{"type", "overflow"}}, format_));
        overflowed_ = true;
      } else {
        overflowed_ = false;
        std::string rel(proto::to_string_view(m.watch_event.path));
        std::string full = path_ == "/" ? "/" + rel : path_ + "/" + rel;
        const char* type = kind == 1 ? "create" : kind == 2 ? "write" : "remove";
        queue_.push_back(format_event({{"type", type}, {"path", full}, {"is_dir", (m.flags & proto::kFlagDir) != 0},
                                       {"timestamp", format_timestamp(unix_millis_now())}},
                                      format_));
        if (kind == 3 && rel.empty()) ended_ = true;
      }
    } else {
      return Verdict::kViolation;
    }
    lock.unlock();
    drain();
    return ended_ ? Verdict::kDone : Verdict::kMore;
  }

  void on_disconnect(const Error&) override {
    {
      std::lock_guard guard(mu_);
      if (ended_) return;
      queue_.push_back(format_event({{"type", "error"},
                                     {"error", {{"code", "agent_error"}, {"message", "the sandbox stopped or its agent went away"}}}},
                                    format_));
      ended_ = true;
    }
    drain();
  }

  void pull(Deliver deliver) override {
    {
      std::lock_guard guard(mu_);
      pending_ = std::move(deliver);
      if (keepalive_) timers_.cancel(std::exchange(keepalive_, 0));
      if (queue_.empty() && !ended_ && !sent_end_) {
        auto weak = weak_from_this();
        keepalive_ = timers_.after(std::chrono::seconds(15), [weak] {
          if (auto self = weak.lock()) {
            std::unique_lock g(self->mu_);
            self->keepalive_ = 0;
            if (self->queue_.empty()) self->queue_.push_back(format_event({{"type", "keepalive"}}, self->format_));
            g.unlock();
            self->drain();
          }
        });
      }
    }
    drain();
  }

  void cancel() override {
    bool stop = false;
    {
      std::lock_guard guard(mu_);
      pending_ = nullptr;
      if (keepalive_) timers_.cancel(std::exchange(keepalive_, 0));
      stop = !ended_;
      ended_ = true;
    }
    if (stop && id_) {
      conn_->forget(id_);
      proto::Message m{};
      m.type = proto::Type::kWatchStop;
      m.id = id_;
      (void)conn_->send(m, std::chrono::seconds(1));
    }
  }

 private:
  void drain() {
    Deliver d;
    std::string body;
    bool end = false;
    {
      std::lock_guard guard(mu_);
      if (!pending_ || (queue_.empty() && !ended_) || sent_end_) return;
      for (auto& e : queue_) body += e;
      queue_.clear();
      end = ended_;
      sent_end_ = end;
      d = std::exchange(pending_, nullptr);
    }
    d(std::move(body), end);
  }

  std::shared_ptr<AgentConnection> conn_;
  std::string path_;
  EventFormat format_;
  Timers& timers_;
  uint32_t id_ = 0;
  std::mutex mu_;  // guards everything below
  std::vector<std::string> queue_;
  Deliver pending_;
  uint64_t keepalive_ = 0;
  bool armed_ = false, ended_ = false, sent_end_ = false, overflowed_ = false;
};

ApiResult<HttpResponse> watch_dir(Deps& d, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"path", "recursive"})) return *error;
  API_TRY(auto recursive, ctx.query.boolean("recursive"));
  API_TRY(auto t, target(d, ctx));
  API_TRY(auto path, path_query(ctx, t));
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  API_TRY(auto info, stat(*t.conn, path));
  if (!info) return file_error(ENOENT, path, "");
  if (info->kind != 2) return file_error(ENOTDIR, path, "");
  EventFormat format;
  auto accept = ctx.request.header("Accept");
  format.sse = accept && accept->find("text/event-stream") != std::string_view::npos;
  auto source = std::make_shared<WatchSource>(t.conn, path, format, d.timers);
  uint32_t id = t.conn->next_id();
  source->begin(id);
  t.conn->expect(id, source);
  auto m = request(proto::Type::kWatchStart);
  m.id = id;
  m.watch_start = {proto::to_str(path), recursive.value_or(false) ? 1u : 0u};
  if (auto sent = t.conn->send(m); !sent.ok()) {
    t.conn->forget(id);
    return api_error(ErrorCode::kAgentError, "the sandbox's agent is unreachable");
  }
  HttpResponse r;
  r.content_type = format.sse ? "text/event-stream" : "application/x-ndjson";
  r.stream = source;
  return r;
}

}  // namespace

void add_file_routes(Router& router, SandboxManager& sandboxes, Timers& timers) {
  auto deps = std::make_shared<Deps>(Deps{sandboxes, timers});
  auto route = [&](std::string method, std::string path, BodyKind body, size_t limit,
                   ApiResult<HttpResponse> (*fn)(Deps&, const RequestContext&)) {
    Route r{std::move(method), "/v1/sandboxes/{sandbox_id}/files/" + path, Access::kTenant, body, limit,
            [deps, fn](const RequestContext& ctx) { return fn(*deps, ctx); }};
    r.blocking = true;  // each waits on the agent
    router.add(std::move(r));
  };
  route("GET", "read", BodyKind::kNone, kDefaultBodyLimit, read_file);
  route("POST", "write", BodyKind::kStream, kWriteLimit, write_file);
  route("POST", "write-many", BodyKind::kJson, kWriteManyLimit, write_many);
  route("GET", "list", BodyKind::kNone, kDefaultBodyLimit, list_files);
  route("GET", "stat", BodyKind::kNone, kDefaultBodyLimit, stat_file);
  route("GET", "exists", BodyKind::kNone, kDefaultBodyLimit, file_exists);
  route("POST", "mkdir", BodyKind::kJson, kDefaultBodyLimit, make_dir);
  route("POST", "remove", BodyKind::kJson, kDefaultBodyLimit, remove_file);
  route("POST", "rename", BodyKind::kJson, kDefaultBodyLimit, rename_file);
  route("GET", "watch", BodyKind::kNone, kDefaultBodyLimit, watch_dir);
}

}  // namespace airlock::daemon
