#pragma once
// A problem found in a YAML file (config or mapping): where, which key, what is wrong.
#include <string>

namespace obmen::config {

struct problem {
  std::string file;
  int line = 0;                        // 1-based; 0 when unknown (e.g. file not readable)
  int column = 0;                      // 1-based
  std::string path;                    // key path, e.g. "sources.onec.file_limit"
  std::string message;
  // "obmen.yaml:12:5: sources.onec.zip: expected a boolean (true or false), got 'maybe'"
  // Without a position (line 0): "obmen.yaml: cannot read: No such file or directory".
  // With an empty path the "<path>: " part is left out.
  std::string to_string() const;
};

}  // namespace obmen::config
