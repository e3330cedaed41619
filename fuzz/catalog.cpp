// CommerceML catalog files (import*.xml, offers*.xml): the bytes as 1C uploads them, read by the
// streaming sliced reader (what the daemon runs) and by the whole-document reader it is tested
// against. Only commerceml::parse_error is expected. Both readers must agree: both reject the
// file, or both deliver the same calls with the same content (tests/support/catalog_dump.hpp).
// Their messages may differ when a file has several defects (the slicer meets them in stream
// order; the whole-document reader validates all the UTF-8 first), so only the verdict is
// compared for errors. The chunk and batch sizes vary with the input's length, so the slicer's
// chunk boundaries fall everywhere.
#include <string>

#include "commerceml/dom_reader.hpp"
#include "commerceml/reader.hpp"
#include "fuzz/fuzz_target.hpp"
#include "tests/support/catalog_dump.hpp"

namespace {

using obmen::commerceml::parse_error;
using obmen::commerceml::read_options;

// The dump of what a reader delivered, or "error <what()>" (a dump starts with "info ").
template <class Read>
std::string outcome(Read read) {
  obmen::testing::catalog_recorder r;
  try {
    read(r);
  } catch (const parse_error& e) {
    return std::string("error ") + e.what();
  }
  return obmen::testing::dump(r);
}

}  // namespace

OBMEN_FUZZ_TARGET(catalog) {
  const auto text = bytes(data, size);
  const read_options options{.batch_size = 1 + size % 3, .chunk_size = 1 + size % 97};
  const std::string sliced = outcome([&](auto& sink) {
    obmen::commerceml::read_catalog_buffer(text, "import.xml", sink, options);
  });
  const std::string whole = outcome([&](auto& sink) {
    obmen::commerceml::detail::read_whole_document(text, "import.xml", sink, options);
  });
  const bool sliced_failed = sliced.starts_with("error "), whole_failed = whole.starts_with("error ");
  if (sliced_failed && whole_failed) return;
  // Known gap (docs/fuzzing.md): the slicer checks only the tag structure of what it skips, so a
  // malformed attribute outside Товар / Предложение / the classifier passes it. Harmless while
  // nothing but on_document reached the sink; content delivered from a broken file is a finding.
  if (whole_failed && sliced.ends_with("\ncall document\n") &&
      sliced.find("\ncall ") == sliced.rfind("\ncall "))
    return;
  expect(sliced == whole, "the sliced and whole-document readers disagree:\n--- sliced\n" + sliced +
                              "\n--- whole\n" + whole);
}
