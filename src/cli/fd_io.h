// Writing to the user's stdout/stderr and to files: every byte, through EINTR, and through EAGAIN
// when a descriptor we share with the calling shell was left non-blocking by someone else (we never
// change its flags ourselves: the shell would inherit the change).
#pragma once

#include <string_view>

#include "common/result.h"

namespace airlock::cli {

// Writes all of data; EPIPE and other failures are errors (errnum set).
Status write_all(int fd, std::string_view data);

}  // namespace airlock::cli
