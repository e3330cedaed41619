#include "mapping/settings.hpp"

namespace obmen::mapping {

std::optional<settings> load_settings(const std::filesystem::path& config_file, std::vector<std::string>& problems) {
  auto c = config::load(config_file);
  for (const auto& p : c.problems) problems.push_back(p.to_string());
  if (!c.ok()) return std::nullopt;
  settings out{std::move(*c.cfg), {}};
  for (const auto& src : out.cfg.onec) {
    if (src.mapping.empty()) {
      out.rules_by_source[src.name] = std::make_shared<const rules>();
      continue;
    }
    auto m = load(src.mapping);
    for (const auto& p : m.problems) problems.push_back(p.to_string());
    if (m.ok()) out.rules_by_source[src.name] = std::make_shared<const rules>(std::move(*m.value));
  }
  // Secrets are resolved now, so a missing credential fails the start (or the reload or the
  // check), not the first request that needs it.
  try {
    (void)config::database_url(out.cfg);
  } catch (const std::exception& e) {
    problems.push_back(std::string("database.password: ") + e.what());
  }
  for (const auto& src : out.cfg.onec) {
    try {
      (void)src.password.resolve();
    } catch (const std::exception& e) {
      problems.push_back("sources." + src.name + ".password: " + e.what());
    }
  }
  if (!problems.empty()) return std::nullopt;
  return out;
}

}  // namespace obmen::mapping
