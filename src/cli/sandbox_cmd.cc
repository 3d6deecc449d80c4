// `airlock sandbox create|ls|get|rm|timeout`: the sandbox lifecycle over the daemon's REST API.
#include "cli/sandbox_cmd.h"

#include <cstdio>
#include <ctime>

#include "cli/api_units.h"
#include "cli/daemon_verb.h"
#include "cli/exit_codes.h"
#include "cli/query_string.h"
#include "common/units.h"

namespace airlock::cli {
namespace {

constexpr const char* kUsage =
    "usage: airlock sandbox <command> [args]\n"
    "\n"
    "commands:\n"
    "  create [OPTIONS]          create a sandbox and print its id\n"
    "  ls [--state S] [--label K=V] [--json]\n"
    "                            list sandboxes (every state but terminated by default)\n"
    "  get ID [--json]           show one sandbox\n"
    "  rm ID...                  terminate sandboxes (already gone is fine)\n"
    "  timeout ID SECONDS|+SECONDS\n"
    "                            set the lifetime to SECONDS from now, or extend it by +SECONDS\n"
    "  net ID [--net MODE] [--allow-out DEST]... [--deny-out DEST]...\n"
    "                            replace a running sandbox's egress policy\n";

int fail(const Error& error) {
  print_error(error);
  return kExitAirlockError;
}

std::string text_field(const nlohmann::json& object, const char* name, const char* fallback = "-") {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  return dump_json(*it);
}

// "2026-11-21T10:00:00.123Z" -> seconds since the epoch (nullopt when it is not that shape).
std::optional<time_t> parse_timestamp(const std::string& text) {
  struct tm tm = {};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6 || consumed != 19)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return ::timegm(&tm);
}

// "3m ago", "in 4m59s", or "-" for null.
std::string relative_time(const nlohmann::json& object, const char* name) {
  std::string text = text_field(object, name, "");
  if (text.empty()) return "-";
  auto when = parse_timestamp(text);
  if (!when) return text;
  long long delta = static_cast<long long>(*when) - static_cast<long long>(std::time(nullptr));
  if (delta == 0) return "now";
  std::string span = format_duration(std::chrono::seconds(delta < 0 ? -delta : delta));
  return delta < 0 ? span + " ago" : "in " + span;
}

std::string labels_text(const nlohmann::json& sandbox) {
  std::string out;
  auto it = sandbox.find("metadata");
  if (it == sandbox.end() || !it->is_object()) return "";
  for (const auto& [key, value] : it->items()) {
    if (!out.empty()) out += ",";
    out += key + "=" + (value.is_string() ? value.get<std::string>() : dump_json(value));
  }
  return out;
}

// --net/--allow-out/--deny-out: the NetworkConfig of create and `sandbox net`.
struct NetworkFlags {
  std::string mode;
  std::vector<std::string> allow_out, deny_out;
  uint32_t bandwidth_mbps = 0;
  void add(CLI::App& app) {
    app.add_option("--net", mode, "egress: none (default: loopback only, or only --allow-out) or allow (the internet "
                                  "without private ranges, metadata, host and other sandboxes)")
        ->check(CLI::IsMember({"none", "allow"}));
    app.add_option("--allow-out", allow_out, "also reachable: CIDR, ADDR:PORT, domain or *.domain[:PORT] (repeatable)");
    app.add_option("--deny-out", deny_out, "never reachable, wins over --allow-out (repeatable)");
    app.add_option("--bandwidth", bandwidth_mbps, "limit each direction to this many Mbit/s")
        ->check(CLI::Range(1u, 100000u));
  }
  bool given() const { return !mode.empty() || !allow_out.empty() || !deny_out.empty() || bandwidth_mbps; }
  nlohmann::json json() const {
    nlohmann::json n = nlohmann::json::object();
    if (!mode.empty()) n["mode"] = mode;
    if (!allow_out.empty()) n["allow_out"] = allow_out;
    if (!deny_out.empty()) n["deny_out"] = deny_out;
    if (bandwidth_mbps) n["bandwidth_mbps"] = bandwidth_mbps;
    return n;
  }
};

std::string network_text(const nlohmann::json& network) {
  if (!network.is_object()) return "-";
  std::string out = text_field(network, "mode");
  auto list = [&](const char* name, const char* label) {
    auto it = network.find(name);
    if (it == network.end() || !it->is_array() || it->empty()) return;
    out += std::string(", ") + label + " ";
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& item = (*it)[i];
      out += (i ? " " : "") + (item.is_string() ? item.get<std::string>() : dump_json(item));
    }
  };
  list("allow_out", "allow");
  list("deny_out", "deny");
  if (auto it = network.find("bandwidth_mbps"); it != network.end() && it->is_number()) {
    out += ", " + dump_json(*it) + " Mbit/s";
  }
  if (auto v4 = text_field(network, "ipv4", ""); !v4.empty()) out += " (" + v4 + ", " + text_field(network, "ipv6") + ")";
  return out;
}

// --- create -----------------------------------------------------------------------------------
int create(const std::vector<std::string>& args, GlobalOptions globals) {
  CLI::App app{"Create a sandbox, wait until it runs and print its id.", "airlock sandbox create"};
  std::string template_name, cpu, memory, disk, pids, timeout, idle_timeout, workdir;
  std::vector<std::string> env, labels;
  bool json = false;
  app.add_option("--template", template_name, "template (default: host)");
  app.add_option("--cpu", cpu, "CPUs, e.g. 0.5, 2 (default 1)");
  app.add_option("--memory", memory, "memory limit, e.g. 512m, 2G; a bare number is MiB (default 512m)");
  app.add_option("--disk", disk, "size of the writable layer, e.g. 1G (default 1G)");
  app.add_option("--pids", pids, "max tasks (default 256)");
  app.add_option("--timeout", timeout, "max lifetime: seconds, or 30m, 2h (default 300)");
  app.add_option("--idle-timeout", idle_timeout, "stop after this long without activity (default: never)");
  app.add_option("-e,--env", env, "KEY=VALUE for every command (repeatable); KEY alone copies ours");
  app.add_option("--label", labels, "KEY=VALUE metadata to find it again (repeatable)");
  app.add_option("-w,--workdir", workdir, "default working directory (default /root)");
  app.add_flag("--json", json, "print the sandbox as JSON instead of its id");
  std::vector<int> ports, public_ports;
  app.add_option("-p,--port", ports, "expose this port through the daemon's proxy, with access tokens (repeatable)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--public-port", public_ports, "expose this port without a token (repeatable)")->check(CLI::Range(1, 65535));
  NetworkFlags net;
  net.add(app);
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;

  nlohmann::json body = nlohmann::json::object();
  if (net.given()) body["network"] = net.json();
  if (!template_name.empty()) body["template"] = template_name;
  if (!cpu.empty()) {
    auto millicores = parse_cpus(cpu);
    if (!millicores.ok() || *millicores == 0) return fail(plain_error("invalid --cpu \"" + cpu + "\" (expected e.g. 0.5, 2)"));
    body["cpu"] = static_cast<double>(*millicores) / 1000.0;
  }
  auto add_number = [&body](const char* field, const char* flag, const std::string& text,
                            Result<uint64_t> (*parse)(std::string_view)) -> Status {
    if (text.empty()) return {};
    auto value = parse(text);
    if (!value.ok()) return std::move(value).error().with_context(flag);
    body[field] = *value;
    return {};
  };
  auto parse_count = [](std::string_view text) -> Result<uint64_t> { return parse_uint(text); };
  for (auto status : {add_number("memory_mb", "--memory", memory, parse_mebibytes),
                      add_number("disk_mb", "--disk", disk, parse_mebibytes),
                      add_number("pids", "--pids", pids, +parse_count),
                      add_number("timeout", "--timeout", timeout, parse_whole_seconds),
                      add_number("idle_timeout", "--idle-timeout", idle_timeout, parse_whole_seconds)}) {
    if (!status.ok()) return fail(status.error());
  }
  if (!env.empty()) body["env"] = nlohmann::json::object();
  for (const auto& entry : env) {
    if (auto status = add_key_value(body["env"], entry, "--env", true); !status.ok()) return fail(status.error());
  }
  if (!labels.empty()) body["metadata"] = nlohmann::json::object();
  for (const auto& entry : labels) {
    if (auto status = add_key_value(body["metadata"], entry, "--label", false); !status.ok()) return fail(status.error());
  }
  if (!workdir.empty()) body["workdir"] = workdir;
  if (!ports.empty() || !public_ports.empty()) {
    body["ports"] = nlohmann::json::array();
    for (int p : ports) body["ports"].push_back({{"port", p}, {"public", false}});
    for (int p : public_ports) body["ports"].push_back({{"port", p}, {"public", true}});
  }

  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  auto sandbox = api->post("/v1/sandboxes", body);
  if (!sandbox.ok()) return fail(sandbox.error());
  if (json) {
    std::printf("%s\n", dump_json(*sandbox, 2).c_str());
  } else {
    std::printf("%s\n", text_field(*sandbox, "sandbox_id").c_str());
  }
  return 0;
}

// --- ls ---------------------------------------------------------------------------------------
int list(const std::vector<std::string>& args, GlobalOptions globals) {
  CLI::App app{"List sandboxes, newest first (every state but terminated unless --state says).", "airlock sandbox ls"};
  std::vector<std::string> states, labels;
  bool json = false;
  app.add_option("--state", states, "starting, running, stopped or terminated (repeatable)");
  app.add_option("--label", labels, "KEY=VALUE: only sandboxes with this metadata (repeatable; all must match)");
  app.add_flag("--json", json, "print a JSON array of the sandboxes");
  int page_size = 1000;
  app.add_option("--page-size", page_size, "sandboxes per request (1-1000; every page is fetched)")
      ->check(CLI::Range(1, 1000));
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;
  for (const auto& label : labels) {
    if (label.empty() || label[0] == '=' || label.find('=') == std::string::npos)
      return fail(plain_error("invalid --label \"" + label + "\" (expected KEY=VALUE)"));
  }

  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  nlohmann::json all = nlohmann::json::array();
  std::optional<std::string> cursor;
  for (;;) {  // every page: next_cursor is null on the last one
    QueryString query;
    for (const auto& state : states) query.add("state", state);
    for (const auto& label : labels) query.add("metadata", label);
    query.add("limit", std::to_string(page_size));
    if (cursor) query.add("cursor", *cursor);
    auto page = api->get("/v1/sandboxes" + query.str());
    if (!page.ok()) return fail(page.error());
    auto sandboxes = page->find("sandboxes");
    if (sandboxes == page->end() || !sandboxes->is_array()) return fail(plain_error("malformed sandbox list from the daemon"));
    for (auto& sandbox : *sandboxes) all.push_back(std::move(sandbox));
    auto next = page->find("next_cursor");
    if (next == page->end() || !next->is_string()) break;
    cursor = next->get<std::string>();
  }
  if (json) {
    std::printf("%s\n", dump_json(all, 2).c_str());
    return 0;
  }
  std::printf("%-22s %-10s %-10s %5s %8s %-14s %-14s %s\n", "SANDBOX ID", "STATE", "TEMPLATE", "CPU", "MEMORY",
              "CREATED", "EXPIRES", "LABELS");
  for (const auto& sandbox : all) {
    std::string state = text_field(sandbox, "state");
    if (auto reason = text_field(sandbox, "stop_reason", ""); !reason.empty()) state += "(" + reason + ")";
    std::string memory = text_field(sandbox, "memory_mb") + "M";
    std::printf("%-22s %-10s %-10s %5s %8s %-14s %-14s %s\n", text_field(sandbox, "sandbox_id").c_str(),
                state.c_str(), text_field(sandbox, "template").c_str(), text_field(sandbox, "cpu").c_str(),
                memory.c_str(), relative_time(sandbox, "created_at").c_str(),
                relative_time(sandbox, "expires_at").c_str(), labels_text(sandbox).c_str());
  }
  return 0;
}

// --- get --------------------------------------------------------------------------------------
int get(const std::vector<std::string>& args, GlobalOptions globals) {
  CLI::App app{"Show a sandbox: state, limits, deadlines and resource usage.", "airlock sandbox get"};
  std::string id;
  bool json = false;
  app.add_option("ID", id, "sandbox id")->required();
  app.add_flag("--json", json, "print the sandbox as the API returns it");
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;
  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  auto sandbox = api->get(sandbox_target(id));
  if (!sandbox.ok()) return fail(sandbox.error());
  if (json) {
    std::printf("%s\n", dump_json(*sandbox, 2).c_str());
    return 0;
  }
  const auto& s = *sandbox;
  auto row = [](const char* name, const std::string& value) { std::printf("%-14s %s\n", name, value.c_str()); };
  row("id:", text_field(s, "sandbox_id"));
  row("state:", text_field(s, "state"));
  if (auto reason = text_field(s, "stop_reason", ""); !reason.empty())
    row("stop reason:", reason + (s.value("stop_message", nlohmann::json()).is_string() ? ": " + text_field(s, "stop_message") : ""));
  row("template:", text_field(s, "template"));
  row("cpu:", text_field(s, "cpu"));
  row("memory:", text_field(s, "memory_mb") + " MiB");
  row("disk:", text_field(s, "disk_mb") + " MiB");
  row("pids:", text_field(s, "pids"));
  row("workdir:", text_field(s, "workdir"));
  row("timeout:", text_field(s, "timeout") + " s");
  row("idle timeout:", s.value("idle_timeout", nlohmann::json()).is_null() ? "-" : text_field(s, "idle_timeout") + " s");
  row("created:", text_field(s, "created_at") + " (" + relative_time(s, "created_at") + ")");
  row("expires:", s.value("expires_at", nlohmann::json()).is_null()
                      ? "-" : text_field(s, "expires_at") + " (" + relative_time(s, "expires_at") + ")");
  if (!s.value("ended_at", nlohmann::json()).is_null()) row("ended:", text_field(s, "ended_at"));
  row("labels:", labels_text(s).empty() ? "-" : labels_text(s));
  row("network:", network_text(s.value("network", nlohmann::json())));
  if (auto usage = s.find("usage"); usage != s.end() && usage->is_object()) {
    auto bytes = [&usage](const char* name) {
      auto it = usage->find(name);
      return it != usage->end() && it->is_number_unsigned() ? format_size(it->get<uint64_t>()) : std::string("-");
    };
    row("cpu time:", text_field(*usage, "cpu_seconds") + " s");
    row("memory used:", bytes("memory_bytes") + " (peak " + bytes("memory_peak_bytes") + ")");
    row("disk used:", bytes("disk_bytes"));
    row("tasks:", text_field(*usage, "pids"));
  }
  return 0;
}

// --- rm ---------------------------------------------------------------------------------------
int remove(const std::vector<std::string>& args, GlobalOptions globals) {
  CLI::App app{"Terminate sandboxes. One that is already terminated or gone counts as removed.", "airlock sandbox rm"};
  std::vector<std::string> ids;
  app.add_option("ID", ids, "sandbox ids")->required();
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;
  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  int status = 0;
  for (const auto& id : ids) {
    auto reply = api->request("DELETE", sandbox_target(id));
    if (!reply.ok()) {
      print_error(std::move(reply).error().with_context(id));
      status = kExitAirlockError;
    } else if (reply->ok() || reply->error_code() == "sandbox_not_found") {
      std::printf("%s\n", id.c_str());  // idempotent: gone is what was asked for
    } else {
      print_error(reply->error().with_context(id));
      status = kExitAirlockError;
    }
  }
  return status;
}

// --- timeout ----------------------------------------------------------------------------------
int set_timeout(const std::vector<std::string>& args, GlobalOptions globals) {
  CLI::App app{"Set a sandbox's deadline to SECONDS from now (may shorten it), or extend it by +SECONDS.",
               "airlock sandbox timeout"};
  std::string id, seconds;
  app.add_option("ID", id, "sandbox id")->required();
  app.add_option("SECONDS", seconds, "seconds (or 10m, 1h); +N extends the current deadline")->required();
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;
  bool extend = !seconds.empty() && seconds[0] == '+';
  auto value = parse_whole_seconds(extend ? seconds.substr(1) : seconds);
  if (!value.ok()) return fail(std::move(value).error().with_context("SECONDS"));
  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  nlohmann::json body = {{extend ? "extend_by" : "timeout", *value}};
  auto sandbox = api->post(sandbox_target(id, "/timeout"), body);
  if (!sandbox.ok()) return fail(sandbox.error());
  std::printf("%s expires at %s (%s)\n", id.c_str(), text_field(*sandbox, "expires_at").c_str(),
              relative_time(*sandbox, "expires_at").c_str());
  return 0;
}

// --- net --------------------------------------------------------------------------------------
int set_network(const std::vector<std::string>& args, GlobalOptions globals) {
  CLI::App app{"Replace a running sandbox's egress policy (omitted flags take their defaults: --net none, no lists). "
               "Established connections to destinations it now denies are cut.",
               "airlock sandbox net"};
  std::string id;
  bool json = false;
  app.add_option("ID", id, "sandbox id")->required();
  NetworkFlags net;
  net.add(app);
  app.add_flag("--json", json, "print the new policy as JSON");
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;
  auto api = connect_api(globals);
  if (!api.ok()) return fail(api.error());
  nlohmann::json body = net.json();
  auto reply = api->request("PUT", sandbox_target(id, "/network"), &body);
  if (!reply.ok()) return fail(reply.error());
  if (!reply->ok()) return fail(reply->error().with_context(id));
  if (json) {
    std::printf("%s\n", dump_json(reply->body, 2).c_str());
  } else {
    std::printf("%s network: %s\n", id.c_str(), network_text(reply->body).c_str());
  }
  return 0;
}

}  // namespace

int sandbox_verb(const std::vector<std::string>& args, const GlobalOptions& globals) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? kExitAirlockError : 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  const std::string& verb = args[0];
  if (verb == "create") return create(rest, globals);
  if (verb == "ls" || verb == "list") return list(rest, globals);
  if (verb == "get") return get(rest, globals);
  if (verb == "rm") return remove(rest, globals);
  if (verb == "timeout") return set_timeout(rest, globals);
  if (verb == "net") return set_network(rest, globals);
  std::fprintf(stderr, "airlock: unknown command \"sandbox %s\"\n%s", verb.c_str(), kUsage);
  return kExitAirlockError;
}

}  // namespace airlock::cli
