// `airlock cp [-r] SRC DST`: one side is `ID:PATH` in a sandbox, the other a local path.
//   upload:   files/write, the request body streamed from the file (never whole in memory);
//             directories with -r: files/mkdir, then every file.
//   download: files/read, streamed to a temporary file renamed into place; directories with -r:
//             files/list (one level per request) under a DestinationDir, which keeps every name the
//             sandbox sends inside the destination (see destination_dir.h).
// Destinations follow cp: into an existing directory under the source's name, otherwise to the
// path given; "dir/." copies a directory's contents. Permission bits are kept (not owners);
// symlinks are recreated on download and skipped, with a warning, on upload (the API cannot make
// them).
#include "cli/cp_cmd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "cli/copy_location.h"
#include "cli/daemon_verb.h"
#include "cli/destination_dir.h"
#include "cli/exit_codes.h"
#include "cli/fd_io.h"
#include "cli/query_string.h"

namespace airlock::cli {
namespace {

constexpr int kListLimit = 10000;  // the contract's maximum per listing
constexpr int kMaxDepth = 256;     // a listing that never ends (a loop) stops here

struct RemoteEntry {
  std::string name;
  std::string path;  // absolute inside the sandbox
  std::string type;  // file, dir, symlink, other
  unsigned mode = 0644;
  std::string symlink_target;
};

void warn(const std::string& message) { std::fprintf(stderr, "airlock: warning: %s\n", message.c_str()); }

std::string octal_mode(unsigned mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", mode & 07777);
  return text;
}

Result<RemoteEntry> entry_from_json(const nlohmann::json& info) {
  if (!info.is_object()) return plain_error("malformed file entry from the daemon");
  RemoteEntry entry;
  auto text = [&info](const char* name) {
    auto it = info.find(name);
    return it != info.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  entry.name = text("name");
  entry.path = text("path");
  entry.type = text("type");
  entry.symlink_target = text("symlink_target");
  std::string mode = text("mode");
  if (!mode.empty()) entry.mode = static_cast<unsigned>(std::strtoul(mode.c_str(), nullptr, 8)) & 0777;
  return entry;
}

class SandboxFiles {
 public:
  SandboxFiles(const ApiClient& api, std::string id) : api_(api), id_(std::move(id)) {}

  // nullopt when the path does not exist.
  Result<std::optional<RemoteEntry>> stat(const std::string& path) const {
    TRY(auto reply, api_.request("GET", target("/files/stat", QueryString().add("path", path).add("follow_symlinks", "true"))));
    if (reply.error_code() == "path_not_found") return std::optional<RemoteEntry>();
    if (!reply.ok()) return reply.error().with_context(id_ + ":" + path);
    TRY(auto entry, entry_from_json(reply.body));
    return std::optional<RemoteEntry>(std::move(entry));
  }

  Result<std::vector<RemoteEntry>> list(const RemoteEntry& dir) const {
    auto query = QueryString().add("path", dir.path).add("depth", "1").add("limit", std::to_string(kListLimit));
    TRY(auto listing, api_.get(target("/files/list", query)));
    auto entries = listing.find("entries");
    if (entries == listing.end() || !entries->is_array()) return plain_error("malformed listing from the daemon");
    if (listing.value("truncated", false))
      return plain_error(id_ + ":" + dir.path + " has more than " + std::to_string(kListLimit) + " entries");
    std::vector<RemoteEntry> out;
    for (const auto& info : *entries) {
      TRY(auto entry, entry_from_json(info));
      if (entry.path == dir.path) continue;  // the directory itself, when the listing includes it
      out.push_back(std::move(entry));
    }
    return out;
  }

  Status download(const std::string& path, int fd) const {
    TRY(auto stream, api_.open("GET", target("/files/read", QueryString().add("path", path))));
    std::vector<char> buffer(256 * 1024);
    for (;;) {
      TRY(auto n, stream.read(buffer.data(), buffer.size()));
      if (n == 0) return {};
      TRY_STATUS(write_all(fd, std::string_view(buffer.data(), n)));
    }
  }

  Status upload(const std::string& path, int fd, uint64_t size, unsigned mode) const {
    auto query = QueryString().add("path", path).add("mode", octal_mode(mode));
    TRY(auto reply, api_.upload("POST", target("/files/write", query), fd, size));
    if (!reply.ok()) return reply.error().with_context(id_ + ":" + path);
    return {};
  }

  Status mkdir(const std::string& path, unsigned mode) const {
    nlohmann::json body = {{"path", path}, {"mode", octal_mode(mode | 0700)}, {"parents", true}};
    TRY(auto reply, api_.request("POST", target("/files/mkdir", QueryString()), &body));
    if (!reply.ok()) return reply.error().with_context(id_ + ":" + path);
    return {};
  }

  // A symlink's stat describes the link; whether it leads to a directory, a read of 0 bytes says.
  Result<bool> leads_to_directory(const std::string& path) const {
    TRY(auto reply, api_.request("GET", target("/files/read", QueryString().add("path", path).add("length", "0"))));
    if (reply.ok()) return false;
    if (reply.error_code() == "is_a_directory") return true;
    return reply.error().with_context(id_ + ":" + path);
  }

  const std::string& id() const { return id_; }

 private:
  std::string target(const char* route, const QueryString& query) const { return sandbox_target(id_, route) + query.str(); }
  const ApiClient& api_;
  std::string id_;
};

// --- download ---------------------------------------------------------------------------------

Status download_tree(const SandboxFiles& files, const RemoteEntry& dir, const DestinationDir& into, int depth = 0) {
  if (depth > kMaxDepth) return plain_error(files.id() + ":" + dir.path + ": directories nested too deep");
  TRY(auto entries, files.list(dir));
  for (const auto& entry : entries) {
    TRY_STATUS(check_entry_name(entry.name));
    std::string path = join_path(dir.path, entry.name);
    if (entry.type == "dir") {
      TRY(auto sub, into.subdir(entry.name, entry.mode));
      RemoteEntry child = entry;
      child.path = path;
      TRY_STATUS(download_tree(files, child, sub, depth + 1));
    } else if (entry.type == "file") {
      TRY(auto file, into.create_file(entry.name, entry.mode));
      TRY_STATUS(files.download(path, file.fd()));
      TRY_STATUS(file.commit());
    } else if (entry.type == "symlink" && !entry.symlink_target.empty()) {
      TRY_STATUS(into.create_symlink(entry.name, entry.symlink_target));
    } else if (entry.type == "symlink") {
      warn("skipping symlink " + files.id() + ":" + path + " (the daemon did not report its target)");
    } else {
      warn("skipping " + files.id() + ":" + path + " (not a regular file, directory or symlink)");
    }
  }
  return {};
}

Status download(const SandboxFiles& files, const CopyLocation& src, const std::string& dst, bool recursive) {
  TRY(auto found, files.stat(src.path));
  if (!found) return plain_error(files.id() + ":" + src.path + ": no such file or directory");
  RemoteEntry entry = std::move(*found);
  if (entry.type == "symlink") {
    TRY(bool is_dir, files.leads_to_directory(src.path));
    entry.type = is_dir ? "dir" : "file";
    entry.path = src.path;  // the link's own path: reads and listings follow it
  }
  if (dst == "-") {  // to our stdout
    if (entry.type == "dir") return plain_error(files.id() + ":" + src.path + " is a directory");
    return files.download(entry.path.empty() ? src.path : entry.path, STDOUT_FILENO);
  }
  if (entry.path.empty()) entry.path = src.path;
  struct stat st;
  bool dst_is_dir = ::stat(dst.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  bool dst_exists = dst_is_dir || ::lstat(dst.c_str(), &st) == 0;
  std::string name = last_component(src.path);

  if (entry.type == "dir") {
    if (!recursive) return plain_error(files.id() + ":" + src.path + " is a directory (use cp -r)");
    if (dst_exists && !dst_is_dir) return plain_error(dst + " exists and is not a directory");
    if (dst_is_dir && !names_contents_only(src.path)) {
      TRY(auto parent, DestinationDir::open(dst));
      TRY(auto into, parent.subdir(name, entry.mode));
      return download_tree(files, entry, into);
    }
    if (!dst_is_dir && ::mkdir(dst.c_str(), (entry.mode & 0777) | 0700) != 0) return sys_error("mkdir " + dst);
    TRY(auto into, DestinationDir::open(dst));
    return download_tree(files, entry, into);
  }
  if (entry.type != "file") return plain_error(files.id() + ":" + src.path + " is not a regular file");
  std::string dir = dst, file_name = name;
  if (!dst_is_dir) {
    if (!dst.empty() && dst.back() == '/') return plain_error(dst + ": no such directory");
    size_t slash = dst.rfind('/');
    dir = slash == std::string::npos ? "." : slash == 0 ? "/" : dst.substr(0, slash);
    file_name = dst.substr(slash == std::string::npos ? 0 : slash + 1);
  }
  TRY(auto into, DestinationDir::open(dir));
  TRY(auto file, into.create_file(file_name, entry.mode));
  TRY_STATUS(files.download(entry.path, file.fd()));
  return file.commit();
}

// --- upload -----------------------------------------------------------------------------------

Status upload_file_at(const SandboxFiles& files, int dir_fd, const std::string& name, const std::string& shown,
                      const std::string& remote) {
  UniqueFd fd(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return sys_error("open " + shown);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return sys_error("stat " + shown);
  if (!S_ISREG(st.st_mode)) return plain_error(shown + " is not a regular file");
  return files.upload(remote, fd.get(), static_cast<uint64_t>(st.st_size), st.st_mode & 0777);
}

Status upload_tree(const SandboxFiles& files, int dir_fd, const std::string& shown, const std::string& remote) {
  // Opened again for readdir (fdopendir takes ownership; dir_fd stays the caller's).
  int dup_fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup_fd < 0) return sys_error("open " + shown);
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(dup_fd), ::closedir);
  if (!dir) {
    ::close(dup_fd);
    return sys_error("opendir " + shown);
  }
  std::vector<std::string> names;
  while (struct dirent* d = ::readdir(dir.get())) {
    std::string name = d->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string local = join_path(shown, name);
    std::string target = join_path(remote, name);
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return sys_error("stat " + local);
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return sys_error("open " + local);
      TRY_STATUS(files.mkdir(target, st.st_mode & 0777));
      TRY_STATUS(upload_tree(files, sub.get(), local, target));
    } else if (S_ISREG(st.st_mode)) {
      TRY_STATUS(upload_file_at(files, dir_fd, name, local, target));
    } else if (S_ISLNK(st.st_mode)) {
      warn("skipping symlink " + local + " (the API cannot create symlinks)");
    } else {
      warn("skipping " + local + " (not a regular file or directory)");
    }
  }
  return {};
}

Status upload(const SandboxFiles& files, const std::string& src, const CopyLocation& dst, bool recursive) {
  struct stat st;
  if (::stat(src.c_str(), &st) != 0) return sys_error(src);
  std::string name = last_component(src);
  TRY(auto existing, files.stat(dst.path));
  bool dst_is_dir = existing && existing->type == "dir";
  // Built from the path as typed (relative paths stay relative to the sandbox's workdir).
  if (S_ISDIR(st.st_mode)) {
    if (!recursive) return plain_error(src + " is a directory (use cp -r)");
    if (existing && !dst_is_dir) return plain_error(files.id() + ":" + dst.path + " exists and is not a directory");
    std::string target = dst_is_dir && !names_contents_only(src) ? join_path(dst.path, name) : dst.path;
    TRY_STATUS(files.mkdir(target, st.st_mode & 0777));
    UniqueFd dir(::open(src.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return sys_error("open " + src);
    return upload_tree(files, dir.get(), src, target);
  }
  if (!S_ISREG(st.st_mode)) return plain_error(src + " is not a regular file");
  bool into_dir = dst_is_dir || dst.path.back() == '/';
  std::string target = into_dir ? join_path(dst.path, name) : dst.path;
  UniqueFd fd(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sys_error("open " + src);
  if (::fstat(fd.get(), &st) != 0) return sys_error("stat " + src);
  return files.upload(target, fd.get(), static_cast<uint64_t>(st.st_size), st.st_mode & 0777);
}

}  // namespace

int cp_verb(const std::vector<std::string>& args, const GlobalOptions& globals_in) {
  GlobalOptions globals = globals_in;
  CLI::App app{"Copy files between this host and a sandbox: one of SRC and DST is ID:PATH.", "airlock cp"};
  app.footer("usage: airlock cp [-r] SRC DST\n"
             "  airlock cp ./app.py sb-xxx:/root/app.py     upload a file\n"
             "  airlock cp -r ./src sb-xxx:/root/           upload a directory (into /root/src)\n"
             "  airlock cp sb-xxx:/tmp/out.bin ./out.bin    download a file (DST - writes to stdout)\n"
             "A relative sandbox path is relative to the sandbox's workdir; a local path containing ':'\n"
             "is written ./a:b.");
  std::string src, dst;
  bool recursive = false;
  app.add_flag("-r,-R,--recursive", recursive, "copy directories recursively");
  app.add_option("SRC", src, "source: a local path or ID:PATH")->required();
  app.add_option("DST", dst, "destination: a local path or ID:PATH")->required();
  add_connection_options(app, globals);
  if (auto code = parse_verb(app, args)) return *code;

  CopyLocation from = parse_copy_location(src);
  CopyLocation to = parse_copy_location(dst);
  if (from.remote == to.remote) {
    print_error(from.remote ? "copying between sandboxes is not supported (copy through a local directory)"
                            : "one of SRC and DST must be ID:PATH (a path in a sandbox)");
    return kExitAirlockError;
  }
  auto api = connect_api(globals);
  if (!api.ok()) {
    print_error(api.error());
    return kExitAirlockError;
  }
  SandboxFiles files(*api, from.remote ? from.sandbox_id : to.sandbox_id);
  Status status = from.remote ? download(files, from, to.path, recursive) : upload(files, from.path, to, recursive);
  if (!status.ok()) return report_failure(status.error());
  return 0;
}

}  // namespace airlock::cli
