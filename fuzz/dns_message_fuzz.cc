// libFuzzer target for the DNS wire format (src/network/dns_message.h): queries come from hostile
// sandboxes, responses from an upstream we do not trust. Build and run: fuzz/README.md.
//
// Every input goes to parse_header, to parse_query with QR cleared and to parse_response with QR set
// (so both parsers see every input). Beyond "no crash, no read outside the input" (ASan) it checks:
//   - an accepted name is well formed, checked by a second walk: labels 1..63 bytes, ending in the
//     root label, at most 255 bytes;
//   - an accepted query's question lies uncompressed right after the header, byte for byte;
//   - what we build from an accepted query parses back: build_query as a query with the same
//     question, build_reply (each rcode, with and without TC) as a response echoing id and question;
//   - an accepted response's addresses are A (4 bytes) or AAAA (16), no more than its answer count,
//     without duplicates, and min_ttl is set exactly when there are addresses and is below 2^31.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "network/dns_message.h"

namespace {

using namespace airlock::net::dns;

void require(bool ok, const char* what) {
  if (ok) return;
  fprintf(stderr, "dns message fuzz: invariant broken: %s\n", what);
  abort();
}

void check_name(const std::vector<uint8_t>& name) {
  require(!name.empty() && name.size() <= kMaxNameLength, "name length");
  size_t at = 0;
  while (name[at] != 0) {
    size_t len = name[at];
    require(len >= 1 && len <= kMaxLabelLength, "label length");
    at += 1 + len;
    require(at < name.size(), "label runs past the name");
  }
  require(at + 1 == name.size(), "bytes after the root label");
  (void)Question{name, 0, 0}.text();
}

void check_query(const std::vector<uint8_t>& input, const Query& q) {
  check_name(q.question.name);
  const std::vector<uint8_t>& n = q.question.name;
  require(input.size() >= kHeaderSize + n.size() + 4, "question beyond the input");
  require(memcmp(input.data() + kHeaderSize, n.data(), n.size()) == 0, "question name differs from the input");
  require(q.question.type == ((input[kHeaderSize + n.size()] << 8) | input[kHeaderSize + n.size() + 1]),
          "question type differs from the input");

  auto again = parse_query(build_query(0x4242, q.header.flags, q.question, q.edns));
  require(again.ok(), "built query does not parse");
  require(again->question.name == n && again->question.type == q.question.type &&
              again->question.klass == q.question.klass,
          "built query changed the question");
  require(again->edns.has_value() == q.edns.has_value(), "built query changed EDNS");

  for (Rcode rc : {Rcode::kFormErr, Rcode::kServFail, Rcode::kNxDomain, Rcode::kNotImp, Rcode::kRefused}) {
    for (bool tc : {false, true}) {
      auto reply = parse_response(build_reply(q, rc, tc));
      require(reply.ok(), "built reply does not parse");
      require(reply->header.id == q.header.id, "reply id");
      require(reply->header.rcode() == static_cast<uint8_t>(rc), "reply rcode");
      require(reply->header.tc() == tc, "reply TC");
      require(reply->question.name == n, "reply question");
      require(reply->addresses.empty() && !reply->min_ttl, "reply has addresses");
    }
  }
  require(build_header_reply(q.header, Rcode::kFormErr).size() == kHeaderSize, "header reply size");
}

void check_response(const Response& r) {
  check_name(r.question.name);
  require(r.addresses.size() <= r.header.ancount, "more addresses than answers");
  require(r.min_ttl.has_value() == !r.addresses.empty(), "min_ttl without addresses or the reverse");
  if (r.min_ttl) require(*r.min_ttl < 0x80000000u, "TTL with the top bit set");
  for (size_t i = 0; i < r.addresses.size(); ++i) {
    require(r.addresses[i].family == AF_INET || r.addresses[i].family == AF_INET6, "address family");
    for (size_t j = 0; j < i; ++j) {
      bool same = r.addresses[i].family == r.addresses[j].family &&
                  memcmp(r.addresses[i].bytes, r.addresses[j].bytes, r.addresses[i].size()) == 0;
      require(!same, "duplicate address");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> input(data, data + size);
  (void)parse_header(input);
  if (input.size() > 2) input[2] &= 0x7f;  // QR clear: a query
  if (auto q = parse_query(input); q.ok()) check_query(input, *q);
  if (input.size() > 2) input[2] |= 0x80;  // QR set: a response
  if (auto r = parse_response(input); r.ok()) check_response(*r);
  return 0;
}
