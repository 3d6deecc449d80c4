#include "cli/process_events.h"

#include <cstdio>

#include "cli/base64.h"
#include "cli/exit_codes.h"
#include "cli/fd_io.h"

namespace airlock::cli {
namespace {

std::string string_field(const nlohmann::json& event, const char* name) {
  auto it = event.find(name);
  return it != event.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

Status ProcessEventPrinter::write_output(bool to_stderr, std::string_view bytes) {
  if (bytes.empty()) return {};
  if (to_stderr) stderr_mid_line_ = bytes.back() != '\n';
  auto written = write_all(to_stderr ? stderr_fd_ : stdout_fd_, bytes);
  if (!written.ok()) return std::move(written).error().with_context(to_stderr ? "stderr" : "stdout");
  return {};
}

Status ProcessEventPrinter::handle(const nlohmann::json& event) {
  if (!event.is_object()) return plain_error("malformed event from the daemon");
  std::string type = string_field(event, "type");
  if (type == "stdout" || type == "stderr") {
    auto data = event.find("data");
    if (data == event.end() || !data->is_string()) return plain_error("malformed output event from the daemon");
    const std::string& text = data->get_ref<const std::string&>();
    if (string_field(event, "encoding") == "base64") {
      auto bytes = base64_decode(text);
      if (!bytes.ok()) return std::move(bytes).error().with_context("output event");
      return write_output(type == "stderr", *bytes);
    }
    return write_output(type == "stderr", text);
  }
  if (type == "start") {
    if (auto pid = event.find("pid"); pid != event.end() && pid->is_number_integer()) pid_ = pid->get<int>();
    return {};
  }
  if (type == "exit") {
    auto code = event.find("exit_code");
    if (code == event.end() || !code->is_number_integer()) return plain_error("malformed exit event from the daemon");
    exit_code_ = code->get<int>();
    reason_ = string_field(event, "reason");
    error_ = string_field(event, "error");
    return {};
  }
  if (type == "gap") {
    long long length = 0;
    if (auto it = event.find("length"); it != event.end() && it->is_number_integer()) length = it->get<long long>();
    std::fprintf(stderr, "%sairlock: %lld bytes of output were lost (the daemon's buffer overflowed)\n",
                 stderr_mid_line_ ? "\n" : "", length);
    stderr_mid_line_ = false;
    return {};
  }
  if (type == "error") {
    auto detail = event.find("error");
    if (detail != event.end() && detail->is_object()) {
      std::string code = string_field(*detail, "code");
      std::string message = string_field(*detail, "message");
      return plain_error(message + " (" + code + ")");
    }
    return plain_error("the stream failed (error event without details)");
  }
  return {};  // keepalive, and types added to the contract later
}

int ProcessEventPrinter::finish() const {
  if (!exit_code_) return kExitAirlockError;
  const char* nl = stderr_mid_line_ ? "\n" : "";
  if (reason_ == "failed_to_start") {
    std::fprintf(stderr, "%sairlock: %s\n", nl, error_.empty() ? "the command could not be started" : error_.c_str());
  } else if (reason_ == "timeout") {
    std::fprintf(stderr, "%sairlock: the command timed out and was killed\n", nl);
  } else if (reason_ == "oom") {
    std::fprintf(stderr, "%sairlock: the command was killed: out of memory\n", nl);
  } else if (reason_ == "sandbox_stopped") {
    std::fprintf(stderr, "%sairlock: the sandbox stopped under the command\n", nl);
  }
  return *exit_code_;
}

}  // namespace airlock::cli
