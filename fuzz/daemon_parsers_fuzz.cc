// libFuzzer target for airlockd's parsers of untrusted text, called directly (no store, no routes):
// request targets and percent-decoding (url.h), query strings (query.h), JSON bodies and media types
// (json_body.h), Authorization values (auth.h) and path matching (router.h). Build and run:
// fuzz/README.md (fuzz/build.sh).
//
// The first input byte picks nothing: every parser sees the whole input (and, for the query getters,
// the parsed result), so one corpus serves all. Invariants, besides "no crash, no sanitizer report,
// no exception":
//   - split_target: the path starts with '/', holds no '?' or '#', the query no '#'; an origin-form
//     target is path ["?" query] ["#" ...] exactly;
//   - percent_decode: never longer than its input; decoding the full %XX-encoding of any bytes gives
//     them back; a result exists iff every '%' starts a valid escape;
//   - QueryParams: getters either succeed or return 400 invalid_parameter naming the parameter; an
//     integer in range is really in range;
//   - parse_json_object: succeeds only with an object, fails only with 400 invalid_json, and the
//     parsed value serialises (to_json_text) and reparses to the same value; error_response of any
//     error it makes is the one error shape;
//   - json_nesting_exceeds agrees with the real nesting depth of any document nlohmann accepts;
//   - JsonFields: reading a few fields either succeeds or gives 400 invalid_field with a field;
//   - bearer_token: the token is non-empty, has no blank, and is a substring of the value;
//   - Router::match: a Found route's method is the asked one; MethodNotAllowed lists sorted methods;
//   - parse_run_command (run, stream and start bodies): fails only with 400 invalid_field (naming a
//     field) or 422 unknown_user; an accepted command has a non-empty argv[0], a pty of 1-1000 and a
//     ring of 4 KiB-16 MiB;
//   - take_complete_utf8: what it returns plus what it holds back is the input, and it holds back
//     at most 3 bytes.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <exception>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "daemon/auth.h"
#include "daemon/errors.h"
#include "daemon/json_body.h"
#include "daemon/key_store.h"
#include "daemon/query.h"
#include "daemon/router.h"
#include "daemon/process_stream.h"
#include "daemon/sandbox_request.h"
#include "daemon/url.h"

namespace {

using namespace airlock::daemon;

void require(bool ok, const char* what) {
  if (ok) return;
  fprintf(stderr, "daemon parsers fuzz: invariant broken: %s\n", what);
  abort();
}

// Bugs found and reported but not fixed yet (fuzz/README.md, "Findings"): listing a name in the
// environment variable DAEMON_FUZZ_KNOWN_BUGS (comma-separated) skips its check, so a run can look
// for other bugs meanwhile. Unset, every check is on.
bool known_bug(const char* name) {
  const char* list = getenv("DAEMON_FUZZ_KNOWN_BUGS");
  return list && strstr(list, name) != nullptr;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool escapes_valid(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (s.size() - i < 3 || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) return false;
    i += 2;
  }
  return true;
}

void check_error_shape(const ApiError& e, ErrorCode want) {
  require(e.code == want, "unexpected error code");
  HttpResponse r = error_response(e);
  require(r.status == http_status(want), "error status");
  nlohmann::json j = nlohmann::json::parse(r.body);  // throws (and so crashes the run) if not JSON
  require(j.is_object() && j.size() == 1 && j["error"].is_object(), "error shape");
  require(j["error"]["code"].is_string() && j["error"]["message"].is_string(), "error members");
}

void fuzz_url(std::string_view s) {
  if (auto t = split_target(s)) {
    require(!t->path.empty() && t->path.front() == '/', "path does not start with /");
    require(t->path.find_first_of("?#") == std::string::npos, "path holds ? or #");
    if (!known_bug("url-fragment-in-query")) require(t->query.find('#') == std::string::npos, "query holds #");
    if (!s.empty() && s.front() == '/') {
      std::string again = t->path;
      if (s.substr(0, s.find('#')).find('?') != std::string_view::npos) again += "?" + t->query;
      require(s.substr(0, again.size()) == again, "origin-form target not split exactly");
      require(s.size() == again.size() || s[again.size()] == '#', "origin-form target lost bytes");
    }
  }
  for (bool plus : {false, true}) {
    auto d = percent_decode(s, plus);
    require(d.has_value() == escapes_valid(s), "percent_decode accepts the wrong escapes");
    if (d) require(d->size() <= s.size(), "decoded longer than input");
  }
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string enc;
  for (unsigned char c : s) {
    enc += '%';
    enc += kDigits[c >> 4];
    enc += kDigits[c & 15];
  }
  auto back = percent_decode(enc, true);
  require(back && *back == s, "percent round trip");
}

void fuzz_query(std::string_view s) {
  auto q = QueryParams::parse(s);
  if (!q.ok()) {
    check_error_shape(q.error(), ErrorCode::kInvalidParameter);
    return;
  }
  const QueryParams& p = q.value();
  if (auto e = p.check_names({"tenant", "include_revoked", "limit", "cursor"}, {"cursor"})) {
    check_error_shape(*e, ErrorCode::kInvalidParameter);
  }
  auto i = p.integer("limit", 1, 1000);
  if (i.ok()) {
    if (auto v = i.value()) require(*v >= 1 && *v <= 1000, "integer out of range");
  } else {
    check_error_shape(i.error(), ErrorCode::kInvalidParameter);
    require(i.error().field == "limit", "integer error names another field");
  }
  auto b = p.boolean("include_revoked");
  if (!b.ok()) check_error_shape(b.error(), ErrorCode::kInvalidParameter);
  auto t = p.string("tenant", valid_tenant_name, "a tenant name");
  if (t.ok() && t.value()) require(valid_tenant_name(*t.value()), "invalid tenant accepted");
  if (!t.ok()) check_error_shape(t.error(), ErrorCode::kInvalidParameter);
  for (const auto& [name, value] : p.all()) (void)p.get(name);
}

int real_depth(const nlohmann::json& j) {
  if (!j.is_structured()) return 0;
  int deepest = 0;
  for (const auto& child : j) deepest = std::max(deepest, real_depth(child));
  return deepest + 1;
}

void fuzz_json(std::string_view s) {
  (void)is_json_media_type(s);
  auto r = parse_json_object(s);
  if (!r.ok()) {
    check_error_shape(r.error(), ErrorCode::kInvalidJson);
    return;
  }
  const nlohmann::json& j = r.value();
  require(j.is_object(), "non-object accepted");
  require(!json_nesting_exceeds(s, kMaxJsonDepth), "accepted a body deeper than the bound");
  require(real_depth(j) <= kMaxJsonDepth, "accepted document nests deeper than the bound");
  std::string text = to_json_text(j);
  nlohmann::json again = nlohmann::json::parse(text);
  require(again.is_object(), "serialised object does not reparse");

  JsonFields fields(j);
  auto name = fields.string("name", {1, 64, valid_key_name, "free of control characters"}, true);
  auto tenant = fields.string("tenant", {1, 63, valid_tenant_name, "a tenant name"});
  auto admin = fields.boolean("admin");
  if (auto e = fields.finish()) {
    check_error_shape(*e, ErrorCode::kInvalidField);
    if (!known_bug("empty-field-name")) require(!e->field.empty(), "invalid_field without field");
  } else {
    require(name.has_value() && valid_key_name(*name), "bad name accepted");
    if (tenant) require(valid_tenant_name(*tenant), "bad tenant accepted");
    (void)admin;
  }
}

void fuzz_commands(std::string_view s) {
  auto body = nlohmann::json::parse(s, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return;
  for (auto kind : {CommandBody::kRun, CommandBody::kStream, CommandBody::kStart}) {
    auto r = parse_run_command(body, kind);
    if (!r.ok()) {
      ErrorCode code = r.error().code;
      require(code == ErrorCode::kInvalidField || code == ErrorCode::kUnknownUser, "command: unexpected error code");
      if (code == ErrorCode::kInvalidField && !known_bug("empty-field-name")) {
        require(!r.error().field.empty(), "command: invalid_field without field");
      }
      continue;
    }
    const RunCommandRequest& c = r.value();
    require(!c.argv.empty() && !c.argv[0].empty(), "command: empty argv accepted");
    if (c.pty) {
      require(c.pty->first >= 1 && c.pty->first <= 1000 && c.pty->second >= 1 && c.pty->second <= 1000, "bad pty");
    }
    require(c.output_buffer_bytes >= 4096 && c.output_buffer_bytes <= (16u << 20), "bad ring size");
  }
}

void fuzz_utf8(std::string_view s) {
  size_t cut = s.empty() ? 0 : static_cast<unsigned char>(s[0]) % (s.size() + 1);
  std::string held;
  std::string first = take_complete_utf8(held, s.substr(0, cut));
  require(held.size() <= 3, "utf8: held back more than 3 bytes");
  std::string second = take_complete_utf8(held, s.substr(cut));
  require(first + second + held == std::string(s), "utf8: bytes lost or reordered");
}

void fuzz_auth(std::string_view s) {
  if (auto t = bearer_token(s)) {
    require(!t->empty() && t->find_first_of(" \t") == std::string_view::npos, "token with blanks");
    require(t->data() >= s.data() && t->data() + t->size() <= s.data() + s.size(), "token outside the value");
  }
}

const Router& test_router() {
  static const Router* router = [] {
    auto* r = new Router;
    auto ok = [](const RequestContext&) -> ApiResult<HttpResponse> { return json_response(200, {{"ok", true}}); };
    r->add({"GET", "/healthz", Access::kPublic, BodyKind::kNone, kDefaultBodyLimit, ok});
    r->add({"GET", "/v1/keys", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit, ok});
    r->add({"POST", "/v1/keys", Access::kAdmin, BodyKind::kJson, kDefaultBodyLimit, ok});
    r->add({"GET", "/v1/keys/stats", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit, ok});
    r->add({"DELETE", "/v1/keys/{key_id}", Access::kAdmin, BodyKind::kNone, kDefaultBodyLimit, ok});
    r->add({"GET", "/v1/a/{x}/b/{y}", Access::kTenant, BodyKind::kNone, kDefaultBodyLimit, ok});
    return r;
  }();
  return *router;
}

void fuzz_router(std::string_view s) {
  size_t sp = s.find(' ');
  std::string_view method = sp == std::string_view::npos ? std::string_view("GET") : s.substr(0, sp);
  std::string_view path = sp == std::string_view::npos ? s : s.substr(sp + 1);
  auto m = test_router().match(method, path);
  if (auto* f = std::get_if<Router::Found>(&m)) {
    require(f->route->method == method, "found a route of another method");
  } else if (auto* w = std::get_if<Router::MethodNotAllowed>(&m)) {
    require(!w->allow.empty() && std::is_sorted(w->allow.begin(), w->allow.end()), "allow list");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  try {
    fuzz_url(s);
    fuzz_query(s);
    fuzz_json(s);
    fuzz_auth(s);
    fuzz_router(s);
    fuzz_commands(s);
    fuzz_utf8(s);
  } catch (const std::exception& e) {
    fprintf(stderr, "daemon parsers fuzz: exception: %s\n", e.what());
    abort();
  }
  return 0;
}
