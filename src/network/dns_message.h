// DNS wire format (RFC 1035), only as much as the DNS filter needs: parse a query from a sandbox
// (hostile bytes), build the short replies the filter gives itself (NXDOMAIN, REFUSED, SERVFAIL...),
// build the query it forwards, and parse an upstream response (untrusted bytes) far enough to check
// it answers our question and to take out the addresses it hands out.
//
// Our own code rather than a library: the filter needs a parser that rejects everything unusual
// (resolver libraries are lenient by design) and nothing else; c-ares/ldns would add a dependency
// for ~400 lines of bounded parsing.
//
// Every read is bounds-checked. Names: labels <= 63 bytes, a whole name <= 255 bytes on the wire,
// compression pointers only to an offset before the previous one (so they cannot loop or point
// forward), at most 128 of them per name, never into the header.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "network/netlink.h"

namespace airlock::net::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxNameLength = 255;  // on the wire, with the length bytes and the root
inline constexpr size_t kMaxLabelLength = 63;
inline constexpr int kMaxCompressionJumps = 128;
inline constexpr size_t kMaxCnameChain = 16;
inline constexpr uint16_t kClassIn = 1;
inline constexpr uint16_t kClassicUdpSize = 512;  // without EDNS (RFC 1035 4.2.1)
inline constexpr uint16_t kOurUdpSize = 1232;     // what we advertise (DNS flag day 2020)

namespace type {
inline constexpr uint16_t kA = 1;
inline constexpr uint16_t kNs = 2;
inline constexpr uint16_t kCname = 5;
inline constexpr uint16_t kSoa = 6;
inline constexpr uint16_t kMx = 15;
inline constexpr uint16_t kTxt = 16;
inline constexpr uint16_t kAaaa = 28;
inline constexpr uint16_t kOpt = 41;
inline constexpr uint16_t kIxfr = 251;
inline constexpr uint16_t kAxfr = 252;
inline constexpr uint16_t kAny = 255;
}  // namespace type

enum class Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

struct Header {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qdcount = 0;
  uint16_t ancount = 0;
  uint16_t nscount = 0;
  uint16_t arcount = 0;

  bool qr() const { return flags & 0x8000; }
  uint8_t opcode() const { return (flags >> 11) & 0xf; }
  bool tc() const { return flags & 0x0200; }
  bool rd() const { return flags & 0x0100; }
  uint8_t rcode() const { return flags & 0xf; }
};

struct Question {
  std::vector<uint8_t> name;  // wire form, uncompressed, ending with the root label (0)
  uint16_t type = 0;
  uint16_t klass = 0;

  // Presentation form without the trailing dot ("." for the root). Bytes other than letters, digits,
  // '-' and '_' are escaped ("\." "\\" "\DDD"), so the text is never a valid hostname unless the
  // name is one, label for label.
  std::string text() const;
};

struct Edns {
  uint16_t udp_payload = kClassicUdpSize;  // the requester's buffer size as sent (may be < 512)
  uint8_t version = 0;
  bool dnssec_ok = false;
};

struct Query {
  Header header;
  Question question;
  std::optional<Edns> edns;
};

// The header alone: enough to answer FORMERR to a query whose body does not parse.
Result<Header> parse_header(std::span<const uint8_t> packet);

// A query: QR=0, exactly one question, no answer or authority records, at most one additional
// record which must be an OPT with the root name, and nothing after it. Any opcode (the caller
// decides what to answer).
Result<Query> parse_query(std::span<const uint8_t> packet);

struct Response {
  Header header;
  Question question;
  // A/AAAA records (class IN) of the question's name, or of a name reached from it through the
  // CNAME records of the answer section (at most kMaxCnameChain hops). Records of other names are
  // not included. No duplicates.
  std::vector<IpAddress> addresses;
  // Smallest TTL of those address records and the CNAMEs leading to them (TTLs with the top bit set
  // count as 0, RFC 2181 8). Unset when there are no addresses.
  std::optional<uint32_t> min_ttl;
};

// An upstream's response: QR=1, exactly one question, every record of every section well formed
// (A rdata 4 bytes, AAAA 16, CNAME a valid name), nothing after the last record.
Result<Response> parse_response(std::span<const uint8_t> packet);

// A recursive query for `question`, with an OPT record when `edns` is set (payload kOurUdpSize,
// version 0, DO as given). `flags` contributes only RD, AD and CD.
std::vector<uint8_t> build_query(uint16_t id, uint16_t flags, const Question& question,
                                 const std::optional<Edns>& edns);

// A reply to `query` with no records: its id, opcode, RD and CD, RA set, the given rcode, the question
// echoed, and an OPT record (payload kOurUdpSize) when the query had one. `truncated` sets TC.
std::vector<uint8_t> build_reply(const Query& query, Rcode rcode, bool truncated = false);

// A reply with the header only (no question): for queries whose question could not be read.
std::vector<uint8_t> build_header_reply(const Header& query_header, Rcode rcode);

// Case-insensitive equality of two wire-form names (DNS names compare ASCII-case-insensitively).
bool same_name(std::span<const uint8_t> a, std::span<const uint8_t> b);

// Overwrites the id of a message (at least kHeaderSize bytes).
void set_id(std::span<uint8_t> packet, uint16_t id);

}  // namespace airlock::net::dns
