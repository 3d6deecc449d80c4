// Messages from airlock-init (PID 1 inside the sandbox) to the host, over a SOCK_SEQPACKET
// socket. Fixed-size frames: the host rejects anything that is not exactly one valid frame,
// because init runs inside the sandbox and is treated as hostile.
#pragma once

#include <cstdint>

namespace airlock::protocol {

inline constexpr uint32_t kInitMagic = 0x41524c31;  // "ARL1"
inline constexpr int kInitControlFd = 3;            // where init finds its end of the socket

enum class InitMessageKind : uint32_t {
  kStarted = 1,     // a = pid of the command (inside the sandbox)
  kExecFailed = 2,  // a = errno of execve (ENOENT -> 127, others -> 126)
  kExited = 3,      // a = exit code (0..255) or -1; b = terminating signal (0 if none)
  kPtyMaster = 4,   // carries the pty master fd (SCM_RIGHTS); a = b = 0
};

struct InitMessage {
  uint32_t magic = kInitMagic;
  uint32_t kind = 0;
  int32_t a = 0;
  int32_t b = 0;
};
static_assert(sizeof(InitMessage) == 16);

}  // namespace airlock::protocol
