// Schema migrations on a real PostgreSQL ($OBMEN_TEST_DATABASE_URL).
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/database.hpp"
#include "tests/support/test_database.hpp"

using obmen::test::test_database;
namespace store = obmen::store;

namespace {

std::vector<std::string> all_names() {
  std::vector<std::string> names;
  for (const auto& m : store::migrations()) names.push_back(m.name);
  return names;
}

std::string require_message(pqxx::connection& c) {
  try {
    store::require_current_schema(c);
  } catch (const store::schema_mismatch& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the embedded migrations are numbered 1..N and start with 0001_initial") {
  const auto& m = store::migrations();
  REQUIRE(!m.empty());
  CHECK(m.front().name == "0001_initial");
  for (std::size_t i = 0; i < m.size(); ++i) CHECK(m[i].version == static_cast<int>(i) + 1);
  CHECK(store::latest_schema_version() == m.back().version);
  CHECK(m.front().sql.find("CREATE SCHEMA portal") != std::string::npos);
}

TEST_CASE("migrate on an empty database reaches the latest version; re-running is a no-op") {
  test_database db(test_database::schema::empty);
  auto c = db.connect();
  CHECK(store::schema_version(*c) == 0);

  const auto first = store::migrate(*c);
  CHECK(first.from == 0);
  CHECK(first.to == store::latest_schema_version());
  CHECK(first.applied == all_names());
  CHECK(store::schema_version(*c) == store::latest_schema_version());
  CHECK_NOTHROW(store::require_current_schema(*c));

  const auto again = store::migrate(*c);
  CHECK(again.from == store::latest_schema_version());
  CHECK(again.to == store::latest_schema_version());
  CHECK(again.applied.empty());

  pqxx::work tx(*c);
  CHECK(tx.exec1("SELECT count(*) FROM obmen.schema_migrations")[0].as<int>() ==
        store::latest_schema_version());
  CHECK(tx.exec1("SELECT name FROM obmen.schema_migrations WHERE version = 1")[0].as<std::string>() ==
        "0001_initial");
}

TEST_CASE("migrate upgrades from the previous version by applying only what is missing") {
  // With one migration, "the previous version" is the empty database.
  test_database db(test_database::schema::empty);
  auto c = db.connect();
  const auto& all = store::migrations();
  for (std::size_t i = 0; i + 1 < all.size(); ++i) {
    pqxx::work tx(*c);
    tx.exec(all[i].sql);
    tx.exec_params("INSERT INTO obmen.schema_migrations (version, name) VALUES ($1, $2)", all[i].version,
                   all[i].name);
    tx.commit();
  }
  const int previous = store::latest_schema_version() - 1;
  REQUIRE(store::schema_version(*c) == previous);
  const auto r = store::migrate(*c);
  CHECK(r.from == previous);
  CHECK(r.to == store::latest_schema_version());
  CHECK(r.applied == std::vector<std::string>{all.back().name});
}

TEST_CASE("two concurrent migrate runs serialise on the advisory lock") {
  test_database db(test_database::schema::empty);
  auto a = db.connect(), b = db.connect();
  store::migrate_report ra, rb;
  std::string error;
  std::thread t([&] {
    try {
      rb = store::migrate(*b);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  ra = store::migrate(*a);
  t.join();
  CHECK(error == "");
  CHECK(ra.applied.size() + rb.applied.size() == store::migrations().size());
  CHECK(ra.to == store::latest_schema_version());
  CHECK(rb.to == store::latest_schema_version());
}

TEST_CASE("require_current_schema names the version and what to do") {
  test_database db(test_database::schema::empty);
  auto c = db.connect();
  const auto latest = std::to_string(store::latest_schema_version());
  CHECK(require_message(*c) ==
        "database schema is at version 0, obmen needs " + latest + ": run 'obmenctl migrate'");

  store::migrate(*c);
  CHECK(require_message(*c) == "");

  const int newer = store::latest_schema_version() + 2;
  {
    pqxx::work tx(*c);
    tx.exec_params("INSERT INTO obmen.schema_migrations (version, name) VALUES ($1, 'future')", newer);
    tx.commit();
  }
  const auto expected = "database schema is at version " + std::to_string(newer) +
                        ", newer than this obmen (" + latest + "): upgrade obmen";
  CHECK(require_message(*c) == expected);
  try {
    store::migrate(*c);
    FAIL("migrate must refuse a newer database");
  } catch (const store::schema_mismatch& e) {
    CHECK(std::string(e.what()) == expected);
  }
}

TEST_CASE("every table and column of the portal contract has a comment") {
  test_database db;
  auto c = db.connect();
  pqxx::work tx(*c);
  const auto tables = tx.exec(
      "SELECT n.nspname || '.' || cl.relname FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace "
      "WHERE n.nspname IN ('portal', 'obmen') AND cl.relkind IN ('r', 'v', 'p') "
      "AND obj_description(cl.oid, 'pg_class') IS NULL ORDER BY 1");
  std::string missing;
  for (const auto& r : tables) missing += r[0].as<std::string>() + " ";
  CHECK(missing == "");

  const auto columns = tx.exec(
      "SELECT n.nspname || '.' || cl.relname || '.' || a.attname FROM pg_attribute a "
      "JOIN pg_class cl ON cl.oid = a.attrelid JOIN pg_namespace n ON n.oid = cl.relnamespace "
      "WHERE n.nspname IN ('portal', 'obmen') AND cl.relkind IN ('r', 'v', 'p') AND a.attnum > 0 "
      "AND NOT a.attisdropped AND col_description(cl.oid, a.attnum) IS NULL ORDER BY 1");
  missing.clear();
  for (const auto& r : columns) missing += r[0].as<std::string>() + " ";
  CHECK(missing == "");

  // The contract's tables exist.
  for (const char* t : {"categories", "products", "offers", "price_types", "prices", "warehouses", "stock",
                        "counterparties", "accounts", "account_counterparties", "orders", "order_items",
                        "order_status_history", "documents", "images", "product_images", "attributes"}) {
    CAPTURE(t);
    CHECK(!tx.exec_params1("SELECT to_regclass($1) IS NULL", std::string("portal.") + t)[0].as<bool>());
  }
}

TEST_CASE("docs/schema.md documents every table and column of both schemas") {
  // ctest sets OBMEN_SOURCE_DIR (cmake/testing.cmake); run by hand, the build's source dir.
  const char* env = std::getenv("OBMEN_SOURCE_DIR");
  const std::string path = std::string(env != nullptr ? env : OBMEN_SOURCE_DIR_AT_BUILD) + "/docs/schema.md";
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "cannot read " << path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string doc = buffer.str();

  test_database db;
  auto c = db.connect();
  pqxx::work tx(*c);
  std::string missing;
  for (const auto& t : tx.exec("SELECT n.nspname || '.' || cl.relname, cl.oid FROM pg_class cl "
                               "JOIN pg_namespace n ON n.oid = cl.relnamespace "
                               "WHERE n.nspname IN ('portal', 'obmen') AND cl.relkind = 'r' ORDER BY 1")) {
    const auto table = t[0].as<std::string>();
    const auto start = doc.find("### `" + table + "`");
    if (start == std::string::npos) {
      missing += table + " ";
      continue;
    }
    const auto section = doc.substr(start, doc.find("\n### ", start + 1) - start);
    for (const auto& col : tx.exec_params("SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 "
                                          "AND NOT attisdropped ORDER BY attnum",
                                          t[1].as<std::string>()))
      if (section.find("| `" + col[0].as<std::string>() + "` |") == std::string::npos)
        missing += table + "." + col[0].as<std::string>() + " ";
  }
  CHECK(missing == "");
}

namespace {
struct order_status_listener : pqxx::notification_receiver {
  std::vector<std::string> payloads;
  explicit order_status_listener(pqxx::connection& c) : notification_receiver(c, "portal_order_status") {}
  void operator()(const std::string& payload, int) override { payloads.push_back(payload); }
};
}  // namespace

TEST_CASE("a new order_status_history row sends NOTIFY portal_order_status with the order id") {
  test_database db;
  auto listen = db.connect(), write = db.connect();
  order_status_listener listener(*listen);
  listen->get_notifs();  // makes the LISTEN take effect

  std::string order_id;
  {
    pqxx::work tx(*write);
    order_id = tx.exec1("INSERT INTO portal.orders (number) VALUES ('П-1') RETURNING id")[0].as<std::string>();
    CHECK(tx.exec1("SELECT guid IS NOT NULL FROM portal.orders")[0].as<bool>());
    tx.exec_params("INSERT INTO portal.order_status_history (order_id, status, origin) VALUES ($1, 'accepted', 'onec')",
                   order_id);
    tx.commit();
  }
  // The notification is delivered at commit; wait for it (bounded) instead of sleeping.
  for (int i = 0; i < 50 && listener.payloads.empty(); ++i) listen->await_notification(0, 100000);
  CHECK(listener.payloads == std::vector<std::string>{order_id});
}
