#include "engine/spec.h"

#include <sys/stat.h>

#include "common/units.h"

namespace airlock {

std::vector<std::string> default_environment(uint32_t uid, bool tty, const char* host_term) {
  std::vector<std::string> env = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      uid == 0 ? "HOME=/root" : (uid == 1000 ? "HOME=/home/user" : "HOME=/tmp"),
      "LANG=C.UTF-8",
  };
  if (tty) env.push_back(std::string("TERM=") + (host_term && *host_term ? host_term : "xterm-256color"));
  return env;
}

std::vector<std::string> merge_environment(std::vector<std::string> base, const std::vector<std::string>& overrides) {
  for (const auto& entry : overrides) {
    std::string key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (auto& existing : base) {
      if (existing.compare(0, key.size() + 1, key + "=") == 0) {
        existing = entry;
        replaced = true;
        break;
      }
    }
    if (!replaced) base.push_back(entry);
  }
  return base;
}

Status validate_sandbox_path(const std::string& path, std::string_view what) {
  std::string label(what);
  if (path.empty() || path[0] != '/') return plain_error(label + " must be an absolute path: \"" + path + "\"");
  if (path.find('\0') != std::string::npos) return plain_error(label + " contains a NUL byte");
  if (path.size() > 4000) return plain_error(label + " is too long");
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (part == "..") return plain_error(label + " must not contain \"..\": \"" + path + "\"");
    start = end + 1;
  }
  return {};
}

namespace {

bool is_under(const std::string& path, std::string_view dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

std::string normalize(const std::string& path) {
  std::string out;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (!part.empty() && part != ".") out += "/" + part;
    start = end + 1;
  }
  return out.empty() ? "/" : out;
}

}  // namespace

Status validate(const SandboxSpec& spec, bool needs_command) {
  if (spec.argv.empty() && needs_command) return plain_error("no command given");
  if (!spec.argv.empty() && spec.argv[0].empty()) return plain_error("the command is an empty string");
  for (const auto& arg : spec.argv)
    if (arg.find('\0') != std::string::npos) return plain_error("a command argument contains a NUL byte");
  if (spec.image != "host") return plain_error("unknown image \"" + spec.image + "\" (available: host)");

  const auto& l = spec.limits;
  if (l.memory_bytes < kMinMemoryBytes)
    return plain_error("--memory must be at least " + format_size(kMinMemoryBytes) + " (got " + format_size(l.memory_bytes) + ")");
  if (l.disk_bytes < kMinDiskBytes)
    return plain_error("--disk must be at least " + format_size(kMinDiskBytes) + " (got " + format_size(l.disk_bytes) + ")");
  if (l.max_pids < kMinPids) return plain_error("--pids must be at least 2 (the sandbox's init counts as one)");
  if (l.max_pids > 4'194'304) return plain_error("--pids is larger than the kernel allows");
  if (l.cpu_millicores < kMinCpuMillicores) return plain_error("--cpus must be at least 0.01");
  if (spec.timeout && spec.timeout->count() <= 0) return plain_error("--timeout must be positive");

  TRY_CTX(validate_sandbox_path(spec.workdir, "--workdir"), "invalid workdir");
  if (spec.uid >= kSandboxIdCount || spec.gid >= kSandboxIdCount)
    return plain_error("--user ids must be between 0 and 65535");

  for (const auto& entry : spec.env) {
    size_t eq = entry.find('=');
    if (eq == 0 || eq == std::string::npos) return plain_error("invalid environment entry \"" + entry + "\" (expected KEY=VALUE)");
    if (entry.find('\0') != std::string::npos) return plain_error("an environment entry contains a NUL byte");
  }

  for (const auto& volume : spec.volumes) {
    TRY_CTX(validate_sandbox_path(volume.dest, "volume destination"), "invalid volume");
    std::string dest = normalize(volume.dest);
    if (dest == "/") return plain_error("invalid volume: cannot mount over / (" + volume.dest + ")");
    for (std::string_view reserved : {"/proc", "/dev", "/sys"}) {
      if (is_under(dest, reserved))
        return plain_error("invalid volume: " + volume.dest + " is reserved by the sandbox (" + std::string(reserved) + ")");
    }
    if (volume.host_path.empty() || volume.host_path[0] != '/')
      return plain_error("invalid volume: host path must be absolute: \"" + volume.host_path + "\"");
    struct stat st;
    if (::stat(volume.host_path.c_str(), &st) != 0)
      return sys_error("invalid volume: host path " + volume.host_path);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
      return plain_error("invalid volume: " + volume.host_path + " is neither a directory nor a regular file");
  }
  return {};
}

}  // namespace airlock
