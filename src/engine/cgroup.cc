// What v1 and v2 share: finding our own cgroup per controller, and creating, killing and removing a
// sandbox's directories. Knob names and formats live in cgroup_v1.cc and cgroup_v2.cc.
#include "engine/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <chrono>

#include "common/cleanup.h"
#include "common/fs.h"
#include "engine/cgroup_backend.h"

namespace airlock {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kDrainTimeout = std::chrono::seconds(2);

// --- parsing ------------------------------------------------------------------------------------

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    size_t pos = text.find(sep);
    out.push_back(text.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    text.remove_prefix(pos + 1);
  }
}

bool has_token(std::string_view list, std::string_view token, char sep = ',') {
  for (std::string_view item : split(list, sep))
    if (item == token) return true;
  return false;
}

// A line of /proc/self/cgroup: "4:memory:/process_api/ab12" (v1) or "0::/user.slice/..." (v2).
struct ProcCgroupEntry {
  bool unified = false;
  std::string_view controllers;  // "cpu,cpuacct"; empty for v2
  std::string_view path;         // relative to the root of our cgroup namespace
};

Result<std::vector<ProcCgroupEntry>> parse_proc_cgroup(std::string_view text) {
  std::vector<ProcCgroupEntry> entries;
  int line_no = 0;
  for (std::string_view line : split(text, '\n')) {
    ++line_no;
    if (line.empty()) continue;
    auto bad = [&](std::string_view why) {
      return plain_error("parse /proc/self/cgroup line " + std::to_string(line_no) + " \"" +
                         std::string(line.substr(0, 80)) + "\": " + std::string(why));
    };
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return bad("want id:controllers:path");
    std::string_view id = line.substr(0, c1);
    if (id.empty() || !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return bad("hierarchy id is not a number");
    ProcCgroupEntry e;
    e.controllers = line.substr(c1 + 1, c2 - c1 - 1);
    e.path = line.substr(c2 + 1);
    e.unified = id == "0" && e.controllers.empty();
    if (!e.path.starts_with('/')) return bad("path is not absolute");
    entries.push_back(e);
  }
  if (entries.empty()) return plain_error("parse /proc/self/cgroup: no entries");
  return entries;
}

struct CgroupMount {
  bool unified = false;        // cgroup2
  std::string root;            // the cgroup shown at the mount point
  std::string mount_point;
  std::string super_options;   // v1: "rw,cpu,cpuacct"
};

// Mount points escape space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        if (s[i + k] < '0' || s[i + k] > '7') ok = false;
        v = v * 8 + (s[i + k] - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// /proc/self/mountinfo: "id parent maj:min root mount-point options [optional...] - fstype source super".
Result<std::vector<CgroupMount>> parse_mountinfo(std::string_view text) {
  std::vector<CgroupMount> mounts;
  int line_no = 0, lines = 0;
  for (std::string_view line : split(text, '\n')) {
    ++line_no;
    if (line.empty()) continue;
    ++lines;
    std::vector<std::string_view> f = split(line, ' ');
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") ++sep;
    // The root field is a path for most mounts but not all: a bound namespace file (`ip netns
    // add`) shows "net:[4026532557]". Only cgroup mounts need it to be a path.
    if (f.size() < 10 || sep + 3 >= f.size() || !f[4].starts_with('/'))
      return plain_error("parse /proc/self/mountinfo line " + std::to_string(line_no) + " \"" +
                         std::string(line.substr(0, 80)) + "\": unexpected format");
    std::string_view fstype = f[sep + 1];
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    if (!f[3].starts_with('/')) {
      return plain_error("parse /proc/self/mountinfo line " + std::to_string(line_no) + ": cgroup mount root \"" +
                         std::string(f[3].substr(0, 80)) + "\" is not a path");
    }
    mounts.push_back(CgroupMount{fstype == "cgroup2", unescape_octal(f[3]), unescape_octal(f[4]),
                                 std::string(f[sep + 3])});
  }
  if (lines == 0) return plain_error("parse /proc/self/mountinfo: no entries");
  return mounts;
}

// Our cgroup's directory under a mount, if the mount shows it. Paths outside our cgroup namespace
// read "/../x" and are never visible.
std::optional<std::string> dir_in_mount(const CgroupMount& m, std::string_view path,
                                        const std::string& prefix) {
  if (path.starts_with("/..")) return std::nullopt;
  std::string_view root = m.root;
  if (root == "/") root = "";
  if (!path.starts_with(root) || (path.size() > root.size() && path[root.size()] != '/'))
    return std::nullopt;
  std::string_view rest = path.substr(root.size());
  if (rest == "/") rest = "";
  return prefix + m.mount_point + std::string(rest);
}

struct ControllerInfo {
  std::string_view name;
  CgroupController bit;
  bool required;
  bool v1_only;  // only useful when there is no v2 tree
};
constexpr ControllerInfo kControllers[] = {
    {"memory", kCgroupMemory, true, false},   {"cpu", kCgroupCpu, true, false},
    {"pids", kCgroupPids, true, false},       {"cpuacct", kCgroupCpuacct, false, true},
    {"freezer", kCgroupFreezer, false, true},
};

// --- directory helpers --------------------------------------------------------------------------

int do_mkdir(const CgroupDirOps& ops, const std::string& path) {
  if (ops.make_dir) return ops.make_dir(path);
  return ::mkdir(path.c_str(), 0755) == 0 ? 0 : errno;
}

int do_rmdir(const CgroupDirOps& ops, const std::string& path) {
  if (ops.remove_dir) return ops.remove_dir(path);
  return ::rmdir(path.c_str()) == 0 ? 0 : errno;
}

// Sub-directories of dir (on cgroupfs these are exactly the child cgroups).
Result<std::vector<std::string>> child_dirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return sys_error("opendir " + dir);
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.push_back(std::string(n));
  }
  ::closedir(d);
  return out;
}

// Short sleeps that grow: a killed process usually leaves its cgroup within microseconds, a large
// one (unmapping gigabytes) can take milliseconds.
class Backoff {
 public:
  void wait() {
    timespec ts{0, static_cast<long>(delay_us_) * 1000};
    ::nanosleep(&ts, nullptr);
    delay_us_ = std::min<unsigned>(delay_us_ * 2, 2000);
  }

 private:
  unsigned delay_us_ = 20;
};

// Removes dir and any child cgroups (a sandbox with a delegated subtree may have made some).
// cgroupfs answers EBUSY both while processes remain and while children exist.
Status remove_tree(const CgroupDirOps& ops, const std::string& dir, Clock::time_point deadline) {
  Backoff backoff;
  bool children_removed = false;
  while (true) {
    int rc = do_rmdir(ops, dir);
    if (rc == 0 || rc == ENOENT) return {};
    if (rc != EBUSY && rc != ENOTEMPTY) return sys_error("rmdir " + dir, rc);
    if (!children_removed) {
      TRY(auto children, child_dirs(dir));
      for (const std::string& child : children) TRY_STATUS(remove_tree(ops, dir + "/" + child, deadline));
      children_removed = true;
      if (!children.empty()) continue;
    }
    if (rc != EBUSY) return sys_error("rmdir " + dir, rc);
    if (Clock::now() > deadline) return sys_error("rmdir " + dir + " (processes remain after 2 s)", rc);
    backoff.wait();
  }
}

// pids in dir/cgroup.procs and in those of its descendants.
Status collect_pids(const std::string& dir, std::vector<pid_t>& pids) {
  TRY(auto procs, read_optional_knob(dir, "cgroup.procs"));
  if (!procs) return {};
  for (std::string_view line : split(*procs, '\n'))
    if (auto pid = parse_u64(line); pid && *pid > 0) pids.push_back(static_cast<pid_t>(*pid));
  TRY(auto children, child_dirs(dir));
  for (const std::string& child : children) TRY_STATUS(collect_pids(dir + "/" + child, pids));
  return {};
}

// A cgroup name is one plain path component: it is joined to our own cgroup's directory.
Status check_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 200 && name[0] != '.' &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.';
            });
  if (!ok) return Error{EINVAL, "invalid cgroup name \"" + name + "\""};
  return {};
}

}  // namespace

// --- shared helpers (cgroup_backend.h) ----------------------------------------------------------

Status write_knob(const std::string& dir, std::string_view knob, std::string_view value) {
  std::string path = dir;
  path += '/';
  path += knob;
  return write_file(path, value);
}

Status write_optional_knob(const std::string& dir, std::string_view knob, std::string_view value) {
  Status st = write_knob(dir, knob, value);
  if (!st.ok() && st.error().errnum == ENOENT) return {};
  return st;
}

Result<std::optional<std::string>> read_optional_knob(const std::string& dir, std::string_view knob) {
  std::string path = dir;
  path += '/';
  path += knob;
  auto text = read_file(path);
  if (!text.ok()) {
    if (text.error().errnum == ENOENT) return std::optional<std::string>();
    return std::move(text).error();
  }
  return std::optional<std::string>(std::move(text).value());
}

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return v;
}

std::optional<uint64_t> keyed_value(std::string_view text, std::string_view key) {
  for (std::string_view line : split(text, '\n')) {
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return parse_u64(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

DecimalText::DecimalText(uint64_t value) {
  len_ = static_cast<size_t>(std::to_chars(buf_, buf_ + sizeof buf_, value).ptr - buf_);
}

// --- CgroupRoots --------------------------------------------------------------------------------

Result<CgroupRoots> CgroupRoots::detect() {
  TRY(auto cgroup, read_file("/proc/self/cgroup"));
  TRY(auto mountinfo, read_file("/proc/self/mountinfo", 16 << 20));
  return from_files(cgroup, mountinfo, "");
}

Result<CgroupRoots> CgroupRoots::from_files(std::string_view proc_self_cgroup, std::string_view mountinfo,
                                            std::string path_prefix, CgroupDirOps ops) {
  TRY(auto entries, parse_proc_cgroup(proc_self_cgroup));
  TRY(auto mounts, parse_mountinfo(mountinfo));
  CgroupRoots roots;
  roots.ops_ = std::move(ops);

  // The v2 tree, if mounted where we can see our own cgroup in it.
  std::string v2_controllers;
  for (const ProcCgroupEntry& e : entries) {
    if (!e.unified) continue;
    for (const CgroupMount& m : mounts) {
      if (!m.unified) continue;
      if (auto dir = dir_in_mount(m, e.path, path_prefix)) {
        roots.hierarchies_.push_back(CgroupHierarchy{CgroupVersion::v2, 0, *dir});
        TRY(auto listed, read_optional_knob(*dir, "cgroup.controllers"));
        v2_controllers = listed.value_or("");
        while (!v2_controllers.empty() && v2_controllers.back() == '\n') v2_controllers.pop_back();
        break;
      }
    }
  }
  bool have_v2 = !roots.hierarchies_.empty();

  for (const ControllerInfo& c : kControllers) {
    if (c.v1_only && have_v2) continue;
    const ProcCgroupEntry* v1_entry = nullptr;
    for (const ProcCgroupEntry& e : entries)
      if (!e.unified && has_token(e.controllers, c.name)) v1_entry = &e;
    if (v1_entry) {
      // Bound to a v1 hierarchy: usable only through a mount of it that shows our cgroup.
      std::optional<std::string> dir;
      for (const CgroupMount& m : mounts) {
        if (m.unified || !has_token(m.super_options, c.name)) continue;
        dir = dir_in_mount(m, v1_entry->path, path_prefix);
        if (dir) break;
      }
      if (!dir) {
        if (!c.required) continue;
        return Error{ENOENT, "cgroup controller " + std::string(c.name) +
                                 " is bound to a cgroup v1 hierarchy that is not mounted here (or does "
                                 "not show our cgroup " + std::string(v1_entry->path) + ")"};
      }
      auto same = std::find_if(roots.hierarchies_.begin(), roots.hierarchies_.end(),
                               [&](const CgroupHierarchy& h) { return h.own_dir == *dir; });
      if (same != roots.hierarchies_.end()) {
        same->controllers |= c.bit;  // co-mounted, e.g. "cpu,cpuacct"
      } else {
        roots.hierarchies_.push_back(CgroupHierarchy{CgroupVersion::v1, static_cast<unsigned>(c.bit), *dir});
      }
      continue;
    }
    if (have_v2 && has_token(v2_controllers, c.name, ' ')) {
      roots.hierarchies_.front().controllers |= c.bit;
      continue;
    }
    if (c.required) {
      std::string v2 = have_v2 ? roots.hierarchies_.front().own_dir + "/cgroup.controllers does not list it"
                               : "no cgroup v2 tree is mounted";
      return Error{ENOENT, "cgroup controller " + std::string(c.name) +
                               " is not available: no mounted cgroup v1 hierarchy has it, and " + v2};
    }
  }
  // The v2 tree (pushed first) or else the v1 freezer leads: a leftover's processes are then killed
  // through it before the other hierarchies are touched.
  std::stable_partition(roots.hierarchies_.begin(), roots.hierarchies_.end(), [](const CgroupHierarchy& h) {
    return h.version == CgroupVersion::v2 || (h.controllers & kCgroupFreezer);
  });
  return roots;
}

CgroupVersion CgroupRoots::version_of(CgroupController controller) const {
  for (const CgroupHierarchy& h : hierarchies_)
    if (h.controllers & controller) return h.version;
  return CgroupVersion::v2;
}

// --- Cgroup -------------------------------------------------------------------------------------

Cgroup::Cgroup(Cgroup&& other) noexcept
    : name_(std::move(other.name_)), dirs_(std::exchange(other.dirs_, {})), ops_(std::move(other.ops_)) {}

Cgroup& Cgroup::operator=(Cgroup&& other) noexcept {
  if (this != &other) {
    name_ = std::move(other.name_);
    dirs_ = std::exchange(other.dirs_, {});
    ops_ = std::move(other.ops_);
  }
  return *this;
}

Result<Cgroup> Cgroup::create(const CgroupRoots& roots, const std::string& name, const CgroupLimits& limits) {
  TRY_STATUS(check_name(name));
  const std::string ctx = "create cgroup " + name;
  Cgroup cg(name, roots.dir_ops());
  Cleanup undo;
  undo.add([&] { (void)cg.destroy(); });
  for (const CgroupHierarchy& h : roots.hierarchies()) {
    if (h.version == CgroupVersion::v2) TRY_CTX(cgroup_v2::enable_controllers(h.own_dir, h.controllers), ctx);
    TRY_CTX(cg.make_dir(h), ctx);
  }
  for (const Dir& d : cg.dirs_) {
    if (d.version == CgroupVersion::v1) {
      TRY_CTX(cgroup_v1::apply_limits(d.path, d.controllers, limits), ctx);
    } else {
      TRY_CTX(cgroup_v2::apply_limits(d.path, d.controllers, limits), ctx);
    }
  }
  undo.dismiss();
  return cg;
}

Status Cgroup::make_dir(const CgroupHierarchy& h) {
  std::string path = h.own_dir + "/" + name_;
  int rc = do_mkdir(ops_, path);
  if (rc == EEXIST) {
    // Left by a run that was killed before destroy(): its processes and stale counters (oom_kill
    // cannot be reset) must not leak into the new sandbox, so remove it rather than reuse it.
    Cgroup leftover(name_, ops_);
    leftover.dirs_.push_back(Dir{h.version, h.controllers, path});
    TRY_CTX(leftover.destroy(), "remove leftover " + path);
    rc = do_mkdir(ops_, path);
  }
  if (rc != 0) return sys_error("mkdir " + path, rc);
  dirs_.push_back(Dir{h.version, h.controllers, std::move(path)});
  return {};
}

Result<Cgroup> Cgroup::open_existing(const CgroupRoots& roots, const std::string& name) {
  TRY_STATUS(check_name(name));
  Cgroup cg(name, roots.dir_ops());
  for (const CgroupHierarchy& h : roots.hierarchies()) {
    std::string path = h.own_dir + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      cg.dirs_.push_back(Dir{h.version, h.controllers, std::move(path)});
  }
  if (cg.dirs_.empty()) return Error{ENOENT, "open cgroup " + name + ": not found"};
  return cg;
}

Status Cgroup::add_process(pid_t pid) {
  DecimalText text(static_cast<uint64_t>(pid));
  for (const Dir& d : dirs_)
    TRY_CTX(write_knob(d.path, "cgroup.procs", text.view()),
            "add pid " + std::to_string(pid) + " to cgroup " + name_);
  return {};
}

Result<CgroupStats> Cgroup::stats() const {
  CgroupStats stats;
  for (const Dir& d : dirs_) {
    Status st = d.version == CgroupVersion::v1 ? cgroup_v1::add_stats(d.path, d.controllers, stats)
                                               : cgroup_v2::add_stats(d.path, d.controllers, stats);
    if (!st.ok()) return std::move(st).error().with_context("stats of cgroup " + name_);
  }
  return stats;
}

Status Cgroup::kill_all() {
  for (const Dir& d : dirs_) {
    if (d.version != CgroupVersion::v2) continue;
    // One write; the kernel also kills children forked while it runs. ENOENT: kernel before 5.14.
    Status st = cgroup_v2::kill(d.path);
    if (st.ok()) return {};
    if (st.error().errnum != ENOENT) return std::move(st).error().with_context("kill cgroup " + name_);
    break;
  }
  return kill_by_signal();
}

// Without cgroup.kill: freeze so nothing forks or exits while we list it (a frozen process cannot
// exit, so its pid cannot be reused by an unrelated process before our kill(2) lands), SIGKILL every
// pid, thaw so the signals take effect, and repeat until the cgroup is empty.
Status Cgroup::kill_by_signal() {
  const Dir* freezer = nullptr;
  for (const Dir& d : dirs_) {
    if (d.version == CgroupVersion::v2 || (d.controllers & kCgroupFreezer)) {
      freezer = &d;
      break;
    }
  }
  auto set_frozen = [&](bool frozen) {
    return freezer->version == CgroupVersion::v1 ? cgroup_v1::set_frozen(freezer->path, frozen)
                                                 : cgroup_v2::set_frozen(freezer->path, frozen);
  };
  auto is_frozen = [&] {
    return freezer->version == CgroupVersion::v1 ? cgroup_v1::is_frozen(freezer->path)
                                                 : cgroup_v2::is_frozen(freezer->path);
  };
  const auto deadline = Clock::now() + kDrainTimeout;
  Backoff backoff;
  std::vector<pid_t> pids;
  while (true) {
    bool frozen = freezer && set_frozen(true).ok();
    if (frozen) {
      // Best effort, bounded: a task stuck in the kernel may never report frozen.
      Backoff freeze_wait;
      const auto freeze_deadline = Clock::now() + std::chrono::milliseconds(100);
      while (Clock::now() < freeze_deadline) {
        auto done = is_frozen();
        if (!done.ok() || *done) break;
        freeze_wait.wait();
      }
    }
    pids.clear();
    Status listed;
    for (const Dir& d : dirs_)
      if (listed.ok()) listed = collect_pids(d.path, pids);
    std::sort(pids.begin(), pids.end());
    pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    if (frozen) (void)set_frozen(false);
    if (!listed.ok()) return std::move(listed).error().with_context("kill cgroup " + name_);
    if (pids.empty()) return {};
    if (Clock::now() > deadline)
      return Error{EBUSY, "kill cgroup " + name_ + ": " + std::to_string(pids.size()) +
                              " processes still there after 2 s"};
    backoff.wait();
  }
}

Status Cgroup::destroy() {
  if (dirs_.empty()) return {};
  TRY_CTX(kill_all(), "destroy cgroup " + name_);
  const auto deadline = Clock::now() + kDrainTimeout;
  while (!dirs_.empty()) {
    TRY_CTX(remove_tree(ops_, dirs_.back().path, deadline), "destroy cgroup " + name_);
    dirs_.pop_back();
  }
  return {};
}

std::vector<std::string> Cgroup::paths() const {
  std::vector<std::string> out;
  for (const Dir& d : dirs_) out.push_back(d.path);
  return out;
}

Result<std::vector<std::string>> list_cgroups(const CgroupRoots& roots, std::string_view prefix) {
  std::vector<std::string> names;
  for (const CgroupHierarchy& h : roots.hierarchies()) {
    TRY(auto children, child_dirs(h.own_dir));
    for (std::string& n : children)
      if (std::string_view(n).starts_with(prefix)) names.push_back(std::move(n));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace airlock
