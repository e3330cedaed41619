#pragma once
// obmenctl's control surface for resync jobs and status, working through the database only:
//   resync --source S --entity E [--full|--incremental] [--dry-run] [--wait]
//   status [--json]
//   jobs list [--state S] [--limit N] [--json] | jobs show ID [--json] | jobs cancel ID
// Exit codes: 0 success, 1 failure (a job that failed or was cancelled under --wait, an unknown
// job, a database error), 2 usage. Output and examples: docs/operations.md.
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

#include "ctl/commands.hpp"

namespace obmen::ctl {

struct jobs_cli;

// Registers the subcommands on `app` (call before parsing).
std::shared_ptr<jobs_cli> add_jobs_commands(CLI::App& app);
// After parsing: runs the chosen subcommand and returns its exit code; nullopt when none of
// these was chosen.
std::optional<int> run_jobs_commands(const jobs_cli&, const global_options&);

}  // namespace obmen::ctl
