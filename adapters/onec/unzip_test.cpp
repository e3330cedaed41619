#include "adapters/onec/unzip.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <zip.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <tuple>
#include <vector>
#include "tests/support/temp_dir.hpp"

using obmen::test::temp_dir;

namespace fs = std::filesystem;
using obmen::onec::unzip_archive;
using obmen::onec::unzip_error;

namespace {


struct entry {
  std::string name;                      // a trailing '/' makes a directory entry
  std::string data;
  std::uint64_t zeros = 0;               // instead of data: this many zero bytes
  std::optional<std::uint32_t> unix_mode;
  bool store = false;                    // no compression
  bool encrypt = false;
};

void make_zip(const fs::path& file, const std::vector<entry>& entries) {
  int err = 0;
  zip_t* za = zip_open(file.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  REQUIRE(za != nullptr);
  for (const auto& e : entries) {
    zip_int64_t index = 0;
    if (!e.name.empty() && e.name.back() == '/') {
      index = zip_dir_add(za, e.name.substr(0, e.name.size() - 1).c_str(), ZIP_FL_ENC_GUESS);
    } else {
      zip_source_t* source = nullptr;
      if (e.zeros > 0) {
        // calloc'ed pages stay unmapped until deflate reads them; libzip frees the buffer.
        source = zip_source_buffer(za, std::calloc(e.zeros, 1), e.zeros, 1);
      } else if (e.data.empty()) {
        source = zip_source_buffer(za, nullptr, 0, 0);   // libzip would not free a 0-byte buffer
      } else {
        void* copy = std::malloc(e.data.size());
        std::copy(e.data.begin(), e.data.end(), static_cast<char*>(copy));
        source = zip_source_buffer(za, copy, e.data.size(), 1);
      }
      REQUIRE(source != nullptr);
      index = zip_file_add(za, e.name.c_str(), source, ZIP_FL_ENC_GUESS);
      if (index < 0) zip_source_free(source);
    }
    REQUIRE_MESSAGE(index >= 0, zip_strerror(za));
    const auto i = static_cast<zip_uint64_t>(index);
    if (e.store) REQUIRE(zip_set_file_compression(za, i, ZIP_CM_STORE, 0) == 0);
    if (e.unix_mode) REQUIRE(zip_file_set_external_attributes(za, i, 0, ZIP_OPSYS_UNIX, *e.unix_mode << 16) == 0);
    if (e.encrypt) REQUIRE_MESSAGE(zip_file_set_encryption(za, i, ZIP_EM_TRAD_PKWARE, "secret") == 0, zip_strerror(za));
  }
  REQUIRE_MESSAGE(zip_close(za) == 0, zip_strerror(za));
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& file, const std::string& data) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << data;
  REQUIRE(out.good());
}

// Everything under `dir`, relative, sorted; directories end with '/'.
std::vector<std::string> tree(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    auto rel = fs::relative(e.path(), dir).string();
    out.push_back(e.is_directory() && !e.is_symlink() ? rel + "/" : rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Incompressible bytes (xorshift), so that size limits are tested apart from the ratio limit.
std::string noise(std::size_t size, std::uint64_t seed = 88172645463325252ull) {
  std::string out(size, '\0');
  for (auto& c : out) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    c = static_cast<char>(seed);
  }
  return out;
}

// Replaces every occurrence of `from` in the file with `to` (same length): local header and
// central directory copies of a name or a size field.
void patch(const fs::path& file, const std::string& from, const std::string& to) {
  REQUIRE(from.size() == to.size());
  std::string bytes = read_file(file);
  std::size_t hits = 0;
  for (auto at = bytes.find(from); at != std::string::npos; at = bytes.find(from, at + to.size())) {
    bytes.replace(at, from.size(), to);
    ++hits;
  }
  REQUIRE(hits > 0);
  write_file(file, bytes);
}

std::string le32(std::uint32_t v) {
  return {static_cast<char>(v & 0xFF), static_cast<char>((v >> 8) & 0xFF),
          static_cast<char>((v >> 16) & 0xFF), static_cast<char>((v >> 24) & 0xFF)};
}

std::string unzip_error_of(const fs::path& archive, const fs::path& dest,
                           const obmen::config::zip_limits& limits = {}) {
  try {
    unzip_archive(archive, dest, limits);
  } catch (const unzip_error& e) {
    return e.what();
  }
  FAIL("unzip_archive did not throw");
  return {};
}

}  // namespace

TEST_CASE("unzip: a normal 1C archive with folders and a Cyrillic UTF-8 name") {
  temp_dir tmp;
  const auto archive = tmp.path() / "v8_1.zip";
  make_zip(archive, {{.name = "import0_1.xml", .data = "<import/>"},
                     {.name = "offers0_1.xml", .data = "<offers/>", .store = true},
                     {.name = "import_files/"},
                     {.name = "import_files/ab/abcd.jpg", .data = noise(100000)},
                     {.name = "Прайс-лист.xml", .data = "цены"}});
  std::vector<std::tuple<std::string, std::size_t, std::size_t>> calls;
  const auto dest = tmp.path() / "spool" / "session";
  auto result = unzip_archive(archive, dest, {}, [&](const std::string& name, std::size_t i, std::size_t n) {
    calls.emplace_back(name, i, n);
  });

  CHECK(result.files == std::vector<std::string>{"import0_1.xml", "offers0_1.xml",
                                                 "import_files/ab/abcd.jpg", "Прайс-лист.xml"});
  CHECK(result.total_bytes == 9 + 9 + 100000 + 8);
  CHECK(tree(dest) == std::vector<std::string>{"import0_1.xml", "import_files/", "import_files/ab/",
                                               "import_files/ab/abcd.jpg", "offers0_1.xml",
                                               "Прайс-лист.xml"});
  CHECK(read_file(dest / "import0_1.xml") == "<import/>");
  CHECK(read_file(dest / "offers0_1.xml") == "<offers/>");
  CHECK(read_file(dest / "import_files/ab/abcd.jpg") == noise(100000));
  CHECK(read_file(dest / "Прайс-лист.xml") == "цены");
  using call = std::tuple<std::string, std::size_t, std::size_t>;
  CHECK(calls == std::vector<call>{{"import0_1.xml", 0, 5}, {"offers0_1.xml", 1, 5},
                                   {"import_files/", 2, 5}, {"import_files/ab/abcd.jpg", 3, 5},
                                   {"Прайс-лист.xml", 4, 5}});

  SUBCASE("extracting again replaces the files") {
    write_file(dest / "import0_1.xml", "stale");
    auto again = unzip_archive(archive, dest, {});
    CHECK(again.files.size() == 4);
    CHECK(read_file(dest / "import0_1.xml") == "<import/>");
  }
}

TEST_CASE("unzip: UTF-8 names without the UTF-8 flag are kept") {
  temp_dir tmp;
  const auto archive = tmp.path() / "a.zip";
  // "Ц.xml" and "Ш.xml": libzip flags the first; the flag of the second is cleared below by
  // patching general-purpose bit 11 in both headers (the bytes before the name's CRC/size fields
  // differ per header, so the patch matches "version needed 20, flags 0x0800, method 8").
  make_zip(archive, {{.name = "Ц.xml", .data = "a"}});
  const std::string flagged = std::string("\x14\x00\x00\x08", 4);
  const std::string unflagged = std::string("\x14\x00\x00\x00", 4);
  patch(archive, flagged, unflagged);
  auto result = unzip_archive(archive, tmp.path() / "out", {});
  CHECK(result.files == std::vector<std::string>{"Ц.xml"});
  CHECK(read_file(tmp.path() / "out" / "Ц.xml") == "a");
}

TEST_CASE("unzip: CP866 and windows-1251 entry names are decoded") {
  temp_dir tmp;
  const auto archive = tmp.path() / "legacy.zip";
  // "Товары/Цены.xml" in CP866, "Прайс.xml" and "товары.xml" in windows-1251, and "аб.xml" in
  // windows-1251, which reads as valid Cyrillic ("рс") in CP866 as well: ties stay CP866.
  make_zip(archive, {{.name = "\x92\xae\xa2\xa0\xe0\xeb/\x96\xa5\xad\xeb.xml", .data = "1"},
                     {.name = "\xcf\xf0\xe0\xe9\xf1.xml", .data = "2"},
                     {.name = "\xf2\xee\xe2\xe0\xf0\xfb.xml", .data = "3"},
                     {.name = "\xe0\xe1.xml", .data = "4"}});
  auto result = unzip_archive(archive, tmp.path() / "out", {});
  CHECK(result.files ==
        std::vector<std::string>{"Товары/Цены.xml", "Прайс.xml", "товары.xml", "рс.xml"});
  CHECK(read_file(tmp.path() / "out" / "Товары" / "Цены.xml") == "1");
  CHECK(read_file(tmp.path() / "out" / "Прайс.xml") == "2");
  CHECK(read_file(tmp.path() / "out" / "товары.xml") == "3");
}

TEST_CASE("unzip: unsafe entry names are rejected and nothing is left behind") {
  temp_dir tmp;
  const auto archive = tmp.path() / "v8_1.zip";
  const auto dest = tmp.path() / "out";
  fs::create_directories(dest / "kept");
  write_file(dest / "kept" / "old.xml", "old");

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"../evil", "archive 'v8_1.zip': entry '../evil': file name '../evil' escapes the exchange directory"},
      {"/etc/cron.d/evil", "archive 'v8_1.zip': entry '/etc/cron.d/evil': file name '/etc/cron.d/evil' is an absolute path"},
      {"a\\b.xml", "archive 'v8_1.zip': entry 'a\\b.xml': file name 'a\\b.xml' contains a backslash"},
      {"x/../../evil", "archive 'v8_1.zip': entry 'x/../../evil': file name 'x/../../evil' escapes the exchange directory"},
      {"bad\x01name", "archive 'v8_1.zip': entry 'bad\\x01name': file name contains a control character at byte 3"},
      {"../", "archive 'v8_1.zip': entry '../': file name '..' escapes the exchange directory"},
  };
  for (const auto& [name, message] : cases) {
    CAPTURE(name);
    // Good entries come first, in a new folder, so the clean-up has work to do.
    make_zip(archive, {{.name = "import0_1.xml", .data = "x"},
                       {.name = "kept/new.xml", .data = "x"},
                       {.name = "import_files/ab/abcd.jpg", .data = "x"},
                       {.name = name, .data = "evil"}});
    CHECK(unzip_error_of(archive, dest) == message);
    CHECK(tree(dest) == std::vector<std::string>{"kept/", "kept/old.xml"});
    CHECK(!fs::exists(tmp.path() / "evil"));
  }
}

TEST_CASE("unzip: symlink entries are rejected") {
  temp_dir tmp;
  const auto archive = tmp.path() / "link.zip";
  make_zip(archive, {{.name = "ok.xml", .data = "x"},
                     {.name = "passwd", .data = "/etc/passwd", .unix_mode = S_IFLNK | 0777}});
  CHECK(unzip_error_of(archive, tmp.path() / "out") ==
        "archive 'link.zip': entry 'passwd': symbolic links are not allowed");
  CHECK(tree(tmp.path() / "out").empty());

  make_zip(archive, {{.name = "fifo", .data = "", .unix_mode = S_IFIFO | 0644}});
  CHECK(unzip_error_of(archive, tmp.path() / "out") ==
        "archive 'link.zip': entry 'fifo': only regular files and directories are allowed");
}

TEST_CASE("unzip: symlinks already in the destination are never followed") {
  temp_dir tmp;
  const auto archive = tmp.path() / "a.zip";
  const auto dest = tmp.path() / "out";
  const auto outside = tmp.path() / "outside";
  fs::create_directories(dest);
  fs::create_directories(outside);
  write_file(outside / "target.xml", "precious");

  SUBCASE("a symlinked directory") {
    fs::create_directory_symlink(outside, dest / "import_files");
    make_zip(archive, {{.name = "import_files/target.xml", .data = "evil"}});
    CHECK(unzip_error_of(archive, dest) ==
          "archive 'a.zip': entry 'import_files/target.xml': 'import_files' in the destination is a symbolic link");
  }
  SUBCASE("a symlinked file") {
    fs::create_symlink(outside / "target.xml", dest / "import.xml");
    make_zip(archive, {{.name = "import.xml", .data = "evil"}});
    CHECK(unzip_error_of(archive, dest) ==
          "archive 'a.zip': entry 'import.xml': refusing to replace the symbolic link 'import.xml'");
    CHECK(fs::is_symlink(dest / "import.xml"));
  }
  CHECK(read_file(outside / "target.xml") == "precious");
  CHECK(tree(outside) == std::vector<std::string>{"target.xml"});
}

TEST_CASE("unzip: zip bombs are stopped by the ratio limit") {
  temp_dir tmp;
  const auto archive = tmp.path() / "bomb.zip";
  make_zip(archive, {{.name = "zeros.bin", .zeros = 200ull << 20}});
  CHECK(fs::file_size(archive) < (1u << 20));
  obmen::config::zip_limits limits;
  limits.max_ratio = 100;
  // The ratio limit fires (it is checked from the first inflated MiB on), not the entry or
  // total size limits, which are far above 200 MiB by default.
  CHECK(unzip_error_of(archive, tmp.path() / "out", limits) ==
        "archive 'bomb.zip': entry 'zeros.bin': compression ratio exceeds max_ratio = 100");
  CHECK(tree(tmp.path() / "out").empty());

  // With the ratio check out of the way, the entry size limit stops it.
  limits.max_ratio = 1000000;
  limits.max_entry_bytes = 10u << 20;
  CHECK(unzip_error_of(archive, tmp.path() / "out", limits) ==
        "archive 'bomb.zip': entry 'zeros.bin': inflates to more than max_entry_bytes = 10485760");
  CHECK(tree(tmp.path() / "out").empty());
}

TEST_CASE("unzip: the ratio limit spares small files that compress well") {
  temp_dir tmp;
  const auto archive = tmp.path() / "small.zip";
  make_zip(archive, {{.name = "blank.xml", .zeros = 1u << 20}});
  obmen::config::zip_limits limits;
  limits.max_ratio = 10;
  auto result = unzip_archive(archive, tmp.path() / "out", limits);
  CHECK(result.total_bytes == 1u << 20);
}

TEST_CASE("unzip: the entry size limit counts inflated bytes, not declared sizes") {
  temp_dir tmp;
  const auto archive = tmp.path() / "big.zip";
  obmen::config::zip_limits limits;
  limits.max_entry_bytes = 1u << 20;

  make_zip(archive, {{.name = "ok.bin", .data = noise(1u << 20)},
                     {.name = "big.bin", .data = noise((1u << 20) + 1, 7)}});
  CHECK(unzip_error_of(archive, tmp.path() / "out", limits) ==
        "archive 'big.zip': entry 'big.bin': inflates to more than max_entry_bytes = 1048576");
  CHECK(tree(tmp.path() / "out").empty());

  // The same entry claiming to be 16 bytes long in both headers.
  make_zip(archive, {{.name = "liar.bin", .data = noise(3u << 20), .store = true}});
  patch(archive, le32(3u << 20) + le32(3u << 20), le32(3u << 20) + le32(16));
  CHECK(unzip_error_of(archive, tmp.path() / "out", limits) ==
        "archive 'big.zip': entry 'liar.bin': inflates to more than max_entry_bytes = 1048576");
}

TEST_CASE("unzip: the total size limit") {
  temp_dir tmp;
  const auto archive = tmp.path() / "total.zip";
  make_zip(archive, {{.name = "a/1.bin", .data = noise(400000, 1)},
                     {.name = "a/2.bin", .data = noise(400000, 2)},
                     {.name = "a/3.bin", .data = noise(400000, 3)}});
  obmen::config::zip_limits limits;
  limits.max_total_bytes = 1000000;
  CHECK(unzip_error_of(archive, tmp.path() / "out", limits) ==
        "archive 'total.zip': entry 'a/3.bin': the archive inflates to more than max_total_bytes = 1000000");
  CHECK(tree(tmp.path() / "out").empty());
  limits.max_total_bytes = 1200000;
  CHECK(unzip_archive(archive, tmp.path() / "out", limits).total_bytes == 1200000);
}

TEST_CASE("unzip: too many entries") {
  temp_dir tmp;
  const auto archive = tmp.path() / "many.zip";
  std::vector<entry> entries;
  for (int i = 0; i < 5; ++i) entries.push_back({.name = std::to_string(i) + ".xml", .data = "x"});
  make_zip(archive, entries);
  obmen::config::zip_limits limits;
  limits.max_entries = 4;
  CHECK(unzip_error_of(archive, tmp.path() / "out", limits) ==
        "archive 'many.zip': 5 entries, more than max_entries = 4");
  CHECK(tree(tmp.path() / "out").empty());
  limits.max_entries = 5;
  CHECK(unzip_archive(archive, tmp.path() / "out", limits).files.size() == 5);
}

TEST_CASE("unzip: corrupt archives") {
  temp_dir tmp;
  const auto archive = tmp.path() / "v8_2.zip";
  const auto dest = tmp.path() / "out";

  SUBCASE("truncated") {
    make_zip(archive, {{.name = "import0_1.xml", .data = noise(50000)}});
    fs::resize_file(archive, fs::file_size(archive) / 2);
    CHECK(unzip_error_of(archive, dest) == "archive 'v8_2.zip': cannot open: Not a zip archive");
  }
  SUBCASE("bad CRC") {
    make_zip(archive, {{.name = "first.xml", .data = "fine"},
                       {.name = "import0_1.xml", .data = "<?xml version='1.0'?><data/>", .store = true}});
    patch(archive, "<data/>", "<DATA/>");
    CHECK(unzip_error_of(archive, dest) == "archive 'v8_2.zip': entry 'import0_1.xml': cannot read: CRC error");
  }
  SUBCASE("not a zip at all") {
    write_file(archive, "<?xml version='1.0'?>");
    CHECK(unzip_error_of(archive, dest) == "archive 'v8_2.zip': cannot open: Not a zip archive");
  }
  SUBCASE("missing") {
    CHECK(unzip_error_of(tmp.path() / "nope.zip", dest).starts_with("archive 'nope.zip': cannot open: "));
  }
  SUBCASE("duplicate names") {
    make_zip(archive, {{.name = "a.xml", .data = "1"}, {.name = "b.xml", .data = "2"}});
    patch(archive, "b.xml", "a.xml");
    CHECK(unzip_error_of(archive, dest) == "archive 'v8_2.zip': entry 'a.xml': appears twice in the archive");
  }
  CHECK((!fs::exists(dest) || tree(dest).empty()));
}

TEST_CASE("unzip: encrypted entries are rejected") {
  temp_dir tmp;
  const auto archive = tmp.path() / "secret.zip";
  make_zip(archive, {{.name = "import0_1.xml", .data = "<import/>", .encrypt = true}});
  CHECK(unzip_error_of(archive, tmp.path() / "out") ==
        "archive 'secret.zip': entry 'import0_1.xml': encrypted entries are not supported");
}

TEST_CASE("unzip: an exception from on_entry removes what was extracted") {
  temp_dir tmp;
  const auto archive = tmp.path() / "a.zip";
  make_zip(archive, {{.name = "d/1.xml", .data = "1"}, {.name = "d/2.xml", .data = "2"}});
  auto stop_at_second = [](const std::string&, std::size_t i, std::size_t) {
    if (i == 1) throw std::runtime_error("cancelled");
  };
  CHECK_THROWS_WITH_AS(unzip_archive(archive, tmp.path() / "out", {}, stop_at_second), "cancelled",
                       std::runtime_error);
  CHECK(tree(tmp.path() / "out").empty());
}

TEST_CASE("looks_like_zip") {
  temp_dir tmp;
  make_zip(tmp.path() / "a.zip", {{.name = "x", .data = "y"}});
  CHECK(obmen::onec::looks_like_zip(tmp.path() / "a.zip"));

  const std::string empty_archive = std::string("PK\x05\x06", 4) + std::string(18, '\0');
  write_file(tmp.path() / "empty.zip", empty_archive);
  CHECK(obmen::onec::looks_like_zip(tmp.path() / "empty.zip"));
  auto result = unzip_archive(tmp.path() / "empty.zip", tmp.path() / "out", {});
  CHECK(result.files.empty());
  CHECK(result.total_bytes == 0);

  write_file(tmp.path() / "import.xml", "<?xml version='1.0'?>");
  CHECK_FALSE(obmen::onec::looks_like_zip(tmp.path() / "import.xml"));
  write_file(tmp.path() / "short", "PK");
  CHECK_FALSE(obmen::onec::looks_like_zip(tmp.path() / "short"));
  CHECK_FALSE(obmen::onec::looks_like_zip(tmp.path() / "missing.zip"));
}
