#include "mapping/settings.hpp"

namespace obmen::mapping {

std::optional<settings> load_settings(const std::filesystem::path& config_file, std::vector<std::string>& problems) {
  auto c = config::load(config_file);
  for (const auto& p : c.problems) problems.push_back(p.to_string());
  if (!c.ok()) return std::nullopt;
  settings out{std::move(*c.cfg), {}};
  auto load_rules = [&](const std::string& name, const std::string& file) {
    if (file.empty()) {
      out.rules_by_source[name] = std::make_shared<const rules>();
      return;
    }
    auto m = load(file);
    for (const auto& p : m.problems) problems.push_back(p.to_string());
    if (m.ok()) out.rules_by_source[name] = std::make_shared<const rules>(std::move(*m.value));
  };
  for (const auto& src : out.cfg.onec) load_rules(src.name, src.mapping);
  for (const auto& src : out.cfg.moysklad) load_rules(src.name, src.mapping);
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
  for (const auto& src : out.cfg.moysklad) {
    try {
      if (src.token.configured()) (void)src.token.resolve();
      if (src.password.configured()) (void)src.password.resolve();
    } catch (const std::exception& e) {
      problems.push_back("sources." + src.name + (src.token.configured() ? ".token: " : ".password: ") + e.what());
    }
  }
  if (!problems.empty()) return std::nullopt;
  return out;
}

}  // namespace obmen::mapping
