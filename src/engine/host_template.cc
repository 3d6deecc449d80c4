#include "engine/host_template.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <vector>

#include "common/fs.h"
#include "common/unique_fd.h"

extern char** environ;

namespace airlock {
namespace {

// Bump when the skeleton's layout changes so existing hosts rebuild it.
constexpr const char* kSkeletonVersion = "v1";

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "user:x:1000:1000:user:/home/user:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
constexpr const char* kGroup =
    "root:x:0:\n"
    "tty:x:5:\n"
    "users:x:100:user\n"
    "user:x:1000:\n"
    "nogroup:x:65534:\n";
constexpr const char* kHosts =
    "127.0.0.1\tlocalhost sandbox\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n";
constexpr const char* kResolvConf = "# this sandbox has no network (--net none)\n";
constexpr const char* kNsswitch =
    "passwd:   files\n"
    "group:    files\n"
    "shadow:   files\n"
    "hosts:    files dns\n"
    "networks: files\n"
    "protocols: files\n"
    "services: files\n";

Status write_new_file(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return sys_error("create " + path);
  if (::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) return sys_error("write " + path);
  if (::fchmod(fd.get(), mode) != 0) return sys_error("chmod " + path);
  return {};
}

Status make_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) return sys_error("mkdir " + path);
  if (::chmod(path.c_str(), mode) != 0) return sys_error("chmod " + path);  // umask-proof
  return {};
}

Status make_symlink(const std::string& target, const std::string& path) {
  if (::symlink(target.c_str(), path.c_str()) != 0) return sys_error("symlink " + path);
  return {};
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Debian's update-alternatives links (/usr/bin/awk -> /etc/alternatives/awk -> /usr/bin/mawk)
// are part of how /usr works; mirror the links that point back into /usr, nothing else.
Status mirror_alternatives(const std::string& etc_dir) {
  TRY_STATUS(make_dir(etc_dir + "/alternatives", 0755));
  DIR* dir = ::opendir("/etc/alternatives");
  if (!dir) return {};
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    char target[4096];
    ssize_t n = ::readlinkat(::dirfd(dir), name.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    std::string t(target);
    if (t.rfind("/usr/", 0) != 0 && t.rfind("/etc/alternatives/", 0) != 0) continue;
    if (t.find("/../") != std::string::npos) continue;
    if (::symlink(t.c_str(), (etc_dir + "/alternatives/" + name).c_str()) != 0) {
      ::closedir(dir);
      return sys_error("symlink alternatives/" + name);
    }
  }
  ::closedir(dir);
  return {};
}

// A library search cache generated from the libraries in /usr (not a copy of the host's).
Status generate_ld_cache(const std::string& etc_dir) {
  std::string conf_path = etc_dir + "/ld.so.conf";
  std::string conf;
  for (const char* dir : {"/usr/local/lib", "/usr/local/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                          "/usr/lib/x86_64-linux-gnu/libfakeroot", "/usr/lib64", "/usr/lib"}) {
    if (exists(dir)) conf += std::string(dir) + "\n";
  }
  TRY_STATUS(write_new_file(conf_path, conf, 0644));
  std::string cache = etc_dir + "/ld.so.cache";
  const char* ldconfig = exists("/usr/sbin/ldconfig") ? "/usr/sbin/ldconfig" : "/sbin/ldconfig";
  std::vector<std::string> args = {ldconfig, "-X", "-C", cache, "-f", conf_path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, ldconfig, nullptr, nullptr, argv.data(), environ) != 0) return {};  // optional
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {};
}

Status build_skeleton(const std::string& root) {
  TRY_STATUS(make_dir(root, 0755));
  for (const char* dir : {"dev", "etc", "home", "mnt", "opt", "proc", "run", "srv", "sys", "usr", "var",
                          "var/lib", "var/cache", "var/log", "var/mail", "var/spool"}) {
    TRY_STATUS(make_dir(root + "/" + dir, 0755));
  }
  TRY_STATUS(make_dir(root + "/root", 0700));
  TRY_STATUS(make_dir(root + "/tmp", 01777));
  TRY_STATUS(make_dir(root + "/var/tmp", 01777));
  TRY_STATUS(make_dir(root + "/home/user", 0750));
  if (::chown((root + "/home/user").c_str(), 1000, 1000) != 0) return sys_error("chown home/user");

  // Merged-/usr layout: /bin -> usr/bin and friends, for the directories /usr has.
  for (const char* dir : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    if (exists(std::string("/usr/") + dir)) TRY_STATUS(make_symlink(std::string("usr/") + dir, root + "/" + dir));
  }
  TRY_STATUS(make_symlink("../run", root + "/var/run"));
  TRY_STATUS(make_symlink("../run/lock", root + "/var/lock"));

  std::string etc = root + "/etc";
  TRY_STATUS(write_new_file(etc + "/passwd", kPasswd, 0644));
  TRY_STATUS(write_new_file(etc + "/group", kGroup, 0644));
  TRY_STATUS(write_new_file(etc + "/shadow", "root:*:19000:0:99999:7:::\nuser:*:19000:0:99999:7:::\n", 0640));
  TRY_STATUS(write_new_file(etc + "/hosts", kHosts, 0644));
  TRY_STATUS(write_new_file(etc + "/hostname", "sandbox\n", 0644));
  TRY_STATUS(write_new_file(etc + "/resolv.conf", kResolvConf, 0644));
  TRY_STATUS(write_new_file(etc + "/nsswitch.conf", kNsswitch, 0644));
  TRY_STATUS(write_new_file(etc + "/shells", "/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n", 0644));
  TRY_STATUS(make_symlink("/proc/self/mounts", etc + "/mtab"));
  if (exists("/usr/lib/os-release")) TRY_STATUS(make_symlink("../usr/lib/os-release", etc + "/os-release"));
  if (exists("/usr/share/zoneinfo/Etc/UTC")) TRY_STATUS(make_symlink("/usr/share/zoneinfo/Etc/UTC", etc + "/localtime"));
  TRY_STATUS(mirror_alternatives(etc));
  TRY_STATUS(generate_ld_cache(etc));
  return {};
}

// Identifies the host state the skeleton mirrors: cheap (two stats) so every start can check it.
std::string skeleton_key() {
  unsigned long long key = 1469598103934665603ULL;  // FNV-1a over the inputs
  auto mix = [&key](unsigned long long v) {
    for (int i = 0; i < 8; ++i) {
      key ^= (v >> (i * 8)) & 0xff;
      key *= 1099511628211ULL;
    }
  };
  for (const char* input : {"/etc/alternatives", "/usr/lib/x86_64-linux-gnu", "/usr"}) {
    struct stat st;
    if (::stat(input, &st) == 0) {
      mix(static_cast<unsigned long long>(st.st_mtim.tv_sec));
      mix(static_cast<unsigned long long>(st.st_mtim.tv_nsec));
      mix(st.st_ino);
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "host-%s-%016llx", kSkeletonVersion, key);
  return buf;
}

}  // namespace

Result<HostTemplate> ensure_host_template(const std::string& data_dir) {
  std::string templates = data_dir + "/templates";
  std::string final_dir = templates + "/" + skeleton_key();
  HostTemplate result{final_dir, "/usr"};
  if (exists(final_dir)) return result;

  TRY_STATUS(make_dirs(templates, 0755));
  std::string temp_dir = templates + "/.build-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr));
  auto built = build_skeleton(temp_dir);
  if (built.ok() && ::rename(temp_dir.c_str(), final_dir.c_str()) == 0) return result;
  std::string cmd_error = built.ok() ? "" : built.error().message;
  // Remove our partial copy (a concurrent builder may have won the rename: that is fine).
  std::vector<char*> argv = {const_cast<char*>("/bin/rm"), const_cast<char*>("-rf"), temp_dir.data(), nullptr};
  pid_t pid;
  if (posix_spawn(&pid, "/bin/rm", nullptr, nullptr, argv.data(), environ) == 0) ::waitpid(pid, nullptr, 0);
  if (exists(final_dir)) return result;
  return plain_error("build host template in " + final_dir + ": " + (cmd_error.empty() ? "rename failed" : cmd_error));
}

}  // namespace airlock
