#include "adapters/onec/filename.hpp"

#include <doctest/doctest.h>

#include <string>

using obmen::onec::check_filename;

namespace {

std::string error_of(std::string_view name) {
  auto check = check_filename(name);
  CHECK(check.relative.empty());
  return check.error;
}

}  // namespace

TEST_CASE("check_filename accepts the names 1C sends") {
  for (std::string_view name : {"import0_1.xml", "offers0_1.xml", "import___1b2c.xml",
                                "import_files/ab/abcd.jpg", "import_files/ab/abcd-ef.jpeg",
                                "Прайс-лист.xml", "import_files/Картинки/товар 1.png", ".hidden",
                                "a..b", "...", "x/..y/z"}) {
    auto check = check_filename(name);
    CHECK_MESSAGE(check.ok(), name, ": ", check.error);
    CHECK(check.relative == name);
  }
}

TEST_CASE("check_filename length limits") {
  CHECK(check_filename(std::string(255, 'a')).ok());
  CHECK(error_of(std::string(256, 'a')) ==
        "file name '" + std::string(60, 'a') + "…' has a path component longer than 255 bytes");
  std::string long_ok;
  while (long_ok.size() < 1020) long_ok += std::string(100, 'b') + "/";
  long_ok.resize(1024);
  REQUIRE(long_ok.back() != '/');
  CHECK(check_filename(long_ok).ok());
  CHECK(error_of(long_ok + "c") ==
        "file name '" + long_ok.substr(0, 60) + "…' is 1025 bytes long, more than 1024");
  // Cyrillic letters are two bytes: 128 of them make a 256-byte component.
  std::string cyrillic;
  for (int i = 0; i < 128; ++i) cyrillic += "ж";
  CHECK(error_of(cyrillic).find("has a path component longer than 255 bytes") != std::string::npos);
  // The shortened quote never cuts a character in half.
  CHECK(error_of(cyrillic).substr(0, 11 + 60) == "file name '" + cyrillic.substr(0, 60));
}

TEST_CASE("check_filename rejects unsafe names") {
  CHECK(error_of("") == "file name is empty");
  CHECK(error_of("../etc/passwd") == "file name '../etc/passwd' escapes the exchange directory");
  CHECK(error_of("..") == "file name '..' escapes the exchange directory");
  CHECK(error_of("a/../../b") == "file name 'a/../../b' escapes the exchange directory");
  CHECK(error_of("a/../b") == "file name 'a/../b' has a '..' path component");
  CHECK(error_of("a/..") == "file name 'a/..' has a '..' path component");
  CHECK(error_of("/etc/passwd") == "file name '/etc/passwd' is an absolute path");
  CHECK(error_of("C:/x.xml") == "file name 'C:/x.xml' starts with a drive letter");
  CHECK(error_of("c:x.xml") == "file name 'c:x.xml' starts with a drive letter");
  CHECK(error_of("a\\b.xml") == "file name 'a\\b.xml' contains a backslash");
  CHECK(error_of("C:\\x.xml") == "file name 'C:\\x.xml' contains a backslash");
  CHECK(error_of("a//b") == "file name 'a//b' has an empty path component");
  CHECK(error_of("./a") == "file name './a' has a '.' path component");
  CHECK(error_of("a/./b") == "file name 'a/./b' has a '.' path component");
  CHECK(error_of(".") == "file name '.' has a '.' path component");
  CHECK(error_of("import_files/") == "file name 'import_files/' ends with a slash");
  CHECK(error_of("/") == "file name '/' is an absolute path");
}

TEST_CASE("check_filename rejects control characters by offset") {
  CHECK(error_of(std::string_view("abc\0.xml", 8)) == "file name contains a control character at byte 3");
  CHECK(error_of("a\nb") == "file name contains a control character at byte 1");
  CHECK(error_of("\x1f") == "file name contains a control character at byte 0");
  CHECK(error_of("ab\x7f") == "file name contains a control character at byte 2");
  CHECK(error_of("жx\t") == "file name contains a control character at byte 3");
}

TEST_CASE("check_filename rejects invalid UTF-8 by offset") {
  CHECK(error_of("ab\xcf\xf0.xml") == "file name is not valid UTF-8 at byte 2");   // windows-1251
  CHECK(error_of("\xc0\xaf") == "file name is not valid UTF-8 at byte 0");         // overlong '/'
  CHECK(error_of("a\xe0\x80\xaf") == "file name is not valid UTF-8 at byte 1");    // overlong '/'
  CHECK(error_of("\xed\xa0\x80") == "file name is not valid UTF-8 at byte 0");     // surrogate
  CHECK(error_of("\xf4\x90\x80\x80") == "file name is not valid UTF-8 at byte 0"); // > U+10FFFF
  CHECK(error_of("ж\xd0") == "file name is not valid UTF-8 at byte 2");            // truncated
  CHECK(error_of("\x80") == "file name is not valid UTF-8 at byte 0");
  CHECK(check_filename("\xf0\x9f\x98\x80.png").ok());                              // U+1F600
}
