// The zip 1C uploads with zip=yes: the bytes written to an archive file and unpacked into a fresh
// directory with small limits (onec::unzip_archive). Only unzip_error is expected. Afterwards the
// directory must hold exactly what the call reported — regular files and directories only, every
// one inside it, within the limits — or, after an error, nothing at all.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "adapters/onec/filename.hpp"
#include "adapters/onec/unzip.hpp"
#include "fuzz/fuzz_target.hpp"

namespace fs = std::filesystem;

namespace {

// One scratch directory per process, removed at exit: $TMPDIR/obmen-fuzz-unzip-XXXXXX.
const fs::path& scratch() {
  static const fs::path dir = [] {
    std::string t = (fs::temp_directory_path() / "obmen-fuzz-unzip-XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    std::atexit([] { std::error_code ec; fs::remove_all(scratch(), ec); });
    return fs::path(t);
  }();
  return dir;
}

}  // namespace

OBMEN_FUZZ_TARGET(unzip) {
  const fs::path archive = scratch() / "upload.zip";
  const fs::path dest = scratch() / "spool";
  fs::remove_all(dest);
  {
    std::ofstream out(archive, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  obmen::config::zip_limits limits;
  limits.max_entries = 16;
  limits.max_entry_bytes = 1 << 20;
  limits.max_total_bytes = 2 << 20;
  limits.max_ratio = 50;
  obmen::onec::unzip_result result;
  bool failed = false;
  try {
    result = obmen::onec::unzip_archive(archive, dest, limits);
  } catch (const obmen::onec::unzip_error&) {
    failed = true;
  }
  const fs::path root = fs::weakly_canonical(dest);
  std::uint64_t files = 0, bytes_on_disk = 0;
  if (fs::exists(dest)) {
    for (const auto& e : fs::recursive_directory_iterator(dest)) {
      const auto st = e.symlink_status();
      expect(fs::is_regular_file(st) || fs::is_directory(st), "unzip left something that is not a file: " + e.path().string());
      const fs::path rel = fs::weakly_canonical(e.path()).lexically_relative(root);
      expect(!rel.empty() && *rel.begin() != "..", "unzip wrote outside the spool: " + e.path().string());
      if (fs::is_regular_file(st)) {
        ++files;
        bytes_on_disk += fs::file_size(e.path());
      }
    }
  }
  if (failed) {
    expect(files == 0, "a failed unzip left files behind");
    return;
  }
  expect(files == result.files.size(), "unzip reported " + std::to_string(result.files.size()) + " files, wrote " +
                                           std::to_string(files));
  expect(result.files.size() <= limits.max_entries, "more entries than max_entries");
  expect(bytes_on_disk == result.total_bytes && bytes_on_disk <= limits.max_total_bytes,
         "unzip wrote " + std::to_string(bytes_on_disk) + " bytes, reported " + std::to_string(result.total_bytes));
  for (const auto& name : result.files)
    expect(obmen::onec::check_filename(name).ok(), "unzip accepted the entry name '" + name + "'");
}
