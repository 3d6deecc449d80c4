#include "common/result.h"

namespace airlock {

std::string Error::describe() const { return message; }

Error sys_error(std::string_view what, int errnum) {
  return Error{errnum, std::string(what) + ": " + std::strerror(errnum)};
}

Error plain_error(std::string_view what) { return Error{0, std::string(what)}; }

}  // namespace airlock
