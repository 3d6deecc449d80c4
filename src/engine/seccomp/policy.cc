#include "engine/seccomp/policy.h"

#include <linux/audit.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "common/unique_fd.h"

namespace airlock::seccomp {
namespace {

using Op = Condition::Op;

struct NamedValue {
  std::string_view name;
  uint64_t value;
};

// Constants a policy may name. Taken from the system headers so the policy cannot get them wrong.
constexpr NamedValue kConstants[] = {
    {"AF_UNSPEC", AF_UNSPEC},       {"AF_UNIX", AF_UNIX},
    {"AF_INET", AF_INET},           {"AF_INET6", AF_INET6},
    {"AF_NETLINK", AF_NETLINK},     {"AF_PACKET", AF_PACKET},
    {"AF_ALG", AF_ALG},             {"AF_VSOCK", AF_VSOCK},
    {"SOCK_STREAM", SOCK_STREAM},   {"SOCK_DGRAM", SOCK_DGRAM},
    {"SOCK_RAW", SOCK_RAW},         {"SOCK_RDM", SOCK_RDM},
    {"SOCK_SEQPACKET", SOCK_SEQPACKET}, {"SOCK_DCCP", SOCK_DCCP},
    {"SOCK_PACKET", SOCK_PACKET},   {"SOCK_TYPE_MASK", 0xf},
    {"CLONE_NEWNS", CLONE_NEWNS},   {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
    {"CLONE_NEWUTS", CLONE_NEWUTS}, {"CLONE_NEWIPC", CLONE_NEWIPC},
    {"CLONE_NEWUSER", CLONE_NEWUSER}, {"CLONE_NEWPID", CLONE_NEWPID},
    {"CLONE_NEWNET", CLONE_NEWNET}, {"CLONE_NEWTIME", 0x00000080},  // not in every libc's <sched.h>
    {"TIOCSTI", TIOCSTI},           {"TIOCLINUX", TIOCLINUX},
    {"PER_LINUX", PER_LINUX},       {"PER_LINUX32", PER_LINUX32},
    {"UNAME26", UNAME26},
};

constexpr NamedValue kErrnos[] = {
    {"EPERM", EPERM},   {"ENOSYS", ENOSYS},           {"EACCES", EACCES},
    {"EINVAL", EINVAL}, {"EAFNOSUPPORT", EAFNOSUPPORT}, {"EOPNOTSUPP", EOPNOTSUPP},
    {"ENOTTY", ENOTTY}, {"EPROTONOSUPPORT", EPROTONOSUPPORT},
};

std::optional<uint64_t> lookup(std::span<const NamedValue> table, std::string_view name) {
  for (const auto& entry : table)
    if (entry.name == name) return entry.value;
  return std::nullopt;
}

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
constexpr size_t kMaxRulesPerLine = 4096;

bool valid_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  return std::all_of(s.begin(), s.end(), word_char);
}

// Splits a line into words; '{', '}' and ',' are words of their own; '#' starts a comment.
std::vector<std::string> tokenize(std::string_view line) {
  line = line.substr(0, line.find('#'));
  std::vector<std::string> tokens;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) tokens.push_back(std::exchange(word, {}));
  };
  for (char c : line) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      flush();
    } else if (c == '{' || c == '}' || c == ',') {
      flush();
      tokens.emplace_back(1, c);
    } else {
      word += c;
    }
  }
  flush();
  return tokens;
}

// Disjoint masked-equality tests that together match exactly the x with (x & mask) not in
// `members`: walk the mask's bits from the top as a binary trie and emit every subtree that holds
// no member. Lets the policy say "everything except these values" to libseccomp, which has no
// masked not-equal, without overlapping the rules for the members.
void complement_cubes(unsigned arg, const std::vector<uint64_t>& bits, size_t depth, uint64_t fixed_mask,
                      uint64_t fixed_value, const std::vector<uint64_t>& members, std::vector<Condition>& out) {
  if (members.empty()) {
    out.push_back({arg, Op::kMaskedEq, fixed_mask, fixed_value});
    return;
  }
  if (depth == bits.size()) return;  // a member itself
  std::vector<uint64_t> zeros, ones;
  for (uint64_t m : members) (m & bits[depth] ? ones : zeros).push_back(m);
  complement_cubes(arg, bits, depth + 1, fixed_mask | bits[depth], fixed_value, zeros, out);
  complement_cubes(arg, bits, depth + 1, fixed_mask | bits[depth], fixed_value | bits[depth], ones, out);
}

// A value interval that contains every x satisfying c (exact for all ops but masked and !=).
std::pair<uint64_t, uint64_t> interval_of(const Condition& c) {
  switch (c.op) {
    case Op::kEq: return {c.value, c.value};
    case Op::kLt: return {0, c.value - 1};
    case Op::kLe: return {0, c.value};
    case Op::kGt: return {c.value + 1, kMax};
    case Op::kGe: return {c.value, kMax};
    case Op::kMaskedEq: return {c.value, c.value | ~c.mask};
    case Op::kNe: break;
  }
  return {0, kMax};
}

// True only if no value satisfies both conditions (conservative: false when unsure).
bool conflict(const Condition& a, const Condition& b) {
  if (a.op == Op::kEq) return !b.holds(a.value);
  if (b.op == Op::kEq) return !a.holds(b.value);
  if (a.op == Op::kMaskedEq && b.op == Op::kMaskedEq) return ((a.value ^ b.value) & a.mask & b.mask) != 0;
  auto [alo, ahi] = interval_of(a);
  auto [blo, bhi] = interval_of(b);
  return ahi < blo || bhi < alo;
}

bool may_overlap(const Rule& a, const Rule& b) {
  for (const auto& ca : a.conditions)
    for (const auto& cb : b.conditions)
      if (ca.arg == cb.arg && conflict(ca, cb)) return false;
  return true;
}

// libseccomp keeps one decision tree per syscall and does not define which of two overlapping
// rules wins, and an unconditional rule silently replaces conditional ones. Refuse both, so the
// compiled filter means exactly what the policy text says.
Status check_rules(const std::vector<Rule>& rules) {
  std::map<int, std::vector<const Rule*>> by_syscall;
  for (const auto& rule : rules) by_syscall[rule.number].push_back(&rule);
  for (const auto& [nr, group] : by_syscall) {
    for (size_t i = 0; i < group.size(); ++i) {
      for (size_t j = i + 1; j < group.size(); ++j) {
        const Rule& a = *group[i];
        const Rule& b = *group[j];
        std::string where = "line " + std::to_string(b.line) + ": syscall '" + b.syscall + "'";
        if (a.conditions.empty() || b.conditions.empty())
          return plain_error(where + " already has " + (a.conditions.empty() ? "an unconditional" : "a conditional") +
                             " rule at line " + std::to_string(a.line) +
                             "; an unconditional rule must be the syscall's only rule");
        if (!(a.action == b.action) && may_overlap(a, b))
          return plain_error(where + ": " + b.action.describe() + " can match the same call as " + a.action.describe() +
                             " at line " + std::to_string(a.line) + "; make the conditions disjoint");
      }
    }
  }
  return {};
}

class Parser {
 public:
  Result<SeccompPolicy> run(std::string_view text) {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      ++line_;
      auto tokens = tokenize(text.substr(start, end - start));
      if (!tokens.empty()) TRY_STATUS(parse_line(tokens));
      start = end + 1;
    }
    if (!default_action_) return plain_error("policy has no 'default' action");
    if (!bad_arch_action_) return plain_error("policy has no 'bad_arch' action");
    TRY_STATUS(check_rules(rules_));
    return SeccompPolicy{*default_action_, *bad_arch_action_, std::move(rules_)};
  }

 private:
  Error at(std::string_view message) const {
    return plain_error("line " + std::to_string(line_) + ": " + std::string(message));
  }

  Status parse_line(const std::vector<std::string>& t) {
    const std::string& head = t[0];
    size_t pos = 1;
    if (head == "default" || head == "bad_arch") {
      TRY(Action action, parse_action(t, pos));
      if (pos != t.size()) return at("unexpected '" + t[pos] + "' after " + head + " action");
      if (action.kind == Action::Kind::kAllow || action.kind == Action::Kind::kLog)
        return at(head + " action must deny, not " + action.describe());
      auto& slot = head == "default" ? default_action_ : bad_arch_action_;
      if (slot) return at(head + " action set twice");
      slot = action;
      return {};
    }
    if (head == "define") {
      if (t.size() < 3 || !valid_name(t[1])) return at("expected 'define NAME VALUE' or 'define NAME {set}'");
      if (values_.count(t[1]) || sets_.count(t[1]) || lookup(kConstants, t[1]))
        return at("'" + t[1] + "' defined twice");
      pos = 2;
      if (t[2] == "{") {
        TRY(auto set, parse_set(t, pos));
        sets_.emplace(t[1], std::move(set));
      } else {
        TRY(uint64_t v, parse_value(t[pos++]));
        values_.emplace(t[1], v);
      }
      if (pos != t.size()) return at("unexpected '" + t[pos] + "' after define");
      return {};
    }
    if (head == "syscall") {
      if (t.size() != 3 || !valid_name(t[1])) return at("expected 'syscall NAME NUMBER'");
      TRY(uint64_t nr, parse_value(t[2]));
      if (nr > 1023) return at("syscall number " + t[2] + " out of range");
      int known = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, t[1].c_str());
      if (known >= 0 && known != static_cast<int>(nr))
        return at("libseccomp numbers '" + t[1] + "' " + std::to_string(known) + ", not " + t[2]);
      if (char* other = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, static_cast<int>(nr))) {
        std::string other_name = other;
        free(other);
        if (other_name != t[1]) return at("syscall number " + t[2] + " is '" + other_name + "'");
      }
      if (!numbers_.emplace(t[1], static_cast<int>(nr)).second) return at("syscall '" + t[1] + "' numbered twice");
      return {};
    }

    // <action> <syscall>... [if <cond> [and <cond>]...]
    pos = 0;
    TRY(Action action, parse_action(t, pos));
    std::vector<std::pair<std::string, int>> syscalls;
    while (pos < t.size() && t[pos] != "if") {
      if (!valid_name(t[pos])) return at("bad syscall name '" + t[pos] + "'");
      TRY(int nr, resolve_syscall(t[pos]));
      syscalls.emplace_back(t[pos++], nr);
    }
    if (syscalls.empty()) return at("rule names no syscall");
    std::vector<std::vector<Condition>> conditions;  // each: alternatives for one argument
    if (pos < t.size()) {
      ++pos;  // "if"
      while (true) {
        TRY(auto alternatives, parse_condition(t, pos));
        for (const auto& other : conditions)
          if (other.front().arg == alternatives.front().arg)
            return at("arg" + std::to_string(other.front().arg) +
                      " compared twice; libseccomp allows one comparison per argument");
        conditions.push_back(std::move(alternatives));
        if (pos == t.size()) break;
        if (t[pos] != "and") return at("expected 'and' or end of line, got '" + t[pos] + "'");
        ++pos;
      }
    }

    // Expand: one rule per syscall and per combination of alternatives.
    size_t combinations = 1;
    for (const auto& alternatives : conditions) combinations *= alternatives.size();
    if (combinations * syscalls.size() > kMaxRulesPerLine) return at("line expands to too many rules");
    for (const auto& [name, nr] : syscalls) {
      for (size_t index = 0; index < combinations; ++index) {
        Rule rule{name, nr, action, {}, line_};
        size_t rest = index;
        for (const auto& alternatives : conditions) {
          rule.conditions.push_back(alternatives[rest % alternatives.size()]);
          rest /= alternatives.size();
        }
        rules_.push_back(std::move(rule));
      }
    }
    return {};
  }

  Result<Action> parse_action(const std::vector<std::string>& t, size_t& pos) const {
    if (pos >= t.size()) return at("missing action");
    const std::string& word = t[pos++];
    if (word == "allow") return Action{Action::Kind::kAllow};
    if (word == "kill_process") return Action{Action::Kind::kKillProcess};
    if (word == "kill_thread") return Action{Action::Kind::kKillThread};
    if (word == "trap") return Action{Action::Kind::kTrap};
    if (word == "log") return Action{Action::Kind::kLog};
    if (word == "errno") {
      if (pos >= t.size()) return at("errno needs an error name, e.g. 'errno EPERM'");
      auto errnum = lookup(kErrnos, t[pos]);
      if (!errnum) return at("unknown errno name '" + t[pos] + "'");
      ++pos;
      return Action{Action::Kind::kErrno, static_cast<int>(*errnum)};
    }
    return at("unknown action '" + word + "' (expected allow, errno <NAME>, kill_process, kill_thread, trap, log)");
  }

  Result<uint64_t> parse_value(std::string_view token) const {
    if (token.empty()) return at("missing value");
    uint64_t result = 0;
    size_t start = 0;
    while (start <= token.size()) {
      size_t bar = token.find('|', start);
      std::string_view term = token.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
      if (term.empty()) return at("malformed value '" + std::string(token) + "'");
      if (std::isdigit(static_cast<unsigned char>(term[0]))) {
        int base = 10;
        if (term.size() > 2 && term[0] == '0' && (term[1] == 'x' || term[1] == 'X')) {
          term.remove_prefix(2);
          base = 16;
        }
        uint64_t v = 0;
        auto [end, ec] = std::from_chars(term.data(), term.data() + term.size(), v, base);
        if (ec != std::errc() || end != term.data() + term.size())
          return at("malformed number '" + std::string(token) + "'");
        result |= v;
      } else if (auto it = values_.find(term); it != values_.end()) {
        result |= it->second;
      } else if (auto v = lookup(kConstants, term)) {
        result |= *v;
      } else {
        return at("unknown constant '" + std::string(term) + "'");
      }
      if (bar == std::string_view::npos) break;
      start = bar + 1;
    }
    return result;
  }

  Result<std::vector<uint64_t>> parse_set(const std::vector<std::string>& t, size_t& pos) const {
    if (pos >= t.size()) return at("missing set after 'in'");
    if (t[pos] != "{") {
      auto it = sets_.find(t[pos]);
      if (it == sets_.end()) return at("expected '{' or a defined set after 'in', got '" + t[pos] + "'");
      ++pos;
      return it->second;
    }
    ++pos;
    std::vector<uint64_t> members;
    while (true) {
      if (pos >= t.size()) return at("unterminated set: missing '}'");
      const std::string& item = t[pos++];
      if (size_t dots = item.find(".."); dots != std::string::npos) {
        TRY(uint64_t lo, parse_value(std::string_view(item).substr(0, dots)));
        TRY(uint64_t hi, parse_value(std::string_view(item).substr(dots + 2)));
        if (lo > hi || hi - lo >= 256) return at("bad range '" + item + "' (at most 256 values)");
        for (uint64_t v = lo; v <= hi; ++v) members.push_back(v);
      } else {
        TRY(uint64_t v, parse_value(item));
        members.push_back(v);
      }
      if (pos >= t.size()) return at("unterminated set: missing '}'");
      if (t[pos] == "}") break;
      if (t[pos] != ",") return at("expected ',' or '}' in set, got '" + t[pos] + "'");
      ++pos;
    }
    ++pos;  // '}'
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    return members;
  }

  // One condition of a rule, as alternatives: the rule applies if any of them holds.
  Result<std::vector<Condition>> parse_condition(const std::vector<std::string>& t, size_t& pos) const {
    if (pos >= t.size()) return at("missing condition after 'if'/'and'");
    const std::string& operand = t[pos++];
    if (operand.size() != 4 || operand.compare(0, 3, "arg") != 0 || operand[3] < '0' || operand[3] > '5')
      return at("expected arg0..arg5, got '" + operand + "'");
    const unsigned arg = operand[3] - '0';

    std::optional<uint64_t> mask;
    if (pos < t.size() && t[pos] == "&") {
      if (++pos >= t.size()) return at("missing mask after '&'");
      TRY(uint64_t m, parse_value(t[pos++]));
      if (m == 0) return at("mask 0 matches every value");
      mask = m;
    }
    if (pos >= t.size()) return at("missing comparison after " + operand);
    std::string op = t[pos++];
    if (op == "not") {
      if (pos >= t.size() || t[pos] != "in") return at("expected 'in' after 'not'");
      ++pos;
      op = "not in";
    }

    std::vector<uint64_t> members;
    if (op == "in" || op == "not in") {
      TRY(members, parse_set(t, pos));
      if (members.empty()) return at("empty set");
    } else {
      if (pos >= t.size()) return at("missing value after '" + op + "'");
      TRY(uint64_t v, parse_value(t[pos++]));
      members.push_back(v);
    }
    if (mask) {
      for (uint64_t v : members)
        if (v & ~*mask) return at("value " + std::to_string(v) + " has bits outside the mask, so it never matches");
    }

    std::vector<Condition> alternatives;
    if (op == "==" || op == "in") {
      for (uint64_t v : members)
        alternatives.push_back(mask ? Condition{arg, Op::kMaskedEq, *mask, v} : Condition{arg, Op::kEq, 0, v});
    } else if (mask && (op == "!=" || op == "not in")) {
      std::vector<uint64_t> bits;
      for (int b = 63; b >= 0; --b)
        if (*mask & (uint64_t{1} << b)) bits.push_back(uint64_t{1} << b);
      complement_cubes(arg, bits, 0, 0, 0, members, alternatives);
      if (alternatives.size() > 512) return at("'" + op + "' set too large to complement");
    } else if (mask) {
      return at("only ==, !=, in and not in can follow a mask");
    } else if (op == "not in") {
      return at("'not in' needs a mask (argN & MASK not in {...}) so its complement stays small");
    } else {
      static constexpr std::pair<std::string_view, Op> kOps[] = {
          {"!=", Op::kNe}, {"<", Op::kLt}, {"<=", Op::kLe}, {">", Op::kGt}, {">=", Op::kGe}};
      auto it = std::find_if(std::begin(kOps), std::end(kOps), [&](const auto& p) { return p.first == op; });
      if (it == std::end(kOps)) return at("unknown comparison '" + op + "'");
      uint64_t v = members[0];
      if ((it->second == Op::kLt && v == 0) || (it->second == Op::kGt && v == kMax))
        return at("condition is never true");
      alternatives.push_back({arg, it->second, 0, v});
    }
    return alternatives;
  }

  Result<int> resolve_syscall(const std::string& name) const {
    if (auto it = numbers_.find(name); it != numbers_.end()) return it->second;
    int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name.c_str());
    if (nr == __NR_SCMP_ERROR) return at("unknown syscall '" + name + "'");
    if (nr < 0) return at("'" + name + "' is not a native x86_64 syscall");
    return nr;
  }

  int line_ = 0;
  std::map<std::string, uint64_t, std::less<>> values_;
  std::map<std::string, std::vector<uint64_t>, std::less<>> sets_;
  std::map<std::string, int, std::less<>> numbers_;  // from "syscall <name> <number>" lines
  std::optional<Action> default_action_, bad_arch_action_;
  std::vector<Rule> rules_;
};

struct FilterContext {
  scmp_filter_ctx ctx = nullptr;
  FilterContext() = default;
  FilterContext(const FilterContext&) = delete;
  FilterContext& operator=(const FilterContext&) = delete;
  ~FilterContext() {
    if (ctx) seccomp_release(ctx);
  }
};

Status build_filter(const SeccompPolicy& policy, FilterContext& filter) {
  filter.ctx = seccomp_init(policy.default_action.seccomp_ret());
  if (!filter.ctx) return plain_error("seccomp_init failed");
  // Only x86_64 is in the filter: libseccomp then sends other audit arches (i386 via int 0x80) and
  // x32 numbers (nr | 0x40000000) to the bad-arch action.
  if (seccomp_arch_native() != SCMP_ARCH_X86_64) {
    if (int rc = seccomp_arch_add(filter.ctx, SCMP_ARCH_X86_64); rc < 0) return sys_error("add x86_64 arch", -rc);
    if (int rc = seccomp_arch_remove(filter.ctx, SCMP_ARCH_NATIVE); rc < 0) return sys_error("remove native arch", -rc);
  }
  if (int rc = seccomp_attr_set(filter.ctx, SCMP_FLTATR_ACT_BADARCH, policy.bad_arch_action.seccomp_ret()); rc < 0)
    return sys_error("set bad-arch action", -rc);
  // A binary search over syscall numbers instead of a linear list of ~350 comparisons.
  if (int rc = seccomp_attr_set(filter.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
    return sys_error("set optimization level", -rc);
  for (const Rule& rule : policy.rules) {
    // libseccomp refuses rules that repeat the default action; they change nothing anyway
    // (verify_program still checks that such calls get it, e.g. clone3 -> ENOSYS).
    if (rule.action == policy.default_action) continue;
    std::vector<scmp_arg_cmp> cmps;
    for (const Condition& c : rule.conditions) {
      static constexpr scmp_compare kOps[] = {SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE,
                                              SCMP_CMP_GT, SCMP_CMP_GE, SCMP_CMP_MASKED_EQ};
      scmp_compare op = kOps[static_cast<int>(c.op)];
      cmps.push_back(op == SCMP_CMP_MASKED_EQ ? scmp_arg_cmp{c.arg, op, c.mask, c.value}
                                              : scmp_arg_cmp{c.arg, op, c.value, 0});
    }
    int rc = seccomp_rule_add_exact_array(filter.ctx, rule.action.seccomp_ret(), rule.number,
                                          static_cast<unsigned>(cmps.size()), cmps.data());
    if (rc < 0)
      return sys_error("line " + std::to_string(rule.line) + ": libseccomp rejected '" + rule.syscall + "'", -rc);
  }
  return {};
}

Result<std::string> export_to_string(const FilterContext& filter, bool bpf) {
  UniqueFd fd(memfd_create("airlock-seccomp", MFD_CLOEXEC));
  if (!fd) return sys_error("memfd_create");
  int rc = bpf ? seccomp_export_bpf(filter.ctx, fd.get()) : seccomp_export_pfc(filter.ctx, fd.get());
  if (rc < 0) return sys_error("export filter", -rc);
  std::string out;
  char buf[8192];
  for (off_t offset = 0;;) {
    ssize_t n = pread(fd.get(), buf, sizeof buf, offset);
    if (n < 0) return sys_error("read exported filter");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  return out;
}

// Checks the program against the policy: for every rule, a call satisfying its conditions must
// get the rule's action, and the same call made through i386 or x32 the bad-arch action; every
// syscall number no rule names must get the default action.
Status verify_program(const SeccompPolicy& policy, std::span<const sock_filter> program) {
  if (program.size() > BPF_MAXINSNS) return plain_error("filter exceeds the kernel's 4096 instructions");
  auto expect = [&](const seccomp_data& call, uint32_t want, const std::string& what) -> Status {
    TRY(uint32_t got, evaluate(program, call));
    if (got == want) return {};
    std::string args;
    for (uint64_t arg : call.args) args += (args.empty() ? "" : ", ") + std::to_string(arg);
    return plain_error(what + ": compiled filter returns " + std::to_string(got) + " for nr " +
                       std::to_string(call.nr) + " (" + args + "), policy wants " + std::to_string(want));
  };
  const uint32_t bad_arch = policy.bad_arch_action.seccomp_ret();
  std::vector<bool> listed(1024);
  for (const Rule& rule : policy.rules) {
    listed.at(rule.number) = true;
    seccomp_data call{rule.number, AUDIT_ARCH_X86_64, 0, {}};
    for (const Condition& c : rule.conditions) {  // a value that satisfies c
      bool off_by_one = c.op == Op::kNe || c.op == Op::kGt || c.op == Op::kLt;
      call.args[c.arg] = off_by_one ? (c.op == Op::kLt ? c.value - 1 : c.value + 1) : c.value;
    }
    std::string what = "line " + std::to_string(rule.line) + " (" + rule.syscall + ")";
    TRY_STATUS(expect(call, rule.action.seccomp_ret(), what));
    seccomp_data x32 = call;
    x32.nr |= 0x40000000;  // __X32_SYSCALL_BIT
    TRY_STATUS(expect(x32, bad_arch, what + " via x32"));
    seccomp_data i386 = call;
    i386.arch = AUDIT_ARCH_I386;
    TRY_STATUS(expect(i386, bad_arch, what + " via i386"));
  }
  for (int nr = 0; nr < 1024; ++nr) {
    if (listed[nr]) continue;
    TRY_STATUS(expect({nr, AUDIT_ARCH_X86_64, 0, {}}, policy.default_action.seccomp_ret(), "unlisted syscall"));
  }
  return {};
}

}  // namespace

uint32_t Action::seccomp_ret() const {
  switch (kind) {
    case Kind::kAllow: return SECCOMP_RET_ALLOW;
    case Kind::kErrno: return SECCOMP_RET_ERRNO | (static_cast<uint32_t>(errnum) & SECCOMP_RET_DATA);
    case Kind::kKillProcess: return SECCOMP_RET_KILL_PROCESS;
    case Kind::kKillThread: return SECCOMP_RET_KILL_THREAD;
    case Kind::kTrap: return SECCOMP_RET_TRAP;
    case Kind::kLog: return SECCOMP_RET_LOG;
  }
  return SECCOMP_RET_KILL_PROCESS;
}

std::string Action::describe() const {
  switch (kind) {
    case Kind::kAllow: return "allow";
    case Kind::kKillProcess: return "kill_process";
    case Kind::kKillThread: return "kill_thread";
    case Kind::kTrap: return "trap";
    case Kind::kLog: return "log";
    case Kind::kErrno:
      for (const auto& e : kErrnos)
        if (static_cast<int>(e.value) == errnum) return "errno " + std::string(e.name);
      return "errno " + std::to_string(errnum);
  }
  return "?";
}

bool Condition::holds(uint64_t x) const {
  switch (op) {
    case Op::kEq: return x == value;
    case Op::kNe: return x != value;
    case Op::kLt: return x < value;
    case Op::kLe: return x <= value;
    case Op::kGt: return x > value;
    case Op::kGe: return x >= value;
    case Op::kMaskedEq: return (x & mask) == value;
  }
  return false;
}

std::vector<const Rule*> SeccompPolicy::rules_for(std::string_view syscall) const {
  std::vector<const Rule*> out;
  for (const auto& rule : rules)
    if (rule.syscall == syscall) out.push_back(&rule);
  return out;
}

Result<SeccompPolicy> parse_policy(std::string_view text) { return Parser().run(text); }

Result<std::vector<sock_filter>> compile_policy(const SeccompPolicy& policy) {
  FilterContext filter;
  TRY_STATUS(build_filter(policy, filter));
  TRY(std::string bytes, export_to_string(filter, /*bpf=*/true));
  if (bytes.empty() || bytes.size() % sizeof(sock_filter) != 0)
    return plain_error("libseccomp exported a malformed program");
  std::vector<sock_filter> program(bytes.size() / sizeof(sock_filter));
  std::memcpy(program.data(), bytes.data(), bytes.size());
  TRY_CTX(verify_program(policy, program), "verify compiled filter");
  return program;
}

Result<std::string> describe_policy(const SeccompPolicy& policy) {
  FilterContext filter;
  TRY_STATUS(build_filter(policy, filter));
  return export_to_string(filter, /*bpf=*/false);
}

// Classic BPF as the kernel runs a seccomp filter (the instructions seccomp_check_filter admits):
// 32-bit accumulator A, index X, 16 scratch words; loads read the little-endian seccomp_data.
Result<uint32_t> evaluate(std::span<const sock_filter> program, const seccomp_data& call) {
  unsigned char data[sizeof(seccomp_data)];
  std::memcpy(data, &call, sizeof data);
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& f = program[pc];
    const uint32_t src = BPF_SRC(f.code) == BPF_X ? x : f.k;
    const bool scratch_ok = f.k < BPF_MEMWORDS;
    switch (f.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (f.k % 4 || f.k > sizeof data - 4) return plain_error("BPF load out of seccomp_data");
        std::memcpy(&a, data + f.k, 4);
        continue;
      case BPF_LD | BPF_W | BPF_LEN: a = sizeof data; continue;
      case BPF_LDX | BPF_W | BPF_LEN: x = sizeof data; continue;
      case BPF_LD | BPF_IMM: a = f.k; continue;
      case BPF_LDX | BPF_IMM: x = f.k; continue;
      case BPF_LD | BPF_MEM: if (scratch_ok) { a = mem[f.k]; continue; } break;
      case BPF_LDX | BPF_MEM: if (scratch_ok) { x = mem[f.k]; continue; } break;
      case BPF_ST: if (scratch_ok) { mem[f.k] = a; continue; } break;
      case BPF_STX: if (scratch_ok) { mem[f.k] = x; continue; } break;
      case BPF_MISC | BPF_TAX: x = a; continue;
      case BPF_MISC | BPF_TXA: a = x; continue;
      case BPF_RET | BPF_K: return f.k;
      case BPF_RET | BPF_A: return a;
      case BPF_JMP | BPF_JA: pc += f.k; continue;
      default: break;
    }
    if (BPF_CLASS(f.code) == BPF_JMP) {
      switch (BPF_OP(f.code)) {
        case BPF_JEQ: pc += a == src ? f.jt : f.jf; continue;
        case BPF_JGT: pc += a > src ? f.jt : f.jf; continue;
        case BPF_JGE: pc += a >= src ? f.jt : f.jf; continue;
        case BPF_JSET: pc += (a & src) ? f.jt : f.jf; continue;
      }
    } else if (BPF_CLASS(f.code) == BPF_ALU) {
      switch (BPF_OP(f.code)) {
        case BPF_ADD: a += src; continue;
        case BPF_SUB: a -= src; continue;
        case BPF_MUL: a *= src; continue;
        case BPF_DIV: a = src ? a / src : 0; continue;
        case BPF_MOD: a = src ? a % src : 0; continue;
        case BPF_OR: a |= src; continue;
        case BPF_AND: a &= src; continue;
        case BPF_XOR: a ^= src; continue;
        case BPF_LSH: a = src < 32 ? a << src : 0; continue;
        case BPF_RSH: a = src < 32 ? a >> src : 0; continue;
        case BPF_NEG: a = -a; continue;
      }
    }
    return plain_error("bad BPF instruction code " + std::to_string(f.code) + " at " + std::to_string(pc));
  }
  return plain_error("BPF program runs past its end");
}

}  // namespace airlock::seccomp
