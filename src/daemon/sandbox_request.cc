#include "daemon/sandbox_request.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "daemon/base64.h"
#include "daemon/json_body.h"

namespace airlock::daemon {
namespace {

ApiError bad(const std::string& field, const std::string& message) {
  return api_error(ErrorCode::kInvalidField, field + " " + message).with_field(field);
}

template <class Names>
std::optional<ApiError> unknown_fields_in(const nlohmann::json& body, const Names& known) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      // An empty member name still gets a field to point at: `""`.
      return bad(it.key().empty() ? std::string("\"\"") : it.key(), "is not a known field");
    }
  }
  return std::nullopt;
}
std::optional<ApiError> unknown_fields(const nlohmann::json& body, std::initializer_list<std::string_view> known) {
  return unknown_fields_in(body, known);
}
std::optional<ApiError> unknown_fields(const nlohmann::json& body, const std::vector<std::string>& known) {
  return unknown_fields_in(body, known);
}

// An integer in [min, max]; a JSON float with an integral value (3.0) is accepted as JSON Schema does.
ApiResult<std::optional<int64_t>> integer(const nlohmann::json& body, const std::string& name, int64_t min, int64_t max) {
  if (!body.contains(name)) return std::optional<int64_t>();
  const auto& v = body[name];
  int64_t n;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) return bad(name, "must be at most " + std::to_string(max));
    n = v.get<int64_t>();
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 9e18) {
    n = static_cast<int64_t>(v.get<double>());
  } else {
    return bad(name, "must be an integer");
  }
  if (n < min || n > max) return bad(name, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return std::optional<int64_t>(n);
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

ApiResult<std::optional<std::string>> string(const nlohmann::json& body, const std::string& name, size_t min, size_t max) {
  if (!body.contains(name)) return std::optional<std::string>();
  const auto& v = body[name];
  if (!v.is_string()) return bad(name, "must be a string");
  auto s = v.get<std::string>();
  size_t n = utf8_length(s);
  if (n < min || n > max) return bad(name, "must be " + std::to_string(min) + " to " + std::to_string(max) + " characters");
  return std::optional<std::string>(std::move(s));
}

bool env_name_ok(std::string_view k) {
  if (k.empty() || k.size() > 256) return false;
  auto head = [](char c) { return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  if (!head(k[0])) return false;
  return std::all_of(k.begin(), k.end(), [&](char c) { return head(c) || (c >= '0' && c <= '9'); });
}

bool metadata_key_ok(std::string_view k) {
  if (k.empty() || k.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(k[0])) return false;
  return std::all_of(k.begin(), k.end(), [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '/' || c == '-'; });
}

ApiResult<StringPairs> env_object(const nlohmann::json& body, const std::string& name) {
  StringPairs out;
  if (!body.contains(name)) return out;
  const auto& v = body[name];
  if (!v.is_object()) return bad(name, "must be an object of strings");
  if (v.size() > 256) return bad(name, "has more than 256 variables");
  for (auto it = v.begin(); it != v.end(); ++it) {
    std::string field = name + "." + it.key();
    if (!env_name_ok(it.key())) return bad(field, "is not a valid variable name (^[A-Za-z_][A-Za-z0-9_]{0,255}$)");
    if (!it.value().is_string()) return bad(field, "must be a string");
    auto value = it.value().get<std::string>();
    if (has_nul(value) || utf8_length(value) > 32768) return bad(field, "must be at most 32768 characters without NUL");
    out.emplace_back(it.key(), std::move(value));
  }
  return out;
}

ApiResult<std::vector<std::string>> argv_array(const nlohmann::json& v, const std::string& name) {
  if (!v.is_array()) return bad(name, "must be an array of strings");
  if (v.empty() || v.size() > 4096) return bad(name, "must have 1 to 4096 items");
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string field = name + "[" + std::to_string(i) + "]";
    if (!v[i].is_string()) return bad(field, "must be a string");
    auto s = v[i].get<std::string>();
    if (has_nul(s) || utf8_length(s) > 131072) return bad(field, "must be at most 131072 characters without NUL");
    out.push_back(std::move(s));
  }
  return out;
}

bool template_ok(std::string_view t) {
  static const std::regex re("^[a-z0-9][a-z0-9._-]{0,62}(:[A-Za-z0-9._-]{1,128})?$");
  return t.size() <= 192 && std::regex_match(t.begin(), t.end(), re);
}

}  // namespace

ApiResult<ExposedPort> parse_exposed_port(const nlohmann::json& item, const std::string& field) {
  ExposedPort p;
  auto sub = [&field](const std::string& key) { return field.empty() ? key : field + "." + key; };
  const nlohmann::json* port = &item;
  if (item.is_object()) {
    for (auto it = item.begin(); it != item.end(); ++it) {
      if (it.key() != "port" && it.key() != "public") return bad(sub(it.key()), "is not a known field");
    }
    if (!item.contains("port")) return bad(sub("port"), "is required");
    port = &item["port"];
    if (item.contains("public")) {
      if (!item["public"].is_boolean()) return bad(sub("public"), "must be a boolean");
      p.is_public = item["public"].get<bool>();
    }
  }
  std::string port_field = item.is_object() ? sub("port") : field;
  if (!port->is_number_integer()) return bad(port_field, "must be an integer between 1 and 65535");
  int64_t n = port->get<int64_t>();
  if (n < 1 || n > 65535) return bad(port_field, "must be an integer between 1 and 65535");
  p.port = static_cast<uint16_t>(n);
  return p;
}

ApiResult<std::vector<ExposedPort>> parse_ports(const nlohmann::json& v) {
  if (!v.is_array()) return bad("ports", "must be an array of ports (integers or {port, public})");
  if (v.size() > kMaxExposedPorts) return bad("ports", "has more than " + std::to_string(kMaxExposedPorts) + " ports");
  std::vector<ExposedPort> out;
  for (size_t i = 0; i < v.size(); ++i) {
    std::string field = "ports[" + std::to_string(i) + "]";
    if (!v[i].is_object() && !v[i].is_number()) return bad(field, "must be an integer or {port, public}");
    API_TRY(auto p, parse_exposed_port(v[i], field));
    for (const auto& seen : out) {
      if (seen.port == p.port) return bad(field, "repeats port " + std::to_string(p.port));
    }
    out.push_back(p);
  }
  std::sort(out.begin(), out.end(), [](const ExposedPort& a, const ExposedPort& b) { return a.port < b.port; });
  return out;
}

ApiResult<SandboxSettings> parse_create_sandbox(const nlohmann::json& body) {
  if (auto e = unknown_fields(body, {"template", "cpu", "memory_mb", "disk_mb", "pids", "timeout", "idle_timeout", "env",
                                     "workdir", "metadata", "network", "command", "ports"})) {
    return *e;
  }
  SandboxSettings s;
  API_TRY(auto tmpl, string(body, "template", 1, 192));
  if (tmpl) {
    if (!template_ok(*tmpl)) return bad("template", "must match ^[a-z0-9][a-z0-9._-]{0,62}(:[A-Za-z0-9._-]{1,128})?$");
    if (*tmpl != "host") {
      return api_error(ErrorCode::kUnknownTemplate, "template " + *tmpl + " does not exist on this daemon (only host)")
          .with_field("template");
    }
    s.template_name = *tmpl;
  }
  if (body.contains("cpu")) {
    const auto& v = body["cpu"];
    if (!v.is_number()) return bad("cpu", "must be a number");
    double cpu = v.get<double>();
    if (!(cpu >= 0.01 && cpu <= 1024)) return bad("cpu", "must be between 0.01 and 1024");
    s.cpu_millis = std::max<int64_t>(10, std::llround(cpu * 1000));
  }
  API_TRY(auto memory, integer(body, "memory_mb", 4, 4194304));
  API_TRY(auto disk, integer(body, "disk_mb", 1, 16777216));
  API_TRY(auto pids, integer(body, "pids", 2, 4194304));
  API_TRY(auto timeout, integer(body, "timeout", 1, 2592000));
  if (memory) s.memory_mb = *memory;
  if (disk) s.disk_mb = *disk;
  if (pids) s.pids = *pids;
  if (timeout) s.timeout = *timeout;
  if (body.contains("idle_timeout") && !body["idle_timeout"].is_null()) {
    API_TRY(auto idle, integer(body, "idle_timeout", 1, 2592000));
    s.idle_timeout = idle;
  }
  API_TRY(s.env, env_object(body, "env"));
  if (body.contains("workdir")) {
    API_TRY(auto workdir, string(body, "workdir", 1, 4096));
    if ((*workdir)[0] != '/' || has_nul(*workdir)) return bad("workdir", "must be an absolute path");
    s.workdir = *workdir;
  }
  if (body.contains("metadata")) {
    const auto& m = body["metadata"];
    if (!m.is_object()) return bad("metadata", "must be an object of strings");
    if (m.size() > 64) return bad("metadata", "has more than 64 labels");
    for (auto it = m.begin(); it != m.end(); ++it) {
      std::string field = "metadata." + it.key();
      if (!metadata_key_ok(it.key())) return bad(field, "is not a valid label (^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$)");
      if (!it.value().is_string()) return bad(field, "must be a string");
      auto value = it.value().get<std::string>();
      if (utf8_length(value) > 256) return bad(field, "must be at most 256 characters");
      s.metadata.emplace_back(it.key(), std::move(value));
    }
    std::sort(s.metadata.begin(), s.metadata.end());
  }
  if (body.contains("network")) {
    API_TRY(s.network, parse_network(body["network"], "network."));
  }
  if (body.contains("ports")) {
    API_TRY(s.ports, parse_ports(body["ports"]));
  }
  if (body.contains("command") && !body["command"].is_null()) {
    API_TRY(auto argv, argv_array(body["command"], "command"));
    (void)argv;
    // The entry command (stop_reason exited, output to the sandbox log) comes with the log store.
    return api_error(ErrorCode::kLimitExceeded, "an entry command is not supported by this daemon yet; "
                                                "create the sandbox and use commands/run or processes")
        .with_field("command");
  }
  return s;
}

ApiResult<net::EgressPolicy> parse_network(const nlohmann::json& n, const std::string& prefix) {
  std::string object = prefix.empty() ? std::string("body") : prefix.substr(0, prefix.size() - 1);
  if (!n.is_object()) return bad(object, "must be an object");
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (it.key() != "mode" && it.key() != "allow_out" && it.key() != "deny_out" && it.key() != "bandwidth_mbps") {
      return bad(prefix + it.key(), "is not a known field");
    }
  }
  net::EgressPolicy policy;
  if (n.contains("mode")) {
    const auto& m = n["mode"];
    if (!m.is_string() || (m.get<std::string>() != "none" && m.get<std::string>() != "allow")) {
      return bad(prefix + "mode", "must be none or allow");
    }
    policy.mode = m.get<std::string>() == "allow" ? net::EgressMode::kAllow : net::EgressMode::kNone;
  }
  if (n.contains("bandwidth_mbps") && !n["bandwidth_mbps"].is_null()) {
    const auto& v = n["bandwidth_mbps"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > net::kMaxBandwidthMbps) {
      return bad(prefix + "bandwidth_mbps", "must be an integer between 1 and " + std::to_string(net::kMaxBandwidthMbps));
    }
    policy.bandwidth_mbps = static_cast<uint32_t>(v.get<int64_t>());
  }
  for (auto [list, name] : {std::pair{&policy.allow_out, "allow_out"}, std::pair{&policy.deny_out, "deny_out"}}) {
    if (!n.contains(name)) continue;
    const auto& items = n[name];
    std::string field = prefix + name;
    if (!items.is_array()) return bad(field, "must be an array of strings");
    if (items.size() > net::kMaxPolicyEntries) {
      return bad(field, "must have at most " + std::to_string(net::kMaxPolicyEntries) + " entries");
    }
    for (size_t i = 0; i < items.size(); ++i) {
      std::string item_field = field + "[" + std::to_string(i) + "]";
      if (!items[i].is_string()) return bad(item_field, "must be a string");
      auto d = net::parse_destination(items[i].get<std::string>());
      if (!d.ok()) return bad(item_field, d.error().message);
      list->push_back(std::move(d).value());
    }
  }
  return policy;
}

ApiResult<SetTimeoutRequest> parse_set_timeout(const nlohmann::json& body) {
  if (auto e = unknown_fields(body, {"timeout", "extend_by"})) return *e;
  SetTimeoutRequest r;
  API_TRY(r.timeout, integer(body, "timeout", 1, 2592000));
  API_TRY(r.extend_by, integer(body, "extend_by", 1, 2592000));
  if (r.timeout.has_value() == r.extend_by.has_value()) {
    return bad(r.timeout ? "extend_by" : "timeout", "exactly one of timeout and extend_by is required");
  }
  return r;
}

ApiResult<std::pair<uint32_t, uint32_t>> parse_user(std::string_view user) {
  auto unknown = [&] {
    return api_error(ErrorCode::kUnknownUser, "user " + std::string(user) + " does not exist inside the sandbox")
        .with_field("user");
  };
  if (user == "root") return std::pair<uint32_t, uint32_t>{0, 0};
  static const std::regex numeric("^([0-9]{1,5})(?::([0-9]{1,5}))?$");
  static const std::regex name("^[a-z_][a-z0-9_-]{0,31}$");
  std::match_results<std::string_view::const_iterator> m;
  if (std::regex_match(user.begin(), user.end(), m, numeric)) {
    uint32_t uid = static_cast<uint32_t>(std::stoul(m[1].str()));
    uint32_t gid = m[2].matched ? static_cast<uint32_t>(std::stoul(m[2].str())) : uid;
    if (uid > 65535 || gid > 65535) return unknown();
    return std::pair<uint32_t, uint32_t>{uid, gid};
  }
  if (user.size() <= 32 && std::regex_match(user.begin(), user.end(), name)) return unknown();
  return bad("user", "must be a user name or UID[:GID]");
}

ApiResult<RunCommandRequest> parse_run_command(const nlohmann::json& body, CommandBody kind) {
  std::vector<std::string> fields = {"cmd", "argv", "env", "cwd", "user", "stdin", "stdin_encoding", "timeout"};
  if (kind != CommandBody::kStart) fields.push_back("encoding");
  if (kind == CommandBody::kRun) fields.push_back("max_output_bytes");
  if (kind != CommandBody::kRun) fields.push_back("open_stdin");
  if (kind == CommandBody::kStart) {
    fields.push_back("pty");
    fields.push_back("output_buffer_bytes");
  }
  if (auto e = unknown_fields(body, fields)) return *e;
  RunCommandRequest r;
  if (kind != CommandBody::kRun && body.contains("open_stdin")) {
    if (!body["open_stdin"].is_boolean()) return bad("open_stdin", "must be a boolean");
    r.open_stdin = body["open_stdin"].get<bool>();
  }
  if (kind == CommandBody::kStart) {
    r.timeout = std::chrono::milliseconds(0);
    if (body.contains("pty")) {
      const auto& p = body["pty"];
      if (!p.is_object()) return bad("pty", "must be an object with cols and rows");
      if (auto e = unknown_fields(p, {"cols", "rows"})) return *e;
      API_TRY(auto cols, integer(p, "cols", 1, 1000));
      API_TRY(auto rows, integer(p, "rows", 1, 1000));
      if (!cols) return bad("pty.cols", "is required");
      if (!rows) return bad("pty.rows", "is required");
      r.pty = std::make_pair(static_cast<uint16_t>(*cols), static_cast<uint16_t>(*rows));
      r.open_stdin = true;
    }
    API_TRY(auto ring, integer(body, "output_buffer_bytes", 4096, 16777216));
    if (ring) r.output_buffer_bytes = static_cast<size_t>(*ring);
    if (body.contains("timeout") && body["timeout"].is_null()) {
      nlohmann::json copy = body;
      copy.erase("timeout");
      return parse_run_command(copy, kind);
    }
  }
  bool has_cmd = body.contains("cmd"), has_argv = body.contains("argv");
  if (has_cmd == has_argv) return bad(has_cmd ? "argv" : "cmd", "exactly one of cmd and argv is required");
  if (has_cmd) {
    API_TRY(auto cmd, string(body, "cmd", 1, 131072));
    if (has_nul(*cmd)) return bad("cmd", "must not contain NUL");
    r.argv = {"/bin/sh", "-c", *cmd};
  } else {
    API_TRY(r.argv, argv_array(body["argv"], "argv"));
  }
  API_TRY(r.env, env_object(body, "env"));
  API_TRY(r.cwd, string(body, "cwd", 1, 4096));
  if (r.cwd && has_nul(*r.cwd)) return bad("cwd", "must not contain NUL");
  if (body.contains("user")) {
    if (!body["user"].is_string()) return bad("user", "must be a string");
    API_TRY(auto ids, parse_user(body["user"].get<std::string>()));
    r.uid = ids.first;
    r.gid = ids.second;
    r.user = body["user"].get<std::string>();
  }
  auto encoding_of = [&](const std::string& name) -> ApiResult<bool> {
    if (!body.contains(name)) return false;
    const auto& v = body[name];
    if (!v.is_string() || (v != "utf-8" && v != "base64")) return bad(name, "must be utf-8 or base64");
    return v == "base64";
  };
  API_TRY(bool stdin_base64, encoding_of("stdin_encoding"));
  API_TRY(r.base64_output, encoding_of("encoding"));
  API_TRY(auto stdin_text, string(body, "stdin", 0, 1048576));
  if (stdin_text) {
    if (stdin_base64) {
      auto decoded = base64_decode(*stdin_text);
      if (!decoded) return bad("stdin", "is not valid base64");
      r.stdin_data = std::move(*decoded);
    } else {
      r.stdin_data = std::move(*stdin_text);
    }
  }
  if (body.contains("timeout")) {
    const auto& v = body["timeout"];
    if (!v.is_number()) return bad("timeout", "must be a number of seconds");
    double t = v.get<double>();
    if (!(t > 0 && t <= 2592000)) return bad("timeout", "must be more than 0 and at most 2592000");
    r.timeout = std::chrono::milliseconds(std::max<int64_t>(1, std::llround(t * 1000)));
  }
  API_TRY(auto max_output, integer(body, "max_output_bytes", 0, 16777216));
  if (max_output) r.max_output_bytes = static_cast<size_t>(*max_output);
  return r;
}

}  // namespace airlock::daemon
