// The operands of `airlock cp`: "ID:PATH" names a path in a sandbox, anything else a local path
// (as with docker cp, a local path with a colon is written "./a:b"). Pure, unit-tested.
#pragma once

#include <string>
#include <string_view>

namespace airlock::cli {

struct CopyLocation {
  bool remote = false;
  std::string sandbox_id;  // remote only
  std::string path;        // "." for "ID:" (the sandbox's workdir)
};

// Remote when there is a colon and the part before it is non-empty and holds no '/'.
CopyLocation parse_copy_location(std::string_view operand);

// The last component of a path, trailing slashes ignored: "a/b/" -> "b", "/" -> "", "." -> ".".
std::string last_component(std::string_view path);
// True when a path names a directory's contents rather than the directory ("", ".", "..", "x/.",
// "/"): copying it recursively copies what is inside into the destination itself, as cp -r does.
bool names_contents_only(std::string_view path);
// "dir" + "name" -> "dir/name" (no doubled '/').
std::string join_path(std::string_view dir, std::string_view name);

}  // namespace airlock::cli
