#include "queue/queue.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <set>
#include <stdexcept>

namespace obmen::queue {

namespace {

// Timestamps leave the database as text in one fixed format, so the CLI, the JSON and the tests
// see the same thing whatever the session's TimeZone and DateStyle are.
std::string utc(const std::string& column) {
  return "to_char(" + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";
}

// The columns item_from_row reads, for SELECT … FROM obmen.queue q and UPDATE … RETURNING.
const std::string item_columns =
    "q.id, q.kind, q.target, q.payload::text AS payload, q.idempotency_key, q.state, q.attempts, " +
    utc("q.next_attempt_at") + " AS next_attempt_at, " + utc("q.lease_until") + " AS lease_until, " +
    "q.claimed_by, q.claim_token::text AS claim_token, q.last_error_class, q.last_error, " + utc("q.created_at") +
    " AS created_at, " + utc("q.updated_at") + " AS updated_at";

// Rows another transaction is about to make pending would violate queue_pending_key; the losing
// transaction is rolled back and run again, and then sees the winner's row.
constexpr int conflict_retries = 5;

std::optional<std::string> optional_text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return f.as<std::string>();
}

state state_from_db(const std::string& s) {
  if (auto st = parse_state(s)) return *st;
  throw std::logic_error("obmen.queue: unknown state '" + s + "'");  // the CHECK constraint forbids it
}

item item_from_row(const pqxx::row& r) {
  item it;
  it.id = r["id"].as<std::int64_t>();
  it.kind = r["kind"].as<std::string>();
  it.target = r["target"].as<std::string>();
  it.payload = nlohmann::json::parse(r["payload"].as<std::string>());
  it.idempotency_key = optional_text(r["idempotency_key"]);
  it.state = state_from_db(r["state"].as<std::string>());
  it.attempts = r["attempts"].as<int>();
  it.next_attempt_at = r["next_attempt_at"].as<std::string>();
  it.lease_until = optional_text(r["lease_until"]);
  it.claimed_by = optional_text(r["claimed_by"]);
  it.claim_token = optional_text(r["claim_token"]);
  it.last_error_class = optional_text(r["last_error_class"]);
  it.last_error = optional_text(r["last_error"]);
  it.created_at = r["created_at"].as<std::string>();
  it.updated_at = r["updated_at"].as<std::string>();
  return it;
}

const char* key_param(const std::optional<std::string>& key) { return key ? key->c_str() : nullptr; }

// Runs `body` in a fresh pqxx::work and commits, again from the start when it lost a race on
// queue_pending_key.
template <typename Body>
auto with_transaction(pqxx::connection& conn, Body&& body) {
  for (int round = 1;; ++round) {
    try {
      pqxx::work tx(conn);
      auto result = body(tx);
      tx.commit();
      return result;
    } catch (const pqxx::unique_violation&) {
      if (round >= conflict_retries) throw;
    }
  }
}

// The retry of one dead item, inside `tx`.
retry_result retry_in(pqxx::transaction_base& tx, std::int64_t id) {
  retry_result r;
  r.id = id;
  const auto row = tx.exec_params("SELECT state, idempotency_key FROM obmen.queue WHERE id = $1 FOR UPDATE", id);
  if (row.empty()) return r;  // not_found
  const auto current = state_from_db(row[0][0].as<std::string>());
  if (current != state::dead) {
    r.result = retry_result::kind::not_dead;
    r.current_state = current;
    return r;
  }
  if (!row[0][1].is_null()) {
    // A newer item of the same entity carries a newer payload: delivering this one now would
    // put an older state on the upstream after a newer one.
    const auto newer = tx.exec_params(
        "SELECT id, state FROM obmen.queue WHERE idempotency_key = $1 AND id > $2 ORDER BY id DESC LIMIT 1 FOR UPDATE",
        row[0][1].as<std::string>(), id);
    if (!newer.empty()) {
      const auto newer_id = newer[0][0].as<std::int64_t>();
      const auto newer_state = state_from_db(newer[0][1].as<std::string>());
      tx.exec_params0("DELETE FROM obmen.queue WHERE id = $1", id);
      if (newer_state == state::pending || newer_state == state::dead)
        tx.exec_params0(
            "UPDATE obmen.queue SET state = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL, "
            "updated_at = now() WHERE id = $1",
            newer_id);
      r.result = retry_result::kind::superseded;
      r.superseded_by = newer_id;
      return r;
    }
  }
  tx.exec_params0(
      "UPDATE obmen.queue SET state = 'pending', attempts = 0, next_attempt_at = now(), lease_until = NULL, "
      "updated_at = now() WHERE id = $1",
      id);
  r.result = retry_result::kind::retried;
  return r;
}

}  // namespace

std::string_view to_string(state s) {
  switch (s) {
    case state::pending: return "pending";
    case state::in_flight: return "in_flight";
    case state::done: return "done";
    case state::dead: return "dead";
  }
  return "?";
}

std::optional<state> parse_state(std::string_view s) {
  for (auto st : all_states)
    if (to_string(st) == s) return st;
  return std::nullopt;
}

std::string_view to_string(error_class c) { return c == error_class::transient ? "transient" : "permanent"; }

std::string_view to_string(fail_outcome o) {
  switch (o) {
    case fail_outcome::retrying: return "retrying";
    case fail_outcome::merged: return "merged";
    case fail_outcome::dead: return "dead";
    case fail_outcome::stale: return "stale";
  }
  return "?";
}

nlohmann::json item::to_json() const {
  const auto opt = [](const std::optional<std::string>& v) -> nlohmann::json {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {
      {"id", id},
      {"kind", kind},
      {"target", target},
      {"state", std::string(to_string(state))},
      {"attempts", attempts},
      {"idempotency_key", opt(idempotency_key)},
      {"next_attempt_at", next_attempt_at},
      {"lease_until", opt(lease_until)},
      {"claimed_by", opt(claimed_by)},
      {"last_error_class", opt(last_error_class)},
      {"last_error", opt(last_error)},
      {"created_at", created_at},
      {"updated_at", updated_at},
      {"payload", payload},
  };
}

enqueue_result enqueue(pqxx::transaction_base& tx, const std::string& kind, const std::string& target,
                       const nlohmann::json& payload, const std::optional<std::string>& idempotency_key) {
  if (kind.empty()) throw std::invalid_argument("queue::enqueue: empty kind");
  if (target.empty()) throw std::invalid_argument("queue::enqueue: empty target");
  // ON CONFLICT names queue_pending_key's predicate, so only a *pending* item of the key absorbs
  // the new payload; an in-flight one does not conflict and a new row is inserted behind it.
  // xmax is 0 on a freshly inserted row and set on one ON CONFLICT updated.
  const auto r = tx.exec_params(
      "INSERT INTO obmen.queue (kind, target, payload, idempotency_key) VALUES ($1, $2, $3::jsonb, $4) "
      "ON CONFLICT (idempotency_key) WHERE state = 'pending' DO UPDATE "
      "  SET kind = EXCLUDED.kind, payload = EXCLUDED.payload, updated_at = now() "
      "  WHERE obmen.queue.target = EXCLUDED.target "
      "RETURNING id, xmax <> 0 AS coalesced",
      kind, target, payload.dump(), key_param(idempotency_key));
  if (r.empty())
    throw std::invalid_argument("queue::enqueue: idempotency key '" + idempotency_key.value_or("") +
                                "' has a pending item for another target than '" + target + "'");
  return {r[0][0].as<std::int64_t>(), r[0][1].as<bool>()};
}

std::string default_worker_id() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
  return std::string(host.data()) + ":" + std::to_string(::getpid());
}

std::vector<item> claim(pqxx::transaction_base& tx, const std::string& worker_id, const std::string& target, int limit,
                        std::chrono::milliseconds lease, int max_attempts) {
  if (target.empty()) throw std::invalid_argument("queue::claim: empty target");
  if (limit < 1) throw std::invalid_argument("queue::claim: limit must be positive, got " + std::to_string(limit));
  if (lease.count() < 0) throw std::invalid_argument("queue::claim: negative lease");

  // A worker that keeps dying on an item (a poison payload that crashes the process) would
  // otherwise get it back for ever: after max_attempts the item is parked.
  tx.exec_params0(
      "WITH exhausted AS ("
      "  SELECT id FROM obmen.queue WHERE target = $1 AND state = 'in_flight' AND lease_until <= now() "
      "  AND attempts >= $2 FOR UPDATE SKIP LOCKED) "
      "UPDATE obmen.queue q SET state = 'dead', lease_until = NULL, last_error_class = 'transient', "
      "  last_error = 'lease ran out: ' || coalesce(q.claimed_by, 'a worker') || ' did not finish attempt ' "
      "    || q.attempts || '; gave up after ' || q.attempts || ' attempts', "
      "  updated_at = now() "
      "FROM exhausted WHERE q.id = exhausted.id",
      target, max_attempts);

  // SKIP LOCKED: rows another worker is claiming right now are passed over, not waited for.
  // Under READ COMMITTED a row that changed since this statement's snapshot is locked in its
  // newest version and the WHERE clause re-checked against it, so a row claimed and committed
  // by someone else a moment ago no longer qualifies. The NOT EXISTS keeps an entity's newer
  // item behind its older one still in flight. SET expressions see the row before the update.
  const auto rows = tx.exec_params(
      "WITH due AS ("
      "  SELECT c.id FROM obmen.queue c WHERE c.target = $1 AND ("
      "    (c.state = 'pending' AND c.next_attempt_at <= now() AND NOT EXISTS ("
      "       SELECT 1 FROM obmen.queue s WHERE s.idempotency_key = c.idempotency_key AND s.state = 'in_flight'))"
      "    OR (c.state = 'in_flight' AND c.lease_until <= now()))"
      "  ORDER BY c.next_attempt_at, c.id LIMIT $2 FOR UPDATE SKIP LOCKED) "
      "UPDATE obmen.queue q SET "
      "  last_error_class = CASE WHEN q.state = 'in_flight' THEN 'transient' ELSE q.last_error_class END, "
      "  last_error = CASE WHEN q.state = 'in_flight' THEN 'lease ran out: ' || coalesce(q.claimed_by, 'a worker') "
      "    || ' did not finish attempt ' || q.attempts ELSE q.last_error END, "
      "  state = 'in_flight', attempts = q.attempts + 1, lease_until = now() + $3::bigint * interval '1 millisecond', "
      "  claimed_by = $4, claim_token = gen_random_uuid(), updated_at = now() "
      "FROM due WHERE q.id = due.id "
      "RETURNING " + item_columns,
      target, limit, static_cast<std::int64_t>(lease.count()), worker_id);
  std::vector<item> items;
  items.reserve(rows.size());
  for (const auto& r : rows) items.push_back(item_from_row(r));
  // RETURNING has no order; hand items out in the order they were due.
  std::sort(items.begin(), items.end(), [](const item& a, const item& b) {
    return std::tie(a.next_attempt_at, a.id) < std::tie(b.next_attempt_at, b.id);
  });
  return items;
}

bool complete(pqxx::connection& conn, const item& claimed) {
  if (!claimed.claim_token) return false;
  return with_transaction(conn, [&](pqxx::work& tx) {
    const auto r = tx.exec_params(
        "UPDATE obmen.queue SET state = 'done', lease_until = NULL, updated_at = now() "
        "WHERE id = $1 AND state = 'in_flight' AND claim_token = $2::uuid",
        claimed.id, *claimed.claim_token);
    return r.affected_rows() == 1;
  });
}

fail_outcome fail(pqxx::connection& conn, const item& claimed, error_class cls, const std::string& message,
                  const retry_policy& policy, const random_source& random) {
  if (!claimed.claim_token) return fail_outcome::stale;
  // The delay is drawn once, outside the transaction, so a re-run after a lost race schedules
  // the same moment.
  const auto delay = backoff(policy, claimed.attempts, random);
  const auto cls_text = std::string(to_string(cls));
  return with_transaction(conn, [&](pqxx::work& tx) {
    const auto row = tx.exec_params(
        "SELECT attempts, idempotency_key FROM obmen.queue "
        "WHERE id = $1 AND state = 'in_flight' AND claim_token = $2::uuid FOR UPDATE",
        claimed.id, *claimed.claim_token);
    if (row.empty()) return fail_outcome::stale;
    const int attempts = row[0][0].as<int>();

    if (cls == error_class::permanent || attempts >= policy.max_attempts) {
      const std::string why =
          cls == error_class::permanent ? message : message + " (gave up after " + std::to_string(attempts) + " attempts)";
      tx.exec_params0(
          "UPDATE obmen.queue SET state = 'dead', lease_until = NULL, last_error_class = $2, last_error = $3, "
          "updated_at = now() WHERE id = $1",
          claimed.id, cls_text, why);
      return fail_outcome::dead;
    }

    if (!row[0][1].is_null()) {
      // The entity was enqueued again while this attempt was in flight: its pending item holds
      // the newest payload, so it is the one to retry — with this item's attempts and backoff,
      // or a flood of updates would retry a failing upstream without pause and never give up.
      const auto newer = tx.exec_params(
          "SELECT id FROM obmen.queue WHERE idempotency_key = $1 AND state = 'pending' FOR UPDATE",
          row[0][1].as<std::string>());
      if (!newer.empty()) {
        tx.exec_params0(
            "UPDATE obmen.queue SET attempts = greatest(attempts, $2), "
            "  next_attempt_at = greatest(next_attempt_at, now() + $3::bigint * interval '1 millisecond'), "
            "  last_error_class = $4, last_error = $5, updated_at = now() WHERE id = $1",
            newer[0][0].as<std::int64_t>(), attempts, static_cast<std::int64_t>(delay.count()), cls_text, message);
        tx.exec_params0("DELETE FROM obmen.queue WHERE id = $1", claimed.id);
        return fail_outcome::merged;
      }
    }

    // May raise unique_violation when an enqueue of the key committed meanwhile: with_transaction
    // runs this again, and the merge above takes it.
    tx.exec_params0(
        "UPDATE obmen.queue SET state = 'pending', lease_until = NULL, "
        "  next_attempt_at = now() + $2::bigint * interval '1 millisecond', "
        "  last_error_class = $3, last_error = $4, updated_at = now() WHERE id = $1",
        claimed.id, static_cast<std::int64_t>(delay.count()), cls_text, message);
    return fail_outcome::retrying;
  });
}

run_stats run_once(pqxx::connection& conn, const std::string& target, const handler& deliver,
                   const worker_options& o) {
  run_stats stats;
  const auto items = with_transaction(conn, [&](pqxx::work& tx) {
    return claim(tx, o.worker_id, target, o.batch, o.lease, o.policy.max_attempts);
  });
  stats.claimed = static_cast<int>(items.size());
  for (const auto& it : items) {
    outcome result;
    try {
      result = deliver(it);
    } catch (const std::exception& e) {
      result = outcome::transient(e.what());
    } catch (...) {
      result = outcome::transient("unknown exception");
    }
    if (result.result == outcome::kind::ok) {
      if (complete(conn, it))
        ++stats.delivered;
      else
        ++stats.stale;
      continue;
    }
    const auto cls = result.result == outcome::kind::permanent ? error_class::permanent : error_class::transient;
    switch (fail(conn, it, cls, result.message, o.policy, o.random)) {
      case fail_outcome::retrying: ++stats.retrying; break;
      case fail_outcome::merged: ++stats.merged; break;
      case fail_outcome::dead: ++stats.dead; break;
      case fail_outcome::stale: ++stats.stale; break;
    }
  }
  return stats;
}

std::vector<item> list(pqxx::transaction_base& tx, const list_filter& f) {
  if (f.limit < 1 || f.limit > 10000)
    throw std::invalid_argument("queue::list: limit must be 1 … 10000, got " + std::to_string(f.limit));
  std::string states;
  for (auto st : f.states) states += (states.empty() ? "" : ",") + std::string(to_string(st));
  const auto rows = tx.exec_params(
      "SELECT " + item_columns +
          " FROM obmen.queue q WHERE ($1 = '' OR q.state = ANY (string_to_array($1, ','))) "
          "AND ($2::text IS NULL OR q.target = $2) ORDER BY q.id LIMIT $3",
      states, key_param(f.target), f.limit);
  std::vector<item> items;
  items.reserve(rows.size());
  for (const auto& r : rows) items.push_back(item_from_row(r));
  return items;
}

std::optional<item> show(pqxx::transaction_base& tx, std::int64_t id) {
  const auto rows = tx.exec_params("SELECT " + item_columns + " FROM obmen.queue q WHERE q.id = $1", id);
  if (rows.empty()) return std::nullopt;
  return item_from_row(rows[0]);
}

retry_result retry(pqxx::connection& conn, std::int64_t id) {
  return with_transaction(conn, [&](pqxx::work& tx) { return retry_in(tx, id); });
}

std::vector<retry_result> retry_all_dead(pqxx::connection& conn, const std::optional<std::string>& target) {
  return with_transaction(conn, [&](pqxx::work& tx) {
    std::vector<retry_result> results;
    std::set<std::int64_t> handled;
    const auto dead = tx.exec_params(
        "SELECT id FROM obmen.queue WHERE state = 'dead' AND ($1::text IS NULL OR target = $1) ORDER BY id",
        key_param(target));
    for (const auto& row : dead) {
      const auto id = row[0].as<std::int64_t>();
      if (handled.count(id)) continue;
      auto r = retry_in(tx, id);
      if (r.superseded_by) handled.insert(*r.superseded_by);
      if (r.result == retry_result::kind::not_found) continue;  // removed by an earlier item's retry
      results.push_back(r);
    }
    return results;
  });
}

drop_result drop(pqxx::connection& conn, std::int64_t id) {
  return with_transaction(conn, [&](pqxx::work& tx) {
    drop_result r;
    r.id = id;
    const auto row = tx.exec_params("SELECT state FROM obmen.queue WHERE id = $1 FOR UPDATE", id);
    if (row.empty()) return r;
    const auto current = state_from_db(row[0][0].as<std::string>());
    if (current != state::pending && current != state::dead) {
      r.result = drop_result::kind::wrong_state;
      r.current_state = current;
      return r;
    }
    tx.exec_params0("DELETE FROM obmen.queue WHERE id = $1", id);
    r.result = drop_result::kind::dropped;
    return r;
  });
}

std::map<state, std::int64_t> depth_by_state(pqxx::transaction_base& tx, const std::optional<std::string>& target) {
  std::map<state, std::int64_t> depth;
  for (auto st : all_states) depth[st] = 0;
  for (const auto& r : tx.exec_params(
           "SELECT state, count(*) FROM obmen.queue WHERE $1::text IS NULL OR target = $1 GROUP BY state",
           key_param(target)))
    depth[state_from_db(r[0].as<std::string>())] = r[1].as<std::int64_t>();
  return depth;
}

}  // namespace obmen::queue
