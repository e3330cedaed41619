#include "adapters/onec/filename.hpp"

#include <cstddef>
#include <cstdint>

namespace obmen::onec {
namespace {

// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or npos.
// Kept local rather than using commerceml/encoding.hpp so this unit has no link dependency.
std::size_t first_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;   // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;        // overlong
      if (b0 == 0xED) hi = 0x9F;        // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;        // overlong
      if (b0 == 0xF4) hi = 0x8F;        // above U+10FFFF
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    for (std::size_t k = 1; k < len; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

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
  if (auto bad = first_invalid_utf8(raw); bad != std::string_view::npos)
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
