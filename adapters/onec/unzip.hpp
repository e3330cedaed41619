#pragma once
// Unpacking the zip that 1C uploads with zip=yes (PROTOCOL.md §4). Blocking file I/O: call it
// from the worker pool, never on the io_context.
//
// The archive is untrusted input. Every entry name goes through check_filename() after being
// decoded to UTF-8; symlinks, device entries and encrypted entries are refused; the limits in
// config::zip_limits are enforced on the bytes actually inflated, never on declared sizes.
// Nothing is followed through a symlink inside `dest`, and a failed call leaves no file or
// directory of its own behind.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace obmen::onec {

// True when the file starts with a zip local-file header ("PK\3\4") or is an empty archive
// ("PK\5\6"). False when it cannot be read.
bool looks_like_zip(const std::filesystem::path& file);

// "archive 'v8_1.zip': entry '../x': file name '../x' escapes the exchange directory"
class unzip_error : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

struct unzip_result {
  std::vector<std::string> files;   // relative UTF-8 paths of the extracted files, archive order
  std::uint64_t total_bytes = 0;    // sum of their sizes
};

using unzip_progress = std::function<void(const std::string& name, std::size_t index, std::size_t count)>;

// Extracts every file entry of `archive` under `dest` (created if missing); directory entries
// create directories. Each file is written to a temporary name in its directory, fsynced and
// renamed over the target (an existing regular file is replaced; a symlink or directory in the
// way is an error); the directories are fsynced before returning.
//
// Entry names: used as they are when flagged UTF-8 (general-purpose bit 11) or valid UTF-8,
// otherwise decoded from CP866 (what 1C on Windows writes), or from windows-1251 when that
// yields more Russian letters (see the .cpp).
//
// on_entry(name, index, count) runs before each entry is extracted, after its name was
// validated: `index` is the entry's 0-based position in the archive, `count` the number of
// entries. It may be empty; an exception from it aborts the extraction like any other error.
//
// Throws unzip_error (message names the archive, the entry and, for limits, the limit and its
// value). Before throwing, every file and directory this call created is removed.
unzip_result unzip_archive(const std::filesystem::path& archive, const std::filesystem::path& dest,
                           const config::zip_limits& limits, const unzip_progress& on_entry = {});

}  // namespace obmen::onec
