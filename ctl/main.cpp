// obmenctl — the admin's command line. Logic lives in ctl/commands.cpp.
#include <CLI/CLI.hpp>

#include "config/config.hpp"
#include "ctl/commands.hpp"
#include "ctl/queue_commands.hpp"
#include "ctl/jobs_commands.hpp"

#ifndef OBMEN_VERSION
#define OBMEN_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App app{"obmenctl — check, migrate and import for obmen"};
  app.require_subcommand(1);
  obmen::ctl::global_options g;
  std::string config_path = obmen::config::default_path;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.set_version_flag("--version", std::string("obmenctl ") + OBMEN_VERSION);

  auto* check = app.add_subcommand("check", "validate the configuration and mappings exactly as obmend does");
  auto* migrate = app.add_subcommand("migrate", "create or upgrade the database schema");
  auto* import = app.add_subcommand("import", "import CommerceML files or zips from disk");
  std::string source;
  std::vector<std::string> files;
  bool json = false;
  import->add_option("--source", source, "source name (default: the only 1C source in the configuration)");
  import->add_option("files", files, "import*.xml, offers*.xml, prices*.xml, rests*.xml or a .zip")->required();
  import->add_flag("--json", json, "print the counts as JSON");
  auto queue_cli = obmen::ctl::add_queue_commands(app);  // queue list|show|retry|drop
  auto jobs_cli = obmen::ctl::add_jobs_commands(app);  // resync, status, jobs

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  g.config_path = config_path;
  if (*check) return obmen::ctl::check(g);
  if (*migrate) return obmen::ctl::migrate(g);
  if (*import) return obmen::ctl::import_files(g, source, {files.begin(), files.end()}, json);
  if (auto rc = obmen::ctl::run_queue_commands(*queue_cli, g)) return *rc;
  if (auto rc = obmen::ctl::run_jobs_commands(*jobs_cli, g)) return *rc;
  return 2;
}
