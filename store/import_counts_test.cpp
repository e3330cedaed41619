// import_counts and entity_counts: pure code, no database.
#include <doctest/doctest.h>

#include "store/portal_store.hpp"
#include "tests/support/test_database.hpp"

namespace store = obmen::store;

namespace {

store::entity_counts counts(std::int64_t ins, std::int64_t upd, std::int64_t same, std::int64_t deact = 0,
                            std::int64_t skipped = 0) {
  store::entity_counts c;
  c.inserted = ins;
  c.updated = upd;
  c.unchanged = same;
  c.deactivated = deact;
  c.skipped = skipped;
  return c;
}

}  // namespace

TEST_CASE("import_counts: summary, to_json, +=") {
  store::import_counts a;
  a.by_entity["products"] = counts(282, 0, 0);
  a.by_entity["categories"] = counts(36, 0, 0);
  a.by_entity["offers"] = counts(0, 1, 2, 3, 4);
  a.warnings = {"w1"};
  CHECK(a.summary() ==
        "categories: 36 new, 0 updated, 0 unchanged; products: 282 new, 0 updated, 0 unchanged; "
        "offers: 0 new, 1 updated, 2 unchanged, 3 deactivated, 4 skipped; 1 warning");
  CHECK(a.to_json() == nlohmann::json::parse(R"({
    "categories": {"inserted": 36, "updated": 0, "unchanged": 0, "deactivated": 0, "skipped": 0},
    "products": {"inserted": 282, "updated": 0, "unchanged": 0, "deactivated": 0, "skipped": 0},
    "offers": {"inserted": 0, "updated": 1, "unchanged": 2, "deactivated": 3, "skipped": 4},
    "warnings": ["w1"]})"));
  store::import_counts b;
  b.by_entity["products"] = counts(1, 1, 1);
  b.warnings = {"w2"};
  a += b;
  CHECK(a.by_entity.at("products") == counts(283, 1, 1));
  CHECK(a.warnings == std::vector<std::string>{"w1", "w2"});
  CHECK(store::import_counts{}.summary() == "nothing imported");
  CHECK(!store::import_counts{}.changed());
}

TEST_CASE("summary: an entity with only deactivations shows just them; unknown entities go last") {
  store::import_counts a;
  a.by_entity["products"] = counts(0, 0, 0, 5);
  a.by_entity["zeta"] = counts(1, 0, 0);
  a.by_entity["offers"] = counts(0, 0, 0);
  a.by_entity["stock"] = counts(0, 2, 0);
  CHECK(a.summary() == "products: 5 deactivated; offers: 0 deactivated; stock: 0 new, 2 updated, 0 unchanged; zeta: 1 new, 0 updated, 0 unchanged");
  CHECK(a.changed());
}

TEST_CASE("test_database::with_dbname replaces or adds the database name") {
  using obmen::test::test_database;
  CHECK(test_database::with_dbname("postgresql://obmen@127.0.0.1:55432/obmen", "t1") ==
        "postgresql://obmen@127.0.0.1:55432/t1");
  CHECK(test_database::with_dbname("postgresql://u@h/db?sslmode=disable", "t1") == "postgresql://u@h/t1?sslmode=disable");
  CHECK(test_database::with_dbname("postgresql://u@h:5432", "t1") == "postgresql://u@h:5432/t1");
  CHECK(test_database::with_dbname("postgres://u@h?application_name=x", "t1") == "postgres://u@h/t1?application_name=x");
  CHECK(test_database::with_dbname("host=/tmp port=5432 dbname=obmen", "t1") == "host=/tmp port=5432 dbname=obmen dbname=t1");
}
