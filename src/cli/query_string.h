// Request targets: percent-encoding of path segments and query values (RFC 3986 unreserved
// characters pass; everything else, '/' included, is escaped), so that a sandbox id or a file path
// from the user can never change which route is called.
#pragma once

#include <string>
#include <string_view>

namespace airlock::cli {

std::string percent_encode(std::string_view text);

// "?a=1&b=x%20y" built one pair at a time; empty when nothing was added.
class QueryString {
 public:
  QueryString& add(std::string_view name, std::string_view value);
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

// "/v1/sandboxes/" + percent_encode(id) + suffix.
std::string sandbox_target(std::string_view sandbox_id, std::string_view suffix = "");

}  // namespace airlock::cli
