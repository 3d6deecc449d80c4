#include "cli/copy_location.h"

namespace airlock::cli {

CopyLocation parse_copy_location(std::string_view operand) {
  CopyLocation location;
  size_t colon = operand.find(':');
  if (colon != std::string_view::npos && colon > 0 && operand.substr(0, colon).find('/') == std::string_view::npos) {
    location.remote = true;
    location.sandbox_id.assign(operand.data(), colon);
    location.path.assign(operand.data() + colon + 1, operand.size() - colon - 1);
    if (location.path.empty()) location.path = ".";
    return location;
  }
  location.path = std::string(operand);
  return location;
}

std::string last_component(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/") return "";
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

bool names_contents_only(std::string_view path) {
  std::string last = last_component(path);
  return last.empty() || last == "." || last == "..";
}

std::string join_path(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out(dir);
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

}  // namespace airlock::cli
