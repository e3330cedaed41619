// The YAML an admin writes: obmen.yaml (config::parse) and a source's mapping file
// (mapping::parse). Neither may throw; each returns a value or the problems, never neither.
// Relative paths resolve against a directory that does not exist; parse reads no file.
#include <string>

#include "config/config.hpp"
#include "fuzz/fuzz_target.hpp"
#include "mapping/mapping.hpp"

OBMEN_FUZZ_TARGET(yaml) {
  const auto text = bytes(data, size);
  const auto cfg = obmen::config::parse(text, "/nonexistent/obmen/obmen.yaml");
  expect(cfg.cfg.has_value() || !cfg.problems.empty(), "config::parse returned neither a config nor a problem");
  for (const auto& p : cfg.problems)
    expect(!p.message.empty() && !p.to_string().empty(), "config::parse reported an empty problem");
  const auto rules = obmen::mapping::parse(text, "/nonexistent/obmen/mapping.yaml");
  expect(rules.value.has_value() || !rules.problems.empty(), "mapping::parse returned neither rules nor a problem");
  for (const auto& p : rules.problems)
    expect(!p.message.empty() && !p.to_string().empty(), "mapping::parse reported an empty problem");
}
