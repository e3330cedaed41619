#include "ctl/commands.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "adapters/onec/catalog_import.hpp"
#include "adapters/onec/unzip.hpp"
#include "commerceml/reader.hpp"
#include "mapping/settings.hpp"
#include "store/database.hpp"

namespace obmen::ctl {

namespace fs = std::filesystem;

std::optional<mapping::settings> load_or_report(const global_options& g) {
  std::vector<std::string> problems;
  auto s = mapping::load_settings(g.config_path, problems);
  if (!s) {
    for (const auto& p : problems) std::cerr << p << "\n";
    std::cerr << "obmenctl: " << problems.size() << " problem(s) in " << g.config_path.string() << "\n";
  }
  return s;
}

std::optional<std::string> database_url(const global_options& g) {
  if (const char* env = std::getenv("OBMEN_DATABASE_URL"); env && *env) {
    std::error_code ec;
    if (!fs::exists(g.config_path, ec)) return std::string(env);
  }
  auto s = load_or_report(g);
  if (!s) return std::nullopt;
  return config::database_url(s->cfg);
}


int check(const global_options& g) {
  auto s = load_or_report(g);
  if (!s) return 1;
  std::cout << "configuration OK: " << g.config_path.string() << " (" << s->cfg.onec.size() << " 1C source(s)";
  for (const auto& src : s->cfg.onec)
    std::cout << "; " << src.name << " at " << src.path << (src.mapping.empty() ? "" : ", mapping " + src.mapping);
  std::cout << ")\n";
  return 0;
}

int migrate(const global_options& g) {
  auto url = database_url(g);
  if (!url) return 1;
  try {
    auto conn = store::connect(*url);
    const auto report = store::migrate(*conn);
    if (report.applied.empty()) {
      std::cout << "database schema is up to date (version " << report.to << ")\n";
    } else {
      for (const auto& name : report.applied) std::cout << "applied " << name << "\n";
      std::cout << "database schema upgraded from version " << report.from << " to " << report.to << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "obmenctl migrate: " << config::mask_url(*url) << ": " << e.what() << "\n";
    return 1;
  }
}

int import_files(const global_options& g, const std::string& source_arg, std::vector<fs::path> files, bool json) {
  auto s = load_or_report(g);
  if (!s) return 1;
  std::string source = source_arg;
  if (source.empty()) {
    if (s->cfg.onec.size() != 1) {
      std::cerr << "obmenctl import: the configuration has " << s->cfg.onec.size()
                << " 1C sources; name one with --source\n";
      return 2;
    }
    source = s->cfg.onec.front().name;
  }
  const config::onec_config* src = nullptr;
  for (const auto& o : s->cfg.onec)
    if (o.name == source) src = &o;
  if (!src) {
    std::cerr << "obmenctl import: no source '" << source << "' of type onec in " << g.config_path.string() << "\n";
    return 2;
  }
  const auto rules = s->rules_by_source.at(source);
  const bool tty = ::isatty(STDERR_FILENO);

  // Zips are unpacked into a private temporary folder (same limits as the endpoint); their
  // XML files join the list, and images inside resolve against that folder.
  std::vector<std::pair<fs::path, fs::path>> work;  // (file, folder images resolve against)
  std::vector<fs::path> temp_dirs;
  struct cleanup {
    std::vector<fs::path>& dirs;
    ~cleanup() {
      std::error_code ec;
      for (const auto& d : dirs) fs::remove_all(d, ec);
    }
  } cleaner{temp_dirs};
  std::vector<std::string> names;
  std::map<std::string, std::pair<fs::path, fs::path>> by_name;
  for (const auto& f : files) {
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) {
      std::cerr << "obmenctl import: " << f.string() << ": no such file\n";
      return 1;
    }
    if (onec::looks_like_zip(f)) {
      char tmpl[] = "/tmp/obmenctl-import-XXXXXX";
      if (!::mkdtemp(tmpl)) {
        std::cerr << "obmenctl import: cannot create a temporary folder\n";
        return 1;
      }
      temp_dirs.emplace_back(tmpl);
      try {
        auto r = onec::unzip_archive(f, temp_dirs.back(), src->zip_limits);
        for (const auto& name : r.files) {
          if (fs::path(name).extension() != ".xml") continue;
          const std::string key = (f.filename() / name).string();  // filename() stays the entry's own name
          names.push_back(key);
          by_name[key] = {temp_dirs.back() / name, temp_dirs.back()};
        }
      } catch (const std::exception& e) {
        std::cerr << "obmenctl import: " << e.what() << "\n";
        return 1;
      }
    } else {
      const std::string key = f.string();
      names.push_back(key);
      by_name[key] = {f, f.parent_path()};
    }
  }
  // import* before offers* before prices*/rests*, whatever order they were named in.
  names = onec::order_for_import(std::move(names));

  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = store::connect(config::database_url(s->cfg));
    store::require_current_schema(*conn);
  } catch (const std::exception& e) {
    std::cerr << "obmenctl import: " << e.what() << "\n";
    return 1;
  }

  nlohmann::json out = nlohmann::json::object();
  int rc = 0;
  onec::import_chain chain;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& key = names[i];
    const auto& [file, root] = by_name.at(key);
    onec::import_options o;
    o.source = source;
    o.rules = rules.get();
    o.files_root = root;
    chain.prepare(o, i + 1 < names.size() ? &by_name.at(names[i + 1]).first : nullptr);
    const auto started = std::chrono::steady_clock::now();
    if (tty)
      o.progress = [&](const std::string& p) { std::fprintf(stderr, "\r%s: %s\033[K", key.c_str(), p.c_str()); };
    try {
      const auto counts = onec::import_catalog_file(*conn, file, o);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (tty) std::fprintf(stderr, "\r\033[K");
      if (json) {
        out[key] = counts.to_json();
        out[key]["seconds"] = secs;
      } else {
        std::printf("%s: %s (%.2f s)\n", key.c_str(), counts.summary().c_str(), secs);
        for (const auto& w : counts.warnings) std::printf("  warning: %s\n", w.c_str());
      }
    } catch (const std::exception& e) {
      if (tty) std::fprintf(stderr, "\r\033[K");
      std::fprintf(stderr, "obmenctl import: %s\n", e.what());
      if (json) out[key] = {{"error", e.what()}};
      rc = 1;
      break;  // later files usually depend on earlier ones (offers on products)
    }
  }
  if (json) std::cout << out.dump(2) << "\n";
  return rc;
}

}  // namespace obmen::ctl
