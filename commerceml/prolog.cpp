#include "commerceml/prolog.hpp"

#include <cstdio>

#include "commerceml/encoding.hpp"
#include "commerceml/reader.hpp"
#include "commerceml/text_pos.hpp"

namespace obmen::commerceml::detail {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

prolog detect_prolog(std::string_view head, std::string_view file_name) {
  prolog p;
  if (head.starts_with("\xEF\xBB\xBF")) {
    p.bom = true;
    head.remove_prefix(3);
  } else if (head.starts_with("\xFF\xFE") || head.starts_with("\xFE\xFF") ||
             (head.size() >= 2 && head[0] == '<' && head[1] == '\0') ||
             (head.size() >= 2 && head[0] == '\0' && head[1] == '<')) {
    // 1C never writes UTF-16; say so plainly instead of "malformed XML" at 1:1.
    throw parse_error(std::string(file_name), 1, 1, "unsupported encoding 'UTF-16'");
  }
  // The declaration, when present, is the very first thing: <?xml version="1.0" encoding="…"?>
  if (!head.starts_with("<?xml") || head.size() < 6 || !is_space(head[5])) return p;
  const std::size_t decl_end = head.find("?>");
  const std::string_view decl = head.substr(0, decl_end);  // to the end of head when unterminated
  std::size_t i = decl.find("encoding");
  while (i != std::string_view::npos && !(i > 0 && is_space(decl[i - 1]))) i = decl.find("encoding", i + 1);
  if (i == std::string_view::npos) return p;
  i += 8;
  while (i < decl.size() && is_space(decl[i])) ++i;
  if (i >= decl.size() || decl[i] != '=') return p;  // malformed; pugixml will say so
  ++i;
  while (i < decl.size() && is_space(decl[i])) ++i;
  if (i >= decl.size() || (decl[i] != '"' && decl[i] != '\'')) return p;
  const char quote = decl[i++];
  const std::size_t close = decl.find(quote, i);
  if (close == std::string_view::npos) return p;
  const std::string_view value = decl.substr(i, close - i);
  p.value_offset = i;
  p.value_length = value.size();
  const std::string v = lower_ascii(value);
  if (v == "utf-8" || v == "utf8") return p;
  if (v == "windows-1251" || v == "cp1251") {
    p.cp1251 = true;
    p.encoding = "windows-1251";
    return p;
  }
  const text_pos at = advance({}, head.substr(0, i));
  throw parse_error(std::string(file_name), at.line, at.column,
                    "unsupported encoding '" + std::string(value) + "'");
}

std::string utf8_document(std::string_view body, const prolog& pro, std::string_view file_name) {
  std::string text;
  if (pro.cp1251) {
    text = cp1251_to_utf8(body);
    // Both accepted names are at least 5 characters long, so "utf-8" plus its closing quote
    // and padding spaces fit where the old value was.
    if (pro.value_offset != std::string::npos) {
      // value_offset counts windows-1251 bytes; any byte >= 0x80 before the value (in another
      // attribute) takes two or three in UTF-8, so find the value in the converted text.
      const std::size_t at = cp1251_to_utf8(body.substr(0, pro.value_offset)).size();
      const char quote = text[at - 1];
      std::string value = "utf-8";
      value += quote;
      value.resize(pro.value_length + 1, ' ');
      text.replace(at, value.size(), value);
    }
  } else {
    if (const std::size_t bad = find_invalid_utf8(body); bad != std::string_view::npos) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(body[bad]));
      const text_pos at = advance({}, body.substr(0, bad));
      throw parse_error(std::string(file_name), at.line, at.column, std::string("invalid UTF-8 byte ") + hex);
    }
    text.assign(body);
  }
  // XML has no U+0000, and pugixml would take one for the end of the text.
  if (const std::size_t nul = text.find('\0'); nul != std::string::npos) {
    const text_pos at = advance({}, std::string_view(text).substr(0, nul));
    throw parse_error(std::string(file_name), at.line, at.column, "invalid character U+0000");
  }
  return text;
}

}  // namespace obmen::commerceml::detail
