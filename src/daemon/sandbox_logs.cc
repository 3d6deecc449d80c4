#include "daemon/sandbox_logs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "daemon/base64.h"

namespace airlock::daemon {
namespace {

constexpr uint64_t kMarkEvery = 64 << 10;   // a seek mark per this many bytes of a segment
constexpr size_t kReadBlock = 256 << 10;    // file reads, in bytes
constexpr std::string_view kCursorPrefix = "{\"cursor\":";
constexpr std::string_view kSegmentSuffix = ".ndjson";

std::string segment_name(int64_t first) {
  std::string digits = std::to_string(first);
  return std::string(20 - std::min<size_t>(20, digits.size()), '0') + digits + std::string(kSegmentSuffix);
}

// The first cursor of a segment from its file name, or nullopt for any other file.
std::optional<int64_t> segment_first(std::string_view name) {
  if (name.size() != 20 + kSegmentSuffix.size() || !name.ends_with(kSegmentSuffix)) return std::nullopt;
  std::string_view digits = name.substr(0, 20);
  size_t zeros = digits.find_first_not_of('0');
  if (zeros == std::string_view::npos) return std::nullopt;  // cursors start at 1
  return parse_log_cursor(digits.substr(zeros));
}

// A line's cursor without parsing the rest: every line starts with {"cursor":N,
std::optional<int64_t> cursor_of(std::string_view line) {
  if (!line.starts_with(kCursorPrefix)) return std::nullopt;
  line.remove_prefix(kCursorPrefix.size());
  int64_t value = 0;
  auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
  if (ec != std::errc() || end == line.data() || end == line.data() + line.size() || *end != ',') return std::nullopt;
  return value;
}

std::string encode_line(const LogEntry& e) {
  nlohmann::json j = nlohmann::json::object();
  j["ts"] = e.timestamp;
  j["type"] = log_entry_type_name(e.type);
  if (e.pid) j["pid"] = *e.pid;
  if (e.type == LogEntryType::kLifecycle) {
    j["event"] = e.event;
    j["message"] = e.message;
    if (e.state) j["state"] = *e.state;
    if (e.stop_reason) j["stop_reason"] = *e.stop_reason;
    if (e.exit_code) j["exit_code"] = *e.exit_code;
  } else {
    j["data64"] = base64_encode(e.data);  // exact bytes; JSON strings cannot hold invalid UTF-8
  }
  std::string rest = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return std::string(kCursorPrefix) + std::to_string(e.cursor) + "," + rest.substr(1) + "\n";
}

std::optional<LogEntry> decode_line(std::string_view line, int64_t cursor) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  LogEntry e;
  e.cursor = cursor;
  try {
    std::string type = j.value("type", "");
    if (type == "lifecycle") {
      e.type = LogEntryType::kLifecycle;
    } else if (type == "stdout") {
      e.type = LogEntryType::kStdout;
    } else if (type == "stderr") {
      e.type = LogEntryType::kStderr;
    } else {
      return std::nullopt;
    }
    e.timestamp = j.value("ts", int64_t{0});
    if (j.contains("pid")) e.pid = j["pid"].get<int64_t>();
    if (e.type == LogEntryType::kLifecycle) {
      e.event = j.value("event", "");
      e.message = j.value("message", "");
      if (j.contains("state")) e.state = j["state"].get<std::string>();
      if (j.contains("stop_reason")) e.stop_reason = j["stop_reason"].get<std::string>();
      if (j.contains("exit_code")) e.exit_code = j["exit_code"].get<int64_t>();
    } else {
      auto data = base64_decode(j.value("data64", ""));
      if (!data) return std::nullopt;
      e.data = std::move(*data);
    }
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return e;
}

// Bytes at the end of `s` that start a UTF-8 sequence without finishing it (0 to 3).
size_t incomplete_utf8_tail(std::string_view s) {
  for (size_t back = 1; back <= std::min<size_t>(3, s.size()); ++back) {
    auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

std::string_view log_entry_type_name(LogEntryType type) {
  switch (type) {
    case LogEntryType::kLifecycle: return "lifecycle";
    case LogEntryType::kStdout: return "stdout";
    case LogEntryType::kStderr: return "stderr";
    case LogEntryType::kGap: return "gap";
  }
  return "gap";
}

bool is_final_lifecycle_event(std::string_view event) { return event == "stopped" || event == "terminated"; }

bool LogFilter::accepts(const LogEntry& e) const {
  switch (e.type) {
    case LogEntryType::kLifecycle:
      return lifecycle && (!pid || !e.pid || *e.pid == *pid);
    case LogEntryType::kStdout:
      return stdout_output && (!pid || e.pid == pid);
    case LogEntryType::kStderr:
      return stderr_output && (!pid || e.pid == pid);
    case LogEntryType::kGap:
      return true;
  }
  return false;
}

std::optional<int64_t> parse_log_cursor(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

SandboxLogs::SandboxLogs(std::string dir, const Logger& log, SandboxLogOptions options, WallClock clock)
    : dir_(std::move(dir)), log_(log), options_(options), clock_(std::move(clock)) {
  options_.max_bytes = std::max<uint64_t>(options_.max_bytes, 64 << 10);
  if (options_.segment_bytes == 0 || options_.segment_bytes > options_.max_bytes / 2) {
    options_.segment_bytes = options_.max_bytes / 4;
  }
  // A line (base64 grows data by 4/3, plus the JSON around it) must fit a segment with room to spare,
  // or rotation could not keep the cap.
  options_.max_chunk = std::clamp<size_t>(options_.max_chunk, 16, static_cast<size_t>(options_.segment_bytes / 4));
  timer_ = std::thread([this] { timer_loop(); });
}

SandboxLogs::~SandboxLogs() {
  {
    std::lock_guard guard(waiters_mu_);
    stopping_ = true;
  }
  waiters_cv_.notify_all();
  timer_.join();
}

std::shared_ptr<SandboxLogs::SandboxLog> SandboxLogs::log_of(const std::string& sandbox_id) {
  std::lock_guard guard(logs_mu_);
  auto& slot = logs_[sandbox_id];
  if (!slot) slot = std::make_shared<SandboxLog>();
  return slot;
}

// --- opening a log ------------------------------------------------------------------------------------

Status SandboxLogs::load(const std::string& sandbox_id, SandboxLog& log) {
  log.loaded = true;
  std::string dir = dir_of(sandbox_id);
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return {};
    return sys_error("open log directory " + dir);
  }
  std::vector<Segment> segments;
  while (dirent* ent = ::readdir(d.get())) {
    auto first = segment_first(ent->d_name);
    if (first) segments.push_back(Segment{*first, dir + "/" + ent->d_name, 0, {}});
  }
  std::sort(segments.begin(), segments.end(), [](const Segment& a, const Segment& b) { return a.first < b.first; });
  int64_t last = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    Segment& seg = segments[i];
    TRY(auto text, read_file(seg.path, size_t{1} << 30));
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // cut short by a crash: trimmed below
      std::string_view line(text.data() + pos, nl - pos);
      if (auto c = cursor_of(line)) {
        if (seg.marks.empty() || pos - seg.marks.back().second >= kMarkEvery) seg.marks.emplace_back(*c, pos);
        last = std::max(last, *c);
      }
      pos = nl + 1;
    }
    seg.size = pos;
    if (pos < text.size()) {
      if (::truncate(seg.path.c_str(), static_cast<off_t>(pos)) != 0) return sys_error("truncate " + seg.path);
      log_.warn("log of " + sandbox_id + ": trimmed a line cut short in " + seg.path);
    }
    log.total += seg.size;
  }
  log.next = std::max<int64_t>(last + 1, segments.empty() ? 1 : segments.back().first);
  log.segments = std::move(segments);
  return {};
}

// --- appending ----------------------------------------------------------------------------------------

int64_t SandboxLogs::append_locked(const std::string& sandbox_id, SandboxLog& log, LogEntry entry) {
  auto drop = [&](const Error& error) -> int64_t {
    log_.warn("log of " + sandbox_id + ": entry dropped: " + error.describe());
    return 0;
  };
  if (!log.loaded) {
    if (auto status = load(sandbox_id, log); !status.ok()) return drop(status.error());
  }
  entry.cursor = log.next;
  entry.timestamp = clock_();
  std::string line = encode_line(entry);

  bool roll = log.segments.empty() ||
              (log.segments.back().size > 0 && log.segments.back().size + line.size() > options_.segment_bytes);
  if (roll) {
    if (log.segments.empty()) {
      if (auto made = make_dirs(dir_of(sandbox_id), 0700); !made.ok()) return drop(made.error());
    }
    log.active.reset();
    log.segments.push_back(Segment{entry.cursor, dir_of(sandbox_id) + "/" + segment_name(entry.cursor), 0, {}});
  }
  Segment& seg = log.segments.back();
  if (!log.active) {
    log.active = UniqueFd(::open(seg.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!log.active) {
      Error error = sys_error("open " + seg.path);
      if (seg.size == 0 && log.segments.size() > 1) log.segments.pop_back();
      return drop(error);
    }
  }
  // The cap: the oldest segments go first, never the active one.
  while (log.segments.size() > 1 && log.total + line.size() > options_.max_bytes) {
    const Segment& oldest = log.segments.front();
    if (::unlink(oldest.path.c_str()) != 0 && errno != ENOENT) log_.warn("log: unlink " + oldest.path + ": " + std::strerror(errno));
    log.total -= oldest.size;
    log.segments.erase(log.segments.begin());
  }
  Segment& active = log.segments.back();
  if (auto written = write_all(log.active.get(), line); !written.ok()) {
    (void)::ftruncate(log.active.get(), static_cast<off_t>(active.size));  // no half line stays behind
    return drop(std::move(written).error().with_context("append to " + active.path));
  }
  if (active.marks.empty() || active.size - active.marks.back().second >= kMarkEvery) {
    active.marks.emplace_back(entry.cursor, active.size);
  }
  active.size += line.size();
  log.total += line.size();
  log.next += 1;
  // A final entry: the sandbox is gone, so is the reason to keep a descriptor open.
  if (entry.type == LogEntryType::kLifecycle && is_final_lifecycle_event(entry.event)) log.active.reset();
  return entry.cursor;
}

void SandboxLogs::append_output_locked(const std::string& sandbox_id, SandboxLog& log, int64_t pid,
                                       OutputStream stream, std::string data) {
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = std::min(options_.max_chunk, data.size() - pos);
    // Split between UTF-8 sequences when one is cut (at most 3 bytes back).
    for (int back = 0; back < 3 && pos + n < data.size() && n > 1 && is_continuation(data[pos + n]); ++back) --n;
    LogEntry entry;
    entry.type = stream == OutputStream::kStdout ? LogEntryType::kStdout : LogEntryType::kStderr;
    entry.pid = pid;
    entry.data = data.substr(pos, n);
    append_locked(sandbox_id, log, std::move(entry));
    pos += n;
  }
}

void SandboxLogs::append_output(const std::string& sandbox_id, int64_t pid, OutputStream stream,
                                std::string_view bytes) {
  if (!valid_sandbox_id(sandbox_id) || bytes.empty()) return;
  auto log = log_of(sandbox_id);
  int64_t last = 0;
  {
    std::lock_guard guard(log->mu);
    auto key = std::make_pair(pid, static_cast<int>(stream));
    std::string data;
    if (auto it = log->held_utf8.find(key); it != log->held_utf8.end()) {
      data = std::move(it->second);
      log->held_utf8.erase(it);
    }
    data.append(bytes);
    if (size_t cut = incomplete_utf8_tail(data); cut > 0) {
      log->held_utf8[key] = data.substr(data.size() - cut);
      data.resize(data.size() - cut);
    }
    append_output_locked(sandbox_id, *log, pid, stream, std::move(data));
    last = log->next - 1;
  }
  notify(sandbox_id, last);
}

void SandboxLogs::append_lifecycle(const std::string& sandbox_id, const LifecycleEvent& event) {
  if (!valid_sandbox_id(sandbox_id)) return;
  auto log = log_of(sandbox_id);
  int64_t last = 0;
  {
    std::lock_guard guard(log->mu);
    // Bytes held back for a cut UTF-8 sequence go out before the process's (or the sandbox's) end.
    bool final = is_final_lifecycle_event(event.event);
    for (auto it = log->held_utf8.begin(); it != log->held_utf8.end();) {
      bool flush = final || (event.event == "process_exited" && event.pid && it->first.first == *event.pid);
      if (!flush) {
        ++it;
        continue;
      }
      append_output_locked(sandbox_id, *log, it->first.first, static_cast<OutputStream>(it->first.second),
                           std::move(it->second));
      it = log->held_utf8.erase(it);
    }
    LogEntry entry;
    entry.type = LogEntryType::kLifecycle;
    entry.event = event.event;
    entry.message = event.message;
    entry.pid = event.pid;
    if (event.state) entry.state = std::string(state_name(*event.state));
    entry.stop_reason = event.stop_reason;
    entry.exit_code = event.exit_code;
    append_locked(sandbox_id, *log, std::move(entry));
    last = log->next - 1;
  }
  notify(sandbox_id, last);
}

// --- reading ------------------------------------------------------------------------------------------

struct SandboxLogs::ReadPlan {
  std::vector<std::pair<std::string, uint64_t>> files;  // (path, bytes to read), oldest first
  uint64_t offset = 0;                                   // where to start in the first file
  int64_t start_after = 0;                               // entries after this one
  std::optional<int64_t> gap;                            // a gap entry's cursor
  int64_t last = 0;
};

Result<int64_t> SandboxLogs::last_cursor(const std::string& sandbox_id) {
  auto log = log_of(sandbox_id);
  std::lock_guard guard(log->mu);
  if (!log->loaded) TRY_STATUS(load(sandbox_id, *log));
  return log->next - 1;
}

Result<LogRead> SandboxLogs::read(const std::string& sandbox_id, std::optional<int64_t> after, const LogFilter& filter,
                                  const LogReadLimits& limits) {
  for (int attempt = 0;; ++attempt) {
    ReadPlan plan;
    {
      auto log = log_of(sandbox_id);
      std::lock_guard guard(log->mu);
      if (!log->loaded) TRY_STATUS(load(sandbox_id, *log));
      plan.last = log->next - 1;
      if (after && *after > plan.last) {
        return Error{ERANGE, "cursor " + std::to_string(*after) + " is beyond the end of the log (" +
                                 std::to_string(plan.last) + ")"};
      }
      int64_t first_kept = log->segments.empty() ? log->next : log->segments.front().first;
      plan.start_after = after.value_or(first_kept - 1);
      if (plan.start_after < first_kept - 1) {
        plan.gap = first_kept - 1;  // what the reader missed was rotated out
        plan.start_after = first_kept - 1;
      }
      // The newest segment that can hold start_after + 1, and the last mark before it there.
      size_t i = 0;
      while (i + 1 < log->segments.size() && log->segments[i + 1].first <= plan.start_after + 1) ++i;
      for (size_t k = i; k < log->segments.size(); ++k) plan.files.emplace_back(log->segments[k].path, log->segments[k].size);
      if (i < log->segments.size()) {
        for (const auto& [cursor, offset] : log->segments[i].marks) {
          if (cursor > plan.start_after + 1) break;
          plan.offset = offset;
        }
      }
    }

    LogRead out;
    out.next_cursor = plan.start_after;
    if (plan.gap) {
      LogEntry gap;
      gap.type = LogEntryType::kGap;
      gap.cursor = *plan.gap;
      out.entries.push_back(std::move(gap));
    }
    size_t bytes = 0, scanned = 0;
    bool full = out.entries.size() >= limits.entries;
    bool rotated_away = false;
    for (size_t f = 0; f < plan.files.size() && !full && !rotated_away; ++f) {
      const auto& [path, size] = plan.files[f];
      UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!fd) {
        if (errno == ENOENT) {  // rotated out while we read: start again (the reader gets a gap)
          rotated_away = true;
          break;
        }
        return sys_error("open " + path);
      }
      uint64_t pos = f == 0 ? plan.offset : 0;
      std::string carry;
      while (pos < size && !full) {
        std::string block(std::min<uint64_t>(kReadBlock, size - pos), '\0');
        ssize_t n = ::pread(fd.get(), block.data(), block.size(), static_cast<off_t>(pos));
        if (n < 0) {
          if (errno == EINTR) continue;
          return sys_error("read " + path);
        }
        if (n == 0) break;
        block.resize(static_cast<size_t>(n));
        pos += static_cast<uint64_t>(n);
        carry += block;
        size_t start = 0;
        for (size_t nl; !full && (nl = carry.find('\n', start)) != std::string::npos; start = nl + 1) {
          std::string_view line(carry.data() + start, nl - start);
          auto cursor = cursor_of(line);
          if (!cursor || *cursor <= plan.start_after) continue;
          out.next_cursor = *cursor;
          scanned += line.size();
          auto entry = decode_line(line, *cursor);
          if (entry) {
            if (entry->type == LogEntryType::kLifecycle && is_final_lifecycle_event(entry->event)) out.ended = true;
            if (filter.accepts(*entry)) {
              bytes += entry->data.size() + entry->message.size();
              out.entries.push_back(std::move(*entry));
            }
          }
          full = out.entries.size() >= limits.entries || bytes >= limits.bytes || scanned >= limits.scan_bytes;
        }
        carry.erase(0, start);
      }
    }
    if (rotated_away && attempt < 3) continue;
    out.has_more = out.next_cursor < plan.last;
    return out;
  }
}

// --- waiting ------------------------------------------------------------------------------------------

std::optional<uint64_t> SandboxLogs::wait(const std::string& sandbox_id, int64_t after,
                                          std::chrono::steady_clock::time_point deadline, Waiter wake) {
  auto log = log_of(sandbox_id);
  std::lock_guard guard(log->mu);  // held while registering: an append cannot slip in between
  if (!log->loaded) (void)load(sandbox_id, *log);
  if (log->next - 1 > after) return std::nullopt;
  uint64_t id = 0;
  {
    std::lock_guard waiters(waiters_mu_);
    id = next_waiter_++;
    waiters_[id] = PendingWaiter{sandbox_id, after, deadline, std::move(wake)};
    by_sandbox_.emplace(sandbox_id, id);
    by_deadline_.emplace(deadline, id);
  }
  waiters_cv_.notify_all();
  return id;
}

bool SandboxLogs::cancel_wait(uint64_t waiter_id) {
  std::lock_guard guard(waiters_mu_);
  auto it = waiters_.find(waiter_id);
  if (it == waiters_.end()) return false;
  auto [first, last] = by_sandbox_.equal_range(it->second.sandbox_id);
  for (auto s = first; s != last; ++s) {
    if (s->second == waiter_id) {
      by_sandbox_.erase(s);
      break;
    }
  }
  by_deadline_.erase({it->second.deadline, waiter_id});
  waiters_.erase(it);
  return true;
}

void SandboxLogs::notify(const std::string& sandbox_id, int64_t cursor) {
  std::vector<Waiter> due;
  {
    std::lock_guard guard(waiters_mu_);
    auto [first, last] = by_sandbox_.equal_range(sandbox_id);
    for (auto s = first; s != last;) {
      auto w = waiters_.find(s->second);
      if (w == waiters_.end() || w->second.after >= cursor) {
        ++s;
        continue;
      }
      by_deadline_.erase({w->second.deadline, w->first});
      due.push_back(std::move(w->second.wake));
      waiters_.erase(w);
      s = by_sandbox_.erase(s);
    }
  }
  for (auto& wake : due) wake(LogWake::kAppended);
}

void SandboxLogs::timer_loop() {
  std::unique_lock lock(waiters_mu_);
  while (!stopping_) {
    if (by_deadline_.empty()) {
      waiters_cv_.wait(lock);
      continue;
    }
    auto now = std::chrono::steady_clock::now();
    std::vector<Waiter> due;
    while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
      uint64_t id = by_deadline_.begin()->second;
      by_deadline_.erase(by_deadline_.begin());
      auto w = waiters_.find(id);
      if (w == waiters_.end()) continue;
      auto [first, last] = by_sandbox_.equal_range(w->second.sandbox_id);
      for (auto s = first; s != last; ++s) {
        if (s->second == id) {
          by_sandbox_.erase(s);
          break;
        }
      }
      due.push_back(std::move(w->second.wake));
      waiters_.erase(w);
    }
    if (!due.empty()) {
      lock.unlock();
      for (auto& wake : due) wake(LogWake::kDeadline);
      lock.lock();
      continue;
    }
    waiters_cv_.wait_until(lock, by_deadline_.begin()->first);
  }
}

// --- removal ------------------------------------------------------------------------------------------

void SandboxLogs::remove(const std::string& sandbox_id) {
  if (!valid_sandbox_id(sandbox_id)) return;
  std::shared_ptr<SandboxLog> log;
  {
    std::lock_guard guard(logs_mu_);
    if (auto it = logs_.find(sandbox_id); it != logs_.end()) {
      log = std::move(it->second);
      logs_.erase(it);
    }
  }
  auto remove_files = [&] {
    std::error_code ec;
    std::filesystem::remove_all(dir_of(sandbox_id), ec);
    if (ec) log_.warn("remove the log of " + sandbox_id + ": " + ec.message());
  };
  if (log) {
    std::lock_guard guard(log->mu);  // no append of a thread that found the log before us is half done
    log->active.reset();
    remove_files();
  } else {
    remove_files();
  }
  std::vector<Waiter> due;
  {
    std::lock_guard guard(waiters_mu_);
    auto [first, last] = by_sandbox_.equal_range(sandbox_id);
    for (auto s = first; s != last; ++s) {
      auto w = waiters_.find(s->second);
      if (w == waiters_.end()) continue;
      by_deadline_.erase({w->second.deadline, w->first});
      due.push_back(std::move(w->second.wake));
      waiters_.erase(w);
    }
    by_sandbox_.erase(first, last);
  }
  for (auto& wake : due) wake(LogWake::kRemoved);
}

}  // namespace airlock::daemon
