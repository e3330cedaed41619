#pragma once
// Internal to the CommerceML reader: positions in a file and text assembled from pieces of it.
// A position is a 1-based line and a 1-based column counted in characters of the decoded
// (UTF-8) text; a line ends at '\n'. For windows-1251 input a character is one byte, so the
// column is the same in the original file.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace obmen::commerceml::detail {

struct text_pos {
  int line = 1;
  int column = 1;
};

// The position just after `s` when `s` starts at `at`.
text_pos advance(text_pos at, std::string_view s);

// A buffer handed to pugixml that is made of pieces of the file (plus a few synthetic closing
// tags), with enough bookkeeping to turn an offset in the buffer back into a file position.
class patched_text {
 public:
  // Starts a new piece whose first byte is at `at` in the file.
  void append(std::string_view s, text_pos at);
  // Continues the last piece (the bytes follow it directly in the file).
  void extend(std::string_view s);
  // Text that is not in the file; every offset inside it maps to `at`.
  void append_synthetic(std::string_view s, text_pos at);
  // Drops everything from offset n on.
  void truncate(std::size_t n);

  const std::string& str() const { return text_; }
  std::size_t size() const { return text_.size(); }
  text_pos position_of(std::size_t offset) const;

 private:
  struct piece {
    std::size_t offset;
    text_pos at;
    bool synthetic;
  };
  std::string text_;
  std::vector<piece> pieces_;
};

}  // namespace obmen::commerceml::detail
