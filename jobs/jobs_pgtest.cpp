// The jobs table API (jobs/jobs.hpp) and the orders part of a 1C resync (jobs/resync.hpp) on a
// real PostgreSQL ($OBMEN_TEST_DATABASE_URL).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "jobs/jobs.hpp"
#include "jobs/resync.hpp"
#include "tests/support/test_database.hpp"

using obmen::test::test_database;
namespace jobs = obmen::jobs;

namespace {

std::int64_t enqueue(pqxx::connection& c, const std::string& entity, const std::string& source = "onec",
                     bool dry_run = false) {
  pqxx::work tx(c);
  jobs::request r;
  r.source = source;
  r.entity = entity;
  r.dry_run = dry_run;
  r.requested_by = "tester";
  const auto id = jobs::enqueue(tx, r);
  tx.commit();
  return id;
}

jobs::job get(pqxx::connection& c, std::int64_t id) {
  pqxx::read_transaction tx(c);
  auto j = jobs::get(tx, id);
  REQUIRE(j.has_value());
  return *j;
}

std::string scalar(pqxx::connection& c, const std::string& sql) {
  pqxx::nontransaction tx(c);
  auto r = tx.exec(sql);
  return r[0][0].is_null() ? "NULL" : r[0][0].as<std::string>();
}

}  // namespace

TEST_CASE("a request is validated; enqueue stores it queued with its requester") {
  test_database db;
  auto c = db.connect();
  pqxx::work tx(*c);
  jobs::request r{"onec", "prices", "incremental", true, "alice", std::nullopt};
  const auto id = jobs::enqueue(tx, r);
  tx.commit();
  const auto j = get(*c, id);
  CHECK(j.source == "onec");
  CHECK(j.entity == "prices");
  CHECK(j.mode == "incremental");
  CHECK(j.dry_run);
  CHECK(j.state == "queued");
  CHECK(j.requested_by == "alice");
  CHECK(j.schedule.empty());
  CHECK(j.started_at.empty());
  CHECK_FALSE(j.seconds.has_value());
  CHECK(j.to_json()["state"] == "queued");
  CHECK(j.to_json()["started_at"].is_null());

  r.entity = "product";
  CHECK_THROWS_WITH_AS(jobs::validate(r),
                       "unknown entity 'product': expected one of catalog, prices, stock, counterparties, orders, all",
                       std::invalid_argument);
  r.entity = "all";
  r.mode = "partial";
  CHECK_THROWS_WITH_AS(jobs::validate(r), "unknown mode 'partial': expected one of full, incremental", std::invalid_argument);
}

TEST_CASE("claims from several connections never run one job twice") {
  test_database db;
  auto setup = db.connect();
  constexpr int job_count = 40;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < job_count; ++i) ids.push_back(enqueue(*setup, "orders", i % 4 == 0 ? "other" : "onec"));

  std::atomic<int> claimed_by_both{0};
  std::vector<std::vector<std::int64_t>> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto c = db.connect();
      while (auto j = jobs::claim(*c, {"onec"}, "worker-" + std::to_string(t))) {
        if (j->state != "running" || j->worker != "worker-" + std::to_string(t)) ++claimed_by_both;
        got[static_cast<std::size_t>(t)].push_back(j->id);
        jobs::finish(*c, j->id, {{"n", t}});
        jobs::release(*c, j->id);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<std::int64_t> all;
  for (const auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  CHECK(claimed_by_both == 0);
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());  // no job twice
  CHECK(all.size() == 30);                                         // every onec job, no 'other' job
  CHECK(scalar(*setup, "SELECT count(*) FROM obmen.jobs WHERE source = 'onec' AND state = 'done'") == "30");
  CHECK(scalar(*setup, "SELECT count(*) FROM obmen.jobs WHERE source = 'other' AND state = 'queued'") == "10");
}

TEST_CASE("the oldest queued job is claimed first; a claim holds the job's lock until release") {
  test_database db;
  auto a = db.connect();
  auto b = db.connect();
  const auto first = enqueue(*a, "catalog");
  const auto second = enqueue(*a, "stock");
  auto j = jobs::claim(*a, {"onec"}, "a");
  REQUIRE(j);
  CHECK(j->id == first);
  CHECK(j->state == "running");
  CHECK_FALSE(j->started_at.empty());
  // b sees a running job whose claimer is alive: not an orphan.
  CHECK(jobs::fail_orphans(*b, {"onec"}).empty());
  auto k = jobs::claim(*b, {"onec"}, "b");
  REQUIRE(k);
  CHECK(k->id == second);
  // a's obmend dies without an outcome: its job is an orphan now, b's is not. (The timeout makes
  // pg_terminate_backend wait until the backend is gone, locks released.)
  auto c = db.connect();
  CHECK(scalar(*c, "SELECT pg_terminate_backend(" + std::to_string(a->backendpid()) + ", 10000)") == "t");
  a.reset();
  CHECK(jobs::fail_orphans(*c, {"onec"}) == std::vector<std::int64_t>{first});
  const auto orphan = get(*c, first);
  CHECK(orphan.state == "failed");
  CHECK(orphan.error == "interrupted: the obmend running it (a) stopped; request it again");
  CHECK(get(*c, second).state == "running");
  jobs::release(*b, second);
}

TEST_CASE("cancel: queued and running jobs stop, finished ones are reported as such") {
  test_database db;
  auto c = db.connect();
  auto admin = db.connect();
  std::string state;

  const auto queued = enqueue(*c, "orders");
  CHECK(jobs::cancel(*admin, queued, "alice", state) == jobs::cancel_outcome::cancelled);
  CHECK(state == "cancelled");
  CHECK_FALSE(jobs::claim(*c, {"onec"}, "w").has_value());  // a cancelled job is never claimed
  CHECK(get(*c, queued).error == "cancelled by alice");

  const auto running = enqueue(*c, "orders");
  auto j = jobs::claim(*c, {"onec"}, "w");
  REQUIRE(j);
  CHECK(jobs::report_progress(*c, running, {{"percent", 10}}));
  CHECK(jobs::cancel(*admin, running, "bob", state) == jobs::cancel_outcome::cancelled);
  // The runner notices at its next progress report, and its outcome never overwrites the cancel.
  CHECK_FALSE(jobs::report_progress(*c, running, {{"percent", 20}}));
  CHECK_FALSE(jobs::still_running(*c, running));
  CHECK_FALSE(jobs::finish(*c, running, {{"orders", {{"requeued", 1}}}}));
  const auto after = get(*c, running);
  CHECK(after.state == "cancelled");
  CHECK(after.progress["percent"] == 10);
  CHECK(after.result["orders"]["requeued"] == 1);
  jobs::release(*c, running);

  CHECK(jobs::cancel(*admin, running, "bob", state) == jobs::cancel_outcome::already_finished);
  CHECK(state == "cancelled");
  CHECK(jobs::cancel(*admin, 999999, "bob", state) == jobs::cancel_outcome::not_found);

  // lock_if_running inside a step's transaction: false once cancelled, so the step rolls back.
  const auto third = enqueue(*c, "orders");
  REQUIRE(jobs::claim(*c, {"onec"}, "w"));
  {
    pqxx::work tx(*admin);
    CHECK(jobs::lock_if_running(tx, third));
  }
  CHECK(jobs::cancel(*admin, third, "carol", state) == jobs::cancel_outcome::cancelled);
  {
    pqxx::work tx(*admin);
    CHECK_FALSE(jobs::lock_if_running(tx, third));
  }
  jobs::release(*c, third);
}

TEST_CASE("fail records the error; list filters by state, newest first") {
  test_database db;
  auto c = db.connect();
  const auto a = enqueue(*c, "catalog");
  const auto b = enqueue(*c, "orders");
  REQUIRE(jobs::claim(*c, {"onec"}, "w"));
  CHECK(jobs::fail(*c, a, "nothing to resync for catalog", nlohmann::json::object()));
  jobs::release(*c, a);
  pqxx::read_transaction tx(*c);
  auto failed = jobs::list(tx, "failed", 10);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].id == a);
  CHECK(failed[0].error == "nothing to resync for catalog");
  CHECK(failed[0].seconds.has_value());
  auto all = jobs::list(tx, "", 10);
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == b);
  CHECK(jobs::list(tx, "", 1).size() == 1);
}

TEST_CASE("a schedule slot is claimed once per interval, also by two connections at once") {
  test_database db;
  auto a = db.connect();
  auto b = db.connect();
  jobs::request r{"onec", "orders", "full", false, "schedule", std::string("onec/orders/full")};
  const auto first = jobs::enqueue_if_due(*a, r, "schedule:orders:full", 3600);
  REQUIRE(first.has_value());  // never ran: due at once
  CHECK_FALSE(jobs::enqueue_if_due(*b, r, "schedule:orders:full", 3600).has_value());
  CHECK(get(*a, *first).schedule == "onec/orders/full");
  CHECK(get(*a, *first).requested_by == "schedule");
  CHECK(scalar(*a, "SELECT value FROM obmen.bookmarks WHERE source = 'onec' AND entity = 'schedule:orders:full'") ==
        std::to_string(*first));

  // An hour later (the slot moved back in time), two daemons race: exactly one job.
  scalar(*a, "UPDATE obmen.bookmarks SET updated_at = updated_at - interval '1 hour' RETURNING 1");
  std::optional<std::int64_t> from_a, from_b;
  std::thread ta([&] { from_a = jobs::enqueue_if_due(*a, r, "schedule:orders:full", 3600); });
  std::thread tb([&] { from_b = jobs::enqueue_if_due(*b, r, "schedule:orders:full", 3600); });
  ta.join();
  tb.join();
  CHECK(from_a.has_value() != from_b.has_value());
  CHECK(scalar(*a, "SELECT count(*) FROM obmen.jobs WHERE schedule = 'onec/orders/full'") == "2");
  // Another slot is independent.
  CHECK(jobs::enqueue_if_due(*a, r, "schedule:orders:incremental", 3600).has_value());
}

TEST_CASE("a new job NOTIFYs obmen_jobs; state changes NOTIFY obmen_job_events") {
  test_database db;
  auto listener = db.connect();
  struct receiver : pqxx::notification_receiver {
    std::vector<std::string> got;
    receiver(pqxx::connection_base& c, const std::string& ch) : pqxx::notification_receiver(c, ch) {}
    void operator()(const std::string& payload, int) override { got.push_back(channel() + " " + payload); }
  };
  receiver jobs_rx(*listener, jobs::new_job_channel);
  receiver events_rx(*listener, jobs::job_events_channel);
  auto c = db.connect();
  const auto id = enqueue(*c, "orders");
  REQUIRE(jobs::claim(*c, {"onec"}, "w"));
  jobs::finish(*c, id, nlohmann::json::object());
  jobs::release(*c, id);
  for (int i = 0; i < 100 && jobs_rx.got.size() + events_rx.got.size() < 3; ++i) listener->await_notification(1, 0);
  CHECK(jobs_rx.got == std::vector<std::string>{"obmen_jobs " + std::to_string(id)});
  CHECK(events_rx.got == std::vector<std::string>{"obmen_job_events " + std::to_string(id) + ":running",
                                                  "obmen_job_events " + std::to_string(id) + ":done"});
}

TEST_CASE("resync of orders: acknowledged open orders are sent again; dry run only counts") {
  test_database db;
  auto c = db.connect();
  {
    pqxx::work tx(*c);
    tx.exec("INSERT INTO portal.counterparties (id, name) VALUES (1, 'known'), (2, 'new on the portal')");
    tx.exec("UPDATE portal.counterparties SET source = 'onec', external_id = 'cp-1' WHERE id = 1");
    tx.exec("INSERT INTO portal.orders (id, number, counterparty_id, status, cancelled) VALUES "
            "(1, 'A', 1, 'new', false), (2, 'B', 2, 'new', false), (3, 'C', 1, 'new', true), "
            "(4, 'D', 1, 'completed', false), (5, 'E', 2, 'new', false)");
    // Orders 1–4 acknowledged by onec at their current version; 5 never sent.
    tx.exec("INSERT INTO obmen.order_exports (source, order_id, acknowledged_changed_at, acknowledged_at) "
            "SELECT 'onec', id, changed_at, now() FROM portal.orders WHERE id <= 4");
    tx.exec("INSERT INTO obmen.order_exports (source, order_id, acknowledged_changed_at, acknowledged_at) "
            "SELECT 'other', id, changed_at, now() FROM portal.orders WHERE id = 1");
    tx.commit();
  }
  auto ctl = db.connect();
  auto run = [&](const std::string& entity, bool dry) {
    const auto id = enqueue(*c, entity, "onec", dry);
    auto j = jobs::claim(*ctl, {"onec"}, "w");
    REQUIRE(j);
    REQUIRE(j->id == id);
    jobs::onec_source src{"onec", nullptr, "/nonexistent"};
    jobs::resync_hooks hooks;
    std::vector<int> percents;
    hooks.report = [&](const nlohmann::json& p) {
      percents.push_back(p["percent"].get<int>());
      return jobs::report_progress(*ctl, id, p);
    };
    nlohmann::json result;
    jobs::run_onec_resync(*c, *j, src, hooks, result);
    jobs::finish(*ctl, id, result);
    jobs::release(*ctl, id);
    CHECK(percents.back() == 100);
    return result;
  };
  const std::string pending_sql =
      "SELECT string_agg(o.id::text, ',' ORDER BY o.id) FROM portal.orders o LEFT JOIN obmen.order_exports e "
      "ON e.source = 'onec' AND e.order_id = o.id "
      "WHERE o.source IS NULL AND (e.acknowledged_changed_at IS NULL OR o.changed_at > e.acknowledged_changed_at)";
  CHECK(scalar(*c, pending_sql) == "5");

  auto dry = run("counterparties", true);
  CHECK(dry["counterparties"]["requeued"] == 1);
  CHECK(dry["counterparties"]["counterparties"] == 1);
  CHECK(dry["counterparties"]["summary"] ==
        "counterparties: 1 not yet confirmed by 1C, in 2 open order(s); 1 order(s) would be sent again on 1C's next "
        "query, 1 already waiting");
  CHECK(scalar(*c, pending_sql) == "5");

  auto orders_dry = run("orders", true);
  CHECK(orders_dry["orders"]["requeued"] == 2);
  CHECK(orders_dry["orders"]["pending"] == 1);
  CHECK(scalar(*c, pending_sql) == "5");

  auto real = run("orders", false);
  CHECK(real["orders"]["summary"] == "orders: 2 sent again on 1C's next query, 1 already waiting");
  CHECK(scalar(*c, pending_sql) == "1,2,5");  // not the cancelled or completed ones
  CHECK(scalar(*c, "SELECT count(*) FROM obmen.order_exports WHERE source = 'other' AND acknowledged_changed_at IS NOT NULL") ==
        "1");  // another node's acknowledgement is untouched
  auto again = run("orders", false);
  CHECK(again["orders"]["requeued"] == 0);
}

TEST_CASE("resync of the catalog without an exchange fails with the reason; `all` skips it") {
  test_database db;
  auto c = db.connect();
  auto ctl = db.connect();
  jobs::onec_source src{"onec", nullptr, "/nonexistent/spool/onec"};
  jobs::resync_hooks hooks;
  nlohmann::json result;
  const auto id = enqueue(*c, "catalog");
  auto j = jobs::claim(*ctl, {"onec"}, "w");
  REQUIRE(j);
  CHECK_THROWS_WITH(jobs::run_onec_resync(*c, *j, src, hooks, result),
                    "nothing to resync for catalog: no catalog exchange of source 'onec' has imported import*/offers* "
                    "files whose spool folder is on this host (spool.keep_days removes them; run an exchange from 1C)");
  jobs::release(*ctl, id);

  jobs::job all = *j;
  all.entity = "all";
  nlohmann::json r2;
  jobs::run_onec_resync(*c, all, src, hooks, r2);
  CHECK(r2["catalog"]["skipped"].get<std::string>().rfind("nothing to resync for catalog", 0) == 0);
  CHECK(r2["stock"]["summary"].get<std::string>().rfind("stock: skipped, nothing to resync for stock", 0) == 0);
  CHECK(r2["orders"]["requeued"] == 0);
  CHECK(r2.contains("counterparties"));
}

TEST_CASE("a cancelled job's step is rolled back") {
  test_database db;
  auto c = db.connect();
  auto ctl = db.connect();
  {
    pqxx::work tx(*c);
    tx.exec("INSERT INTO portal.orders (id, number, status) VALUES (1, 'A', 'new')");
    tx.exec("INSERT INTO obmen.order_exports (source, order_id, acknowledged_changed_at) "
            "SELECT 'onec', id, changed_at FROM portal.orders");
    tx.commit();
  }
  const auto id = enqueue(*c, "orders");
  auto j = jobs::claim(*ctl, {"onec"}, "w");
  REQUIRE(j);
  std::string state;
  // Cancelled after the step's first progress report: the step's own check before commit sees it.
  jobs::resync_hooks hooks;
  hooks.report = [&](const nlohmann::json&) {
    jobs::cancel(*ctl, id, "test", state);
    return true;
  };
  nlohmann::json result;
  jobs::onec_source src{"onec", nullptr, "/nonexistent"};
  CHECK_THROWS_AS(jobs::run_onec_resync(*c, *j, src, hooks, result), jobs::job_cancelled);
  CHECK(scalar(*c, "SELECT count(*) FROM obmen.order_exports WHERE acknowledged_changed_at IS NULL") == "0");
  jobs::release(*ctl, id);
}
