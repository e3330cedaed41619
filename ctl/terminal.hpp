#pragma once
// Colour for obmenctl's human output: only on a terminal, never when NO_COLOR is set
// (https://no-color.org) or TERM is "dumb"; piped output and --json stay plain. Text is padded
// before it is painted, so columns stay aligned.
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>

namespace obmen::ctl {

enum class tone { plain, good, busy, bad };

inline bool colour_on(int fd) {
  const char* no_colour = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  return ::isatty(fd) && !(no_colour && *no_colour) && !(term && std::string_view(term) == "dumb");
}

inline std::string paint(const std::string& text, tone t, bool on) {
  if (!on || t == tone::plain) return text;
  const char* code = t == tone::good ? "\033[32m" : t == tone::busy ? "\033[33m" : "\033[1;31m";
  return code + text + "\033[0m";
}

// Queue items and jobs by state: finished well → green, waiting or running → yellow, needs an
// admin → red.
inline tone tone_of_state(std::string_view state) {
  if (state == "done" || state == "ok") return tone::good;
  if (state == "pending" || state == "in_flight" || state == "queued" || state == "running") return tone::busy;
  if (state == "dead" || state == "failed" || state == "cancelled") return tone::bad;
  return tone::plain;
}

}  // namespace obmen::ctl
