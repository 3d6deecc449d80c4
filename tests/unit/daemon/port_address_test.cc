// The port proxy's parsing, with hostile inputs: which sandbox port a path or Host names, where the
// token is, and the head forwarded to the sandbox (credentials stripped, no header injection).
#include "daemon/port_address.h"

#include <gtest/gtest.h>

namespace airlock::daemon {
namespace {

constexpr const char* kId = "sb-0123456789abcdef";

PortAddress path_ok(std::string_view target) {
  auto m = match_port_path(target);
  EXPECT_TRUE(std::holds_alternative<PortAddress>(m)) << target;
  return std::holds_alternative<PortAddress>(m) ? std::get<PortAddress>(m) : PortAddress{};
}

bool path_refused(std::string_view target) { return std::holds_alternative<PortAddressError>(match_port_path(target)); }

TEST(PortAddress, PortNumbers) {
  EXPECT_EQ(parse_port_number("1"), 1);
  EXPECT_EQ(parse_port_number("65535"), 65535);
  for (const char* bad : {"", "0", "65536", "99999", "123456", "08080", "-1", "+80", "8o", " 80", "80 ", "0x50"}) {
    EXPECT_FALSE(parse_port_number(bad)) << bad;
  }
}

TEST(PortAddress, PathBased) {
  auto a = path_ok(std::string("/p/") + kId + "/8080/api/v1?x=1");
  EXPECT_EQ(a.sandbox_id, kId);
  EXPECT_EQ(a.port, 8080);
  EXPECT_EQ(a.target, "/api/v1?x=1");
  EXPECT_EQ(a.prefix, std::string("/p/") + kId + "/8080");
  EXPECT_FALSE(a.host_based);
  EXPECT_EQ(path_ok(std::string("/p/") + kId + "/8080").target, "/");
  EXPECT_EQ(path_ok(std::string("/p/") + kId + "/8080?a=b").target, "/?a=b");
  EXPECT_EQ(path_ok(std::string("/p/") + kId + "/8080/").target, "/");
  // What follows the prefix is the sandbox's business (its own server resolves `..`), but it can
  // never change which sandbox or port the request goes to.
  auto dots = path_ok(std::string("/p/") + kId + "/8080/../../p/sb-ffffffffffffffff/22");
  EXPECT_EQ(dots.sandbox_id, kId);
  EXPECT_EQ(dots.port, 8080);
}

TEST(PortAddress, PathBasedRefusals) {
  EXPECT_TRUE(std::holds_alternative<std::monostate>(match_port_path("/v1/sandboxes")));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(match_port_path("/p")));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(match_port_path("/px/a/1")));
  for (std::string bad : {std::string("/p/"), std::string("/p/") + kId, std::string("/p/") + kId + "/",
                          std::string("/p/../8080/"), std::string("/p/sb-SHOUTING00000000/80/"),
                          std::string("/p/sb-0123456789abcde/80/"), std::string("/p/sb-0123456789abcdef0/80/"),
                          std::string("/p/") + kId + "/0/", std::string("/p/") + kId + "/65536/",
                          std::string("/p/") + kId + "/80x/", std::string("/p/") + kId + "/%38%30/",
                          std::string("/p/%73b-0123456789abcdef/80/")}) {
    EXPECT_TRUE(path_refused(bad)) << bad;
  }
}

TEST(PortAddress, HostBased) {
  std::string host = std::string("8080-") + kId + ".sbx.example.com";
  auto m = match_port_host(host, "sbx.example.com", "/x?y");
  ASSERT_TRUE(std::holds_alternative<PortAddress>(m));
  auto a = std::get<PortAddress>(m);
  EXPECT_EQ(a.sandbox_id, kId);
  EXPECT_EQ(a.port, 8080);
  EXPECT_EQ(a.target, "/x?y");
  EXPECT_TRUE(a.host_based);
  EXPECT_TRUE(std::holds_alternative<PortAddress>(match_port_host(host + ":7070", "sbx.example.com", "/")));
  EXPECT_TRUE(std::holds_alternative<PortAddress>(match_port_host(host + ".", "sbx.example.com", "/")));
  EXPECT_TRUE(std::holds_alternative<PortAddress>(match_port_host("8080-SB-0123456789ABCDEF.SBX.Example.COM", "sbx.example.com", "/")));
  // Not ours: the API serves it.
  for (std::string other : {std::string("127.0.0.1:7070"), std::string("sbx.example.com"), std::string("example.com"),
                            host + ".evil.com", std::string("8080-") + kId + ".xsbx.example.com",
                            std::string("[::1]:7070"), host + ":", host + ":x", std::string(400, 'a') + ".sbx.example.com"}) {
    EXPECT_TRUE(std::holds_alternative<std::monostate>(match_port_host(other, "sbx.example.com", "/"))) << other;
  }
  EXPECT_TRUE(std::holds_alternative<std::monostate>(match_port_host(host, "", "/")));  // no domain configured
  // Ours but malformed: 404.
  for (std::string bad : {std::string("x.sbx.example.com"), std::string("8080.sbx.example.com"),
                          std::string("0-") + kId + ".sbx.example.com", std::string("8080-sb-x.sbx.example.com"),
                          std::string("8080-") + kId + ".a.sbx.example.com"}) {
    EXPECT_TRUE(std::holds_alternative<PortAddressError>(match_port_host(bad, "sbx.example.com", "/"))) << bad;
  }
}

HttpRequest request(std::vector<HttpHeader> headers, std::string target = "/") {
  HttpRequest r;
  r.method = "GET";
  r.target = std::move(target);
  r.headers = std::move(headers);
  r.peer = "192.0.2.7";
  return r;
}

TEST(PortAddress, TokenSources) {
  auto header = request({{"x-airlock-port-token", " apt_a "}, {"Cookie", "airlock_port_token=apt_c"}}, "/?airlock_token=apt_q");
  EXPECT_EQ(find_port_token(header, header.target)->token, "apt_a");
  auto query = request({{"Cookie", "airlock_port_token=apt_c"}}, "/x?a=1&airlock_token=apt_q%5F&b");
  auto q = find_port_token(query, query.target);
  EXPECT_EQ(q->token, "apt_q_");
  EXPECT_TRUE(q->from_query);
  auto cookie = request({{"Cookie", "a=1; airlock_port_token=apt_c; b=2"}});
  EXPECT_EQ(find_port_token(cookie, cookie.target)->token, "apt_c");
  EXPECT_FALSE(find_port_token(request({{"Cookie", "xairlock_port_token=apt_c"}}), "/?xairlock_token=1"));
  EXPECT_FALSE(find_port_token(request({{"Authorization", "Bearer alk_x"}}), "/"));
}

TEST(PortAddress, StripTokenQuery) {
  EXPECT_EQ(strip_token_query("/a?airlock_token=x"), "/a");
  EXPECT_EQ(strip_token_query("/a?x=1&airlock_token=x&y=2"), "/a?x=1&y=2");
  EXPECT_EQ(strip_token_query("/a?airlock_token=x&airlock_token=y"), "/a");
  EXPECT_EQ(strip_token_query("/a?airlock_tokens=x"), "/a?airlock_tokens=x");
  EXPECT_EQ(strip_token_query("/a"), "/a");
}

TEST(PortAddress, ForwardedHeadDropsCredentialsAndSetsForwarding) {
  PortAddress a = std::get<PortAddress>(match_port_path(std::string("/p/") + kId + "/80/app?airlock_token=apt_x&k=v"));
  auto head = request({{"Host", "daemon:7070"},
                       {"X-Airlock-Port-Token", "apt_x"},
                       {"Authorization", "Bearer alk_secretkey"},
                       {"Cookie", "airlock_port_token=apt_x; session=s1"},
                       {"X-Forwarded-For", "6.6.6.6"},
                       {"Connection", "keep-alive"},
                       {"Accept", "*/*"}},
                      "/ignored");
  auto out = forwarded_head(head, a);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->substr(0, out->find("\r\n")), "GET /app?k=v HTTP/1.1");
  EXPECT_EQ(out->find("apt_x"), std::string::npos);
  EXPECT_EQ(out->find("alk_"), std::string::npos);
  EXPECT_EQ(out->find("6.6.6.6"), std::string::npos);
  EXPECT_EQ(out->find("keep-alive"), std::string::npos);
  EXPECT_NE(out->find("Cookie: session=s1\r\n"), std::string::npos);
  EXPECT_NE(out->find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(out->find("X-Forwarded-For: 192.0.2.7\r\n"), std::string::npos);
  EXPECT_NE(out->find("X-Forwarded-Proto: http\r\n"), std::string::npos);
  EXPECT_NE(out->find("X-Forwarded-Host: daemon:7070\r\n"), std::string::npos);
  EXPECT_NE(out->find("Accept: */*\r\n"), std::string::npos);
  EXPECT_EQ(out->substr(out->size() - 4), "\r\n\r\n");
  // An app's own Authorization passes.
  auto basic = forwarded_head(request({{"Authorization", "Basic dTpw"}}), a);
  EXPECT_NE(basic->find("Authorization: Basic dTpw\r\n"), std::string::npos);
}

TEST(PortAddress, ForwardedHeadKeepsUpgrades) {
  PortAddress a = std::get<PortAddress>(match_port_path(std::string("/p/") + kId + "/80/ws"));
  auto out = forwarded_head(request({{"Connection", "keep-alive, Upgrade"}, {"Upgrade", "websocket"}}), a);
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("Connection: keep-alive, Upgrade\r\n"), std::string::npos);
  EXPECT_EQ(out->find("Connection: close"), std::string::npos);
}

TEST(PortAddress, ForwardedHeadRefusesInjection) {
  PortAddress a = std::get<PortAddress>(match_port_path(std::string("/p/") + kId + "/80/"));
  EXPECT_FALSE(forwarded_head(request({{"X-A", "1\r\nX-Injected: 1"}}), a));
  EXPECT_FALSE(forwarded_head(request({{"X-A\r\nB", "1"}}), a));
  EXPECT_FALSE(forwarded_head(request({{"X-A", std::string("a\0b", 3)}}), a));
  PortAddress bad_target = a;
  bad_target.target = "/ HTTP/1.1\r\nX: y";
  EXPECT_FALSE(forwarded_head(request({}), bad_target));
}

TEST(PortAddress, CookieScope) {
  PortAddress a = std::get<PortAddress>(match_port_path(std::string("/p/") + kId + "/80/"));
  EXPECT_EQ(port_token_cookie(a, "apt_x", false),
            std::string("airlock_port_token=apt_x; Path=/p/") + kId + "/80/; HttpOnly; SameSite=Lax");
  auto h = std::get<PortAddress>(match_port_host(std::string("80-") + kId + ".d.test", "d.test", "/"));
  EXPECT_EQ(port_token_cookie(h, "apt_x", true), "airlock_port_token=apt_x; Path=/; HttpOnly; SameSite=Lax; Secure");
}

}  // namespace
}  // namespace airlock::daemon
