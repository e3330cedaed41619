// What the 1C exchange endpoint decodes from a request before any XML parser sees it: the
// percent-decoding of the target and query (http::percent_decode, as daemon/http_server.cpp
// applies it), the file names of mode=file / mode=import (onec::check_filename) and the encoding
// of an uploaded file (its BOM and XML declaration: commerceml::detail::detect_prolog /
// utf8_document, and the code-page converters). Nothing here may throw except parse_error from
// the prolog functions; accepted names must stay inside the spool.
#include <filesystem>
#include <string>
#include <string_view>

#include "adapters/onec/filename.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/prolog.hpp"
#include "commerceml/reader.hpp"
#include "common/http.hpp"
#include "fuzz/fuzz_target.hpp"

namespace {

using obmen::fuzz::expect;
namespace cml = obmen::commerceml;

bool printable_utf8(std::string_view s) {
  if (!cml::is_valid_utf8(s)) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7F) return false;
  return true;
}

// An accepted name is used as is under the spool; it must name something strictly inside it.
void check_name(std::string_view raw) {
  const auto r = obmen::onec::check_filename(raw);
  if (!r.ok()) {
    expect(r.relative.empty(), "a rejected name still has a path");
    expect(printable_utf8(r.error), "the error about a file name carries raw bytes into logs: " + r.error);
    return;
  }
  expect(r.relative == raw, "an accepted name was rewritten");
  const std::filesystem::path spool = "/var/spool/obmen/node";
  const std::filesystem::path target = (spool / r.relative).lexically_normal();
  const auto rel = target.lexically_relative(spool);
  expect(!rel.empty() && *rel.begin() != ".." && *rel.begin() != "." && target != spool,
         "accepted file name '" + r.relative + "' leads to " + target.string());
  expect(rel == std::filesystem::path(r.relative), "accepted file name '" + r.relative + "' is not canonical");
}

void check_prolog(std::string_view data) {
  cml::detail::prolog pro;
  try {
    pro = cml::detail::detect_prolog(data.substr(0, cml::detail::prolog_head_size), "upload.xml");
  } catch (const cml::parse_error&) {
    return;
  }
  const std::string_view body = data.substr(pro.bom ? 3 : 0);
  if (pro.value_offset != std::string_view::npos)
    expect(pro.value_offset + pro.value_length <= body.size(), "the declared encoding lies past the text");
  std::string text;
  try {
    text = cml::detail::utf8_document(body, pro, "upload.xml");
  } catch (const cml::parse_error&) {
    expect(!pro.cp1251, "a windows-1251 document failed to convert");
    return;
  }
  expect(cml::is_valid_utf8(text), "utf8_document returned invalid UTF-8");
}

void check_code_pages(std::string_view data) {
  const std::string from1251 = cml::cp1251_to_utf8(data);
  expect(cml::is_valid_utf8(from1251), "cp1251_to_utf8 returned invalid UTF-8");
  expect(cml::is_valid_utf8(cml::cp866_to_utf8(data)), "cp866_to_utf8 returned invalid UTF-8");
  // windows-1251 → UTF-8 → windows-1251 is the identity, except 0x98 (unassigned: U+FFFD → '?').
  std::string expected(data);
  for (char& c : expected)
    if (c == '\x98') c = '?';
  expect(cml::utf8_to_cp1251(from1251) == expected, "windows-1251 does not survive a round trip through UTF-8");
  const std::size_t bad = cml::find_invalid_utf8(data);
  if (bad != std::string_view::npos) {
    expect(bad < data.size(), "find_invalid_utf8 points past the end");
    expect(cml::is_valid_utf8(data.substr(0, bad)), "the text before the first invalid byte is invalid");
  } else {
    cml::utf8_to_cp1251(data);
  }
}

}  // namespace

OBMEN_FUZZ_TARGET(exchange) {
  const std::string_view raw = bytes(data, size);
  check_name(raw);
  for (bool plus_as_space : {false, true}) {
    const std::string decoded = obmen::http::percent_decode(raw, plus_as_space);
    expect(decoded.size() <= raw.size(), "percent_decode grew the text");
    check_name(decoded);
  }
  check_prolog(raw);
  check_code_pages(raw);
}
