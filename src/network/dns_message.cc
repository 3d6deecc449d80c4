#include "network/dns_message.h"

#include <cstdio>
#include <cstring>

namespace airlock::net::dns {
namespace {

constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr uint16_t kFlagAd = 0x0020;
constexpr uint16_t kFlagCd = 0x0010;
constexpr size_t kMinRecordSize = 11;  // root name (1) + type, class, ttl, rdlength (10)

Error bad(std::string_view why) { return Error{EBADMSG, "dns: " + std::string(why)}; }

uint16_t get16(std::span<const uint8_t> p, size_t at) {
  return static_cast<uint16_t>((p[at] << 8) | p[at + 1]);
}
uint32_t get32(std::span<const uint8_t> p, size_t at) {
  return (uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) | (uint32_t{p[at + 2]} << 8) | p[at + 3];
}
void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

// Reads the (possibly compressed) name at `pos` into wire form and moves `pos` past it. A pointer
// must go to an offset below the start of the run of labels it ends: offsets strictly decrease, so
// a chain of pointers ends (and cannot point forward or at itself), besides the jump cap.
Result<std::vector<uint8_t>> read_name(std::span<const uint8_t> p, size_t& pos) {
  std::vector<uint8_t> name;
  size_t cur = pos;
  size_t segment_start = pos;
  bool jumped = false;
  int jumps = 0;
  for (;;) {
    if (cur >= p.size()) return bad("name runs past the end of the message");
    uint8_t len = p[cur];
    if ((len & 0xc0) == 0xc0) {
      if (cur + 1 >= p.size()) return bad("compression pointer runs past the end of the message");
      size_t target = (size_t{len & 0x3fu} << 8) | p[cur + 1];
      if (!jumped) pos = cur + 2;
      if (target < kHeaderSize) return bad("compression pointer into the header");
      if (target >= segment_start) return bad("compression pointer does not point backwards");
      if (++jumps > kMaxCompressionJumps) return bad("too many compression pointers");
      jumped = true;
      cur = segment_start = target;
      continue;
    }
    if (len & 0xc0) return bad("label type is not supported");
    if (len == 0) {
      name.push_back(0);
      if (!jumped) pos = cur + 1;
      return name;
    }
    if (name.size() + 1 + len + 1 > kMaxNameLength) return bad("name longer than 255 bytes");
    if (cur + 1 + len > p.size()) return bad("label runs past the end of the message");
    name.insert(name.end(), p.begin() + static_cast<ptrdiff_t>(cur),
                p.begin() + static_cast<ptrdiff_t>(cur + 1 + len));
    cur += 1 + len;
  }
}

Result<Question> read_question(std::span<const uint8_t> p, size_t& pos) {
  Question q;
  TRY(q.name, read_name(p, pos));
  if (pos + 4 > p.size()) return bad("question runs past the end of the message");
  q.type = get16(p, pos);
  q.klass = get16(p, pos + 2);
  pos += 4;
  return q;
}

struct Record {
  std::vector<uint8_t> name;
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;
  size_t rdata = 0;  // offset in the message
  uint16_t rdlength = 0;
};

Result<Record> read_record(std::span<const uint8_t> p, size_t& pos) {
  Record r;
  TRY(r.name, read_name(p, pos));
  if (pos + 10 > p.size()) return bad("record runs past the end of the message");
  r.type = get16(p, pos);
  r.klass = get16(p, pos + 2);
  r.ttl = get32(p, pos + 4);
  r.rdlength = get16(p, pos + 8);
  pos += 10;
  if (r.rdlength > p.size() - pos) return bad("record data runs past the end of the message");
  r.rdata = pos;
  pos += r.rdlength;
  return r;
}

// Checks an OPT record's option list (code, length, data)*: it must fill the rdata exactly.
Status check_opt_options(std::span<const uint8_t> p, const Record& r) {
  size_t at = r.rdata;
  size_t end = r.rdata + r.rdlength;
  while (at < end) {
    if (end - at < 4) return bad("EDNS option header runs past the record");
    size_t len = get16(p, at + 2);
    at += 4;
    if (len > end - at) return bad("EDNS option runs past the record");
    at += len;
  }
  return {};
}

Status check_counts(std::span<const uint8_t> p, size_t pos, size_t records) {
  if (records * kMinRecordSize > p.size() - pos) return bad("record counts exceed the message size");
  return {};
}

uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c - 'A' + 'a') : c; }

void put_opt(std::vector<uint8_t>& out, bool dnssec_ok) {
  out.push_back(0);  // root name
  put16(out, type::kOpt);
  put16(out, kOurUdpSize);
  put32(out, dnssec_ok ? 0x8000u : 0u);  // extended rcode 0, version 0, DO
  put16(out, 0);
}

}  // namespace

std::string Question::text() const {
  std::string out;
  size_t at = 0;
  while (at < name.size() && name[at] != 0) {
    size_t len = name[at];
    if (!out.empty()) out += '.';
    for (size_t i = at + 1; i <= at + len && i < name.size(); ++i) {
      uint8_t c = name[i];
      bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_';
      if (plain) {
        out += static_cast<char>(c);
      } else if (c == '.' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else {
        char esc[5];
        std::snprintf(esc, sizeof esc, "\\%03u", unsigned{c});
        out += esc;
      }
    }
    at += 1 + len;
  }
  return out.empty() ? "." : out;
}

Result<Header> parse_header(std::span<const uint8_t> p) {
  if (p.size() < kHeaderSize) return bad("message shorter than a header");
  Header h;
  h.id = get16(p, 0);
  h.flags = get16(p, 2);
  h.qdcount = get16(p, 4);
  h.ancount = get16(p, 6);
  h.nscount = get16(p, 8);
  h.arcount = get16(p, 10);
  return h;
}

Result<Query> parse_query(std::span<const uint8_t> p) {
  Query q;
  TRY(q.header, parse_header(p));
  const Header& h = q.header;
  if (h.qr()) return bad("query has QR set");
  if (h.qdcount != 1) return bad("query must have exactly one question");
  if (h.ancount != 0 || h.nscount != 0) return bad("query has answer or authority records");
  if (h.arcount > 1) return bad("query has more than one additional record");
  size_t pos = kHeaderSize;
  TRY(q.question, read_question(p, pos));
  if (h.arcount == 1) {
    TRY(auto opt, read_record(p, pos));
    if (opt.type != type::kOpt) return bad("additional record of a query is not OPT");
    if (opt.name.size() != 1) return bad("OPT record name is not the root");
    TRY_STATUS(check_opt_options(p, opt));
    q.edns = Edns{opt.klass, static_cast<uint8_t>(opt.ttl >> 16), (opt.ttl & 0x8000u) != 0};
  }
  if (pos != p.size()) return bad("trailing bytes after the query");
  return q;
}

Result<Response> parse_response(std::span<const uint8_t> p) {
  Response r;
  TRY(r.header, parse_header(p));
  const Header& h = r.header;
  if (!h.qr()) return bad("response has QR clear");
  if (h.qdcount != 1) return bad("response must have exactly one question");
  size_t pos = kHeaderSize;
  TRY(r.question, read_question(p, pos));
  TRY_STATUS(check_counts(p, pos, size_t{h.ancount} + h.nscount + h.arcount));

  struct Answer {
    Record record;
    std::vector<uint8_t> target;  // CNAME
  };
  std::vector<Answer> answers;
  answers.reserve(h.ancount);
  for (size_t i = 0; i < size_t{h.ancount} + h.nscount + h.arcount; ++i) {
    TRY(auto rec, read_record(p, pos));
    bool in_answer = i < h.ancount;
    if (rec.klass == kClassIn && rec.type == type::kA && rec.rdlength != 4) return bad("A record is not 4 bytes");
    if (rec.klass == kClassIn && rec.type == type::kAaaa && rec.rdlength != 16) {
      return bad("AAAA record is not 16 bytes");
    }
    if (rec.type == type::kOpt) TRY_STATUS(check_opt_options(p, rec));
    Answer a{std::move(rec), {}};
    if (a.record.klass == kClassIn && a.record.type == type::kCname) {
      size_t at = a.record.rdata;
      TRY(a.target, read_name(p, at));
      if (at != a.record.rdata + a.record.rdlength) return bad("CNAME data is not exactly one name");
    }
    if (in_answer) answers.push_back(std::move(a));
  }
  if (pos != p.size()) return bad("trailing bytes after the response");

  // The names whose addresses count: the question's, then each CNAME target from it on.
  std::vector<std::vector<uint8_t>> chain{r.question.name};
  std::optional<uint32_t> chain_ttl;
  auto ttl_of = [](uint32_t ttl) { return (ttl & 0x80000000u) ? 0u : ttl; };
  for (size_t hop = 0; hop < kMaxCnameChain; ++hop) {
    const Answer* next = nullptr;
    for (const Answer& a : answers) {
      if (a.record.klass == kClassIn && a.record.type == type::kCname && same_name(a.record.name, chain.back())) {
        next = &a;
        break;
      }
    }
    if (next == nullptr) break;
    bool seen = false;
    for (const auto& n : chain) seen = seen || same_name(n, next->target);
    if (seen) break;  // a CNAME loop: the names so far still count
    chain.push_back(next->target);
    uint32_t t = ttl_of(next->record.ttl);
    chain_ttl = chain_ttl ? std::min(*chain_ttl, t) : t;
  }
  for (const Answer& a : answers) {
    const Record& rec = a.record;
    if (rec.klass != kClassIn || (rec.type != type::kA && rec.type != type::kAaaa)) continue;
    bool in_chain = false;
    for (const auto& n : chain) in_chain = in_chain || same_name(n, rec.name);
    if (!in_chain) continue;
    IpAddress addr;
    addr.family = rec.type == type::kA ? AF_INET : AF_INET6;
    std::memcpy(addr.bytes, p.data() + rec.rdata, rec.rdlength);
    uint32_t t = ttl_of(rec.ttl);
    r.min_ttl = r.min_ttl ? std::min(*r.min_ttl, t) : t;
    bool dup = false;
    for (const auto& have : r.addresses) {
      dup = dup || (have.family == addr.family && std::memcmp(have.bytes, addr.bytes, rec.rdlength) == 0);
    }
    if (!dup) r.addresses.push_back(addr);
  }
  if (r.min_ttl && chain_ttl) r.min_ttl = std::min(*r.min_ttl, *chain_ttl);
  return r;
}

std::vector<uint8_t> build_query(uint16_t id, uint16_t flags, const Question& question,
                                 const std::optional<Edns>& edns) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + question.name.size() + 4 + 11);
  put16(out, id);
  put16(out, flags & (kFlagRd | kFlagAd | kFlagCd));
  put16(out, 1);
  put16(out, 0);
  put16(out, 0);
  put16(out, edns ? 1 : 0);
  out.insert(out.end(), question.name.begin(), question.name.end());
  put16(out, question.type);
  put16(out, question.klass);
  if (edns) put_opt(out, edns->dnssec_ok);
  return out;
}

std::vector<uint8_t> build_reply(const Query& query, Rcode rcode, bool truncated) {
  const Header& qh = query.header;
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + query.question.name.size() + 4 + 11);
  put16(out, qh.id);
  uint16_t flags = kFlagQr | static_cast<uint16_t>(qh.opcode() << 11) | (qh.flags & (kFlagRd | kFlagCd)) | kFlagRa |
                   static_cast<uint16_t>(rcode);
  if (truncated) flags |= kFlagTc;
  put16(out, flags);
  put16(out, 1);
  put16(out, 0);
  put16(out, 0);
  put16(out, query.edns ? 1 : 0);
  out.insert(out.end(), query.question.name.begin(), query.question.name.end());
  put16(out, query.question.type);
  put16(out, query.question.klass);
  if (query.edns) put_opt(out, query.edns->dnssec_ok);
  return out;
}

std::vector<uint8_t> build_header_reply(const Header& qh, Rcode rcode) {
  std::vector<uint8_t> out;
  put16(out, qh.id);
  put16(out, kFlagQr | static_cast<uint16_t>(qh.opcode() << 11) | (qh.flags & kFlagRd) | kFlagRa |
                 static_cast<uint16_t>(rcode));
  for (int i = 0; i < 4; ++i) put16(out, 0);
  return out;
}

bool same_name(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  // Length bytes are <= 63, below 'A', so lowering every byte compares labels and lengths alike.
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

void set_id(std::span<uint8_t> packet, uint16_t id) {
  packet[0] = static_cast<uint8_t>(id >> 8);
  packet[1] = static_cast<uint8_t>(id);
}

}  // namespace airlock::net::dns
