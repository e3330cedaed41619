// The queue on a real PostgreSQL ($OBMEN_TEST_DATABASE_URL): claims under concurrency, dead
// workers, backoff, dead items and the admin API, coalescing, and delivery against an upstream
// that fails half the time.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "queue/queue.hpp"
#include "tests/support/test_database.hpp"

using namespace std::chrono_literals;
using obmen::test::test_database;
namespace queue = obmen::queue;
using queue::state;

namespace {

using clock_type = std::chrono::steady_clock;

queue::random_source fixed(double r) {
  return [r] { return r; };
}

queue::retry_policy policy(std::chrono::milliseconds base, std::chrono::milliseconds cap, int max_attempts) {
  queue::retry_policy p;
  p.base = base;
  p.cap = cap;
  p.max_attempts = max_attempts;
  return p;
}

// Test connections do not wait for the WAL flush at commit: the semantics under test do not
// depend on durability, and ten thousand deliveries commit twenty thousand times.
std::unique_ptr<pqxx::connection> fast_connection(const test_database& db) {
  auto c = db.connect();
  pqxx::nontransaction(*c).exec("SET synchronous_commit = off");
  return c;
}

queue::enqueue_result enqueue(pqxx::connection& c, const std::string& target, const nlohmann::json& payload,
                              const std::optional<std::string>& key = std::nullopt,
                              const std::string& kind = "export_order") {
  pqxx::work tx(c);
  auto r = queue::enqueue(tx, kind, target, payload, key);
  tx.commit();
  return r;
}

std::vector<queue::item> claim(pqxx::connection& c, const std::string& worker, const std::string& target,
                               int limit = 10, std::chrono::milliseconds lease = 60s, int max_attempts = 20) {
  pqxx::work tx(c);
  auto items = queue::claim(tx, worker, target, limit, lease, max_attempts);
  tx.commit();
  return items;
}

queue::item get(pqxx::connection& c, std::int64_t id) {
  pqxx::work tx(c);
  auto it = queue::show(tx, id);
  REQUIRE_MESSAGE(it.has_value(), "no queue item " << id);
  return *it;
}

std::map<state, std::int64_t> depth(pqxx::connection& c, const std::optional<std::string>& target = std::nullopt) {
  pqxx::work tx(c);
  return queue::depth_by_state(tx, target);
}

std::int64_t scalar(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  return tx.exec1(sql)[0].as<std::int64_t>();
}

// Makes every waiting item of the test due now: the clock moved on (instead of sleeping).
void time_passes(pqxx::connection& c) {
  pqxx::work tx(c);
  tx.exec0("UPDATE obmen.queue SET next_attempt_at = now() WHERE state = 'pending'");
  tx.commit();
}

// Counts what a fake upstream received, from any number of worker threads.
struct upstream {
  std::mutex m;
  std::map<std::int64_t, int> deliveries;            // item id → times delivered
  std::map<std::int64_t, nlohmann::json> payloads;   // item id → payload last delivered
  std::atomic<long> failures{0};

  void record(const queue::item& it) {
    std::lock_guard lock(m);
    ++deliveries[it.id];
    payloads[it.id] = it.payload;
  }
};

struct drain_report {
  bool finished = false;   // pending + in_flight reached 0 before the deadline
  std::vector<std::string> errors;
  std::map<std::string, int> claimed_by_worker;
};

std::string per_worker(const drain_report& r) {
  std::string out;
  for (const auto& [worker, n] : r.claimed_by_worker) out += (out.empty() ? "" : ", ") + worker + " " + std::to_string(n);
  return out;
}

// Runs `workers` threads, each with its own connection, calling run_once until nothing of
// `target` is pending or in flight, or the deadline passes. No sleeps: an idle worker asks the
// database again at once.
drain_report drain(const test_database& db, const std::string& target, int workers, const queue::handler& deliver,
                   queue::worker_options o, std::chrono::seconds deadline = 120s) {
  drain_report report;
  std::mutex m;
  std::atomic<bool> done{false};
  const auto until = clock_type::now() + deadline;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w, o]() mutable {
      o.worker_id = "worker-" + std::to_string(w);
      int claimed = 0;
      try {
        auto c = fast_connection(db);
        while (!done) {
          const auto stats = queue::run_once(*c, target, deliver, o);
          claimed += stats.claimed;
          if (stats.claimed > 0) continue;
          const auto d = depth(*c, target);
          if (d.at(state::pending) + d.at(state::in_flight) == 0) {
            done = true;
            std::lock_guard lock(m);
            report.finished = true;
          } else if (clock_type::now() > until) {
            done = true;
          }
        }
      } catch (const std::exception& e) {
        done = true;
        std::lock_guard lock(m);
        report.errors.push_back(o.worker_id + ": " + e.what());
      }
      std::lock_guard lock(m);
      report.claimed_by_worker[o.worker_id] = claimed;
    });
  }
  for (auto& t : threads) t.join();
  return report;
}

}  // namespace

TEST_CASE("enqueue creates a pending item that is due now; claim hands it out once with a token") {
  test_database db;
  auto c = db.connect();
  const auto r = enqueue(*c, "moysklad", {{"order", 1}});
  CHECK_FALSE(r.coalesced);
  auto it = get(*c, r.id);
  CHECK(it.state == state::pending);
  CHECK(it.attempts == 0);
  CHECK(it.kind == "export_order");
  CHECK(it.target == "moysklad");
  CHECK(it.payload == nlohmann::json{{"order", 1}});
  CHECK_FALSE(it.idempotency_key.has_value());
  CHECK_FALSE(it.claimed_by.has_value());

  CHECK(claim(*c, "w", "onec").empty());  // another target
  const auto claimed = claim(*c, "w1", "moysklad");
  REQUIRE(claimed.size() == 1);
  CHECK(claimed[0].id == r.id);
  CHECK(claimed[0].state == state::in_flight);
  CHECK(claimed[0].attempts == 1);
  CHECK(claimed[0].claimed_by == "w1");
  CHECK(claimed[0].claim_token.has_value());
  CHECK(claimed[0].lease_until.has_value());
  CHECK(claim(*c, "w2", "moysklad").empty());  // in flight, lease not run out

  CHECK(queue::complete(*c, claimed[0]));
  it = get(*c, r.id);
  CHECK(it.state == state::done);
  CHECK_FALSE(it.lease_until.has_value());
  CHECK_FALSE(queue::complete(*c, claimed[0]));  // once
  CHECK(queue::fail(*c, claimed[0], queue::error_class::transient, "late") == queue::fail_outcome::stale);
  CHECK(get(*c, r.id).state == state::done);

  pqxx::work tx(*c);
  CHECK_THROWS_AS(queue::enqueue(tx, "", "moysklad", {}), std::invalid_argument);
  CHECK_THROWS_AS(queue::enqueue(tx, "export_order", "", {}), std::invalid_argument);
  CHECK_THROWS_AS(queue::claim(tx, "w", "moysklad", 0, 1s), std::invalid_argument);
}

TEST_CASE("claims are handed out oldest due first, up to the limit") {
  test_database db;
  auto c = db.connect();
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(enqueue(*c, "t", {{"n", i}}).id);
  const auto first = claim(*c, "w", "t", 3);
  REQUIRE(first.size() == 3);
  CHECK(first[0].id == ids[0]);
  CHECK(first[1].id == ids[1]);
  CHECK(first[2].id == ids[2]);
  const auto rest = claim(*c, "w", "t", 3);
  REQUIRE(rest.size() == 2);
  CHECK(rest[0].id == ids[3]);
  CHECK(rest[1].id == ids[4]);
}

TEST_CASE("two workers racing for the same 1000 items never deliver one twice") {
  test_database db;
  {
    auto c = fast_connection(db);
    pqxx::work tx(*c);
    for (int i = 0; i < 1000; ++i) queue::enqueue(tx, "export_order", "race", {{"n", i}});
    tx.commit();
  }
  upstream up;
  queue::worker_options o;
  o.batch = 7;
  const auto report = drain(db, "race", 2, [&](const queue::item& it) {
    up.record(it);
    return queue::outcome::ok();
  }, o);
  CHECK(report.errors.empty());
  CHECK(report.finished);
  CHECK(up.deliveries.size() == 1000);
  int twice = 0;
  for (const auto& [id, n] : up.deliveries) twice += n != 1;
  CHECK(twice == 0);
  int claimed = 0;
  for (const auto& [w, n] : report.claimed_by_worker) claimed += n;
  CHECK(claimed == 1000);  // not one claim more than items: no item was handed out twice
  MESSAGE("claims per worker: " << per_worker(report));
  auto c = db.connect();
  CHECK(depth(*c).at(state::done) == 1000);
  CHECK(scalar(*c, "SELECT count(*) FROM obmen.queue WHERE attempts <> 1") == 0);
}

TEST_CASE("a killed worker's item is reclaimed once its lease runs out and delivered once") {
  test_database db;
  auto c = db.connect();
  const auto id = enqueue(*c, "moysklad", {{"order", 7}}, "moysklad:customerorder:7").id;

  // Worker A claims and dies: it never completes. A lease of 0 has run out at once.
  const auto a = claim(*c, "worker-a", "moysklad", 10, 0ms);
  REQUIRE(a.size() == 1);

  upstream up;
  queue::worker_options o;
  o.worker_id = "worker-b";
  const auto stats = queue::run_once(*c, "moysklad", [&](const queue::item& it) {
    up.record(it);
    return queue::outcome::ok();
  }, o);
  CHECK(stats.claimed == 1);
  CHECK(stats.delivered == 1);
  CHECK(up.deliveries == std::map<std::int64_t, int>{{id, 1}});

  auto it = get(*c, id);
  CHECK(it.state == state::done);
  CHECK(it.attempts == 2);
  CHECK(it.claimed_by == "worker-b");
  CHECK(it.last_error_class == "transient");
  CHECK(it.last_error == "lease ran out: worker-a did not finish attempt 1");

  // A comes back to life: its claim is stale, whatever it reports.
  CHECK_FALSE(queue::complete(*c, a[0]));
  CHECK(queue::fail(*c, a[0], queue::error_class::permanent, "too late") == queue::fail_outcome::stale);
  CHECK(get(*c, id).state == state::done);
  CHECK(queue::run_once(*c, "moysklad", [&](const queue::item& i) {
          up.record(i);
          return queue::outcome::ok();
        }, o).claimed == 0);
  CHECK(up.deliveries.at(id) == 1);
}

TEST_CASE("a stale worker cannot record an outcome over the worker that holds the item now") {
  test_database db;
  auto c = db.connect();
  const auto id = enqueue(*c, "t", {}).id;
  const auto a = claim(*c, "a", "t", 1, 0ms);
  const auto b = claim(*c, "b", "t", 1, 60s);
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  CHECK(a[0].claim_token != b[0].claim_token);
  CHECK(queue::fail(*c, a[0], queue::error_class::transient, "a's timeout") == queue::fail_outcome::stale);
  CHECK_FALSE(queue::complete(*c, a[0]));
  auto it = get(*c, id);
  CHECK(it.state == state::in_flight);
  CHECK(it.claimed_by == "b");
  CHECK(queue::complete(*c, b[0]));
  CHECK(get(*c, id).state == state::done);
}

TEST_CASE("a complete whose lease ran out is still recorded while nobody claimed the item again") {
  test_database db;
  auto c = db.connect();
  const auto id = enqueue(*c, "t", {}).id;
  const auto a = claim(*c, "a", "t", 1, 0ms);
  REQUIRE(a.size() == 1);
  CHECK(queue::complete(*c, a[0]));
  CHECK(get(*c, id).state == state::done);
  CHECK(claim(*c, "b", "t").empty());
}

TEST_CASE("an item whose workers keep dying is parked as dead after max attempts") {
  test_database db;
  auto c = db.connect();
  const auto id = enqueue(*c, "t", {{"poison", true}}).id;
  REQUIRE(claim(*c, "a", "t", 1, 0ms, 2).size() == 1);
  REQUIRE(claim(*c, "b", "t", 1, 0ms, 2).size() == 1);
  CHECK(claim(*c, "c", "t", 1, 60s, 2).empty());
  const auto it = get(*c, id);
  CHECK(it.state == state::dead);
  CHECK(it.attempts == 2);
  CHECK(it.last_error_class == "transient");
  CHECK(it.last_error == "lease ran out: b did not finish attempt 2; gave up after 2 attempts");
  CHECK_FALSE(it.lease_until.has_value());
}

TEST_CASE("transient failures: the backoff schedule is recorded in next_attempt_at, then max attempts → dead") {
  test_database db;
  auto c = db.connect();
  const auto id = enqueue(*c, "t", {}).id;
  const auto p = policy(1000ms, 4000ms, 6);
  // Full jitter with r = 0.5: half of min(4 s, 1 s · 2^(n-1)).
  const std::vector<std::int64_t> expected_ms = {500, 1000, 2000, 2000, 2000};
  for (std::size_t n = 0; n < expected_ms.size(); ++n) {
    CAPTURE(n + 1);
    const auto claimed = claim(*c, "w", "t");
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].attempts == static_cast<int>(n + 1));
    CHECK(queue::fail(*c, claimed[0], queue::error_class::transient, "503 Service Unavailable", p, fixed(0.5)) ==
          queue::fail_outcome::retrying);
    const auto it = get(*c, id);
    CHECK(it.state == state::pending);
    CHECK(it.last_error_class == "transient");
    CHECK(it.last_error == "503 Service Unavailable");
    CHECK_FALSE(it.lease_until.has_value());
    // next_attempt_at and updated_at are set by the same statement from the same now().
    CHECK(scalar(*c, "SELECT (extract(epoch FROM next_attempt_at - updated_at) * 1000)::bigint FROM obmen.queue") ==
          expected_ms[n]);
    CHECK(claim(*c, "w", "t").empty());  // not due yet
    time_passes(*c);
  }
  const auto last = claim(*c, "w", "t");
  REQUIRE(last.size() == 1);
  CHECK(last[0].attempts == 6);
  CHECK(queue::fail(*c, last[0], queue::error_class::transient, "503 Service Unavailable", p, fixed(0.5)) ==
        queue::fail_outcome::dead);
  const auto it = get(*c, id);
  CHECK(it.state == state::dead);
  CHECK(it.last_error_class == "transient");
  CHECK(it.last_error == "503 Service Unavailable (gave up after 6 attempts)");
  time_passes(*c);
  CHECK(claim(*c, "w", "t").empty());
}

TEST_CASE("a permanent failure parks the item as dead at once") {
  test_database db;
  auto c = db.connect();
  const auto id = enqueue(*c, "t", {}).id;
  const auto claimed = claim(*c, "w", "t");
  REQUIRE(claimed.size() == 1);
  CHECK(queue::fail(*c, claimed[0], queue::error_class::permanent, "400: counterparty INN is invalid") ==
        queue::fail_outcome::dead);
  const auto it = get(*c, id);
  CHECK(it.state == state::dead);
  CHECK(it.attempts == 1);
  CHECK(it.last_error_class == "permanent");
  CHECK(it.last_error == "400: counterparty INN is invalid");
  CHECK(claim(*c, "w", "t").empty());
}

TEST_CASE("run_once records what the handler says; an exception counts as transient") {
  test_database db;
  auto c = db.connect();
  const auto ok = enqueue(*c, "t", {{"do", "ok"}}).id;
  const auto perm = enqueue(*c, "t", {{"do", "permanent"}}).id;
  const auto trans = enqueue(*c, "t", {{"do", "transient"}}).id;
  const auto thrown = enqueue(*c, "t", {{"do", "throw"}}).id;
  queue::worker_options o;
  o.random = fixed(0.5);
  o.policy = policy(60000ms, 60000ms, 5);
  const auto stats = queue::run_once(*c, "t", [](const queue::item& it) {
    const auto what = it.payload.at("do").get<std::string>();
    if (what == "permanent") return queue::outcome::permanent("422: unknown product");
    if (what == "transient") return queue::outcome::transient("connection refused");
    if (what == "throw") throw std::runtime_error("TLS handshake: timed out");
    return queue::outcome::ok();
  }, o);
  CHECK(stats.claimed == 4);
  CHECK(stats.delivered == 1);
  CHECK(stats.dead == 1);
  CHECK(stats.retrying == 2);
  CHECK(stats.stale == 0);
  CHECK(get(*c, ok).state == state::done);
  CHECK(get(*c, perm).state == state::dead);
  CHECK(get(*c, perm).last_error == "422: unknown product");
  CHECK(get(*c, trans).state == state::pending);
  CHECK(get(*c, trans).last_error == "connection refused");
  CHECK(get(*c, thrown).state == state::pending);
  CHECK(get(*c, thrown).last_error_class == "transient");
  CHECK(get(*c, thrown).last_error == "TLS handshake: timed out");
}

TEST_CASE("coalescing: ten enqueues of one key while it waits are one delivery of the newest payload") {
  test_database db;
  auto c = db.connect();
  const std::string key = "moysklad:customerorder:42";
  std::int64_t id = 0;
  for (int version = 1; version <= 10; ++version) {
    const auto r = enqueue(*c, "moysklad", {{"version", version}}, key);
    if (version == 1) {
      CHECK_FALSE(r.coalesced);
      id = r.id;
    } else {
      CHECK(r.coalesced);
      CHECK(r.id == id);
    }
  }
  CHECK(scalar(*c, "SELECT count(*) FROM obmen.queue") == 1);
  upstream up;
  const auto deliver = [&](const queue::item& it) {
    up.record(it);
    return queue::outcome::ok();
  };
  CHECK(queue::run_once(*c, "moysklad", deliver).delivered == 1);
  CHECK(queue::run_once(*c, "moysklad", deliver).claimed == 0);
  CHECK(up.deliveries == std::map<std::int64_t, int>{{id, 1}});
  CHECK(up.payloads.at(id) == nlohmann::json{{"version", 10}});
}

TEST_CASE("coalescing keeps the pending item's attempts and backoff; a key pending for another target is refused") {
  test_database db;
  auto c = db.connect();
  const std::string key = "moysklad:counterparty:9";
  const auto id = enqueue(*c, "moysklad", {{"v", 1}}, key).id;
  const auto claimed = claim(*c, "w", "moysklad");
  REQUIRE(claimed.size() == 1);
  REQUIRE(queue::fail(*c, claimed[0], queue::error_class::transient, "502", policy(60000ms, 60000ms, 5),
                      fixed(0.5)) == queue::fail_outcome::retrying);
  const auto before = get(*c, id);
  const auto r = enqueue(*c, "moysklad", {{"v", 2}}, key, "export_counterparty");
  CHECK(r.coalesced);
  CHECK(r.id == id);
  const auto after = get(*c, id);
  CHECK(after.payload == nlohmann::json{{"v", 2}});
  CHECK(after.kind == "export_counterparty");
  CHECK(after.attempts == 1);
  CHECK(after.next_attempt_at == before.next_attempt_at);
  CHECK(after.state == state::pending);

  pqxx::work tx(*c);
  CHECK_THROWS_WITH_AS(queue::enqueue(tx, "export_counterparty", "onec", {}, key),
                       "queue::enqueue: idempotency key 'moysklad:counterparty:9' has a pending item for another "
                       "target than 'onec'",
                       std::invalid_argument);
}

TEST_CASE("coalescing: an enqueue while the key is in flight is delivered again after the current delivery") {
  test_database db;
  auto c = db.connect();
  const std::string key = "moysklad:customerorder:5";
  const auto first = enqueue(*c, "moysklad", {{"v", 1}}, key).id;
  const auto in_flight = claim(*c, "w1", "moysklad");
  REQUIRE(in_flight.size() == 1);

  // Three updates while v1 is being delivered: one new pending item, the in-flight one untouched.
  const auto second = enqueue(*c, "moysklad", {{"v", 2}}, key);
  CHECK_FALSE(second.coalesced);
  CHECK(second.id != first);
  CHECK(enqueue(*c, "moysklad", {{"v", 3}}, key).id == second.id);
  CHECK(enqueue(*c, "moysklad", {{"v", 4}}, key).coalesced);
  CHECK(get(*c, first).payload == nlohmann::json{{"v", 1}});
  CHECK(get(*c, first).state == state::in_flight);
  CHECK(scalar(*c, "SELECT count(*) FROM obmen.queue") == 2);

  // The newer item waits behind the one in flight: no second worker delivers v4 meanwhile.
  CHECK(claim(*c, "w2", "moysklad").empty());
  CHECK(queue::complete(*c, in_flight[0]));

  upstream up;
  CHECK(queue::run_once(*c, "moysklad", [&](const queue::item& it) {
          up.record(it);
          return queue::outcome::ok();
        }).delivered == 1);
  CHECK(up.deliveries == std::map<std::int64_t, int>{{second.id, 1}});
  CHECK(up.payloads.at(second.id) == nlohmann::json{{"v", 4}});
  CHECK(depth(*c).at(state::done) == 2);
}

TEST_CASE("a transient failure while a newer item of the key waits merges into it") {
  test_database db;
  auto c = db.connect();
  const std::string key = "moysklad:customerorder:8";
  const auto first = enqueue(*c, "moysklad", {{"v", 1}}, key).id;
  const auto a = claim(*c, "w", "moysklad");
  REQUIRE(a.size() == 1);
  const auto second = enqueue(*c, "moysklad", {{"v", 2}}, key).id;
  CHECK(queue::fail(*c, a[0], queue::error_class::transient, "timeout", policy(8000ms, 8000ms, 5), fixed(0.5)) ==
        queue::fail_outcome::merged);
  pqxx::work tx(*c);
  CHECK_FALSE(queue::show(tx, first).has_value());
  const auto it = queue::show(tx, second);
  REQUIRE(it.has_value());
  CHECK(it->state == state::pending);
  CHECK(it->attempts == 1);
  CHECK(it->payload == nlohmann::json{{"v", 2}});
  CHECK(it->last_error == "timeout");
  CHECK(tx.exec1("SELECT (extract(epoch FROM next_attempt_at - updated_at) * 1000)::bigint FROM obmen.queue")[0]
            .as<std::int64_t>() == 4000);
}

TEST_CASE("admin: retry puts a dead item back, attempts reset; only dead items; a newer sibling supersedes") {
  test_database db;
  auto c = db.connect();
  const auto id = enqueue(*c, "t", {{"v", 1}}).id;
  const auto claimed = claim(*c, "w", "t");
  REQUIRE(queue::fail(*c, claimed.at(0), queue::error_class::permanent, "400") == queue::fail_outcome::dead);

  const auto r = queue::retry(*c, id);
  CHECK(r.result == queue::retry_result::kind::retried);
  auto it = get(*c, id);
  CHECK(it.state == state::pending);
  CHECK(it.attempts == 0);
  CHECK(it.last_error == "400");  // kept for the record until the next attempt
  const auto again = claim(*c, "w", "t");
  REQUIRE(again.size() == 1);
  CHECK(again[0].attempts == 1);

  CHECK(queue::retry(*c, id).result == queue::retry_result::kind::not_dead);
  CHECK(queue::retry(*c, id).current_state == state::in_flight);
  CHECK(queue::retry(*c, 999999).result == queue::retry_result::kind::not_found);
  CHECK(queue::complete(*c, again[0]));

  SUBCASE("a dead item with a newer pending sibling is removed and the sibling is due now") {
    const std::string key = "k:1";
    const auto old_id = enqueue(*c, "t", {{"v", 1}}, key).id;
    const auto a = claim(*c, "w", "t");
    const auto new_id = enqueue(*c, "t", {{"v", 2}}, key).id;
    REQUIRE(queue::fail(*c, a.at(0), queue::error_class::permanent, "400") == queue::fail_outcome::dead);
    {
      pqxx::work tx(*c);
      tx.exec_params0("UPDATE obmen.queue SET attempts = 3, next_attempt_at = now() + interval '1 hour' WHERE id = $1",
                      new_id);
      tx.commit();
    }
    const auto s = queue::retry(*c, old_id);
    CHECK(s.result == queue::retry_result::kind::superseded);
    CHECK(s.superseded_by == new_id);
    pqxx::work tx(*c);
    CHECK_FALSE(queue::show(tx, old_id).has_value());
    CHECK(tx.exec_params1("SELECT attempts = 0 AND next_attempt_at <= now() AND state = 'pending' FROM obmen.queue "
                          "WHERE id = $1",
                          new_id)[0]
              .as<bool>());
  }
  SUBCASE("retry_all_dead retries every dead item of a target, oldest first, each entity once") {
    std::vector<std::int64_t> dead;
    for (const std::string target : {"t", "t", "other"}) {
      const auto i = enqueue(*c, target, {}).id;
      const auto cl = claim(*c, "w", target, 1);
      REQUIRE(queue::fail(*c, cl.at(0), queue::error_class::permanent, "400") == queue::fail_outcome::dead);
      dead.push_back(i);
    }
    // Two dead items of one entity: the older is superseded by the newer, which is retried.
    const std::string key = "k:2";
    const auto k1 = enqueue(*c, "t", {{"v", 1}}, key).id;
    const auto cl1 = claim(*c, "w", "t");
    const auto k2 = enqueue(*c, "t", {{"v", 2}}, key).id;
    REQUIRE(queue::fail(*c, cl1.at(0), queue::error_class::permanent, "400") == queue::fail_outcome::dead);
    const auto cl2 = claim(*c, "w", "t");
    REQUIRE(cl2.size() == 1);
    REQUIRE(cl2[0].id == k2);
    REQUIRE(queue::fail(*c, cl2[0], queue::error_class::permanent, "400") == queue::fail_outcome::dead);

    const auto results = queue::retry_all_dead(*c, std::string("t"));
    REQUIRE(results.size() == 3);
    CHECK(results[0].id == dead[0]);
    CHECK(results[0].result == queue::retry_result::kind::retried);
    CHECK(results[1].id == dead[1]);
    CHECK(results[1].result == queue::retry_result::kind::retried);
    CHECK(results[2].id == k1);
    CHECK(results[2].result == queue::retry_result::kind::superseded);
    CHECK(results[2].superseded_by == k2);
    CHECK(get(*c, k2).state == state::pending);
    CHECK(get(*c, dead[2]).state == state::dead);  // target "other" untouched
    CHECK(depth(*c, std::string("t")).at(state::dead) == 0);
    CHECK(queue::retry_all_dead(*c).size() == 1);
    CHECK(depth(*c).at(state::dead) == 0);
  }
}

TEST_CASE("admin: drop removes pending and dead items; in-flight and done ones are refused") {
  test_database db;
  auto c = db.connect();
  const auto pending = enqueue(*c, "t", {}).id;
  const auto in_flight = enqueue(*c, "t", {}).id;
  const auto dead = enqueue(*c, "t", {}).id;
  const auto done = enqueue(*c, "t", {}).id;
  {
    pqxx::work tx(*c);
    tx.exec_params0("UPDATE obmen.queue SET next_attempt_at = now() + interval '1 hour' WHERE id = $1", pending);
    tx.commit();
  }
  const auto cl = claim(*c, "w", "t");
  REQUIRE(cl.size() == 3);
  REQUIRE(queue::fail(*c, cl[1], queue::error_class::permanent, "400") == queue::fail_outcome::dead);
  REQUIRE(queue::complete(*c, cl[2]));

  CHECK(queue::drop(*c, pending).result == queue::drop_result::kind::dropped);
  CHECK(queue::drop(*c, dead).result == queue::drop_result::kind::dropped);
  const auto f = queue::drop(*c, in_flight);
  CHECK(f.result == queue::drop_result::kind::wrong_state);
  CHECK(f.current_state == state::in_flight);
  CHECK(queue::drop(*c, done).current_state == state::done);
  CHECK(queue::drop(*c, pending).result == queue::drop_result::kind::not_found);
  CHECK(scalar(*c, "SELECT count(*) FROM obmen.queue") == 2);
}

TEST_CASE("admin: list filters by state and target in id order; show; depth_by_state counts every state") {
  test_database db;
  auto c = db.connect();
  const auto a = enqueue(*c, "moysklad", {{"a", 1}}, "moysklad:customerorder:1").id;
  const auto b = enqueue(*c, "moysklad", {{"b", 1}}).id;
  const auto d = enqueue(*c, "onec", {{"d", 1}}).id;
  const auto cl = claim(*c, "w", "moysklad", 1);
  REQUIRE(cl.size() == 1);
  REQUIRE(queue::fail(*c, cl[0], queue::error_class::permanent, "400") == queue::fail_outcome::dead);

  pqxx::work tx(*c);
  const auto ids = [](const std::vector<queue::item>& items) {
    std::vector<std::int64_t> out;
    for (const auto& i : items) out.push_back(i.id);
    return out;
  };
  CHECK(ids(queue::list(tx)) == std::vector<std::int64_t>{a, b, d});
  CHECK(ids(queue::list(tx, {{state::dead}, std::nullopt, 100})) == std::vector<std::int64_t>{a});
  CHECK(ids(queue::list(tx, {{state::pending}, std::string("moysklad"), 100})) == std::vector<std::int64_t>{b});
  CHECK(ids(queue::list(tx, {{state::pending, state::dead}, std::string("moysklad"), 100})) ==
        std::vector<std::int64_t>{a, b});
  CHECK(ids(queue::list(tx, {{}, std::string("onec"), 100})) == std::vector<std::int64_t>{d});
  CHECK(ids(queue::list(tx, {{}, std::nullopt, 2})) == std::vector<std::int64_t>{a, b});
  CHECK_THROWS_AS(queue::list(tx, {{}, std::nullopt, 0}), std::invalid_argument);

  const auto shown = queue::show(tx, a);
  REQUIRE(shown.has_value());
  CHECK(shown->idempotency_key == "moysklad:customerorder:1");
  CHECK(shown->payload == nlohmann::json{{"a", 1}});
  CHECK(shown->last_error == "400");
  CHECK(shown->created_at.size() == std::string("2024-05-01T10:00:00.000Z").size());
  CHECK(shown->created_at.back() == 'Z');
  CHECK_FALSE(queue::show(tx, 424242).has_value());

  const auto all = queue::depth_by_state(tx);
  CHECK(all == std::map<state, std::int64_t>{{state::pending, 2}, {state::in_flight, 0}, {state::done, 0},
                                             {state::dead, 1}});
  CHECK(queue::depth_by_state(tx, std::string("onec")).at(state::pending) == 1);
  CHECK(queue::depth_by_state(tx, std::string("nowhere")).at(state::pending) == 0);
}

TEST_CASE("with the upstream failing half the time, 10 000 queued deliveries all complete exactly once") {
  test_database db;
  constexpr int items = 10000;
  {
    auto c = fast_connection(db);
    pqxx::work tx(*c);
    for (int i = 0; i < items; ++i) queue::enqueue(tx, "export_order", "flaky", {{"n", i}});
    tx.commit();
  }
  upstream up;
  queue::worker_options o;
  o.batch = 25;
  // Tiny backoff so the test is quick; 0.5^40 per item of exhausting the attempts.
  o.policy = policy(1ms, 8ms, 40);
  const auto deliver = [&](const queue::item& it) {
    thread_local std::mt19937 coin{std::random_device{}()};
    if (std::uniform_int_distribution<int>(0, 1)(coin) == 0) {
      ++up.failures;
      if (up.failures % 7 == 0) throw std::runtime_error("connection reset by peer");
      return queue::outcome::transient("503 Service Unavailable");
    }
    up.record(it);
    return queue::outcome::ok();
  };
  const auto report = drain(db, "flaky", 3, deliver, o, 240s);
  CHECK(report.errors.empty());
  CHECK(report.finished);
  CHECK(up.deliveries.size() == static_cast<std::size_t>(items));
  int not_once = 0;
  for (const auto& [id, n] : up.deliveries) not_once += n != 1;
  CHECK(not_once == 0);
  CHECK(up.failures > items / 4);  // the upstream did fail
  MESSAGE("transient failures: " << up.failures.load() << "; claims per worker: " << per_worker(report));

  auto c = db.connect();
  CHECK(depth(*c) == std::map<state, std::int64_t>{{state::pending, 0}, {state::in_flight, 0}, {state::done, items},
                                                   {state::dead, 0}});
  // Every attempt was claimed once: attempts add up to deliveries plus failures.
  CHECK(scalar(*c, "SELECT sum(attempts) FROM obmen.queue") == items + up.failures.load());
}
