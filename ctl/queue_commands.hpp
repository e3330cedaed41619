#pragma once
// obmenctl's view of the retry queue (queue/queue.hpp), working through the database only:
//   queue list [--state S[,S…]|all] [--target T] [--limit N] [--json]
//   queue show ID [--json]
//   queue retry ID | queue retry --all-dead [--target T]
//   queue drop ID
// On a terminal, list prints aligned columns under a header and a depth summary; piped, one
// item per line with tab-separated fields and nothing else. Exit codes: 0 success, 1 failure (an
// unknown item, an item in the wrong state, a database error), 2 usage. docs/queue.md.
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

#include "ctl/commands.hpp"

namespace obmen::ctl {

struct queue_cli;

// Registers `queue` and its subcommands on `app` (call before parsing).
std::shared_ptr<queue_cli> add_queue_commands(CLI::App& app);
// After parsing: runs the chosen queue subcommand and returns its exit code; nullopt when
// `queue` was not chosen.
std::optional<int> run_queue_commands(const queue_cli&, const global_options&);

}  // namespace obmen::ctl
