#include "config/problem.hpp"

namespace obmen::config {

std::string problem::to_string() const {
  std::string s = file;
  // Line 0 means "no position" (e.g. the file cannot be read): a ":0:0" would send editors astray.
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  s += ": ";
  if (!path.empty()) s += path + ": ";
  s += message;
  return s;
}

}  // namespace obmen::config
