#include "daemon/sandbox_store.h"

#include <sys/random.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace airlock::daemon {
namespace {

constexpr const char* kColumns =
    "seq, sandbox_id, tenant, state, stop_reason, stop_message, spec, engine_name, id_index, init_pid, "
    "agent_socket, created_at, started_at, ended_at, expires_at, last_activity_at, process_ids";

nlohmann::json pairs_to_json(const StringPairs& pairs) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [k, v] : pairs) out[k] = v;
  return out;
}

StringPairs pairs_from_json(const nlohmann::json& j) {
  StringPairs out;
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) out.emplace_back(it.key(), it.value().get<std::string>());
  }
  return out;
}

std::optional<std::string> optional_text(Statement& stmt, int column) {
  if (!stmt.optional_int_at(column) && stmt.text_at(column).empty()) return std::nullopt;
  return stmt.text_at(column);
}

Result<SandboxRecord> read_row(Statement& stmt) {
  SandboxRecord r;
  r.seq = stmt.int_at(0);
  r.sandbox_id = stmt.text_at(1);
  r.tenant = stmt.text_at(2);
  auto state = parse_state(stmt.text_at(3));
  if (!state) return plain_error("sandbox " + r.sandbox_id + ": unknown state " + stmt.text_at(3));
  r.state = *state;
  r.stop_reason = optional_text(stmt, 4);
  r.stop_message = optional_text(stmt, 5);
  TRY(r.settings, settings_from_json(stmt.text_at(6)));
  r.engine_name = stmt.text_at(7);
  r.id_index = stmt.optional_int_at(8);
  r.init_pid = stmt.optional_int_at(9);
  r.agent_socket = stmt.text_at(10);
  r.created_at = stmt.int_at(11);
  r.started_at = stmt.optional_int_at(12);
  r.ended_at = stmt.optional_int_at(13);
  r.expires_at = stmt.optional_int_at(14);
  r.last_activity_at = stmt.int_at(15);
  r.process_ids_reserved = stmt.int_at(16);
  return r;
}

void bind_optional_text(Statement& stmt, int index, const std::optional<std::string>& value) {
  if (value) {
    stmt.bind(index, *value);
  } else {
    stmt.bind_null(index);
  }
}

// Binds every column but seq, from parameter `first` on, in kColumns order.
void bind_fields(Statement& stmt, const SandboxRecord& r, int first) {
  int i = first;
  stmt.bind(i++, r.sandbox_id);
  stmt.bind(i++, r.tenant);
  stmt.bind(i++, state_name(r.state));
  bind_optional_text(stmt, i++, r.stop_reason);
  bind_optional_text(stmt, i++, r.stop_message);
  stmt.bind(i++, settings_to_json(r.settings));
  stmt.bind(i++, r.engine_name);
  stmt.bind(i++, r.id_index);
  stmt.bind(i++, r.init_pid);
  stmt.bind(i++, r.agent_socket);
  stmt.bind(i++, int64_t{r.created_at});
  stmt.bind(i++, r.started_at);
  stmt.bind(i++, r.ended_at);
  stmt.bind(i++, r.expires_at);
  stmt.bind(i++, int64_t{r.last_activity_at});
}

bool metadata_matches(const SandboxRecord& r, const StringPairs& wanted) {
  for (const auto& pair : wanted) {  // not a structured binding: clang 14 cannot capture those
    const auto& key = pair.first;
    auto it = std::find_if(r.settings.metadata.begin(), r.settings.metadata.end(),
                           [&](const auto& p) { return p.first == key; });
    if (it == r.settings.metadata.end() || it->second != pair.second) return false;
  }
  return true;
}

}  // namespace

nlohmann::json network_to_json(const SandboxSettings& s) {
  auto list = [](const std::vector<net::Destination>& items) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& d : items) out.push_back(d.str());
    return out;
  };
  return {{"mode", s.network.mode == net::EgressMode::kAllow ? "allow" : "none"},
          {"allow_out", list(s.network.allow_out)},
          {"deny_out", list(s.network.deny_out)},
          {"bandwidth_mbps", s.network.bandwidth_mbps ? nlohmann::json(*s.network.bandwidth_mbps) : nlohmann::json()},
          {"ipv4", s.ipv4.empty() ? nlohmann::json() : nlohmann::json(s.ipv4)},
          {"ipv6", s.ipv6.empty() ? nlohmann::json() : nlohmann::json(s.ipv6)}};
}

std::string settings_to_json(const SandboxSettings& s) {
  nlohmann::json j = {{"template", s.template_name}, {"cpu_millis", s.cpu_millis}, {"memory_mb", s.memory_mb},
                      {"disk_mb", s.disk_mb},        {"pids", s.pids},             {"timeout", s.timeout},
                      {"workdir", s.workdir},        {"env", pairs_to_json(s.env)}, {"metadata", pairs_to_json(s.metadata)}};
  j["idle_timeout"] = s.idle_timeout ? nlohmann::json(*s.idle_timeout) : nlohmann::json();
  j["network"] = network_to_json(s);
  nlohmann::json ports = nlohmann::json::array();
  for (const auto& p : s.ports) ports.push_back({{"port", p.port}, {"public", p.is_public}, {"created_at", p.created_at}});
  j["ports"] = std::move(ports);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<SandboxSettings> settings_from_json(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return plain_error("sandbox spec: not a JSON object");
  SandboxSettings s;
  try {
    s.template_name = j.value("template", s.template_name);
    s.cpu_millis = j.value("cpu_millis", s.cpu_millis);
    s.memory_mb = j.value("memory_mb", s.memory_mb);
    s.disk_mb = j.value("disk_mb", s.disk_mb);
    s.pids = j.value("pids", s.pids);
    s.timeout = j.value("timeout", s.timeout);
    if (j.contains("idle_timeout") && j["idle_timeout"].is_number_integer()) s.idle_timeout = j["idle_timeout"].get<int64_t>();
    s.workdir = j.value("workdir", s.workdir);
    if (j.contains("env")) s.env = pairs_from_json(j["env"]);
    if (j.contains("metadata")) s.metadata = pairs_from_json(j["metadata"]);
    if (j.contains("network") && j["network"].is_object()) {
      const auto& n = j["network"];
      s.network.mode = n.value("mode", std::string("none")) == "allow" ? net::EgressMode::kAllow : net::EgressMode::kNone;
      for (auto [list, name] : {std::pair{&s.network.allow_out, "allow_out"}, std::pair{&s.network.deny_out, "deny_out"}}) {
        for (const auto& entry : n.value(name, nlohmann::json::array())) {
          auto d = net::parse_destination(entry.get<std::string>());
          if (!d.ok()) return std::move(d).error().with_context("sandbox spec: network");
          list->push_back(std::move(d).value());
        }
      }
      if (n.contains("bandwidth_mbps") && n["bandwidth_mbps"].is_number_unsigned()) {
        s.network.bandwidth_mbps = n["bandwidth_mbps"].get<uint32_t>();
      }
      if (n.contains("ipv4") && n["ipv4"].is_string()) s.ipv4 = n["ipv4"].get<std::string>();
      if (n.contains("ipv6") && n["ipv6"].is_string()) s.ipv6 = n["ipv6"].get<std::string>();
    }
    if (j.contains("ports") && j["ports"].is_array()) {
      for (const auto& p : j["ports"]) {
        s.ports.push_back({p.at("port").get<uint16_t>(), p.value("public", false), p.value("created_at", int64_t{0})});
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return plain_error(std::string("sandbox spec: ") + e.what());
  }
  return s;
}

std::string_view state_name(SandboxState state) {
  switch (state) {
    case SandboxState::kStarting: return "starting";
    case SandboxState::kRunning: return "running";
    case SandboxState::kStopped: return "stopped";
    case SandboxState::kTerminated: return "terminated";
  }
  return "stopped";
}

std::optional<SandboxState> parse_state(std::string_view name) {
  for (auto s : {SandboxState::kStarting, SandboxState::kRunning, SandboxState::kStopped, SandboxState::kTerminated}) {
    if (state_name(s) == name) return s;
  }
  return std::nullopt;
}

Status SandboxStore::insert(SandboxRecord& record) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare(
                     "INSERT INTO sandboxes (sandbox_id, tenant, state, stop_reason, stop_message, spec, engine_name, "
                     "id_index, init_pid, agent_socket, created_at, started_at, ended_at, expires_at, last_activity_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING seq"));
  bind_fields(stmt, record, 1);
  TRY(bool row, stmt.step());
  if (!row) return plain_error("insert sandbox " + record.sandbox_id + ": no row");
  record.seq = stmt.int_at(0);
  return {};
}

Status SandboxStore::update(const SandboxRecord& record) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare(
                     "UPDATE sandboxes SET sandbox_id = ?1, tenant = ?2, state = ?3, stop_reason = ?4, stop_message = ?5, "
                     "spec = ?6, engine_name = ?7, id_index = ?8, init_pid = ?9, agent_socket = ?10, created_at = ?11, "
                     "started_at = ?12, ended_at = ?13, expires_at = ?14, last_activity_at = ?15 WHERE seq = ?16"));
  bind_fields(stmt, record, 1);
  stmt.bind(16, record.seq);
  TRY(bool row, stmt.step());
  (void)row;
  return {};
}

Status SandboxStore::set_process_ids_reserved(int64_t seq, int64_t reserved) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("UPDATE sandboxes SET process_ids = ?1 WHERE seq = ?2"));
  stmt.bind(1, reserved).bind(2, seq);
  TRY(bool row, stmt.step());
  (void)row;
  return {};
}

Status SandboxStore::save_process(int64_t seq, const StoredProcess& process) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("INSERT OR REPLACE INTO processes (sandbox_seq, id, pid, running, doc) VALUES (?1, ?2, ?3, ?4, ?5)"));
  stmt.bind(1, seq).bind(2, process.id).bind(3, process.pid).bind(4, int64_t{process.running}).bind(5, process.doc);
  TRY(bool row, stmt.step());
  (void)row;
  return {};
}

Status SandboxStore::prune_processes(int64_t seq, int64_t keep_exited) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("DELETE FROM processes WHERE sandbox_seq = ?1 AND running = 0 AND id NOT IN "
                             "(SELECT id FROM processes WHERE sandbox_seq = ?1 AND running = 0 ORDER BY id DESC LIMIT ?2)"));
  stmt.bind(1, seq).bind(2, keep_exited);
  TRY(bool row, stmt.step());
  (void)row;
  return {};
}

Result<std::vector<SandboxStore::StoredProcess>> SandboxStore::list_processes(int64_t seq) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT id, pid, running, doc FROM processes WHERE sandbox_seq = ?1 ORDER BY id"));
  stmt.bind(1, seq);
  std::vector<StoredProcess> out;
  for (;;) {
    TRY(bool row, stmt.step());
    if (!row) break;
    out.push_back({stmt.int_at(0), stmt.int_at(1), stmt.int_at(2) != 0, stmt.text_at(3)});
  }
  return out;
}

Result<std::optional<SandboxRecord>> SandboxStore::get(std::string_view tenant, std::string_view sandbox_id) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare(std::string("SELECT ") + kColumns + " FROM sandboxes WHERE sandbox_id = ?1 AND tenant = ?2"));
  stmt.bind(1, sandbox_id).bind(2, tenant);
  TRY(bool row, stmt.step());
  if (!row) return std::optional<SandboxRecord>();
  TRY(auto record, read_row(stmt));
  return std::optional<SandboxRecord>(std::move(record));
}

Result<SandboxPage> SandboxStore::list(const SandboxListQuery& query) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare(std::string("SELECT ") + kColumns +
                             " FROM sandboxes WHERE tenant = ?1 AND seq < ?2 ORDER BY seq DESC"));
  stmt.bind(1, query.tenant).bind(2, query.before_seq.value_or(INT64_MAX));
  SandboxPage page;
  for (;;) {
    TRY(bool row, stmt.step());
    if (!row) break;
    TRY(auto record, read_row(stmt));
    bool state_ok = query.states.empty()
                        ? record.state != SandboxState::kTerminated
                        : std::find(query.states.begin(), query.states.end(), record.state) != query.states.end();
    if (!state_ok || !metadata_matches(record, query.metadata)) continue;
    if (static_cast<int64_t>(page.sandboxes.size()) == query.limit) {
      page.next_before = page.sandboxes.back().seq;
      break;
    }
    page.sandboxes.push_back(std::move(record));
  }
  return page;
}

Result<std::vector<SandboxRecord>> SandboxStore::list_live() {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare(std::string("SELECT ") + kColumns +
                             " FROM sandboxes WHERE state IN ('starting', 'running') ORDER BY seq"));
  std::vector<SandboxRecord> out;
  for (;;) {
    TRY(bool row, stmt.step());
    if (!row) break;
    TRY(auto record, read_row(stmt));
    out.push_back(std::move(record));
  }
  return out;
}

Result<std::pair<int64_t, int64_t>> SandboxStore::live_usage(std::string_view tenant) {
  auto guard = db_.lock();
  TRY(auto stmt, db_.prepare("SELECT count(*), coalesce(sum(json_extract(spec, '$.memory_mb')), 0) FROM sandboxes "
                             "WHERE tenant = ?1 AND state IN ('starting', 'running')"));
  stmt.bind(1, tenant);
  TRY(bool row, stmt.step());
  if (!row) return std::pair<int64_t, int64_t>{0, 0};
  return std::pair<int64_t, int64_t>{stmt.int_at(0), stmt.int_at(1)};
}

std::string new_sandbox_id() {
  static constexpr char kChars[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string id = "sb-";
  while (id.size() < 19) {
    unsigned char buf[32];
    ssize_t n = ::getrandom(buf, sizeof buf, 0);
    for (ssize_t i = 0; i < n && id.size() < 19; ++i) {
      if (buf[i] < 252) id += kChars[buf[i] % 36];  // 252 = 7 * 36: no modulo bias
    }
  }
  return id;
}

bool valid_sandbox_id(std::string_view id) {
  if (id.size() != 19 || id.substr(0, 3) != "sb-") return false;
  return std::all_of(id.begin() + 3, id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); });
}

}  // namespace airlock::daemon
