#pragma once
// Internal: how a CommerceML file is encoded, from its first bytes (BOM, XML declaration).
#include <cstddef>
#include <string>
#include <string_view>

namespace obmen::commerceml::detail {

struct prolog {
  bool bom = false;                 // UTF-8 BOM present (the text starts after it)
  bool cp1251 = false;              // the declaration names windows-1251 / cp1251
  std::string encoding = "utf-8";   // "utf-8" or "windows-1251"
  // Where the declaration's encoding value sits, relative to the text after the BOM
  // (npos when there is none); the whole-document path rewrites it after conversion.
  std::size_t value_offset = std::string_view::npos;
  std::size_t value_length = 0;
};

// `head` holds the first bytes of the file (4 KiB or the whole file). Throws parse_error for a
// UTF-16 document or a declared encoding other than UTF-8 and windows-1251.
prolog detect_prolog(std::string_view head, std::string_view file_name);

inline constexpr std::size_t prolog_head_size = 4096;

// The whole document (`body` = the bytes after the BOM) as UTF-8 text for pugixml: windows-1251
// is converted and its declaration made to say utf-8 without moving any position (encoding=
// "windows-1251" becomes encoding="utf-8" padded with spaces); UTF-8 is validated. Throws
// parse_error with the position of the first invalid byte, or of a U+0000 (XML has none).
std::string utf8_document(std::string_view body, const prolog& pro, std::string_view file_name);

}  // namespace obmen::commerceml::detail
