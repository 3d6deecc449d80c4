#include "cli/run_options.h"

#include <limits.h>
#include <stdlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>

#include "common/units.h"

namespace airlock::cli {
namespace {

constexpr const char* kUsage = "usage: airlock run [OPTIONS] -- COMMAND [ARG...]";

Result<VolumeSpec> parse_volume(std::string text) {
  VolumeSpec volume;
  auto ends_with = [&text](std::string_view suffix) {
    return text.size() > suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(":ro")) {
    volume.read_only = true;
    text.resize(text.size() - 3);
  } else if (ends_with(":rw")) {
    text.resize(text.size() - 3);
  }
  size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return plain_error("invalid volume \"" + text + "\" (expected HOST:DEST[:ro])");
  std::string host = text.substr(0, colon);
  volume.dest = text.substr(colon + 1);
  if (volume.dest.find(':') != std::string::npos)
    return plain_error("invalid volume \"" + text + "\" (unknown option after the destination; only :ro or :rw)");
  char resolved[PATH_MAX];
  if (!::realpath(host.c_str(), resolved)) return sys_error("invalid volume: source " + host);
  volume.host_path = resolved;
  return volume;
}

Result<std::pair<uint32_t, uint32_t>> parse_user(const std::string& text) {
  size_t colon = text.find(':');
  auto uid = parse_uint(text.substr(0, colon));
  if (!uid.ok() || *uid >= kSandboxIdCount) return plain_error("invalid --user \"" + text + "\" (expected UID[:GID], 0-65535)");
  uint64_t gid = *uid;  // like a fresh account: the user's own group unless one is given
  if (colon != std::string::npos) {
    auto g = parse_uint(text.substr(colon + 1));
    if (!g.ok() || *g >= kSandboxIdCount) return plain_error("invalid --user \"" + text + "\" (expected UID[:GID], 0-65535)");
    gid = *g;
  }
  return std::make_pair(static_cast<uint32_t>(*uid), static_cast<uint32_t>(gid));
}

}  // namespace

Result<RunRequest> parse_run_args(const std::vector<std::string>& args, const EnvLookup& host_env) {
  RunRequest req;
  auto dashdash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> options(args.begin(), dashdash);
  if (dashdash != args.end()) req.spec.argv.assign(dashdash + 1, args.end());

  bool wants_help = std::any_of(options.begin(), options.end(), [](const std::string& a) { return a == "-h" || a == "--help"; });
  if (dashdash == args.end() && !wants_help)
    return plain_error("missing \"--\" before the command\n" + std::string(kUsage));

  CLI::App app{"Run COMMAND in a fresh, isolated sandbox and exit with its status.", "airlock run"};
  app.footer(std::string(kUsage) +
             "\nExit status: COMMAND's own; 124 timeout; 137 killed (OOM or SIGKILL); 125 airlock's own error;"
             "\n126 command cannot be invoked; 127 command not found.");
  bool interactive = false, tty = false;
  std::string image = "host", memory = "512M", cpus = "1", pids = "256", disk = "1G", timeout, net = "none";
  std::string workdir = "/root", user, cap_drop;
  std::vector<std::string> env, volumes;
  app.add_flag("-i,--interactive", interactive, "forward stdin (otherwise the sandbox's stdin is /dev/null)");
  app.add_flag("-t,--tty", tty, "run COMMAND on a pseudo-terminal");
  app.add_option("--image", image, "template (default: host)");
  app.add_option("--memory", memory, "memory limit, e.g. 256M, 1G (default 512M); no swap");
  app.add_option("--cpus", cpus, "CPU quota, e.g. 0.5, 2 (default 1)");
  app.add_option("--pids", pids, "max tasks (default 256)");
  app.add_option("--disk", disk, "size of the writable layer (default 1G)");
  app.add_option("--timeout", timeout, "wall-clock limit, e.g. 500ms, 30s, 5m (default: none)");
  app.add_option("--net", net, "network mode: none (loopback only; the default)");
  app.add_option("-e,--env", env, "KEY=VALUE (repeatable); KEY alone copies the host's value");
  app.add_option("-w,--workdir", workdir, "working directory (default /root)");
  app.add_option("-v,--volume", volumes, "HOST:DEST[:ro] bind a host path (repeatable)");
  app.add_option("--user", user, "UID[:GID] inside the sandbox (default 0)");
  app.add_option("--cap-drop", cap_drop, "ALL: drop even the in-namespace capabilities of root");
  app.add_flag("--json", req.json, "print a JSON summary line to stderr after exit");
  try {
    std::vector<std::string> reversed(options.rbegin(), options.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    req.help = true;
    req.help_text = app.help();
    return req;
  } catch (const CLI::ParseError& e) {
    return plain_error(std::string(e.what()) + "\n" + kUsage);
  }
  if (dashdash == args.end())
    return plain_error("missing \"--\" before the command\n" + std::string(kUsage));
  if (req.spec.argv.empty()) return plain_error("no command after \"--\"\n" + std::string(kUsage));

  SandboxSpec& spec = req.spec;
  spec.image = image;
  spec.forward_stdin = interactive;
  spec.tty = tty;
  auto with_flag = [](std::string_view flag) { return [flag](Error e) { return std::move(e).with_context(flag); }; };
  auto memory_bytes = parse_size(memory);
  if (!memory_bytes.ok()) return with_flag("--memory")(std::move(memory_bytes).error());
  spec.limits.memory_bytes = *memory_bytes;
  auto millicores = parse_cpus(cpus);
  if (!millicores.ok()) return with_flag("--cpus")(std::move(millicores).error());
  spec.limits.cpu_millicores = *millicores;
  auto disk_bytes = parse_size(disk);
  if (!disk_bytes.ok()) return with_flag("--disk")(std::move(disk_bytes).error());
  spec.limits.disk_bytes = *disk_bytes;
  auto pid_count = parse_uint(pids);
  if (!pid_count.ok()) return plain_error("invalid --pids \"" + pids + "\" (expected a positive integer)");
  spec.limits.max_pids = *pid_count;
  if (spec.limits.memory_bytes == 0) return plain_error("--memory must be positive");
  if (spec.limits.cpu_millicores == 0) return plain_error("--cpus must be positive");
  if (spec.limits.disk_bytes == 0) return plain_error("--disk must be positive");
  if (spec.limits.max_pids == 0) return plain_error("--pids must be positive");
  if (!timeout.empty()) {
    auto limit = parse_duration(timeout);
    if (!limit.ok()) return with_flag("--timeout")(std::move(limit).error());
    if (limit->count() <= 0) return plain_error("--timeout must be positive");
    spec.timeout = *limit;
  }
  if (net != "none") return plain_error("unsupported --net \"" + net + "\" (only \"none\" is available)");
  if (!user.empty()) {
    TRY(auto ids, parse_user(user));
    spec.uid = ids.first;
    spec.gid = ids.second;
  }
  // /root is root's (mode 0700): a non-root --user without -w starts in its HOME instead.
  bool workdir_given = app.count("--workdir") > 0;
  spec.workdir = workdir_given || spec.uid == 0 ? workdir : (spec.uid == 1000 ? "/home/user" : "/tmp");
  if (!cap_drop.empty()) {
    std::string upper = cap_drop;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    if (upper != "ALL") return plain_error("unsupported --cap-drop \"" + cap_drop + "\" (only ALL)");
    spec.drop_all_caps = true;
  }
  std::vector<std::string> overrides;
  for (const auto& entry : env) {
    if (entry.empty() || entry[0] == '=') return plain_error("invalid --env \"" + entry + "\" (expected KEY=VALUE)");
    if (entry.find('=') != std::string::npos) {
      overrides.push_back(entry);
    } else if (const char* value = host_env(entry.c_str())) {
      overrides.push_back(entry + "=" + value);
    }
  }
  spec.env = merge_environment(default_environment(spec.uid, tty, host_env("TERM")), overrides);
  for (const auto& text : volumes) {
    TRY(auto volume, parse_volume(text));
    spec.volumes.push_back(std::move(volume));
  }
  TRY_STATUS(validate(spec));
  return req;
}

}  // namespace airlock::cli
