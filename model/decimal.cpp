#include "model/catalog.hpp"

namespace obmen::model {

std::optional<decimal> normalize_decimal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool digits = false, point = false, sign_allowed = true;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    // U+00A0 NO-BREAK SPACE (C2 A0) and U+202F NARROW NO-BREAK SPACE (E2 80 AF) as thousands separators.
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0) { ++i; continue; }
    if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        static_cast<unsigned char>(s[i + 2]) == 0xAF) { i += 2; continue; }
    if ((c == '-' || c == '+') && sign_allowed && out.empty()) {
      if (c == '-') out.push_back('-');
      sign_allowed = false;
      continue;
    }
    if (c >= '0' && c <= '9') { out.push_back(static_cast<char>(c)); digits = true; sign_allowed = false; continue; }
    if ((c == '.' || c == ',') && !point) {
      if (!digits) out.push_back('0');
      out.push_back('.');
      point = true;
      sign_allowed = false;
      continue;
    }
    return std::nullopt;
  }
  if (!digits) return std::nullopt;
  if (out.back() == '.') out.pop_back();
  if (out == "-0") out = "0";
  return out;
}

}  // namespace obmen::model
