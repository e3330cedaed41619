#pragma once
// What a resync job does for a 1C source (push-based: 1C sends, obmen cannot ask it for data).
//
//   catalog  re-applies the import* and offers* files, prices the offers* and prices* files,
//            stock the offers* and rests* files of the most recent catalog exchange session that
//            has such files imported (obmen.exchange_files status 'imported') and whose spool
//            folder is still on this host (<spool.dir>/<source>/<session id>), in
//            onec::order_for_import order, with the mapping in force now — the typical use:
//            the admin fixed the mapping and wants it applied without waiting for 1C. Each file
//            is one transaction, as in the exchange.
//   orders   every open portal order (not cancelled, status not completed) this node already
//            acknowledged is sent again on 1C's next sale/query (its acknowledged version in
//            obmen.order_exports is forgotten).
//   counterparties  1C receives counterparties inside orders: the open orders of counterparties
//            the ERP has not confirmed yet (portal.counterparties.source IS NULL) are sent again.
//   all      catalog, prices, stock, orders, counterparties in turn; a file applied by an earlier
//            step is not applied twice, and a catalog step with no exchange to re-apply is
//            skipped (reported) instead of failing the job.
// mode (full | incremental) does not change what a 1C resync does: 1C decides what a package
// contains. dry_run runs the same steps in transactions that are rolled back and reports what
// would change.
//
// Blocking: runs on the runner's worker thread (jobs/runner.hpp) or in a test.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "jobs/jobs.hpp"
#include "mapping/mapping.hpp"

namespace obmen::jobs {

// One 1C source as the daemon is configured now.
struct onec_source {
  std::string name;
  std::shared_ptr<const mapping::rules> rules;  // nullptr = defaults
  std::filesystem::path spool_root;             // <spool.dir>/<source>
};

// The job is not running any more (cancelled, or failed by another obmend): the step in progress
// was rolled back.
class job_cancelled : public std::runtime_error {
 public:
  job_cancelled() : std::runtime_error("cancelled") {}
};

// obmend is stopping: thrown between steps (never inside one), so the job can be queued again.
class job_interrupted : public std::runtime_error {
 public:
  job_interrupted() : std::runtime_error("obmend is stopping") {}
};

struct resync_hooks {
  // Writes progress; false when the job is no longer running. Called at every step and file
  // boundary and at most every `progress_interval` inside a file.
  std::function<bool(const nlohmann::json&)> report;
  // Between steps: true when obmend is stopping (job_interrupted is thrown).
  std::function<bool()> stopping;
  std::chrono::milliseconds progress_interval{500};
};

// Runs job `j` against source `src`, with `data` for the steps' transactions (the job row is
// locked in each step's transaction just before commit: a cancel either waits for that commit or
// rolls the step back). `result` is filled step by step — also when it throws:
//   {"catalog": {"session": 12, "files": [{"file", "summary", "counts"}], "counts": {…},
//                "summary": "…", "changed": true},
//    "orders": {"requeued": 3, "pending": 1, "summary": "…"}, …}
// Throws job_cancelled, job_interrupted, or std::runtime_error with the reason the job failed
// ("nothing to resync for catalog: …", "offers0_1.xml (session 12): …").
void run_onec_resync(pqxx::connection& data, const job& j, const onec_source& src, const resync_hooks& hooks,
                     nlohmann::json& result);

}  // namespace obmen::jobs
