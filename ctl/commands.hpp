#pragma once
// obmenctl's subcommands. Each works through the database (no socket to the daemon), prints
// for humans on stdout, errors on stderr, and returns the exit code: 0 success, 1 failure,
// 2 usage.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "mapping/settings.hpp"

namespace obmen::ctl {

struct global_options {
  std::filesystem::path config_path;
};

// The configuration and mappings validated exactly as obmend does; on failure every problem is
// printed to stderr and nullopt returned.
std::optional<mapping::settings> load_or_report(const global_options&);

// The database URL for commands that need only the database: OBMEN_DATABASE_URL alone is
// enough when no configuration file exists (so `migrate` works before one is written);
// otherwise the configuration is validated and its database used. nullopt: problems printed.
std::optional<std::string> database_url(const global_options&);

// Runs exactly the daemon's validation: configuration, every source's mapping, secrets.
int check(const global_options&);
int migrate(const global_options&);
// Imports CommerceML files (or zips of them) through the same path as the 1C endpoint.
int import_files(const global_options&, const std::string& source, std::vector<std::filesystem::path> files, bool json);

}  // namespace obmen::ctl
