#pragma once
// obmend's lifecycle (PgBouncer-style): signal handling installed first; configuration and
// mappings validated; the database schema verified; listeners bound; then READY=1.
//   SIGHUP  → RELOADING=1, re-read config + mappings; a broken one is logged and the old kept; READY=1
//   SIGTERM → STOPPING=1, close the acceptor, finish requests and imports in flight, exit 0;
//             a second SIGTERM exits at once (status 1)
//   WATCHDOG=1 from an io_context timer every half of WatchdogSec, so a wedged loop stops them.
#include <filesystem>
#include <optional>
#include <string>

namespace obmen::daemon {

struct options {
  std::filesystem::path config_path;
  std::optional<std::string> log_level;  // overrides log.level
};

// Runs until stopped; returns the process exit code.
int run(const options&);

}  // namespace obmen::daemon
