#pragma once
// Logging setup shared by obmend and obmenctl.
// Lines go to stdout in a journald-friendly form: "<N>" syslog priority prefix when running
// under systemd (JOURNAL_STREAM set), so journalctl shows levels, and no timestamp there
// (journald adds its own); a timestamped form on a terminal.
#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace obmen::log {

// Parses "trace|debug|info|warn|error|critical|off"; nullopt for anything else.
std::optional<spdlog::level::level_enum> parse_level(std::string_view);

// Installs the default logger writing to stdout. Safe to call again (re-levels the logger).
void setup(spdlog::level::level_enum level);

}  // namespace obmen::log
