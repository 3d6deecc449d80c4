#include "network/egress_policy.h"

#include <charconv>

namespace airlock::net {
namespace {

Error bad(std::string_view text, std::string_view why) {
  return Error{EINVAL, "\"" + std::string(text.substr(0, 80)) + "\": " + std::string(why)};
}

std::optional<uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// A hostname of letters, digits, '-' and '_' labels (1..63 each), at least two labels.
bool valid_hostname(std::string_view name) {
  if (name.empty() || name.size() > kMaxDomainLength) return false;
  size_t labels = 0;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!is_label_char(c)) return false;
    }
    ++labels;
    start = dot + 1;
    if (dot == name.size()) break;
  }
  return labels >= 2;
}

void clear_host_bits(IpAddress& a, int prefix_len) {
  int bits = static_cast<int>(a.size()) * 8;
  for (int i = prefix_len; i < bits; ++i) a.bytes[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8)));
}

}  // namespace

std::string Destination::str() const {
  std::string host;
  if (kind == Kind::kDomain) {
    host = domain;
  } else {
    int full = static_cast<int>(address.size()) * 8;
    host = address.str();
    if (prefix_len != full) host += "/" + std::to_string(prefix_len);
    if (port && address.family == AF_INET6) host = "[" + host + "]";
  }
  if (port) host += ":" + std::to_string(*port);
  return host;
}

std::string normalize_domain(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out;
  out.reserve(name.size());
  for (char c : name) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  if (!valid_hostname(out)) return {};
  return out;
}

Result<Destination> parse_destination(std::string_view text) {
  if (text.empty()) return bad(text, "is empty");
  if (text.size() > kMaxDomainLength + 8) return bad(text, "is too long");
  Destination d;
  std::string_view host = text;
  // Port: "[v6]:port", "v4:port", "name:port", "cidr:port"; a bare IPv6 address has several ':'.
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return bad(text, "has '[' without ']'");
    std::string_view rest = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad(text, "expected ':port' after ']'");
      d.port = parse_port(rest.substr(1));
      if (!d.port) return bad(text, "port must be 1..65535");
    }
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos && host.find(':') == colon) {
    d.port = parse_port(host.substr(colon + 1));
    if (!d.port) return bad(text, "port must be 1..65535");
    host = host.substr(0, colon);
  }
  // CIDR or address.
  std::string_view addr_part = host;
  std::optional<int> prefix;
  if (size_t slash = host.find('/'); slash != std::string_view::npos) {
    addr_part = host.substr(0, slash);
    std::string_view p = host.substr(slash + 1);
    int v = -1;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size()) return bad(text, "prefix length is not a number");
    prefix = v;
  }
  if (auto a = IpAddress::parse(addr_part)) {
    int full = static_cast<int>(a->size()) * 8;
    int len = prefix.value_or(full);
    if (len < 0 || len > full) return bad(text, "prefix length out of range");
    d.kind = Destination::Kind::kCidr;
    d.address = *a;
    d.prefix_len = len;
    clear_host_bits(d.address, len);
    return d;
  }
  if (prefix) return bad(text, "is not an IPv4 or IPv6 network");
  // Domain, optionally "*." + domain.
  std::string_view name = host;
  bool wildcard = false;
  if (name.size() > 2 && name.substr(0, 2) == "*.") {
    wildcard = true;
    name.remove_prefix(2);
  }
  std::string normalized = normalize_domain(name);
  if (normalized.empty()) {
    return bad(text, "is not an IP address, a CIDR or a domain name (labels of a-z, 0-9, '-', '_'; at least two)");
  }
  if (normalized.find_first_not_of("0123456789.") == std::string::npos) return bad(text, "is not a valid IP address");
  d.kind = Destination::Kind::kDomain;
  d.domain = wildcard ? "*." + normalized : normalized;
  return d;
}

bool EgressPolicy::has_domain_rules() const {
  for (const auto* list : {&allow_out, &deny_out}) {
    for (const auto& d : *list) {
      if (d.kind == Destination::Kind::kDomain) return true;
    }
  }
  return false;
}

bool matches_domain(const Destination& rule, std::string_view name) {
  if (rule.kind != Destination::Kind::kDomain) return false;
  std::string_view pattern = rule.domain;
  if (pattern.substr(0, 2) == "*.") {
    std::string_view suffix = pattern.substr(1);  // ".pypi.org"
    return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  }
  return name == pattern;
}

NameRules rules_for_name(const EgressPolicy& policy, std::string_view name) {
  NameRules rules;
  for (const auto& d : policy.deny_out) {
    if (!matches_domain(d, name)) continue;
    if (!d.port) {
      rules.refuse = true;
      return rules;
    }
    rules.deny_ports.push_back(*d.port);
  }
  for (const auto& d : policy.allow_out) {
    if (matches_domain(d, name)) rules.allow_ports.push_back(d.port);
  }
  if (policy.mode == EgressMode::kNone && rules.allow_ports.empty()) rules.refuse = true;
  return rules;
}

}  // namespace airlock::net
