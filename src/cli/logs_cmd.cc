// `airlock logs [-f] ID`: the sandbox's log from its oldest kept entry. Process output goes to our
// stdout or stderr as it was produced (exact bytes: requested base64-encoded); lifecycle events go
// to stderr as "[TIME] EVENT: MESSAGE" lines, so that stdout holds only what the processes wrote.
// Without -f every page of GET /logs is printed; with -f, GET /logs/stream follows the log until
// the sandbox's final entry (stopped or terminated) or Ctrl-C.
#include "cli/logs_cmd.h"

#include <unistd.h>

#include <cstdio>

#include "cli/base64.h"
#include "cli/daemon_verb.h"
#include "cli/exit_codes.h"
#include "cli/fd_io.h"
#include "cli/ndjson.h"
#include "cli/query_string.h"

namespace airlock::cli {
namespace {

class LogPrinter {
 public:
  explicit LogPrinter(bool json) : json_(json) {}

  Status print(const nlohmann::json& entry) {
    if (!entry.is_object()) return plain_error("malformed log entry from the daemon");
    std::string type = field(entry, "type");
    if (type == "keepalive") return {};
    if (type == "error") {
      auto detail = entry.find("error");
      if (detail == entry.end() || !detail->is_object()) return plain_error("the log stream failed");
      return plain_error(field(*detail, "message") + " (" + field(*detail, "code") + ")");
    }
    if (json_) return write_all(STDOUT_FILENO, dump_json(entry) + "\n");
    if (type == "stdout" || type == "stderr") {
      auto data = entry.find("data");
      if (data == entry.end() || !data->is_string()) return plain_error("malformed log entry from the daemon");
      std::string bytes = data->get<std::string>();
      if (field(entry, "encoding") == "base64") {
        TRY(bytes, base64_decode(bytes));
      }
      if (bytes.empty()) return {};
      bool to_stderr = type == "stderr";
      if (to_stderr) stderr_mid_line_ = bytes.back() != '\n';
      return write_all(to_stderr ? STDERR_FILENO : STDOUT_FILENO, bytes);
    }
    std::string line;
    if (type == "lifecycle") {
      line = "[" + field(entry, "timestamp") + "] " + field(entry, "event") + ": " + field(entry, "message");
    } else if (type == "gap") {
      line = "[...] older entries were rotated out of the log";
    } else {
      return {};  // types added to the contract later
    }
    line = (stderr_mid_line_ ? "\n" : "") + line + "\n";
    stderr_mid_line_ = false;
    return write_all(STDERR_FILENO, line);
  }

 private:
  static std::string field(const nlohmann::json& object, const char* name) {
    auto it = object.find(name);
    return it != object.end() && it->is_string() ? it->get<std::string>() : "";
  }
  bool json_;
  bool stderr_mid_line_ = false;
};

Status print_pages(const ApiClient& api, const std::string& id, const QueryString& filters, LogPrinter& printer) {
  std::optional<std::string> cursor;
  for (;;) {
    QueryString query = filters;
    query.add("limit", "1000");
    if (cursor) query.add("cursor", *cursor);
    TRY(auto page, api.get(sandbox_target(id, "/logs") + query.str()));
    auto entries = page.find("entries");
    if (entries == page.end() || !entries->is_array()) return plain_error("malformed log page from the daemon");
    for (const auto& entry : *entries) TRY_STATUS(printer.print(entry));
    auto next = page.find("next_cursor");
    bool more = page.value("has_more", false);
    if (!more || next == page.end() || !next->is_string()) return {};
    // A page that ends where it began would loop for ever: stop rather than trust the daemon.
    if (cursor && *cursor == next->get<std::string>() && entries->empty()) return {};
    cursor = next->get<std::string>();
  }
}

Status follow(const ApiClient& api, const std::string& id, QueryString query, LogPrinter& printer) {
  query.add("follow", "true");
  TRY(auto stream, api.open("GET", sandbox_target(id, "/logs/stream") + query.str()));
  NdjsonSplitter lines;
  char buffer[64 * 1024];
  for (;;) {
    TRY(auto n, stream.read(buffer, sizeof buffer));
    if (n == 0) return {};
    TRY_STATUS(lines.feed(std::string_view(buffer, n)));
    while (auto line = lines.next()) {
      auto entry = nlohmann::json::parse(*line, nullptr, /*allow_exceptions=*/false);
      if (entry.is_discarded()) return plain_error("malformed log entry from the daemon");
      TRY_STATUS(printer.print(entry));
    }
  }
}

}  // namespace

int logs_verb(const std::vector<std::string>& args, const GlobalOptions& globals_in) {
  GlobalOptions globals = globals_in;
  CLI::App app{"Print a sandbox's log: process output on stdout/stderr, lifecycle events on stderr.", "airlock logs"};
  std::string id;
  bool follow_log = false, json = false;
  std::vector<std::string> types;
  int pid = 0;
  app.add_option("ID", id, "sandbox id")->required();
  app.add_flag("-f,--follow", follow_log, "keep printing new entries until the sandbox ends");
  app.add_option("--type", types, "only lifecycle, stdout or stderr entries (repeatable)");
  app.add_option("--pid", pid, "only the output of this process");
  app.add_flag("--json", json, "print each entry as a JSON line on stdout");
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;

  QueryString query;
  for (const auto& type : types) query.add("type", type);
  if (pid > 0) query.add("pid", std::to_string(pid));
  if (!json) query.add("encoding", "base64");
  auto api = connect_api(globals);
  if (!api.ok()) {
    print_error(api.error());
    return kExitAirlockError;
  }
  LogPrinter printer(json);
  Status status = follow_log ? follow(*api, id, query, printer) : print_pages(*api, id, query, printer);
  if (!status.ok()) return report_failure(status.error());
  return 0;
}

}  // namespace airlock::cli
