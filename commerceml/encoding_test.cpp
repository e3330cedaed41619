#include <doctest/doctest.h>

#include <string>

#include "commerceml/encoding.hpp"

using namespace obmen::commerceml;

TEST_CASE("cp1251_to_utf8 decodes Cyrillic, Ё/ё, punctuation and keeps ASCII") {
  CHECK(cp1251_to_utf8("\xCA\xEE\xEC\xEC\xE5\xF0\xF7\xE5\xF1\xEA\xE0\xFF") == "Коммерческая");
  CHECK(cp1251_to_utf8("\xC0\xDF\xE0\xFF") == "АЯая");
  CHECK(cp1251_to_utf8("\xA8\xB8") == "Ёё");
  CHECK(cp1251_to_utf8("\xB9 5, \xAB\xEA\xBB \x96 \x88") == "№ 5, «к» – €");
  CHECK(cp1251_to_utf8("abc <x/>\n") == "abc <x/>\n");
  CHECK(cp1251_to_utf8("\x98") == "\xEF\xBF\xBD");  // unassigned → U+FFFD
  CHECK(cp1251_to_utf8("") == "");
}

TEST_CASE("cp866_to_utf8 decodes DOS Cyrillic (zip entry names)") {
  CHECK(cp866_to_utf8("\x8A\xAE\xAC\xAC\xA5\xE0\xE7\xA5\xE1\xAA\xA0\xEF") == "Коммерческая");
  CHECK(cp866_to_utf8("\xF0\xF1") == "Ёё");
  CHECK(cp866_to_utf8("import0_1.xml") == "import0_1.xml");
}

TEST_CASE("utf8_to_cp1251 round-trips and replaces what cp1251 cannot say") {
  CHECK(utf8_to_cp1251("Коммерческая") == "\xCA\xEE\xEC\xEC\xE5\xF0\xF7\xE5\xF1\xEA\xE0\xFF");
  CHECK(utf8_to_cp1251("Ёё№€") == "\xA8\xB8\xB9\x88");
  CHECK(utf8_to_cp1251("日本") == "??");
  CHECK(utf8_to_cp1251("a\xFF" "b") == "a?b");  // invalid byte
  std::string all;
  for (int b = 0; b < 256; ++b)
    if (b != 0x98) all.push_back(static_cast<char>(b));
  CHECK(utf8_to_cp1251(cp1251_to_utf8(all)) == all);
}

TEST_CASE("find_invalid_utf8 reports the first bad byte") {
  CHECK(find_invalid_utf8("") == std::string::npos);
  CHECK(find_invalid_utf8("plain ASCII") == std::string::npos);
  CHECK(find_invalid_utf8("Товар €𝄞") == std::string::npos);
  CHECK(is_valid_utf8("\xF4\x8F\xBF\xBF"));                  // U+10FFFF
  CHECK(find_invalid_utf8("ab\xFF") == 2);                     // never valid
  CHECK(find_invalid_utf8("ab\x80") == 2);                     // stray continuation
  CHECK(find_invalid_utf8("\xC0\xAF") == 0);                   // overlong '/'
  CHECK(find_invalid_utf8("\xE0\x80\xAF") == 0);               // overlong, 3 bytes
  CHECK(find_invalid_utf8("\xF0\x80\x80\xAF") == 0);           // overlong, 4 bytes
  CHECK(find_invalid_utf8("x\xED\xA0\x80") == 1);              // surrogate U+D800
  CHECK(find_invalid_utf8("\xF4\x90\x80\x80") == 0);           // U+110000
  CHECK(find_invalid_utf8("\xF5\x80\x80\x80") == 0);
  CHECK(find_invalid_utf8("Т\xD0") == 2);                      // truncated at the end
  CHECK(find_invalid_utf8("Т\xD0x") == 2);                     // continuation missing
  CHECK(find_invalid_utf8("\xCA\xEE") == 0);                   // windows-1251 text is not UTF-8
}

TEST_CASE("find_invalid_utf8: long Cyrillic runs (checked four characters at a time) hide no bad byte") {
  const std::string word = "Наименование";  // 12 two-byte characters
  std::string text;
  for (int i = 0; i < 8; ++i) text += word;
  CHECK(find_invalid_utf8(text) == std::string::npos);
  CHECK(find_invalid_utf8("x" + text) == std::string::npos);  // runs starting at odd offsets
  // Each fault at every offset of a run: overlong leads 0xC0/0xC1, a lead without continuation,
  // a stray continuation, a three-byte lead's start.
  for (const char* bad : {"\xC0\xAF", "\xC1\xBF", "\xD0x", "\x80", "\xD0\xD0"}) {
    for (std::size_t at = 0; at <= text.size(); at += 2) {
      std::string s = text;
      s.insert(at, bad);
      CAPTURE(at);
      CAPTURE(bad);
      CHECK(find_invalid_utf8(s) == at);
    }
  }
}
