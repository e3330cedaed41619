// obmend — the obmen daemon. All logic lives in the libraries; see daemon/daemon.hpp.
#include <iostream>

#include <CLI/CLI.hpp>

#include "config/config.hpp"
#include "daemon/daemon.hpp"

#ifndef OBMEN_VERSION
#define OBMEN_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App app{"obmend — keeps a B2B portal's PostgreSQL in step with 1C and МойСклад"};
  obmen::daemon::options opts;
  std::string config_path = obmen::config::default_path;
  std::string level;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_option("--log-level", level, "trace|debug|info|warn|error (overrides log.level)");
  app.set_version_flag("--version", std::string("obmend ") + OBMEN_VERSION);
  CLI11_PARSE(app, argc, argv);
  opts.config_path = config_path;
  if (!level.empty()) opts.log_level = level;
  return obmen::daemon::run(opts);
}
