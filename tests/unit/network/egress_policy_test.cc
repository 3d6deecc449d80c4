#include "network/egress_policy.h"

#include <gtest/gtest.h>

namespace airlock::net {
namespace {

Destination parse_ok(std::string_view text) {
  auto d = parse_destination(text);
  EXPECT_TRUE(d.ok()) << text << ": " << (d.ok() ? "" : d.error().message);
  return d.ok() ? d.value() : Destination{};
}

TEST(EgressPolicyParse, AddressesNetworksAndPortsComeOutCanonical) {
  struct Case {
    const char* in;
    const char* out;
  };
  for (auto [in, out] : {Case{"10.1.2.3", "10.1.2.3"}, Case{"10.1.2.3/8", "10.0.0.0/8"},
                         Case{"203.0.113.7:443", "203.0.113.7:443"}, Case{"198.51.100.0/24:25", "198.51.100.0/24:25"},
                         Case{"2001:db8::1", "2001:db8::1"}, Case{"2001:DB8::/32", "2001:db8::/32"},
                         Case{"[2001:db8::1]:53", "[2001:db8::1]:53"}, Case{"GitHub.com.", "github.com"},
                         Case{"*.PyPI.org", "*.pypi.org"}, Case{"pypi.org:443", "pypi.org:443"},
                         Case{"*.pythonhosted.org:443", "*.pythonhosted.org:443"}, Case{"0.0.0.0/0", "0.0.0.0/0"}}) {
    Destination d = parse_ok(in);
    EXPECT_EQ(d.str(), out) << in;
    EXPECT_TRUE(parse_destination(d.str()).ok()) << d.str();
  }
  EXPECT_EQ(parse_ok("10.1.2.3").prefix_len, 32);
  EXPECT_EQ(parse_ok("github.com").kind, Destination::Kind::kDomain);
  EXPECT_EQ(*parse_ok("pypi.org:443").port, 443);
}

TEST(EgressPolicyParse, MalformedEntriesAreRefusedWithTheReason) {
  for (const char* bad : {"", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/x", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:",
                          "[2001:db8::1", "[2001:db8::1]443", "localhost", "bad name.com", "a..b", "-a.com", "a-.com",
                          "*.com.", "*", "*.", "ex ample.com", "999.1.1.1", "1.2.3", "evil.test/8", "a.b:port",
                          "\xff.com", "*.*.x.com", "x.com:1:2"}) {
    auto d = parse_destination(bad);
    EXPECT_FALSE(d.ok()) << "accepted: " << bad << " as " << (d.ok() ? d->str() : "");
  }
  std::string long_name(300, 'a');
  EXPECT_FALSE(parse_destination(long_name + ".com").ok());
  std::string long_label(64, 'a');
  EXPECT_FALSE(parse_destination(long_label + ".com").ok());
}

TEST(EgressPolicyDomains, WildcardsMatchStrictlyBelowTheirDomain) {
  Destination wild = parse_ok("*.pypi.test");
  EXPECT_TRUE(matches_domain(wild, "files.pypi.test"));
  EXPECT_TRUE(matches_domain(wild, "a.b.pypi.test"));
  EXPECT_FALSE(matches_domain(wild, "pypi.test"));
  EXPECT_FALSE(matches_domain(wild, "evilpypi.test"));
  EXPECT_FALSE(matches_domain(wild, "pypi.test.evil.test"));
  Destination exact = parse_ok("pypi.test");
  EXPECT_TRUE(matches_domain(exact, "pypi.test"));
  EXPECT_FALSE(matches_domain(exact, "files.pypi.test"));
  EXPECT_FALSE(matches_domain(parse_ok("10.0.0.0/8"), "pypi.test"));
  EXPECT_EQ(normalize_domain("PyPI.Test."), "pypi.test");
  EXPECT_EQ(normalize_domain("bad..name"), "");
}

TEST(EgressPolicyDomains, NamesAreJudgedByMode) {
  EgressPolicy allowlist;
  allowlist.allow_out = {parse_ok("pypi.test:443"), parse_ok("*.files.test")};
  allowlist.deny_out = {parse_ok("secret.files.test"), parse_ok("mail.files.test:25")};
  EXPECT_TRUE(rules_for_name(allowlist, "evil.test").refuse);               // nothing admits it
  EXPECT_TRUE(rules_for_name(allowlist, "secret.files.test").refuse);       // a port-less deny wins
  auto pypi = rules_for_name(allowlist, "pypi.test");
  EXPECT_FALSE(pypi.refuse);
  ASSERT_EQ(pypi.allow_ports.size(), 1u);
  EXPECT_EQ(*pypi.allow_ports[0], 443);
  auto mail = rules_for_name(allowlist, "mail.files.test");
  EXPECT_FALSE(mail.refuse);
  ASSERT_EQ(mail.deny_ports.size(), 1u);
  EXPECT_EQ(mail.deny_ports[0], 25);
  EXPECT_FALSE(mail.allow_ports[0].has_value());  // every other port

  EgressPolicy internet;
  internet.mode = EgressMode::kAllow;
  internet.deny_out = {parse_ok("*.evil.test")};
  EXPECT_FALSE(rules_for_name(internet, "anything.test").refuse);
  EXPECT_TRUE(rules_for_name(internet, "x.evil.test").refuse);
  EXPECT_TRUE(internet.has_interface());
  EXPECT_TRUE(internet.has_domain_rules());
  EXPECT_FALSE(EgressPolicy{}.has_interface());
  EXPECT_TRUE(allowlist.has_interface());
}

}  // namespace
}  // namespace airlock::net
