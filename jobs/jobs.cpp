#include "jobs/jobs.hpp"

#include <algorithm>
#include <stdexcept>

#include "config/config.hpp"

namespace obmen::jobs {

namespace {

// Columns of a job row, in the order row_to_job reads them.
constexpr const char* job_columns =
    "id, source, coalesce(entity, 'all'), coalesce(mode, 'full'), state, dry_run, progress::text, result::text, "
    "coalesce(error, ''), coalesce(requested_by, ''), coalesce(schedule, ''), coalesce(worker, ''), "
    "coalesce(to_json(created_at) #>> '{}', ''), coalesce(to_json(started_at) #>> '{}', ''), "
    "coalesce(to_json(finished_at) #>> '{}', ''), "
    "extract(epoch from coalesce(finished_at, now()) - started_at)::float8";

// The advisory lock a running job's claiming connection holds: two int4 keys, so it never meets
// the single-bigint lock space or the (hashtext('obmen.import'), source) import locks.
constexpr const char* job_lock_key = "hashtext('obmen.jobs'), ($1::bigint % 2147483647)::int";

job row_to_job(const pqxx::row& r) {
  job j;
  j.id = r[0].as<std::int64_t>();
  j.source = r[1].as<std::string>();
  j.entity = r[2].as<std::string>();
  j.mode = r[3].as<std::string>();
  j.state = r[4].as<std::string>();
  j.dry_run = r[5].as<bool>();
  j.progress = r[6].is_null() ? nlohmann::json() : nlohmann::json::parse(r[6].as<std::string>());
  j.result = r[7].is_null() ? nlohmann::json() : nlohmann::json::parse(r[7].as<std::string>());
  j.error = r[8].as<std::string>();
  j.requested_by = r[9].as<std::string>();
  j.schedule = r[10].as<std::string>();
  j.worker = r[11].as<std::string>();
  j.created_at = r[12].as<std::string>();
  j.started_at = r[13].as<std::string>();
  j.finished_at = r[14].as<std::string>();
  if (!r[15].is_null()) j.seconds = r[15].as<double>();
  return j;
}

// A PostgreSQL text[] literal.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char ch : items[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

bool one_of(const std::string& v, const std::vector<std::string>& all) {
  return std::find(all.begin(), all.end(), v) != all.end();
}

std::string joined(const std::vector<std::string>& all) {
  std::string out;
  for (const auto& a : all) out += (out.empty() ? "" : ", ") + a;
  return out;
}

}  // namespace

nlohmann::json job::to_json() const {
  nlohmann::json o;
  o["id"] = id;
  o["source"] = source;
  o["entity"] = entity;
  o["mode"] = mode;
  o["dry_run"] = dry_run;
  o["state"] = state;
  o["progress"] = progress;
  o["result"] = result;
  o["error"] = error.empty() ? nlohmann::json() : nlohmann::json(error);
  o["requested_by"] = requested_by;
  o["schedule"] = schedule.empty() ? nlohmann::json() : nlohmann::json(schedule);
  o["worker"] = worker.empty() ? nlohmann::json() : nlohmann::json(worker);
  o["created_at"] = created_at;
  o["started_at"] = started_at.empty() ? nlohmann::json() : nlohmann::json(started_at);
  o["finished_at"] = finished_at.empty() ? nlohmann::json() : nlohmann::json(finished_at);
  o["seconds"] = seconds ? nlohmann::json(*seconds) : nlohmann::json();
  return o;
}

void validate(const request& r) {
  if (r.source.empty()) throw std::invalid_argument("no source given");
  if (!one_of(r.entity, config::resync_entities()))
    throw std::invalid_argument("unknown entity '" + r.entity + "': expected one of " + joined(config::resync_entities()));
  if (!one_of(r.mode, config::resync_modes()))
    throw std::invalid_argument("unknown mode '" + r.mode + "': expected one of " + joined(config::resync_modes()));
}

std::int64_t enqueue(pqxx::transaction_base& tx, const request& r) {
  validate(r);
  auto row = tx.exec_params1(
      "INSERT INTO obmen.jobs (source, entity, mode, dry_run, requested_by, schedule) "
      "VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, '')) RETURNING id",
      r.source, r.entity, r.mode, r.dry_run, r.requested_by, r.schedule.value_or(std::string()));
  return row[0].as<std::int64_t>();
}

std::optional<job> claim(pqxx::connection& c, const std::vector<std::string>& sources, const std::string& worker) {
  if (sources.empty()) return std::nullopt;
  std::optional<std::int64_t> locked;
  try {
    pqxx::work tx(c);
    auto r = tx.exec_params(
        "SELECT id FROM obmen.jobs WHERE state = 'queued' AND source = ANY($1::text[]) "
        "ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
        text_array(sources));
    if (r.empty()) return std::nullopt;
    const auto id = r[0][0].as<std::int64_t>();
    // Session-level: it outlives this transaction and is held until release(). Taken before the
    // row says running, so no one ever sees a running job without its lock.
    tx.exec_params(std::string("SELECT pg_advisory_lock(") + job_lock_key + ")", id);
    locked = id;
    auto j = tx.exec_params(std::string("UPDATE obmen.jobs SET state = 'running', started_at = now(), worker = $2, "
                                        "progress = NULL, result = NULL, error = NULL WHERE id = $1 RETURNING ") +
                                job_columns,
                            id, worker);
    auto out = row_to_job(j[0]);
    tx.commit();
    return out;
  } catch (...) {
    if (locked) release(c, *locked);
    throw;
  }
}

void release(pqxx::connection& c, std::int64_t id) noexcept {
  try {
    pqxx::nontransaction tx(c);
    tx.exec_params(std::string("SELECT pg_advisory_unlock(") + job_lock_key + ")", id);
  } catch (...) {
    // A broken connection has lost its locks anyway.
  }
}

bool report_progress(pqxx::connection& c, std::int64_t id, const nlohmann::json& progress) {
  pqxx::work tx(c);
  auto r = tx.exec_params("UPDATE obmen.jobs SET progress = $2::jsonb WHERE id = $1 AND state = 'running' RETURNING 1", id,
                          progress.dump());
  tx.commit();
  return !r.empty();
}

bool still_running(pqxx::connection& c, std::int64_t id) {
  pqxx::read_transaction tx(c);
  auto r = tx.exec_params("SELECT state = 'running' FROM obmen.jobs WHERE id = $1", id);
  return !r.empty() && r[0][0].as<bool>();
}

bool lock_if_running(pqxx::transaction_base& tx, std::int64_t id) {
  auto r = tx.exec_params("SELECT state = 'running' FROM obmen.jobs WHERE id = $1 FOR UPDATE", id);
  return !r.empty() && r[0][0].as<bool>();
}

bool finish(pqxx::connection& c, std::int64_t id, const nlohmann::json& result) {
  pqxx::work tx(c);
  auto r = tx.exec_params("UPDATE obmen.jobs SET state = 'done', result = $2::jsonb, finished_at = now() "
                          "WHERE id = $1 AND state = 'running' RETURNING 1",
                          id, result.dump());
  if (r.empty()) tx.exec_params("UPDATE obmen.jobs SET result = $2::jsonb WHERE id = $1", id, result.dump());
  tx.commit();
  return !r.empty();
}

bool fail(pqxx::connection& c, std::int64_t id, const std::string& error, const nlohmann::json& result) {
  pqxx::work tx(c);
  auto r = tx.exec_params("UPDATE obmen.jobs SET state = 'failed', error = $2, result = $3::jsonb, finished_at = now() "
                          "WHERE id = $1 AND state = 'running' RETURNING 1",
                          id, error, result.dump());
  tx.commit();
  return !r.empty();
}

void record_cancelled(pqxx::connection& c, std::int64_t id, const nlohmann::json& result) {
  pqxx::work tx(c);
  tx.exec_params("UPDATE obmen.jobs SET result = $2::jsonb WHERE id = $1 AND state = 'cancelled'", id, result.dump());
  tx.commit();
}

cancel_outcome cancel(pqxx::connection& c, std::int64_t id, const std::string& by, std::string& state) {
  pqxx::work tx(c);
  auto r = tx.exec_params(
      "UPDATE obmen.jobs SET state = 'cancelled', finished_at = now(), error = 'cancelled by ' || $2 "
      "WHERE id = $1 AND state IN ('queued', 'running') RETURNING state",
      id, by.empty() ? std::string("an admin") : by);
  if (!r.empty()) {
    state = "cancelled";
    tx.commit();
    return cancel_outcome::cancelled;
  }
  auto s = tx.exec_params("SELECT state FROM obmen.jobs WHERE id = $1", id);
  tx.commit();
  if (s.empty()) return cancel_outcome::not_found;
  state = s[0][0].as<std::string>();
  return cancel_outcome::already_finished;
}

std::vector<std::int64_t> fail_orphans(pqxx::connection& c, const std::vector<std::string>& sources) {
  std::vector<std::int64_t> ids;
  if (sources.empty()) return ids;
  pqxx::work tx(c);
  // The candidates first (MATERIALIZED): the lock probe runs only on running jobs of our sources.
  auto r = tx.exec_params(
      "WITH candidates AS MATERIALIZED (SELECT id FROM obmen.jobs WHERE state = 'running' AND source = ANY($1::text[])) "
      "UPDATE obmen.jobs j SET state = 'failed', finished_at = now(), "
      "  error = 'interrupted: the obmend running it (' || coalesce(j.worker, '?') || ') stopped; request it again' "
      "FROM candidates c WHERE j.id = c.id AND j.state = 'running' "
      "  AND pg_try_advisory_xact_lock(hashtext('obmen.jobs'), (j.id % 2147483647)::int) RETURNING j.id",
      text_array(sources));
  for (const auto& row : r) ids.push_back(row[0].as<std::int64_t>());
  tx.commit();
  return ids;
}

std::optional<job> get(pqxx::transaction_base& tx, std::int64_t id) {
  auto r = tx.exec_params(std::string("SELECT ") + job_columns + " FROM obmen.jobs WHERE id = $1", id);
  if (r.empty()) return std::nullopt;
  return row_to_job(r[0]);
}

std::vector<job> list(pqxx::transaction_base& tx, const std::string& state, int limit) {
  auto r = tx.exec_params(std::string("SELECT ") + job_columns +
                              " FROM obmen.jobs WHERE ($1 = '' OR state = $1) ORDER BY id DESC LIMIT $2",
                          state, limit);
  std::vector<job> out;
  for (const auto& row : r) out.push_back(row_to_job(row));
  return out;
}

std::optional<std::int64_t> enqueue_if_due(pqxx::connection& c, const request& req, const std::string& slot,
                                           int every_seconds) {
  validate(req);
  pqxx::work tx(c);
  // The slot row exists before anyone claims it; a concurrent insert waits for ours and then
  // does nothing.
  tx.exec_params("INSERT INTO obmen.bookmarks (source, entity, value, updated_at) VALUES ($1, $2, '', '-infinity') "
                 "ON CONFLICT (source, entity) DO NOTHING",
                 req.source, slot);
  // Due when the last run is `every` ago. The next slot is the last one + every, so a schedule
  // does not drift by the timer's granularity; after a long pause it restarts from now.
  auto r = tx.exec_params(
      "UPDATE obmen.bookmarks SET updated_at = CASE WHEN updated_at > now() - 2 * make_interval(secs => $3) "
      "  THEN updated_at + make_interval(secs => $3) ELSE now() END "
      "WHERE source = $1 AND entity = $2 AND updated_at <= now() - make_interval(secs => $3) RETURNING 1",
      req.source, slot, every_seconds);
  if (r.empty()) return std::nullopt;
  const auto id = enqueue(tx, req);
  tx.exec_params("UPDATE obmen.bookmarks SET value = $3 WHERE source = $1 AND entity = $2", req.source, slot,
                 std::to_string(id));
  tx.commit();
  return id;
}

}  // namespace obmen::jobs
