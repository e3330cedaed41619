#pragma once
// obmenctl's subcommands. Each works through the database (no socket to the daemon), prints
// for humans on stdout, errors on stderr, and returns the exit code: 0 success, 1 failure,
// 2 usage.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace obmen::ctl {

struct global_options {
  std::filesystem::path config_path;
};

// Runs exactly the daemon's validation: configuration, every source's mapping, secrets.
int check(const global_options&);
int migrate(const global_options&);
// Imports CommerceML files (or zips of them) through the same path as the 1C endpoint.
int import_files(const global_options&, const std::string& source, std::vector<std::filesystem::path> files, bool json);

}  // namespace obmen::ctl
