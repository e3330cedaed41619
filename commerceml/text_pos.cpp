#include "commerceml/text_pos.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

namespace obmen::commerceml::detail {

namespace {

// Bytes whose high bit is set in m (m has bits only at 0x80 positions): a multiply sums them.
// Not std::popcount: without -mpopcnt that is a libgcc call, and this runs over every byte read.
std::size_t count_high_bits(std::uint64_t m) {
  return static_cast<std::size_t>(((m >> 7) * 0x0101010101010101ULL) >> 56);
}

// Characters (bytes that are not UTF-8 continuation bytes) in s, eight bytes at a time.
std::size_t count_characters(std::string_view s) {
  std::size_t continuation = 0, i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    // 10xxxxxx: bit 7 set and bit 6 clear.
    continuation += count_high_bits(w & ~(w << 1) & 0x8080808080808080ULL);
  }
  for (; i < s.size(); ++i) continuation += (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80;
  return s.size() - continuation;
}

// Newlines in s, eight bytes at a time (a byte is zero after the xor exactly where s has '\n').
std::size_t count_newlines(std::string_view s) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL, lows = 0x7F7F7F7F7F7F7F7FULL;
  std::size_t n = 0, i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    const std::uint64_t x = w ^ (ones * '\n');
    // High bit of each byte set iff that byte of x is zero.
    n += count_high_bits(~(((x & lows) + lows) | x | lows));
  }
  for (; i < s.size(); ++i) n += s[i] == '\n';
  return n;
}

}  // namespace

text_pos advance(text_pos at, std::string_view s) {
  const std::size_t last_newline = s.rfind('\n');
  if (last_newline == std::string_view::npos) {
    at.column += static_cast<int>(count_characters(s));
    return at;
  }
  at.line += static_cast<int>(count_newlines(s.substr(0, last_newline + 1)));
  at.column = 1 + static_cast<int>(count_characters(s.substr(last_newline + 1)));
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
