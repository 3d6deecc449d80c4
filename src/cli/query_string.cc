#include "cli/query_string.h"

namespace airlock::cli {

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

QueryString& QueryString::add(std::string_view name, std::string_view value) {
  text_ += text_.empty() ? "?" : "&";
  text_ += percent_encode(name);
  text_ += "=";
  text_ += percent_encode(value);
  return *this;
}

std::string sandbox_target(std::string_view sandbox_id, std::string_view suffix) {
  // "." and ".." survive percent-encoding but would be normalised away as path segments.
  std::string id = sandbox_id == "." ? "%2E" : sandbox_id == ".." ? "%2E%2E" : percent_encode(sandbox_id);
  return "/v1/sandboxes/" + id + std::string(suffix);
}

}  // namespace airlock::cli
