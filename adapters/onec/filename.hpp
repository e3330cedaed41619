#pragma once
// File names that 1C sends: the `filename` query parameter of mode=file / mode=import, and the
// entry names inside an uploaded zip (see unzip.hpp). Pure functions, no I/O.
//
// Names are accepted only in canonical form and never rewritten: a name that would need
// normalising (backslashes, "a//b", "./x", a trailing '/') is rejected, so the path used on disk
// is byte-for-byte the name 1C will later ask for in mode=import.
#include <string>
#include <string_view>

namespace obmen::onec {

struct name_check {
  std::string relative;   // the accepted relative path ("import_files/ab/x.jpg"); empty on error
  std::string error;      // one sentence, e.g. "file name '../x' escapes the exchange directory"
  bool ok() const { return error.empty(); }
};

inline constexpr std::size_t max_name_bytes = 1024;       // whole relative path
inline constexpr std::size_t max_component_bytes = 255;   // one path component (NAME_MAX)

// Validates `raw` (already percent-decoded) as a path relative to a spool directory.
// Rejected: invalid UTF-8; control characters (< 0x20, 0x7F); backslashes; a leading '/';
// a Windows drive prefix ("C:"); an empty name; empty components ("a//b"); "." and ".."
// components; a trailing '/'; more than max_name_bytes in total or max_component_bytes in one
// component. Messages about invalid bytes give the byte offset instead of quoting the name, so
// an error never carries control characters or broken UTF-8 into logs or 1C's answer.
name_check check_filename(std::string_view raw);

}  // namespace obmen::onec
