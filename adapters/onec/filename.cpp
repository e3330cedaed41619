#include "adapters/onec/filename.hpp"

#include <cstddef>

#include "commerceml/encoding.hpp"

namespace obmen::onec {
namespace {

// The name for a message: whole when short, else its first ~60 bytes cut at a character
// boundary. Only called once the name is known to be valid UTF-8 without control characters.
std::string quoted(std::string_view name) {
  constexpr std::size_t shown = 60;
  if (name.size() <= shown + 20) return "'" + std::string(name) + "'";
  std::size_t cut = shown;
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
  return "'" + std::string(name.substr(0, cut)) + "…'";
}

name_check fail(std::string message) { return {{}, std::move(message)}; }

}  // namespace

name_check check_filename(std::string_view raw) {
  if (raw.empty()) return fail("file name is empty");
  if (auto bad = commerceml::find_invalid_utf8(raw); bad != std::string_view::npos)
    return fail("file name is not valid UTF-8 at byte " + std::to_string(bad));
  for (std::size_t i = 0; i < raw.size(); ++i) {
    auto c = static_cast<unsigned char>(raw[i]);
    if (c < 0x20 || c == 0x7F)
      return fail("file name contains a control character at byte " + std::to_string(i));
  }
  // From here on the name is printable UTF-8 and may be quoted.
  const std::string name = quoted(raw);
  if (raw.find('\\') != std::string_view::npos)
    return fail("file name " + name + " contains a backslash");
  if (raw.size() > max_name_bytes)
    return fail("file name " + name + " is " + std::to_string(raw.size()) +
                " bytes long, more than " + std::to_string(max_name_bytes));
  if (raw.front() == '/') return fail("file name " + name + " is an absolute path");
  if (raw.size() >= 2 && raw[1] == ':' &&
      ((raw[0] >= 'A' && raw[0] <= 'Z') || (raw[0] >= 'a' && raw[0] <= 'z')))
    return fail("file name " + name + " starts with a drive letter");
  if (raw.back() == '/') return fail("file name " + name + " ends with a slash");

  std::size_t start = 0;
  std::size_t depth = 0;   // how far below the exchange directory the walk is
  bool dot_dot = false;    // a ".." that stays inside is rejected too, just worded differently
  while (start <= raw.size()) {
    auto end = raw.find('/', start);
    if (end == std::string_view::npos) end = raw.size();
    auto component = raw.substr(start, end - start);
    if (component.empty()) return fail("file name " + name + " has an empty path component");
    if (component == "..") {
      if (depth == 0) return fail("file name " + name + " escapes the exchange directory");
      --depth;
      dot_dot = true;
      start = end + 1;
      continue;
    }
    if (component == ".") return fail("file name " + name + " has a '.' path component");
    if (component.size() > max_component_bytes)
      return fail("file name " + name + " has a path component longer than " +
                  std::to_string(max_component_bytes) + " bytes");
    ++depth;
    start = end + 1;
  }
  if (dot_dot) return fail("file name " + name + " has a '..' path component");
  return {std::string(raw), {}};
}

}  // namespace obmen::onec
