// Running code in another network namespace without moving the daemon: a short-lived thread joins
// the namespace (setns on a pidfd, so a recycled pid can never point it at the wrong one), runs the
// function and ends. Sockets it creates stay in that namespace for their whole life, which is how
// the daemon holds netlink sockets into a sandbox and connects to a sandbox's loopback ports.
#pragma once

#include <functional>

#include "common/result.h"
#include "common/unique_fd.h"

namespace airlock::net {

// Runs `fn` on a new thread inside the network namespace of the process behind `pidfd`.
Status run_in_netns(int pidfd, const std::function<Status()>& fn);

// A socket(domain, type) created inside the network namespace of the process behind `pidfd`.
Result<UniqueFd> socket_in_netns(int pidfd, int domain, int type);

// An fd for this process's own network namespace (to move interfaces back into it).
Result<UniqueFd> own_netns();

}  // namespace airlock::net
