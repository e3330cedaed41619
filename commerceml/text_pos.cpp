#include "commerceml/text_pos.hpp"

#include <algorithm>

namespace obmen::commerceml::detail {

text_pos advance(text_pos at, std::string_view s) {
  for (const char ch : s) {
    if (ch == '\n') {
      ++at.line;
      at.column = 1;
    } else if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) {  // not a UTF-8 continuation byte
      ++at.column;
    }
  }
  return at;
}

void patched_text::append(std::string_view s, text_pos at) {
  pieces_.push_back({text_.size(), at, false});
  text_.append(s);
}

void patched_text::extend(std::string_view s) { text_.append(s); }

void patched_text::append_synthetic(std::string_view s, text_pos at) {
  pieces_.push_back({text_.size(), at, true});
  text_.append(s);
}

void patched_text::truncate(std::size_t n) {
  text_.resize(std::min(n, text_.size()));
  while (!pieces_.empty() && pieces_.back().offset >= n) pieces_.pop_back();
}

text_pos patched_text::position_of(std::size_t offset) const {
  offset = std::min(offset, text_.size());
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), offset,
                             [](std::size_t off, const piece& p) { return off < p.offset; });
  if (it == pieces_.begin()) return {};
  --it;
  if (it->synthetic) return it->at;
  return advance(it->at, std::string_view(text_).substr(it->offset, offset - it->offset));
}

}  // namespace obmen::commerceml::detail
