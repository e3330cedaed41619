#pragma once
// The jobs table (obmen.jobs, migrations 0001 and 0004): resync jobs an admin asks for with
// `obmenctl resync` or a schedule enqueues, claimed and run by obmend's runner (jobs/runner.hpp).
//
// Life of a job: queued → running → done | failed; `cancel` moves a queued or running job to
// cancelled (a running one notices at its next step, see jobs/resync.hpp). Only the transition
// functions below write `state`, and each is conditional on the state it expects, so a job is
// never run twice and an outcome never overwrites a cancellation.
//
// Several obmend may share one database: `claim` takes the oldest queued job of the given
// sources with FOR UPDATE SKIP LOCKED. The claiming connection also takes a session-level
// advisory lock on the job for as long as it runs; `fail_orphans` uses it to tell a job whose
// obmend died (lock free) from one still running elsewhere (lock held).
//
// Every function blocks (libpq): worker threads or the CLI only. Database errors throw pqxx
// exceptions. Timestamps come back as ISO 8601 text with offset ("2024-05-01T12:00:00.1+03:00").
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace obmen::jobs {

// NOTIFY channels (trigger jobs_notify, migration 0004).
inline constexpr const char* new_job_channel = "obmen_jobs";        // payload: job id
inline constexpr const char* job_events_channel = "obmen_job_events";  // payload: "<id>:<state>"

struct request {
  std::string source;
  std::string entity;                  // config::resync_entities()
  std::string mode = "full";           // full | incremental
  bool dry_run = false;
  std::string requested_by;            // user name, or "schedule"
  std::optional<std::string> schedule; // the schedule that enqueued it
};

struct job {
  std::int64_t id = 0;
  std::string source, entity, mode, state;
  bool dry_run = false;
  nlohmann::json progress;             // null when none
  nlohmann::json result;               // null when none
  std::string error;                   // empty when none
  std::string requested_by, schedule, worker;
  std::string created_at, started_at, finished_at;  // empty when not (yet) set
  std::optional<double> seconds;       // running time: finished_at (or now) − started_at

  bool finished() const { return state == "done" || state == "failed" || state == "cancelled"; }
  nlohmann::json to_json() const;
};

// Throws std::invalid_argument naming the bad value ("unknown entity 'x': expected one of …").
void validate(const request&);

// Inserts a queued job (the trigger NOTIFYs obmen_jobs on commit); returns its id.
std::int64_t enqueue(pqxx::transaction_base&, const request&);

// Claims the oldest queued job of one of `sources`: state running, started_at, worker. Commits its
// own transaction; no transaction may be open on `c`. The advisory lock stays with `c` until
// `release` (call it after finish/fail, also on error paths). nullopt when nothing is queued.
std::optional<job> claim(pqxx::connection& c, const std::vector<std::string>& sources, const std::string& worker);
void release(pqxx::connection& c, std::int64_t id) noexcept;

// Writes progress while the job is running. false when it is no longer running (cancelled, or
// failed by fail_orphans): the caller stops.
bool report_progress(pqxx::connection& c, std::int64_t id, const nlohmann::json& progress);
// Whether the job is still running.
bool still_running(pqxx::connection& c, std::int64_t id);
// Inside a step's own transaction, just before it commits: locks the job row and returns whether
// it is still running. A cancel issued meanwhile waits for that commit and then wins, so a step is
// either committed while the job ran or rolled back.
bool lock_if_running(pqxx::transaction_base& tx, std::int64_t id);

// running → done / failed, with result (and error). false when the job was not running any more
// (cancelled: its state stays cancelled; result is still recorded).
bool finish(pqxx::connection& c, std::int64_t id, const nlohmann::json& result);
bool fail(pqxx::connection& c, std::int64_t id, const std::string& error, const nlohmann::json& result);
// Records what a cancelled job did before it stopped (state stays cancelled).
void record_cancelled(pqxx::connection& c, std::int64_t id, const nlohmann::json& result);

enum class cancel_outcome { cancelled, already_finished, not_found };
// queued/running → cancelled (finished_at = now, error "cancelled by <by>"). `state` gets the
// job's state afterwards.
cancel_outcome cancel(pqxx::connection& c, std::int64_t id, const std::string& by, std::string& state);

// Running jobs of `sources` whose claiming connection is gone (its obmend died) → failed.
// Returns their ids. Call it on a connection that holds no job's lock (advisory locks are
// re-entrant within a session, so its own jobs would look orphaned).
std::vector<std::int64_t> fail_orphans(pqxx::connection& c, const std::vector<std::string>& sources);

std::optional<job> get(pqxx::transaction_base&, std::int64_t id);
// Most recent first; `state` empty = any.
std::vector<job> list(pqxx::transaction_base&, const std::string& state, int limit);

// Schedules: claims the slot (obmen.bookmarks source/slot) when it last ran `every_seconds` ago or
// longer (or never) and enqueues the job in the same transaction; several daemons claim a slot
// once (the row lock serialises them, the loser's UPDATE finds it not due). Returns the new job
// id, nullopt when not due. Commits its own transaction.
std::optional<std::int64_t> enqueue_if_due(pqxx::connection& c, const request& r, const std::string& slot,
                                           int every_seconds);

}  // namespace obmen::jobs
