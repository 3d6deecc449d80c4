// DNS wire format: hostile queries (from sandboxes) and untrusted responses (from the upstream) are
// rejected whole, names are bounded (labels, length, compression), and what we build parses back.
#include "network/dns_message.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "network/egress_policy.h"

namespace airlock::net::dns {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
Bytes header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
  Bytes b;
  for (uint16_t v : {id, flags, qd, an, ns, ar}) put16(b, v);
  return b;
}
// "www.example.com" -> 3www7example3com0
Bytes wire(const std::string& dotted) {
  Bytes b;
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    b.push_back(static_cast<uint8_t>(dot - start));
    b.insert(b.end(), dotted.begin() + static_cast<long>(start), dotted.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  b.push_back(0);
  return b;
}
void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }
void question(Bytes& b, const std::string& name, uint16_t type = type::kA, uint16_t klass = kClassIn) {
  append(b, wire(name));
  put16(b, type);
  put16(b, klass);
}
void opt(Bytes& b, uint16_t payload, bool dnssec_ok, const Bytes& options = {}) {
  b.push_back(0);
  put16(b, type::kOpt);
  put16(b, payload);
  put32(b, dnssec_ok ? 0x8000 : 0);
  put16(b, static_cast<uint16_t>(options.size()));
  append(b, options);
}
// A record whose owner is the compression pointer `owner` (e.g. 0xc00c: the question's name).
void record_ptr(Bytes& b, uint16_t owner, uint16_t type, uint32_t ttl, const Bytes& rdata) {
  put16(b, owner);
  put16(b, type);
  put16(b, kClassIn);
  put32(b, ttl);
  put16(b, static_cast<uint16_t>(rdata.size()));
  append(b, rdata);
}
void record(Bytes& b, const std::string& owner, uint16_t type, uint32_t ttl, const Bytes& rdata) {
  append(b, wire(owner));
  put16(b, type);
  put16(b, kClassIn);
  put32(b, ttl);
  put16(b, static_cast<uint16_t>(rdata.size()));
  append(b, rdata);
}

Bytes simple_query(const std::string& name = "www.Example.com") {
  Bytes b = header(0x1234, 0x0100, 1, 0, 0, 0);
  question(b, name);
  return b;
}

std::string error_of(const Bytes& b) {
  auto q = parse_query(b);
  return q.ok() ? "" : q.error().message;
}
std::string response_error(const Bytes& b) {
  auto r = parse_response(b);
  return r.ok() ? "" : r.error().message;
}

TEST(DnsQuery, ParsesOneQuestion) {
  auto q = parse_query(simple_query());
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->header.id, 0x1234);
  EXPECT_TRUE(q->header.rd());
  EXPECT_EQ(q->question.text(), "www.Example.com");
  EXPECT_EQ(q->question.name, wire("www.Example.com"));
  EXPECT_EQ(q->question.type, type::kA);
  EXPECT_EQ(q->question.klass, kClassIn);
  EXPECT_FALSE(q->edns);
}

TEST(DnsQuery, AcceptsEdnsOptInAdditional) {
  Bytes b = header(7, 0x0100, 1, 0, 0, 1);
  question(b, "example.com", type::kAaaa);
  opt(b, 4096, true, {0x00, 0x0a, 0x00, 0x02, 0xab, 0xcd});  // one cookie-like option
  auto q = parse_query(b);
  ASSERT_TRUE(q.ok()) << q.error().message;
  ASSERT_TRUE(q->edns);
  EXPECT_EQ(q->edns->udp_payload, 4096);
  EXPECT_TRUE(q->edns->dnssec_ok);
}

TEST(DnsQuery, RejectsEveryTruncation) {
  Bytes full = header(7, 0x0100, 1, 0, 0, 1);
  question(full, "example.com");
  opt(full, 1232, false, {0x00, 0x0a, 0x00, 0x02, 0xab, 0xcd});
  ASSERT_TRUE(parse_query(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    Bytes cut(full.begin(), full.begin() + static_cast<long>(n));
    EXPECT_FALSE(parse_query(cut).ok()) << "accepted the first " << n << " bytes";
  }
}

TEST(DnsQuery, RejectsTrailingGarbage) {
  Bytes b = simple_query();
  b.push_back(0);
  EXPECT_EQ(error_of(b), "dns: trailing bytes after the query");
}

TEST(DnsQuery, RejectsZeroOrTwoQuestions) {
  Bytes zero = header(1, 0, 0, 0, 0, 0);
  EXPECT_EQ(error_of(zero), "dns: query must have exactly one question");
  Bytes two = header(1, 0, 2, 0, 0, 0);
  question(two, "a.example.com");
  question(two, "b.example.com");
  EXPECT_EQ(error_of(two), "dns: query must have exactly one question");
}

TEST(DnsQuery, RejectsResponsesAndRecordsAQueryCannotHave) {
  Bytes qr = simple_query();
  qr[2] |= 0x80;
  EXPECT_EQ(error_of(qr), "dns: query has QR set");
  Bytes answer = header(1, 0, 1, 1, 0, 0);
  question(answer, "example.com");
  record_ptr(answer, 0xc00c, type::kA, 60, {1, 2, 3, 4});
  EXPECT_EQ(error_of(answer), "dns: query has answer or authority records");
  Bytes not_opt = header(1, 0, 1, 0, 0, 1);
  question(not_opt, "example.com");
  record(not_opt, "x.example.com", type::kTxt, 0, {1, 'x'});
  EXPECT_EQ(error_of(not_opt), "dns: additional record of a query is not OPT");
  Bytes two_opt = header(1, 0, 1, 0, 0, 2);
  question(two_opt, "example.com");
  opt(two_opt, 512, false);
  opt(two_opt, 512, false);
  EXPECT_EQ(error_of(two_opt), "dns: query has more than one additional record");
}

TEST(DnsQuery, RejectsOptOptionOverrunningItsRecord) {
  Bytes b = header(1, 0, 1, 0, 0, 1);
  question(b, "example.com");
  opt(b, 1232, false, {0x00, 0x0a, 0x00, 0x09, 0xab});  // says 9 bytes, has 1
  EXPECT_EQ(error_of(b), "dns: EDNS option runs past the record");
}

TEST(DnsQuery, RejectsLabelLongerThan63) {
  // A length byte of 64 is the reserved label type 01 (RFC 6891 dropped extended labels).
  Bytes b = header(1, 0, 1, 0, 0, 0);
  b.push_back(64);
  b.insert(b.end(), 64, 'a');
  append(b, wire("com"));
  put16(b, type::kA);
  put16(b, kClassIn);
  EXPECT_EQ(error_of(b), "dns: label type is not supported");
  // 63 is fine.
  EXPECT_TRUE(parse_query(simple_query(std::string(63, 'a') + ".com")).ok());
}

TEST(DnsQuery, NameLengthIsBoundedAt255Bytes) {
  std::string l63(63, 'a');
  // 3 * (1 + 63) + (1 + 61) + root = 255 bytes on the wire: the longest name.
  std::string longest = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  ASSERT_EQ(wire(longest).size(), 255u);
  EXPECT_TRUE(parse_query(simple_query(longest)).ok());
  std::string too_long = longest + "b";
  ASSERT_EQ(wire(too_long).size(), 256u);
  EXPECT_EQ(error_of(simple_query(too_long)), "dns: name longer than 255 bytes");
  // Many labels, far over the limit, are stopped as well.
  std::string huge;
  for (int i = 0; i < 200; ++i) huge += "a.";
  huge += "com";
  EXPECT_EQ(error_of(simple_query(huge)), "dns: name longer than 255 bytes");
}

TEST(DnsQuery, RejectsCompressionPointersInTheQuestion) {
  // The question starts right after the header: any pointer goes into the header or forward.
  Bytes into_header = header(1, 0, 1, 0, 0, 0);
  put16(into_header, 0xc000);
  put16(into_header, type::kA);
  put16(into_header, kClassIn);
  EXPECT_EQ(error_of(into_header), "dns: compression pointer into the header");
  Bytes to_itself = header(1, 0, 1, 0, 0, 0);
  put16(to_itself, 0xc00c);
  put16(to_itself, type::kA);
  put16(to_itself, kClassIn);
  EXPECT_EQ(error_of(to_itself), "dns: compression pointer does not point backwards");
  Bytes forward = header(1, 0, 1, 0, 0, 0);
  forward.push_back(1);
  forward.push_back('a');
  put16(forward, 0xc012);  // -> just after itself
  forward.push_back(0);
  put16(forward, type::kA);
  put16(forward, kClassIn);
  EXPECT_EQ(error_of(forward), "dns: compression pointer does not point backwards");
}

TEST(DnsQuery, TextEscapesBytesThatAreNotHostnameCharacters) {
  Bytes b = header(1, 0, 1, 0, 0, 0);
  b.push_back(3);
  b.insert(b.end(), {'a', '.', 'b'});
  b.push_back(2);
  b.insert(b.end(), {0x00, '\\'});
  append(b, wire("example.com"));
  put16(b, type::kA);
  put16(b, kClassIn);
  auto q = parse_query(b);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->question.text(), "a\\.b.\\000\\\\.example.com");
  // So a label with a dot inside can never pass for the allowed name "b.example.com" etc.
  EXPECT_EQ(normalize_domain(q->question.text()), "");
  Question root{{0}, type::kNs, kClassIn};
  EXPECT_EQ(root.text(), ".");
}

// --- responses -------------------------------------------------------------------------------------

Bytes response_header(uint16_t id, uint16_t an, uint16_t ns = 0, uint16_t ar = 0) {
  return header(id, 0x8180, 1, an, ns, ar);
}

TEST(DnsResponse, TakesAddressesOfTheNameAndItsCnameChainOnly) {
  Bytes b = response_header(9, 5);
  question(b, "www.example.com");
  record_ptr(b, 0xc00c, type::kCname, 300, wire("edge.cdn.test"));
  record(b, "edge.cdn.test", type::kA, 120, {192, 0, 2, 1});
  record(b, "EDGE.cdn.test", type::kAaaa, 600, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  record(b, "edge.cdn.test", type::kA, 90, {192, 0, 2, 1});   // duplicate address
  record(b, "unrelated.test", type::kA, 5, {203, 0, 113, 9});  // not on the chain: not admitted
  auto r = parse_response(b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->header.id, 9);
  ASSERT_EQ(r->addresses.size(), 2u);
  EXPECT_EQ(r->addresses[0].str(), "192.0.2.1");
  EXPECT_EQ(r->addresses[1].str(), "2001:db8::1");
  ASSERT_TRUE(r->min_ttl);
  EXPECT_EQ(*r->min_ttl, 90u);
}

TEST(DnsResponse, CompressedOwnerNamesAndTopBitTtlCountAsZero) {
  Bytes b = response_header(9, 1);
  question(b, "example.com");
  record_ptr(b, 0xc00c, type::kA, 0x80000001u, {198, 51, 100, 7});
  auto r = parse_response(b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->addresses.size(), 1u);
  EXPECT_EQ(r->addresses[0].str(), "198.51.100.7");
  EXPECT_EQ(*r->min_ttl, 0u);
}

TEST(DnsResponse, CnameLoopEndsTheChain) {
  Bytes b = response_header(9, 3);
  question(b, "a.test");
  record(b, "a.test", type::kCname, 60, wire("b.test"));
  record(b, "b.test", type::kCname, 60, wire("a.test"));
  record(b, "b.test", type::kA, 60, {192, 0, 2, 2});
  auto r = parse_response(b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->addresses.size(), 1u);
  EXPECT_EQ(r->addresses[0].str(), "192.0.2.2");
}

TEST(DnsResponse, NoAddressesNoTtl) {
  Bytes b = header(9, 0x8183, 1, 0, 0, 0);  // NXDOMAIN
  question(b, "nope.example.com");
  auto r = parse_response(b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->header.rcode(), 3);
  EXPECT_TRUE(r->addresses.empty());
  EXPECT_FALSE(r->min_ttl);
}

TEST(DnsResponse, RejectsCountsLargerThanThePacket) {
  Bytes b = response_header(9, 65535);
  question(b, "example.com");
  record_ptr(b, 0xc00c, type::kA, 60, {1, 2, 3, 4});
  EXPECT_EQ(response_error(b), "dns: record counts exceed the message size");
  Bytes b2 = header(9, 0x8180, 1, 1, 65535, 65535);
  question(b2, "example.com");
  EXPECT_EQ(response_error(b2), "dns: record counts exceed the message size");
}

TEST(DnsResponse, RejectsMalformedRecords) {
  Bytes short_a = response_header(9, 1);
  question(short_a, "example.com");
  record_ptr(short_a, 0xc00c, type::kA, 60, {1, 2, 3});
  EXPECT_EQ(response_error(short_a), "dns: A record is not 4 bytes");
  Bytes long_aaaa = response_header(9, 1);
  question(long_aaaa, "example.com");
  record_ptr(long_aaaa, 0xc00c, type::kAaaa, 60, Bytes(17, 1));
  EXPECT_EQ(response_error(long_aaaa), "dns: AAAA record is not 16 bytes");
  Bytes rdata_overrun = response_header(9, 1);
  question(rdata_overrun, "example.com");
  record_ptr(rdata_overrun, 0xc00c, type::kA, 60, {1, 2, 3, 4});
  rdata_overrun.pop_back();
  EXPECT_EQ(response_error(rdata_overrun), "dns: record data runs past the end of the message");
  Bytes cname_extra = response_header(9, 1);
  question(cname_extra, "example.com");
  Bytes target = wire("x.test");
  target.push_back(0);
  record_ptr(cname_extra, 0xc00c, type::kCname, 60, target);
  EXPECT_EQ(response_error(cname_extra), "dns: CNAME data is not exactly one name");
  Bytes trailing = response_header(9, 1);
  question(trailing, "example.com");
  record_ptr(trailing, 0xc00c, type::kA, 60, {1, 2, 3, 4});
  trailing.push_back(0);
  EXPECT_EQ(response_error(trailing), "dns: trailing bytes after the response");
  Bytes not_response = simple_query();
  EXPECT_EQ(response_error(not_response), "dns: response has QR clear");
}

TEST(DnsResponse, RejectsPointerToItself) {
  Bytes b = response_header(9, 1);
  question(b, "example.com");
  uint16_t here = static_cast<uint16_t>(b.size());
  record_ptr(b, static_cast<uint16_t>(0xc000 | here), type::kA, 60, {1, 2, 3, 4});
  EXPECT_EQ(response_error(b), "dns: compression pointer does not point backwards");
}

TEST(DnsResponse, RejectsCompressionLoop) {
  // The first answer's name points at the second's, which points back at the first: every loop
  // needs one pointer that goes forward (or to the same run), which is refused.
  Bytes b = response_header(9, 2);
  question(b, "example.com");
  uint16_t first = static_cast<uint16_t>(b.size());
  uint16_t second = static_cast<uint16_t>(first + 2 + 10 + 4);
  record_ptr(b, static_cast<uint16_t>(0xc000 | second), type::kA, 60, {1, 2, 3, 4});
  record_ptr(b, static_cast<uint16_t>(0xc000 | first), type::kA, 60, {1, 2, 3, 4});
  EXPECT_EQ(response_error(b), "dns: compression pointer does not point backwards");
}

// A response whose first answer is an opaque record holding `pointers` chained pointers ending at a
// root label, and whose second answer's name is a pointer to the last of them.
Bytes pointer_chain(int pointers) {
  Bytes rdata{0};  // the root label
  Bytes b = response_header(9, 2);
  question(b, "example.com");
  size_t rdata_at = b.size() + 2 + 10;
  for (int i = 0; i < pointers; ++i) {
    size_t previous = i == 0 ? rdata_at : rdata_at + 1 + 2 * static_cast<size_t>(i - 1);
    put16(rdata, static_cast<uint16_t>(0xc000 | previous));
  }
  record_ptr(b, 0xc00c, 99, 60, rdata);  // an unknown type: opaque data
  uint16_t last = static_cast<uint16_t>(rdata_at + 1 + 2 * static_cast<size_t>(pointers - 1));
  record_ptr(b, static_cast<uint16_t>(0xc000 | last), 99, 60, {});
  return b;
}

TEST(DnsResponse, CompressionJumpsAreCapped) {
  EXPECT_EQ(response_error(pointer_chain(kMaxCompressionJumps - 1)), "");  // + the owner's pointer
  EXPECT_EQ(response_error(pointer_chain(kMaxCompressionJumps)), "dns: too many compression pointers");
}

TEST(DnsResponse, SurvivesRandomCorruption) {
  Bytes b = response_header(9, 2, 0, 1);
  question(b, "www.example.com");
  record_ptr(b, 0xc00c, type::kCname, 300, {4, 'e', 'd', 'g', 'e', 0xc0, 0x10});
  record_ptr(b, 0xc02d, type::kA, 120, {192, 0, 2, 1});
  opt(b, 1232, false);
  ASSERT_TRUE(parse_response(b).ok()) << response_error(b);
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    Bytes m = b;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) m[rng() % m.size()] = static_cast<uint8_t>(rng());
    if (rng() % 4 == 0) m.resize(rng() % m.size());
    (void)parse_response(m);
    (void)parse_query(m);
  }
}

// --- builders --------------------------------------------------------------------------------------

TEST(DnsBuild, ReplyEchoesTheQuestionAndParsesAsAResponse) {
  Bytes b = header(0xbeef, 0x0110, 1, 0, 0, 1);  // RD + CD
  question(b, "Secret.Evil.test", type::kTxt);
  opt(b, 4096, true);
  auto q = parse_query(b);
  ASSERT_TRUE(q.ok());
  for (Rcode rc : {Rcode::kNxDomain, Rcode::kRefused, Rcode::kServFail}) {
    Bytes reply = build_reply(*q, rc);
    auto r = parse_response(reply);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->header.id, 0xbeef);
    EXPECT_EQ(r->header.rcode(), static_cast<uint8_t>(rc));
    EXPECT_TRUE(r->header.rd());
    EXPECT_TRUE(r->header.flags & 0x0010);  // CD echoed
    EXPECT_FALSE(r->header.tc());
    EXPECT_EQ(r->header.arcount, 1);  // OPT, as the query had one
    EXPECT_EQ(r->question.name, q->question.name);
    EXPECT_EQ(r->question.type, type::kTxt);
    EXPECT_TRUE(r->addresses.empty());
  }
  auto plain = parse_query(simple_query());
  ASSERT_TRUE(plain.ok());
  auto tc = parse_response(build_reply(*plain, Rcode::kNoError, true));
  ASSERT_TRUE(tc.ok());
  EXPECT_TRUE(tc->header.tc());
  EXPECT_EQ(tc->header.arcount, 0);
}

TEST(DnsBuild, QueryRoundTrips) {
  Question question{wire("api.GitHub.com"), type::kAaaa, kClassIn};
  auto plain = parse_query(build_query(77, 0x0100 | 0x8000 | 0x0400, question, std::nullopt));
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_EQ(plain->header.id, 77);
  EXPECT_EQ(plain->header.flags, 0x0100);  // only RD/AD/CD are carried over
  EXPECT_EQ(plain->question.name, question.name);
  EXPECT_EQ(plain->question.type, type::kAaaa);
  EXPECT_FALSE(plain->edns);
  auto with_edns = parse_query(build_query(78, 0, question, Edns{512, 0, true}));
  ASSERT_TRUE(with_edns.ok());
  ASSERT_TRUE(with_edns->edns);
  EXPECT_EQ(with_edns->edns->udp_payload, kOurUdpSize);
  EXPECT_TRUE(with_edns->edns->dnssec_ok);
}

TEST(DnsBuild, HeaderReplyHasNoSections) {
  Header h{0x4242, 0x0100, 2, 0, 0, 0};
  Bytes reply = build_header_reply(h, Rcode::kFormErr);
  ASSERT_EQ(reply.size(), kHeaderSize);
  auto parsed = parse_header(reply);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->id, 0x4242);
  EXPECT_TRUE(parsed->qr());
  EXPECT_EQ(parsed->rcode(), 1);
  EXPECT_EQ(parsed->qdcount, 0);
}

TEST(DnsBuild, NamesCompareCaseInsensitivelyAndIdsAreSet) {
  EXPECT_TRUE(same_name(wire("WWW.example.COM"), wire("www.EXAMPLE.com")));
  EXPECT_FALSE(same_name(wire("www.example.com"), wire("www.example.co")));
  EXPECT_FALSE(same_name(wire("a.bc"), wire("ab.c")));
  Bytes q = simple_query();
  set_id(q, 0xa1b2);
  EXPECT_EQ(parse_query(q)->header.id, 0xa1b2);
}

}  // namespace
}  // namespace airlock::net::dns
