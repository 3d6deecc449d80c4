// Logs: GET /v1/sandboxes/{sandbox_id}/logs (one page) and .../logs/stream (NDJSON or SSE, following).
// Scoped to the caller's tenant like every sandbox route; readable in every state.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "daemon/routes/routes.h"
#include "daemon/sandbox_log_stream.h"
#include "daemon/sandbox_logs.h"
#include "daemon/sandbox_manager.h"

namespace airlock::daemon {
namespace {

constexpr int64_t kMaxPageSize = 1000;
constexpr int64_t kDefaultPageSize = 100;
constexpr size_t kPageBytes = 1 << 20;  // output data per page (the page then says has_more)
constexpr size_t kMaxCursorText = 512;

struct LogQuery {
  LogFilter filter;
  bool base64 = false;
  std::optional<int64_t> after;
};

ApiError bad_cursor(std::string_view field, std::string message) {
  return api_error(ErrorCode::kInvalidParameter, std::move(message)).with_field(std::string(field));
}

ApiResult<std::optional<int64_t>> parse_cursor_text(std::string_view field, std::optional<std::string_view> text) {
  if (!text) return std::optional<int64_t>();
  if (text->empty() || text->size() > kMaxCursorText) {
    return bad_cursor(field, std::string(field) + " must be 1 to 512 characters");
  }
  auto cursor = parse_log_cursor(*text);
  if (!cursor) return bad_cursor(field, std::string(field) + " is not a log cursor this daemon made");
  return cursor;
}

// type (repeatable), pid, encoding and cursor: what the page and the stream share.
ApiResult<LogQuery> parse_log_query(const RequestContext& ctx) {
  const QueryParams& q = ctx.query;
  LogQuery out;
  std::vector<std::string> types;
  for (const auto& [name, value] : q.all()) {
    if (name != "type") continue;
    if (value != "lifecycle" && value != "stdout" && value != "stderr") {
      return api_error(ErrorCode::kInvalidParameter, "type must be lifecycle, stdout or stderr").with_field("type");
    }
    if (std::find(types.begin(), types.end(), value) != types.end()) {
      return api_error(ErrorCode::kInvalidParameter, "type " + value + " is given twice").with_field("type");
    }
    types.push_back(value);
  }
  if (!types.empty()) {
    auto has = [&](const char* t) { return std::find(types.begin(), types.end(), t) != types.end(); };
    out.filter.lifecycle = has("lifecycle");
    out.filter.stdout_output = has("stdout");
    out.filter.stderr_output = has("stderr");
  }
  API_TRY(out.filter.pid, q.integer("pid", 1, 4194304));
  API_TRY(auto encoding, q.string("encoding", [](std::string_view e) { return e == "utf-8" || e == "base64"; },
                                  "utf-8 or base64"));
  out.base64 = encoding && *encoding == "base64";
  API_TRY(out.after, parse_cursor_text("cursor", q.get("cursor")));
  return out;
}

ApiResult<HttpResponse> get_logs(SandboxManager& sandboxes, SandboxLogs& logs, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"cursor", "limit", "type", "pid", "encoding"}, {"type"})) return *error;
  API_TRY(auto record, sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  API_TRY(auto query, parse_log_query(ctx));
  API_TRY(auto limit, ctx.query.integer("limit", 1, kMaxPageSize));
  LogReadLimits limits;
  limits.entries = static_cast<size_t>(limit.value_or(kDefaultPageSize));
  limits.bytes = kPageBytes;
  auto read = logs.read(record.sandbox_id, query.after, query.filter, limits);
  if (!read.ok()) {
    if (read.error().errnum == ERANGE) {
      return bad_cursor("cursor", "cursor is beyond the end of this sandbox's log");
    }
    return internal_error(read.error());
  }
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& entry : read->entries) entries.push_back(log_entry_json(entry, query.base64));
  return json_response(200, {{"entries", std::move(entries)},
                             {"next_cursor", std::to_string(read->next_cursor)},
                             {"has_more", read->has_more}});
}

ApiResult<HttpResponse> stream_logs(SandboxManager& sandboxes, SandboxLogs& logs, const RequestContext& ctx) {
  if (auto error = ctx.query.check_names({"cursor", "follow", "type", "pid", "encoding"}, {"type"})) return *error;
  API_TRY(auto record, sandboxes.get(ctx.principal.tenant, ctx.params.get("sandbox_id")));
  API_TRY(auto query, parse_log_query(ctx));
  API_TRY(auto follow, ctx.query.boolean("follow"));
  std::string_view cursor_field = "cursor";
  if (ctx.request.header_count("Last-Event-ID") > 0) {  // an SSE client resuming: overrides cursor
    cursor_field = "Last-Event-ID";
    API_TRY(query.after, parse_cursor_text(cursor_field, ctx.request.header("Last-Event-ID")));
  }
  API_TRY(auto last, or_internal(logs.last_cursor(record.sandbox_id)));
  if (query.after && *query.after > last) {  // made for another sandbox, or invented
    return bad_cursor(cursor_field, std::string(cursor_field) + " is beyond the end of this sandbox's log");
  }

  LogStreamOptions options;
  options.after = query.after;
  options.filter = query.filter;
  options.base64 = query.base64;
  // A sandbox that has ended writes nothing more (but perhaps `terminated` after `stopped`, which a
  // client that follows an ended sandbox has no use waiting for).
  options.follow = follow.value_or(true) && is_live(record.state);
  auto accept = ctx.request.header("Accept");
  options.sse = accept && accept->find("text/event-stream") != std::string_view::npos;
  auto stream = LogStream::create(logs, record.sandbox_id, options);

  HttpResponse response;
  response.status = 200;
  response.content_type = stream->content_type();
  response.with_header("Cache-Control", "no-store");
  response.stream = std::move(stream);
  return response;
}

}  // namespace

void add_log_routes(Router& router, SandboxManager& sandboxes, SandboxLogs& logs) {
  // Store lookups and bounded file reads: on the I/O threads, so that reading logs never waits
  // behind a pool full of long commands. A stream holds no thread while it follows.
  router.add({"GET", "/v1/sandboxes/{sandbox_id}/logs", Access::kTenant, BodyKind::kNone, kDefaultBodyLimit,
              [&sandboxes, &logs](const RequestContext& ctx) { return get_logs(sandboxes, logs, ctx); }});
  router.add({"GET", "/v1/sandboxes/{sandbox_id}/logs/stream", Access::kTenant, BodyKind::kNone, kDefaultBodyLimit,
              [&sandboxes, &logs](const RequestContext& ctx) { return stream_logs(sandboxes, logs, ctx); }});
}

}  // namespace airlock::daemon
