// libFuzzer target for airlockd's request pipeline (src/daemon/api.h): what a client can send once
// Beast has cut the HTTP framing. Build and run: fuzz/README.md (fuzz/build.sh).
//
// The input is read like a bare HTTP/1.1 head, one item per '\n'-terminated line (a trailing '\r'
// is dropped):
//   line 1            method                 "GET"
//   line 2            request-target         "/v1/keys?limit=2"
//   lines 3..blank    headers "Name: value"  "Authorization: Bearer alk_..."
//   after the blank   body (raw bytes, may hold anything)
// A missing part is empty. The request then goes through Api::admit and Admission::run (run_stream for
// streamed bodies, served from memory in small pieces) over the real routes, exactly as the server
// does (http_server.cc), against a key store in a temp directory made once in LLVMFuzzerInitialize
// with two keys whose secrets are fixed so seeds can use them:
//   admin   alk_AAAA... (43 'A')    tenant "default"
//   tenant  alk_TTTT... (43 'T')    tenant "team-a"
//
// Invariants (abort() on any break, so libFuzzer saves the input):
//   - no crash, no sanitizer report, no exception out of admit() or run() (the server would turn it
//     into a 500 "bug: ... threw");
//   - never a 500;
//   - every status is one the contract defines (2xx of the served routes, or a status of the error
//     table in errors.cc);
//   - every status >= 400 carries the one error shape {"error":{"code","message","field"?,"details"?}}
//     whose code is a contract code with exactly that status; 401 has WWW-Authenticate, 405 has Allow;
//   - a request rejected before its body is read is one of 401/403/404/405/415 (never needs the body);
//   - every 2xx body is JSON.
// Set DAEMON_FUZZ_PRINT=1 to print each status and body (to check what the seeds reach).
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/port_service.h"
#include "daemon/api.h"
#include "daemon/auth.h"
#include "daemon/database.h"
#include "daemon/errors.h"
#include "daemon/key_store.h"
#include "daemon/log.h"
#include "daemon/router.h"
#include "daemon/routes/routes.h"

namespace {

using namespace airlock::daemon;

[[noreturn]] void broken(const char* what, const HttpResponse* r = nullptr) {
  fprintf(stderr, "daemon request fuzz: invariant broken: %s\n", what);
  if (r) fprintf(stderr, "  status %d, body: %.2000s\n", r->status, r->body.c_str());
  abort();
}
void require(bool ok, const char* what, const HttpResponse* r = nullptr) {
  if (!ok) broken(what, r);
}

// A streamed body (BodyKind::kStream routes) held in memory, answering each read at once and in
// pieces as small as a socket might give them.
class InMemoryBody final : public BodyReader {
 public:
  explicit InMemoryBody(std::string_view data) : data_(data) {}
  void read(size_t max, Callback callback) override {
    size_t n = std::min({max, data_.size(), size_t{4096}});
    BodyPiece piece{std::string(data_.substr(0, n)), n == data_.size(), {}};
    data_.remove_prefix(n);
    callback(std::move(piece));
  }

 private:
  std::string_view data_;
};

struct World {
  std::string dir;
  int devnull = -1;
  std::unique_ptr<Logger> log;
  std::unique_ptr<Database> db;
  std::unique_ptr<KeyStore> keys;
  std::unique_ptr<ApiServices> services;
  Router router;
  std::unique_ptr<Authenticator> auth;
  std::unique_ptr<Api> api;
  std::set<int> statuses;  // every status the contract allows
};
World* world = nullptr;

const std::string kAdminSecret = "alk_" + std::string(43, 'A');
const std::string kTenantSecret = "alk_" + std::string(43, 'T');

void cleanup_dir() {
  if (!world) return;
  // Only our own mkdtemp directory; no shell expansion of anything the input controls.
  for (const char* f : {"/airlock.db", "/airlock.db-wal", "/airlock.db-shm", "/airlock.db-journal"}) {
    unlink((world->dir + f).c_str());
  }
  rmdir(world->dir.c_str());
}

std::string_view next_line(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool has_header(const HttpResponse& r, std::string_view name) {
  for (const auto& h : r.headers) {
    if (ascii_iequals(h.name, name)) return true;
  }
  return false;
}

void check_response(const HttpResponse& r, bool rejected_early) {
  static const bool print = getenv("DAEMON_FUZZ_PRINT") != nullptr;  // to see what seeds reach
  if (print) fprintf(stderr, "-> %d %.300s\n", r.status, r.body.c_str());
  require(r.status != 500, "500 internal error", &r);
  require(world->statuses.count(r.status) == 1, "status outside the contract", &r);
  require(r.content_type == "application/json", "content type is not application/json", &r);
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(r.body);
  } catch (const std::exception&) {
    broken("response body is not JSON", &r);
  }
  if (rejected_early) {
    require(r.status == 401 || r.status == 403 || r.status == 404 || r.status == 405 || r.status == 415,
            "unexpected status before the body was read", &r);
  }
  if (r.status < 400) {
    require(body.is_object(), "success body is not an object", &r);
    return;
  }
  require(body.is_object() && body.size() == 1 && body.contains("error"), "error body is not {\"error\":...}", &r);
  const auto& e = body["error"];
  require(e.is_object(), "error is not an object", &r);
  require(e.contains("code") && e["code"].is_string(), "error.code missing or not a string", &r);
  require(e.contains("message") && e["message"].is_string(), "error.message missing or not a string", &r);
  require(!e["message"].get_ref<const std::string&>().empty(), "error.message empty", &r);
  for (const auto& [k, v] : e.items()) {
    bool known = k == "code" || k == "message" || (k == "field" && v.is_string()) || (k == "details" && v.is_object());
    require(known, "error has an unknown or mistyped member", &r);
  }
  const std::string& code = e["code"].get_ref<const std::string&>();
  bool matched = false;
  for (ErrorCode c : all_error_codes()) {
    if (error_code_name(c) == code) {
      require(http_status(c) == r.status, "error code does not match the status", &r);
      matched = true;
    }
  }
  require(matched, "error code not in the contract", &r);
  if (r.status == 401) require(has_header(r, "WWW-Authenticate"), "401 without WWW-Authenticate", &r);
  if (r.status == 405) require(has_header(r, "Allow"), "405 without Allow", &r);
}

}  // namespace

namespace airlock::daemon {
// The sandbox routes need a running engine (they create real sandboxes), so this target registers
// the routes the daemon serves without one, as the unit tests do: add_all_routes with
// services.sandboxes == nullptr. This definition keeps the linker from pulling routes/sandboxes.cc
// and the engine into the binary; it is never called.
void add_sandbox_routes(Router&, SandboxManager&, IdempotencyStore&) {
  fprintf(stderr, "daemon request fuzz: add_sandbox_routes called without an engine\n");
  abort();
}
void add_process_routes(Router&, SandboxManager&, Timers&, IdempotencyStore&) {
  fprintf(stderr, "daemon request fuzz: add_process_routes called without an engine\n");
  abort();
}
void add_file_routes(Router&, SandboxManager&, Timers&) {
  fprintf(stderr, "daemon request fuzz: add_file_routes called without an engine\n");
  abort();
}
void add_network_routes(Router&, SandboxManager&) {
  fprintf(stderr, "daemon request fuzz: add_network_routes called without an engine\n");
  abort();
}
void add_port_routes(Router&, SandboxManager&, PortService&) {
  fprintf(stderr, "daemon request fuzz: add_port_routes called without an engine\n");
  abort();
}
// The port proxy needs live sandboxes; Api only calls it when one is set (never here). Defined here
// so that the linker does not pull port_service.cc (and through it the manager and the engine).
std::optional<Admission> PortService::admit(const HttpRequest&) {
  fprintf(stderr, "daemon request fuzz: the port proxy called without an engine\n");
  abort();
}
// /metrics reads live sandboxes' cgroups through the manager (and so the engine); it has no body
// or parameters to fuzz.
void add_metrics_routes(Router&, ApiServices&) {}
void add_log_routes(Router&, SandboxManager&, SandboxLogs&) {
  fprintf(stderr, "daemon request fuzz: add_log_routes called without an engine\n");
  abort();
}
}  // namespace airlock::daemon

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world = new World;
  char tmpl[] = "/tmp/airlock-request-fuzz-XXXXXX";
  if (!mkdtemp(tmpl)) {
    perror("mkdtemp");
    abort();
  }
  world->dir = tmpl;
  atexit(cleanup_dir);
  world->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  // Debug level so the logging paths (shown_path, key ids) run too; the lines go to /dev/null.
  world->log = std::make_unique<Logger>(LogLevel::kDebug, world->devnull);
  auto db = Database::open(world->dir + "/airlock.db");
  if (!db.ok()) {
    fprintf(stderr, "daemon request fuzz: open database: %s\n", db.error().describe().c_str());
    abort();
  }
  world->db = std::move(db).value();
  world->keys = std::make_unique<KeyStore>(*world->db);
  world->services =
      std::make_unique<ApiServices>(ApiServices{*world->keys, *world->log, std::chrono::steady_clock::now()});
  add_all_routes(world->router, *world->services);
  world->auth = std::make_unique<Authenticator>(*world->keys);
  world->api = std::make_unique<Api>(world->router, *world->auth, *world->log);
  if (!world->keys->create_with_secret({"default", "fuzz-admin", true}, kAdminSecret).ok() ||
      !world->keys->create_with_secret({"team-a", "fuzz-tenant", false}, kTenantSecret).ok()) {
    fprintf(stderr, "daemon request fuzz: cannot create the keys\n");
    abort();
  }
  world->statuses = {200, 201, 204};
  for (ErrorCode c : all_error_codes()) world->statuses.insert(http_status(c));
  world->statuses.erase(500);  // in the table, but never an answer to client input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  HttpRequest head;
  head.method = std::string(next_line(in));
  head.target = std::string(next_line(in));
  while (!in.empty()) {
    std::string_view line = next_line(in);
    if (line.empty()) break;
    size_t colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);  // OWS, as Beast
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    head.headers.push_back({std::string(name), std::string(value)});
  }

  Admission admission;
  try {
    admission = world->api->admit(head);
  } catch (const std::exception& e) {
    fprintf(stderr, "admit threw: %s\n", e.what());
    broken("admit threw (the server answers 500)");
  }
  if (admission.reject) {
    check_response(*admission.reject, true);
    return 0;
  }
  require(static_cast<bool>(admission.run) != static_cast<bool>(admission.run_stream),
          "admitted without exactly one handler");
  if (in.size() > admission.body_limit) return 0;  // the server answers 413 without running the handler
  HttpResponse response;
  try {
    if (admission.run_stream) {
      // Without a worker pool the handler runs inline; the body answers each read at once.
      std::optional<HttpResponse> answered;
      admission.run_stream(head, std::make_shared<InMemoryBody>(in), [&](HttpResponse r) {
        require(!answered, "a streamed handler answered twice");
        answered = std::move(r);
      });
      require(answered.has_value(), "a streamed handler did not answer");
      response = std::move(*answered);
    } else {
      HttpRequest request = head;
      request.body = std::string(in);
      response = admission.run(request);
    }
  } catch (const std::exception& e) {
    fprintf(stderr, "run threw: %s\n", e.what());
    broken("handler threw (the server answers 500)");
  }
  check_response(response, false);
  return 0;
}
