// The agent protocol: every message type survives encode -> decode -> encode byte for byte, and
// every malformed frame a hostile agent (or a buggy host) could send is refused with its own error.
// Malformed frames are built by hand (RawPayload), not by the codec under test.
#include "protocol/agent_protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "protocol/agent_protocol_host.h"

namespace airlock::protocol::agent {
namespace {

using Frame = std::vector<uint8_t>;
using namespace std::string_literals;
using namespace std::string_view_literals;

struct RawPayload {
  Frame bytes;
  RawPayload& u16(uint16_t v) { return put(v, 2); }
  RawPayload& u32(uint32_t v) { return put(v, 4); }
  RawPayload& u64(uint64_t v) { return put(v, 8); }
  RawPayload& str(std::string_view s) { return u32(uint32_t(s.size())).raw(s); }
  RawPayload& raw(std::string_view s) {
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  RawPayload& put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes.push_back(uint8_t(v >> (8 * i)));
    return *this;
  }
};

Frame raw_frame(uint8_t type, uint32_t id, const Frame& payload, uint32_t flags = 0,
                uint32_t declared_size = UINT32_MAX) {
  RawPayload h;
  h.raw("AL").put(kVersion, 1).put(type, 1).u32(flags).u32(id);
  h.u32(declared_size == UINT32_MAX ? uint32_t(payload.size()) : declared_size);
  h.bytes.insert(h.bytes.end(), payload.begin(), payload.end());
  return h.bytes;
}
Frame raw_frame(Type type, uint32_t id, const RawPayload& p, uint32_t flags = 0) {
  return raw_frame(uint8_t(type), id, p.bytes, flags);
}

WireError decode(const Frame& f, Direction accept) {
  Message m;
  return decode_frame(f.data(), f.size(), accept, m);
}
WireError to_agent(const Frame& f) { return decode(f, Direction::kToAgent); }
WireError to_host(const Frame& f) { return decode(f, Direction::kToHost); }
// A frame with id 1 of `type` around `p`, decoded by the agent / by the host.
WireError agent(Type type, const RawPayload& p) { return to_agent(raw_frame(type, 1, p)); }
WireError host(Type type, const RawPayload& p) { return to_host(raw_frame(type, 1, p)); }

// A valid Exec payload with the parts a test wants to break.
RawPayload exec_payload(std::vector<std::string> argv = {"/bin/sh", "-c", "true"},
                        std::vector<std::string> env = {"PATH=/usr/bin"}, std::string cwd = "/home/user",
                        uint32_t options = 0, uint16_t rows = 0, uint16_t cols = 0, uint32_t uid = 1000) {
  RawPayload p;
  p.u32(uid).u32(1000).u32(5000).u32(options).u16(rows).u16(cols).str(cwd);
  p.u32(uint32_t(argv.size()));
  for (auto& a : argv) p.str(a);
  p.u32(uint32_t(env.size()));
  for (auto& e : env) p.str(e);
  return p;
}

std::string sv(Str s) { return std::string(s.data, s.size); }
std::string sv(Bytes b) { return std::string(reinterpret_cast<const char*>(b.data), b.size); }
Bytes bytes_of(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), uint32_t(s.size())}; }

class AgentProtocolTest : public ::testing::Test {
 protected:
  // encode -> decode (in the type's own direction) -> encode again: same bytes.
  Message round_trip(const Message& in) {
    auto encoded = encode_frame(in);
    EXPECT_TRUE(encoded.ok()) << (encoded.ok() ? "" : encoded.error().message);
    if (!encoded.ok()) return {};
    const Frame& wire = frames_.emplace_back(std::move(encoded.value()));
    Message out;
    EXPECT_EQ(decode_frame(wire.data(), wire.size(), direction_of(in.type), out), WireError::kOk);
    EXPECT_EQ(out.type, in.type);
    EXPECT_EQ(out.id, in.id);
    EXPECT_EQ(out.flags, in.flags);
    auto again = encode_frame(out);
    EXPECT_TRUE(again.ok());
    if (again.ok()) {
      EXPECT_EQ(again.value(), wire);
    }
    return out;
  }
  static Message make(Type type, uint32_t id = 7, uint32_t flags = 0) {
    Message m{};
    m.type = type;
    m.id = id;
    m.flags = flags;
    return m;
  }

  std::deque<Frame> frames_;  // decoded Messages point into these
};

// ---- Layout -------------------------------------------------------------------------------------

TEST_F(AgentProtocolTest, HeaderAndFieldsAreLittleEndianAtFixedOffsets) {
  Message m = make(Type::kSignal, 0x01020304);
  m.signal.number = 9;
  auto f = encode_frame(m);
  ASSERT_TRUE(f.ok());
  Frame expected = {'A', 'L', 1, 0x06, 0, 0, 0, 0, 4, 3, 2, 1, 4, 0, 0, 0, 9, 0, 0, 0};
  EXPECT_EQ(f.value(), expected);
  EXPECT_EQ(f.value(), raw_frame(Type::kSignal, 0x01020304, RawPayload().u32(9)));
}

TEST_F(AgentProtocolTest, TypeSpaceIsSplitByDirection) {
  int agent_types = 0, host_types = 0;
  for (int t = 0; t < 256; ++t) {
    Frame f = raw_frame(uint8_t(t), 1, {});
    WireError a = to_agent(f), h = to_host(f);
    bool known = a != WireError::kUnknownType;
    EXPECT_EQ(known, h != WireError::kUnknownType) << t;
    if (!known) continue;
    // Known types are refused in exactly one direction, decided by bit 0x40.
    EXPECT_EQ((t & 0x40) ? a : h, WireError::kWrongDirection) << t;
    ((t & 0x40) ? host_types : agent_types)++;
  }
  EXPECT_EQ(agent_types, 17);
  EXPECT_EQ(host_types, 12);
}

// ---- Round trips: host -> agent -----------------------------------------------------------------
// round_trip() already checks that re-encoding gives the same bytes; the fields are checked too.

TEST_F(AgentProtocolTest, RoundTripsHelloPingAndStreamControl) {
  Message m = make(Type::kHello);
  m.hello = {1, 3};
  Message out = round_trip(m);
  EXPECT_EQ(std::tuple(out.hello.min_version, out.hello.max_version), std::tuple(1u, 3u));
  round_trip(make(Type::kPing));
  round_trip(make(Type::kCloseStdin, 42));
  round_trip(make(Type::kWatchStop, 43));

  m = make(Type::kStdin, 42);
  m.input.data = bytes_of("a\0b\xff"sv);
  EXPECT_EQ(sv(round_trip(m).input.data), "a\0b\xff"s);
  m = make(Type::kSignal, 42);
  m.signal.number = 15;
  EXPECT_EQ(round_trip(m).signal.number, 15u);
  m = make(Type::kResize, 42);
  m.resize = {50, 132};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(out.resize.rows, out.resize.cols), std::tuple(50, 132));
  m = make(Type::kCredit, 42);
  m.credit.bytes = kInitialWindow;
  EXPECT_EQ(round_trip(m).credit.bytes, kInitialWindow);
}

TEST_F(AgentProtocolTest, RoundTripsExec) {
  ExecRequest r{.uid = 1000, .gid = 1001, .timeout_ms = 30000, .tty = true, .rows = 24, .cols = 80,
                .cwd = "/home/user", .argv = {"python3", "-c", "print('hi')", ""},
                .env = {"PATH=/usr/bin", "EMPTY=", "A=b=c"}};
  auto wire = encode_exec(9, r);
  ASSERT_TRUE(wire.ok()) << wire.error().message;
  RawPayload golden;  // the layout, written out by hand
  golden.u32(1000).u32(1001).u32(30000).u32(kExecTty).u16(24).u16(80).str("/home/user").u32(4);
  for (auto& a : r.argv) golden.str(a);
  golden.u32(3);
  for (auto& v : r.env) golden.str(v);
  EXPECT_EQ(wire.value(), raw_frame(Type::kExec, 9, golden));

  auto decoded = decode_packet(wire.value(), Direction::kToAgent);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  const Exec& e = decoded->exec;
  EXPECT_EQ(decoded->id, 9u);
  EXPECT_EQ(std::tuple(e.uid, e.gid, e.timeout_ms, e.options, e.rows, e.cols, sv(e.cwd)),
            std::tuple(1000u, 1001u, 30000u, kExecTty, 24, 80, "/home/user"s));
  std::vector<std::string> argv, env;
  for (Str s : e.argv) argv.push_back(sv(s));
  for (Str s : e.env) env.push_back(sv(s));
  EXPECT_EQ(argv, r.argv);
  EXPECT_EQ(env, r.env);
  auto again = encode_frame(decoded.value());  // from the wire-backed lists this time
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value(), wire.value());

  // No tty, default cwd, empty environment.
  auto plain = encode_exec(10, ExecRequest{.argv = {"/bin/true"}});
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  auto p = decode_packet(plain.value(), Direction::kToAgent);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(std::tuple(p->exec.cwd.size, p->exec.argv.count, p->exec.env.count), std::tuple(0u, 1u, 0u));
}

TEST_F(AgentProtocolTest, RoundTripsFileRequests) {
  Message m = make(Type::kFileRead);
  m.file_read = {to_str("/etc/hosts"), 4096, 1 << 20};
  Message out = round_trip(m);
  EXPECT_EQ(std::tuple(sv(out.file_read.path), out.file_read.offset, out.file_read.limit),
            std::tuple("/etc/hosts"s, 4096u, 1u << 20));

  m = make(Type::kFileWrite);
  m.file_write = {to_str("/tmp/x"), 0644, kWriteCreate | kWriteTruncate, kMaxOffset - 5, bytes_of("hello")};
  out = round_trip(m);
  auto& w = out.file_write;
  EXPECT_EQ(std::tuple(sv(w.path), w.mode, w.options, w.offset, sv(w.data)),
            std::tuple("/tmp/x"s, 0644u, kWriteCreate | kWriteTruncate, kMaxOffset - 5, "hello"s));

  m = make(Type::kFileList);
  m.file_list = {to_str("/"), kMaxListDepth};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(sv(out.file_list.path), out.file_list.depth), std::tuple("/"s, kMaxListDepth));

  m = make(Type::kFileStat);
  m.file_stat = {to_str("/proc/1/root/../x")};  // resolved by the agent, inside the sandbox
  EXPECT_EQ(sv(round_trip(m).file_stat.path), "/proc/1/root/../x");

  m = make(Type::kFileMkdir);
  m.file_mkdir = {to_str("/a/b/c"), 0755, kMkdirParents};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(sv(out.file_mkdir.path), out.file_mkdir.mode, out.file_mkdir.options),
            std::tuple("/a/b/c"s, 0755u, kMkdirParents));

  m = make(Type::kFileRemove);
  m.file_remove = {to_str("/a"), kRemoveRecursive};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(sv(out.file_remove.path), out.file_remove.options), std::tuple("/a"s, kRemoveRecursive));

  m = make(Type::kFileRename);
  m.file_rename = {to_str("/a"), to_str("/b"), kRenameNoReplace};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(sv(out.file_rename.from), sv(out.file_rename.to), out.file_rename.options),
            std::tuple("/a"s, "/b"s, kRenameNoReplace));

  m = make(Type::kWatchStart);
  m.watch_start = {to_str("/work"), kWatchRecursive};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(sv(out.watch_start.path), out.watch_start.options), std::tuple("/work"s, kWatchRecursive));
}

// ---- Round trips: agent -> host -----------------------------------------------------------------

TEST_F(AgentProtocolTest, RoundTripsProcessReplies) {
  Message m = make(Type::kHelloAck);
  uint32_t caps = kCapExec | kCapTty | kCapFiles | kCapWatch | 0x100;  // unknown bits: ignored
  m.hello_ack = {1, caps};
  Message out = round_trip(m);
  EXPECT_EQ(std::tuple(out.hello_ack.version, out.hello_ack.capabilities), std::tuple(1u, caps));

  m = make(Type::kPong);
  m.pong.processes = 3;
  EXPECT_EQ(round_trip(m).pong.processes, 3u);
  m = make(Type::kStarted);
  m.started.pid = kMaxPid;
  EXPECT_EQ(round_trip(m).started.pid, kMaxPid);
  m = make(Type::kOutput);
  m.output = {kStderr, bytes_of("oops\n")};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(out.output.stream, sv(out.output.data)), std::tuple(kStderr, "oops\n"s));

  m = make(Type::kExited);
  m.exited = {-1, 9, kExitTimeout};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(out.exited.code, out.exited.signal, out.exited.reason), std::tuple(-1, 9u, kExitTimeout));
  m.exited = {255, 0, kExitNormal};
  EXPECT_EQ(round_trip(m).exited.code, 255);

  m = make(Type::kExecFailed);
  m.exec_failed.errnum = 2;
  EXPECT_EQ(round_trip(m).exec_failed.errnum, 2u);
  m = make(Type::kError, 0);  // id 0: about the connection itself
  m.error = {71, to_str("unexpected frame")};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(out.error.code, sv(out.error.message)), std::tuple(71u, "unexpected frame"s));
}

TEST_F(AgentProtocolTest, RoundTripsFileReplies) {
  Message m = make(Type::kFileData, 7, kFlagEnd);
  m.file_data = {8192, bytes_of("tail")};
  Message out = round_trip(m);
  EXPECT_EQ(std::tuple(out.flags, out.file_data.offset, sv(out.file_data.data)), std::tuple(kFlagEnd, 8192u, "tail"s));

  m = make(Type::kFileInfo);
  m.file_info = {kKindDir, 01777, 4096, -1'000'000'000};  // mtime before 1970
  out = round_trip(m);
  auto& i = out.file_info;
  EXPECT_EQ(std::tuple(i.kind, i.mode, i.size, i.mtime_ns), std::tuple(kKindDir, 01777u, 4096u, -1'000'000'000));

  m = make(Type::kFileEntry);
  m.file_entry = {{kKindFile, 0600, 12, 1'700'000'000'000'000'000}, to_str("src/.hidden/..x")};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(out.file_entry.info.kind, out.file_entry.info.mtime_ns, sv(out.file_entry.path)),
            std::tuple(kKindFile, 1'700'000'000'000'000'000, "src/.hidden/..x"s));

  m = make(Type::kDone);
  m.done.value = 12345;
  EXPECT_EQ(round_trip(m).done.value, 12345u);
  m = make(Type::kWatchEvent);
  m.watch_event = {kWatchModified, to_str("a/b.txt")};
  out = round_trip(m);
  EXPECT_EQ(std::tuple(out.watch_event.kind, sv(out.watch_event.path)), std::tuple(kWatchModified, "a/b.txt"s));
  m.watch_event = {kWatchOverflow, to_str("")};
  EXPECT_EQ(round_trip(m).watch_event.kind, kWatchOverflow);
}

// ---- Malformed frames ---------------------------------------------------------------------------

TEST_F(AgentProtocolTest, RejectsTruncatedHeader) {
  Frame f = raw_frame(Type::kPing, 1, RawPayload());
  for (size_t n = 0; n < kHeaderSize; ++n)
    EXPECT_EQ(to_agent(Frame(f.begin(), f.begin() + long(n))), WireError::kTruncated) << n;
  EXPECT_EQ(to_agent(f), WireError::kOk);
}

TEST_F(AgentProtocolTest, RejectsBadMagicAndVersion) {
  Frame f = raw_frame(Type::kPing, 1, RawPayload());
  f[1] = 'X';
  EXPECT_EQ(to_agent(f), WireError::kBadMagic);
  f = raw_frame(Type::kPing, 1, RawPayload());
  f[2] = 2;
  EXPECT_EQ(to_agent(f), WireError::kBadVersion);
}

TEST_F(AgentProtocolTest, RejectsLengthBeyondMaxFromTheHeaderAlone) {
  Frame header = raw_frame(uint8_t(Type::kOutput), 1, {}, 0, kMaxPayload + 1);
  EXPECT_EQ(to_host(header), WireError::kTooLarge);
  FrameHeader h;
  EXPECT_EQ(parse_header(header.data(), header.size(), Direction::kToHost, h), WireError::kTooLarge);
  header = raw_frame(uint8_t(Type::kOutput), 1, {}, 0, UINT32_MAX - 1);
  EXPECT_EQ(to_host(header), WireError::kTooLarge);
}

TEST_F(AgentProtocolTest, RejectsLengthBeyondBufferAndTrailingBytes) {
  Frame f = raw_frame(Type::kSignal, 1, RawPayload().u32(9));
  EXPECT_EQ(to_agent(Frame(f.begin(), f.end() - 1)), WireError::kTruncated);
  f.push_back(0);  // a byte after the frame the header describes
  EXPECT_EQ(to_agent(f), WireError::kTrailingBytes);
  // A byte inside the payload after the last field.
  EXPECT_EQ(agent(Type::kSignal, RawPayload().u32(9).put(0, 1)), WireError::kTrailingBytes);
  EXPECT_EQ(agent(Type::kPing, RawPayload().u32(0)), WireError::kTrailingBytes);
  EXPECT_EQ(agent(Type::kExec, exec_payload().raw("x")), WireError::kTrailingBytes);
}

TEST_F(AgentProtocolTest, RejectsUnknownTypeWrongDirectionFlagsAndId) {
  for (uint8_t t : {0x00, 0x09, 0x19, 0x3f, 0x40, 0x47, 0x55, 0x80, 0xff})
    EXPECT_EQ(to_agent(raw_frame(t, 1, {})), WireError::kUnknownType) << int(t);
  EXPECT_EQ(agent(Type::kOutput, RawPayload().u32(kStdout)), WireError::kWrongDirection);
  EXPECT_EQ(host(Type::kSignal, RawPayload().u32(9)), WireError::kWrongDirection);

  EXPECT_EQ(to_host(raw_frame(Type::kOutput, 1, RawPayload().u32(kStdout), kFlagEnd)), WireError::kBadFlags);
  EXPECT_EQ(to_host(raw_frame(Type::kFileData, 1, RawPayload().u64(0), 2)), WireError::kBadFlags);
  EXPECT_EQ(to_host(raw_frame(Type::kFileData, 1, RawPayload().u64(0), kFlagEnd)), WireError::kOk);
  // kFlagGroup only on Signal, kFlagDir only on WatchEvent; no other bit anywhere.
  EXPECT_EQ(to_agent(raw_frame(Type::kSignal, 1, RawPayload().u32(9), kFlagGroup)), WireError::kOk);
  EXPECT_EQ(to_agent(raw_frame(Type::kSignal, 1, RawPayload().u32(9), 2)), WireError::kBadFlags);
  EXPECT_EQ(to_agent(raw_frame(Type::kStdin, 1, RawPayload(), kFlagGroup)), WireError::kBadFlags);
  EXPECT_EQ(to_host(raw_frame(Type::kWatchEvent, 1, RawPayload().u32(1).str("a"), kFlagDir)), WireError::kOk);
  EXPECT_EQ(to_host(raw_frame(Type::kWatchEvent, 1, RawPayload().u32(1).str("a"), 4)), WireError::kBadFlags);
  EXPECT_EQ(to_host(raw_frame(Type::kFileInfo, 1, RawPayload().u32(1).u32(0644).u64(0).u64(0).u32(0).u32(0), kFlagDir)),
            WireError::kBadFlags);

  EXPECT_EQ(to_agent(raw_frame(Type::kSignal, 0, RawPayload().u32(9))), WireError::kBadId);
  EXPECT_EQ(to_host(raw_frame(Type::kError, 0, RawPayload().u32(5).str("eio"))), WireError::kOk);
}

TEST_F(AgentProtocolTest, RejectsFieldsRunningPastThePayload) {
  EXPECT_EQ(agent(Type::kSignal, RawPayload().u16(9)), WireError::kFieldTruncated);
  EXPECT_EQ(agent(Type::kFileStat, RawPayload().u32(100).raw("/etc")), WireError::kFieldTruncated);
  EXPECT_EQ(agent(Type::kFileStat, RawPayload().u32(UINT32_MAX).raw("/etc")), WireError::kFieldTruncated);
  EXPECT_EQ(host(Type::kError, RawPayload().u32(5).u32(2).raw("x")), WireError::kFieldTruncated);
  // An argv whose count promises more strings than the payload holds.
  RawPayload p;
  p.u32(0).u32(0).u32(0).u32(0).u16(0).u16(0).str("").u32(3).str("/bin/sh");
  EXPECT_EQ(agent(Type::kExec, p), WireError::kFieldTruncated);
}

TEST_F(AgentProtocolTest, RejectsCountsOverLimits) {
  std::vector<std::string> many(kMaxArgs + 1, "a");
  EXPECT_EQ(agent(Type::kExec, exec_payload(many)), WireError::kCountTooLarge);
  many.resize(kMaxArgs);
  EXPECT_EQ(agent(Type::kExec, exec_payload(many)), WireError::kOk);
  // A huge count is refused before any string is looked at.
  RawPayload p;
  p.u32(0).u32(0).u32(0).u32(0).u16(0).u16(0).str("").u32(UINT32_MAX);
  EXPECT_EQ(agent(Type::kExec, p), WireError::kCountTooLarge);
  // Total argv bytes over kMaxArgvBytes (each string alone within it).
  std::vector<std::string> big = {std::string(kMaxArgvBytes / 2, 'x'), std::string(kMaxArgvBytes / 2 + 1, 'y')};
  EXPECT_EQ(agent(Type::kExec, exec_payload(big)), WireError::kCountTooLarge);
  EXPECT_EQ(agent(Type::kExec, exec_payload({std::string(kMaxArgvBytes + 1, 'x')})), WireError::kStringTooLong);
  std::vector<std::string> env(kMaxEnv + 1, "A=1");
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, env)), WireError::kCountTooLarge);
}

TEST_F(AgentProtocolTest, RejectsBadStrings) {
  EXPECT_EQ(agent(Type::kFileStat, RawPayload().str("/etc/\0passwd"s)), WireError::kBadString);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh", "-c\0x"s})), WireError::kBadString);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {"A=\0"s})), WireError::kBadString);
  EXPECT_EQ(host(Type::kError, RawPayload().u32(5).str("a\0b"s)), WireError::kBadString);
  // Relative or empty paths where the agent needs absolute ones.
  EXPECT_EQ(agent(Type::kFileStat, RawPayload().str("etc/passwd")), WireError::kBadString);
  EXPECT_EQ(agent(Type::kFileStat, RawPayload().str("")), WireError::kBadString);
  EXPECT_EQ(agent(Type::kFileRename, RawPayload().str("/a").str("b").u32(0)), WireError::kBadString);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {}, "tmp")), WireError::kBadString);
  // Environment entries need a non-empty NAME and '='; argv[0] must not be empty.
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {"NOEQUALS"})), WireError::kBadString);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {"=x"})), WireError::kBadString);
  EXPECT_EQ(agent(Type::kExec, exec_payload({""})), WireError::kBadString);
  EXPECT_EQ(agent(Type::kExec, exec_payload({})), WireError::kBadField);
}

TEST_F(AgentProtocolTest, RejectsPathsFromTheAgentThatEscapeTheirDirectory) {
  auto entry = [](std::string_view path) {
    return host(Type::kFileEntry, RawPayload().u32(kKindFile).u32(0644).u64(1).u64(0).u32(0).u32(0).str(path));
  };
  EXPECT_EQ(entry("a/b"), WireError::kOk);
  for (std::string_view bad : {"", "/etc/passwd", "../x", "a/../../x", "..", ".", "a/./b", "a//b", "a/", "/"})
    EXPECT_EQ(entry(bad), WireError::kBadString) << bad;
  auto event = [](uint32_t kind, std::string_view path) {
    return host(Type::kWatchEvent, RawPayload().u32(kind).str(path));
  };
  EXPECT_EQ(event(kWatchCreated, "../../etc/shadow"), WireError::kBadString);
  EXPECT_EQ(event(kWatchOverflow, "x"), WireError::kBadString);
  EXPECT_EQ(event(kWatchRemoved, "x"), WireError::kOk);
}

TEST_F(AgentProtocolTest, RejectsPathTooLong) {
  std::string longest = "/" + std::string(kMaxPath - 1, 'a');
  EXPECT_EQ(agent(Type::kFileStat, RawPayload().str(longest)), WireError::kOk);
  EXPECT_EQ(agent(Type::kFileStat, RawPayload().str(longest + "a")), WireError::kStringTooLong);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {}, longest + "a")), WireError::kStringTooLong);
  EXPECT_EQ(host(Type::kError, RawPayload().u32(5).str(std::string(kMaxMessage + 1, 'm'))), WireError::kStringTooLong);
}

TEST_F(AgentProtocolTest, RejectsNumbersOutOfRange) {
  auto exited = [](int32_t code, uint32_t sig, uint32_t reason = 0) {
    return host(Type::kExited, RawPayload().u32(uint32_t(code)).u32(sig).u32(reason));
  };
  EXPECT_EQ(exited(0, 0), WireError::kOk);
  EXPECT_EQ(exited(-2, 0), WireError::kBadField);
  EXPECT_EQ(exited(256, 0), WireError::kBadField);
  EXPECT_EQ(exited(INT32_MIN, 0), WireError::kBadField);
  EXPECT_EQ(exited(-1, 0), WireError::kBadField);  // neither a code nor a signal
  EXPECT_EQ(exited(0, 9), WireError::kBadField);   // both
  EXPECT_EQ(exited(-1, kMaxSignal + 1), WireError::kBadField);
  EXPECT_EQ(exited(0, 0, 2), WireError::kBadField);

  auto u32_msg = [](Type t, uint32_t v) {
    Frame f = raw_frame(t, 1, RawPayload().u32(v));
    return direction_of(t) == Direction::kToHost ? to_host(f) : to_agent(f);
  };
  EXPECT_EQ(u32_msg(Type::kSignal, 0), WireError::kBadField);
  EXPECT_EQ(u32_msg(Type::kSignal, 65), WireError::kBadField);
  EXPECT_EQ(u32_msg(Type::kSignal, UINT32_MAX), WireError::kBadField);
  EXPECT_EQ(u32_msg(Type::kStarted, 0), WireError::kBadField);
  EXPECT_EQ(u32_msg(Type::kStarted, kMaxPid + 1), WireError::kBadField);
  EXPECT_EQ(u32_msg(Type::kExecFailed, 0), WireError::kBadField);
  EXPECT_EQ(u32_msg(Type::kExecFailed, kMaxErrno + 1), WireError::kBadField);
  EXPECT_EQ(u32_msg(Type::kCredit, 0), WireError::kBadField);
  EXPECT_EQ(host(Type::kOutput, RawPayload().u32(3).raw("x")), WireError::kBadField);
  EXPECT_EQ(host(Type::kError, RawPayload().u32(0).str("x")), WireError::kBadField);
  EXPECT_EQ(agent(Type::kResize, RawPayload().u16(0).u16(80)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kHello, RawPayload().u32(2).u32(1)), WireError::kBadField);
  EXPECT_EQ(host(Type::kHelloAck, RawPayload().u32(0).u32(0)), WireError::kBadField);

  // Offsets and sizes are signed (off_t) on the agent's side: nothing at or past 2^63.
  EXPECT_EQ(agent(Type::kFileRead, RawPayload().str("/f").u64(kMaxOffset + 1).u64(0)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kFileRead, RawPayload().str("/f").u64(0).u64(UINT64_MAX)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kFileWrite, RawPayload().str("/f").u32(0644).u32(0).u64(kMaxOffset).raw("x")),
            WireError::kBadField);
  EXPECT_EQ(host(Type::kFileData, RawPayload().u64(kMaxOffset).raw("x")), WireError::kBadField);
  EXPECT_EQ(host(Type::kDone, RawPayload().u64(UINT64_MAX)), WireError::kBadField);
  EXPECT_EQ(host(Type::kFileInfo, RawPayload().u32(kKindFile).u32(0644).u64(UINT64_MAX).u64(0).u32(0).u32(0)), WireError::kBadField);
  EXPECT_EQ(host(Type::kFileInfo, RawPayload().u32(5).u32(0644).u64(0).u64(0).u32(0).u32(0)), WireError::kBadField);
  EXPECT_EQ(host(Type::kFileInfo, RawPayload().u32(1).u32(010000).u64(0).u64(0).u32(0).u32(0)), WireError::kBadField);

  // Unknown option bits, modes and depths.
  EXPECT_EQ(agent(Type::kFileMkdir, RawPayload().str("/d").u32(0755).u32(2)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kFileMkdir, RawPayload().str("/d").u32(010000).u32(0)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kFileRemove, RawPayload().str("/d").u32(2)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kFileList, RawPayload().str("/d").u32(0)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kFileList, RawPayload().str("/d").u32(kMaxListDepth + 1)), WireError::kBadField);

  // Exec: uid/gid -1 would mean "leave unchanged" (root) to setresuid; a tty needs a size, no tty none.
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {}, "", 0, 0, 0, kNoId)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {}, "", kExecTty, 0, 80)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {}, "", 0, 24, 80)), WireError::kBadField);
  EXPECT_EQ(agent(Type::kExec, exec_payload({"sh"}, {}, "", 2)), WireError::kBadField);
}

TEST_F(AgentProtocolTest, DecodeLeavesOutputUntouchedOnError) {
  Message m = make(Type::kPing, 77);
  Frame f = raw_frame(Type::kSignal, 1, RawPayload().u32(0));
  EXPECT_EQ(decode_frame(f.data(), f.size(), Direction::kToAgent, m), WireError::kBadField);
  EXPECT_EQ(m.type, Type::kPing);
  EXPECT_EQ(m.id, 77u);
}

// ---- Encoding -----------------------------------------------------------------------------------

TEST_F(AgentProtocolTest, EncodeReportsBufferTooSmallWithTheSizeNeeded) {
  Message m = make(Type::kOutput);
  m.output = {kStdout, bytes_of("hello")};
  uint8_t buf[64];
  Encoded e = encode(m, buf, kHeaderSize + 8);
  EXPECT_EQ(e.error, WireError::kBufferTooSmall);
  EXPECT_EQ(e.size, kHeaderSize + 9);
  e = encode(m, buf, sizeof buf);
  EXPECT_EQ(e.error, WireError::kOk);
  EXPECT_EQ(e.size, kHeaderSize + 9);
  EXPECT_EQ(encode(m, nullptr, 0).error, WireError::kBufferTooSmall);
}

TEST_F(AgentProtocolTest, EncodeRefusesWhatTheDecoderWouldRefuse) {
  std::vector<uint8_t> buf(kMaxFrame + 100);
  Message m = make(Type::kFileStat);
  std::string long_path = "/" + std::string(kMaxPath, 'a');
  m.file_stat = {to_str(long_path)};
  EXPECT_EQ(encode(m, buf.data(), buf.size()).error, WireError::kStringTooLong);
  m.file_stat = {to_str("relative")};
  EXPECT_EQ(encode(m, buf.data(), buf.size()).error, WireError::kBadString);

  m = make(Type::kSignal, 0);
  m.signal.number = 9;
  EXPECT_EQ(encode(m, buf.data(), buf.size()).error, WireError::kBadId);
  m = make(Type::kOutput, 1, kFlagEnd);
  m.output = {kStdout, bytes_of("x")};
  EXPECT_EQ(encode(m, buf.data(), buf.size()).error, WireError::kBadFlags);
  m = make(static_cast<Type>(0x33));
  EXPECT_EQ(encode(m, buf.data(), buf.size()).error, WireError::kUnknownType);

  std::string big(kMaxPayload, 'x');
  m = make(Type::kStdin);
  m.input.data = bytes_of(big);
  EXPECT_EQ(encode(m, buf.data(), buf.size()).error, WireError::kOk);  // exactly kMaxPayload
  m = make(Type::kOutput);
  m.output = {kStdout, bytes_of(big)};
  EXPECT_EQ(encode(m, buf.data(), buf.size()).error, WireError::kTooLarge);

  ExecRequest r{.argv = {"sh"}, .env = {"BAD"}};
  EXPECT_FALSE(encode_exec(1, r).ok());
  r.env.clear();
  r.uid = kNoId;
  EXPECT_FALSE(encode_exec(1, r).ok());
}

TEST_F(AgentProtocolTest, MaxChunkFitsBesideTheLargestOtherFields) {
  std::string path = "/" + std::string(kMaxPath - 1, 'p');
  std::string data(kMaxChunk, 'd');
  Message m = make(Type::kFileWrite);
  m.file_write = {to_str(path), 0644, kWriteCreate, 0, bytes_of(data)};
  EXPECT_TRUE(encode_frame(m).ok());
  m = make(Type::kOutput);
  m.output = {kStdout, bytes_of(data)};
  EXPECT_TRUE(encode_frame(m).ok());
}

// ---- Host side: packets and streams -------------------------------------------------------------

// `n` frames of `type` with ids 1..n and `size(i)` data bytes, back to back.
template <typename Size>
Frame stream_of(Type type, int n, Size size) {
  Frame stream;
  for (int i = 1; i <= n; ++i) {
    Message m{};
    m.type = type;
    m.id = uint32_t(i);
    std::string data(size(i), 'x');
    if (type == Type::kOutput) m.output = {kStdout, bytes_of(data)};
    if (type == Type::kStdin) m.input.data = bytes_of(data);
    auto f = encode_frame(m);
    EXPECT_TRUE(f.ok());
    if (f.ok()) stream.insert(stream.end(), f->begin(), f->end());
  }
  return stream;
}
Frame stream_of_replies(int n) {
  return stream_of(Type::kOutput, n, [](int i) { return size_t(i) * 1000; });
}

// Feeds `stream` to `reader` at most `piece` bytes per read, as a daemon's event loop would, and
// returns the ids of the frames it cut; stops at the first error, saving its message in `error`.
std::vector<uint32_t> read_stream(FrameReader& reader, const Frame& stream, size_t piece, std::string* error = nullptr) {
  std::vector<uint32_t> ids;
  for (size_t at = 0; at < stream.size();) {
    auto space = reader.writable();
    EXPECT_LE(reader.capacity(), kMaxFrame + FrameReader::kReadChunk);
    if (space.empty()) return ADD_FAILURE() << "reader offers no space", ids;
    size_t n = std::min({space.size(), stream.size() - at, piece});
    std::copy_n(stream.begin() + long(at), n, space.begin());
    reader.commit(n);
    at += n;
    Message m;
    for (;;) {
      auto got = reader.next(m);
      if (!got.ok()) {
        if (error) *error = got.error().message;
        else ADD_FAILURE() << got.error().message;
        return ids;
      }
      if (!got.value()) break;
      ids.push_back(m.id);
    }
  }
  return ids;
}

TEST(FrameReaderTest, CutsAStreamFedOneByteAtATime) {
  FrameReader reader(Direction::kToHost);
  EXPECT_EQ(read_stream(reader, stream_of_replies(5), 1), (std::vector<uint32_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReaderTest, StaysBoundedWithLargeFramesInBigReads) {
  FrameReader reader(Direction::kToAgent);
  Frame stream = stream_of(Type::kStdin, 20, [](int) { return size_t(kMaxPayload); });  // the largest frames
  auto ids = read_stream(reader, stream, stream.size());
  ASSERT_EQ(ids.size(), 20u);
  EXPECT_EQ(ids.back(), 20u);
}

TEST(FrameReaderTest, GarbageIsFinal) {
  Frame stream = stream_of_replies(1);
  Frame bad = raw_frame(uint8_t(Type::kOutput), 2, {}, 0, kMaxPayload + 1);  // refused on its header
  stream.insert(stream.end(), bad.begin(), bad.end());
  Frame good = stream_of_replies(1);
  stream.insert(stream.end(), good.begin(), good.end());
  FrameReader reader(Direction::kToHost);
  std::string error;
  EXPECT_EQ(read_stream(reader, stream, stream.size(), &error), std::vector<uint32_t>{1});
  EXPECT_EQ(error, "agent protocol: frame too large");
  Message m;
  auto again = reader.next(m);  // the connection is done
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().errnum, EPROTO);
}

TEST(FrameReaderTest, SeqpacketDecodeRejectsAPacketWithTwoFrames) {
  auto r = decode_packet(stream_of_replies(2), Direction::kToHost);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "agent protocol: trailing bytes");
}

}  // namespace
}  // namespace airlock::protocol::agent
