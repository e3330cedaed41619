#pragma once
// Single-byte Cyrillic code pages that 1C still writes (XML in windows-1251, zip entry names in
// CP866 or windows-1251) and UTF-8 validation. Pure functions.
#include <cstddef>
#include <string>
#include <string_view>

namespace obmen::commerceml {

std::string cp1251_to_utf8(std::string_view);
std::string cp866_to_utf8(std::string_view);
std::string utf8_to_cp1251(std::string_view);   // characters without a cp1251 form become '?'

// Returns the byte offset of the first invalid UTF-8 sequence, or npos when s is valid.
std::size_t find_invalid_utf8(std::string_view s);
inline bool is_valid_utf8(std::string_view s) { return find_invalid_utf8(s) == std::string_view::npos; }

}  // namespace obmen::commerceml
