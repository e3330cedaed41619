#pragma once
// Everything an admin edits, validated together: obmen.yaml plus the mapping file of every
// source, with secrets resolved. obmend (start and SIGHUP) and `obmenctl check` both call
// this, so the CLI reports exactly what the daemon would refuse. All problems are collected.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "mapping/mapping.hpp"

namespace obmen::mapping {

struct settings {
  config::config cfg;
  std::map<std::string, std::shared_ptr<const rules>> rules_by_source;
};

// nullopt when anything is wrong; `problems` then holds one line per problem
// ("obmen.yaml:12:5: sources.onec.zip: expected a boolean …").
std::optional<settings> load_settings(const std::filesystem::path& config_file, std::vector<std::string>& problems);

}  // namespace obmen::mapping
