#pragma once
// The durable retry queue: outbound work (orders, counterparties, cancellations to deliver to an
// ERP) kept in table obmen.queue until it is delivered, or given up on and parked for an admin.
// The model — states, backoff, coalescing, several instances on one database — is described in
// docs/queue.md; this header is the contract.
//
// Every function blocks (libpq): call it on a worker thread or in the CLI, never on the
// io_context. Functions taking a transaction run in the caller's transaction and commit nothing;
// functions taking a connection run their own transactions (no transaction may be open on it)
// and have committed when they return. Transactions must be READ COMMITTED (libpqxx's default
// pqxx::work): the claim relies on its re-check of locked rows. Database errors are thrown as
// pqxx exceptions; misuse (an empty target, a non-positive limit) as std::invalid_argument.
//
// Delivery is at least once: a worker that delivers and dies before recording it leaves the item
// in flight, and it is delivered again once its lease runs out. Upstream requests should carry
// the idempotency key where the upstream can deduplicate.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "queue/backoff.hpp"

namespace obmen::queue {

//   pending ──claim──▶ in_flight ──complete──▶ done
//      ▲                 │  │
//      └─transient fail──┘  └─permanent fail, or max attempts──▶ dead ──retry──▶ pending
// An in_flight item whose lease ran out is claimable again (its worker died). drop removes a
// pending or dead item.
enum class state { pending, in_flight, done, dead };
std::string_view to_string(state);
std::optional<state> parse_state(std::string_view);  // "pending", "in_flight", "done", "dead"
inline constexpr state all_states[] = {state::pending, state::in_flight, state::done, state::dead};

// How a failed attempt is classified (STYLE.md habit 5): transient — network, 5xx, 429, lock
// timeout — is retried with backoff; permanent — validation, 4xx, unmapped value — parks the
// item as dead at once.
enum class error_class { transient, permanent };
std::string_view to_string(error_class);

// One row of obmen.queue. Timestamps are UTC, ISO 8601 with milliseconds
// ("2024-05-01T10:00:00.123Z").
struct item {
  std::int64_t id = 0;
  std::string kind;                              // e.g. export_order
  std::string target;                            // the source name it goes to, e.g. moysklad
  nlohmann::json payload = nlohmann::json::object();
  std::optional<std::string> idempotency_key;    // the entity, e.g. moysklad:customerorder:<id>
  queue::state state = queue::state::pending;
  int attempts = 0;                              // claims so far
  std::string next_attempt_at;
  std::optional<std::string> lease_until;        // set while in_flight
  std::optional<std::string> claimed_by;         // worker of the latest claim
  std::optional<std::string> claim_token;        // the latest claim's token (what complete/fail check)
  std::optional<std::string> last_error_class;   // "transient" / "permanent"
  std::optional<std::string> last_error;
  std::string created_at, updated_at;

  // Every field except claim_token, timestamps as above, absent optionals as null.
  nlohmann::json to_json() const;
};

// ─── producers ──────────────────────────────────────────────────────────────────────────────

struct enqueue_result {
  std::int64_t id = 0;
  bool coalesced = false;  // merged into the key's pending item instead of creating one
};

// Queues `payload` for `target` in the caller's transaction, so the item exists exactly when the
// change that caused it commits. With an idempotency key, coalesces: while the key has a pending
// item, that item's kind and payload are replaced by these (its attempts and next_attempt_at are
// kept) and no item is created; while the key is only in flight (or done, or dead), a new pending
// item is created, which is claimed only after the in-flight one finishes — so the newest state
// is delivered once, after the current delivery. Throws std::invalid_argument for an empty kind or
// target, or when the key's pending item belongs to another target.
enqueue_result enqueue(pqxx::transaction_base&, const std::string& kind, const std::string& target,
                       const nlohmann::json& payload, const std::optional<std::string>& idempotency_key = std::nullopt);

// ─── workers ────────────────────────────────────────────────────────────────────────────────

// "<hostname>:<pid>", to tell workers apart in claimed_by; append a thread number when one
// process runs several workers.
std::string default_worker_id();

// Claims up to `limit` items of `target` in the caller's transaction (they are the caller's once
// it commits): pending items that are due (next_attempt_at <= now()), oldest first, and in_flight
// items whose lease ran out. Each becomes in_flight with lease_until = now() + lease, attempts + 1,
// claimed_by = worker_id and a new claim token; the returned items carry that token. Rows other
// transactions are claiming are skipped (FOR UPDATE SKIP LOCKED), so any number of workers and
// obmend instances may claim from one database concurrently: no item is handed to two of them
// unless its lease runs out. A pending item is not claimed while an older item with the same
// idempotency key is in flight. An in_flight item whose lease ran out after `max_attempts`
// attempts is not claimed again but made dead (a worker keeps dying on it). now() is the
// transaction's start: claim in a fresh transaction.
std::vector<item> claim(pqxx::transaction_base&, const std::string& worker_id, const std::string& target, int limit,
                        std::chrono::milliseconds lease, int max_attempts = retry_policy{}.max_attempts);

// Records the delivery of a claimed item (done), in its own transaction. Returns false and
// changes nothing when the claim is stale: the item is no longer in_flight under this claim's
// token (its lease ran out and another worker claimed it, or an admin changed it). A claim whose
// lease ran out but which nobody re-claimed still completes.
bool complete(pqxx::connection&, const item& claimed);

enum class fail_outcome {
  retrying,  // pending again, next_attempt_at = now() + backoff(policy, attempts)
  merged,    // a newer pending item with the same key exists: this one is removed and the newer
             // one inherits its attempts and backoff (it carries the newest payload anyway)
  dead,      // permanent error, or attempts reached policy.max_attempts
  stale,     // not recorded: the claim is stale (see complete)
};
std::string_view to_string(fail_outcome);

// Records a failed attempt of a claimed item, in its own transaction: transient → retried after
// backoff (full jitter from `random`), unless attempts >= policy.max_attempts → dead; permanent →
// dead at once. last_error_class and last_error keep the class and message.
fail_outcome fail(pqxx::connection&, const item& claimed, error_class, const std::string& message,
                  const retry_policy& policy = {}, const random_source& random = default_random());

// What a delivery handler reports for one item.
struct outcome {
  enum class kind { ok, transient, permanent };
  kind result = kind::ok;
  std::string message;  // why it failed; empty for ok

  static outcome ok() { return {}; }
  static outcome transient(std::string message) { return {kind::transient, std::move(message)}; }
  static outcome permanent(std::string message) { return {kind::permanent, std::move(message)}; }
};

// Delivers one item to the upstream. Called outside any database transaction. An exception
// counts as a transient failure with its what() as the message.
using handler = std::function<outcome(const item&)>;

struct worker_options {
  std::string worker_id = default_worker_id();
  int batch = 10;                                     // items claimed at once
  std::chrono::milliseconds lease{5 * 60 * 1000};     // must cover delivering the whole batch
  retry_policy policy{};
  random_source random = default_random();
};

struct run_stats {
  int claimed = 0, delivered = 0, retrying = 0, merged = 0, dead = 0, stale = 0;
};

// One round of an adapter's delivery loop: claims up to options.batch items of `target` (own
// transaction), calls `deliver` for each in turn, and records each outcome right after it (own
// transaction per item, so a crash re-delivers at most the item being delivered). Returns what
// happened; claimed == 0 means nothing was due. The caller decides how long to wait before the
// next round (e.g. until the earliest next_attempt_at, or a NOTIFY).
run_stats run_once(pqxx::connection&, const std::string& target, const handler& deliver, const worker_options& = {});

// ─── admin (obmenctl queue) ─────────────────────────────────────────────────────────────────

struct list_filter {
  std::vector<state> states;          // empty: every state
  std::optional<std::string> target;  // none: every target
  int limit = 100;                    // 1 … 10000
};

// Items matching the filter, in id order, in the caller's transaction.
std::vector<item> list(pqxx::transaction_base&, const list_filter& = {});

// One item, or nothing when there is no such id.
std::optional<item> show(pqxx::transaction_base&, std::int64_t id);

struct retry_result {
  enum class kind {
    retried,     // the dead item is pending and due now, attempts reset to 0
    superseded,  // a newer item with the same key exists: this one was removed; the newer one,
                 // if pending or dead, is pending and due now with attempts reset (superseded_by)
    not_found,
    not_dead,    // only dead items are retried (current_state says what it is)
  };
  std::int64_t id = 0;
  kind result = kind::not_found;
  std::optional<std::int64_t> superseded_by;
  std::optional<queue::state> current_state;
};

// Puts a dead item back (own transaction). An older payload is never delivered after a newer one
// of the same entity: a dead item with a newer sibling is removed instead, and the sibling is
// retried when it is waiting (pending) or dead.
retry_result retry(pqxx::connection&, std::int64_t id);
// retry() of every dead item (of `target`, when given), oldest first, in one transaction.
// Items already handled as an earlier item's sibling are not reported twice.
std::vector<retry_result> retry_all_dead(pqxx::connection&, const std::optional<std::string>& target = std::nullopt);

struct drop_result {
  enum class kind { dropped, not_found, wrong_state };
  std::int64_t id = 0;
  kind result = kind::not_found;
  std::optional<queue::state> current_state;  // for wrong_state: in_flight or done
};

// Deletes a pending or dead item (own transaction): it will never be delivered. Items in flight
// (a worker is delivering them) and done items are refused (wrong_state).
drop_result drop(pqxx::connection&, std::int64_t id);

// Number of items per state (of `target`, when given); every state is present, 0 when empty.
std::map<state, std::int64_t> depth_by_state(pqxx::transaction_base&, const std::optional<std::string>& target = std::nullopt);

}  // namespace obmen::queue
