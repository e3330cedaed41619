// catalog_writer on a real PostgreSQL ($OBMEN_TEST_DATABASE_URL).
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "store/portal_store.hpp"
#include "tests/support/test_database.hpp"

namespace doctest {
template <>
struct StringMaker<obmen::store::entity_counts> {
  static String convert(const obmen::store::entity_counts& c) {
    const auto s = "{ins " + std::to_string(c.inserted) + ", upd " + std::to_string(c.updated) + ", same " +
                   std::to_string(c.unchanged) + ", deact " + std::to_string(c.deactivated) + ", skip " +
                   std::to_string(c.skipped) + "}";
    return String(s.c_str());
  }
};
}  // namespace doctest

using obmen::test::test_database;
namespace store = obmen::store;
namespace model = obmen::model;

namespace {

const char* const portal_tables[] = {"categories", "attributes", "products", "images", "product_images", "offers",
                                     "price_types", "prices", "warehouses", "stock"};

// Rows of schema portal the current transaction wrote, locked or deleted: new row versions carry
// its xid in xmin, rows it locked (ON CONFLICT … DO UPDATE … WHERE false does) or deleted carry
// it in xmax. (pg_stat_xact_* would be simpler, but PostgreSQL 15 reports a backend's unflushed
// counts there, including earlier transactions'.)
std::int64_t rows_touched(pqxx::work& tx) {
  std::int64_t n = 0;
  for (const char* t : portal_tables)
    n += tx.exec1(std::string("SELECT count(*) FROM portal.") + t +
                  " WHERE xmin = pg_current_xact_id()::xid OR xmax = pg_current_xact_id()::xid")[0].as<std::int64_t>();
  return n;
}

std::int64_t rows_total(pqxx::work& tx) {
  std::int64_t n = 0;
  for (const char* t : portal_tables)
    n += tx.exec1(std::string("SELECT count(*) FROM portal.") + t)[0].as<std::int64_t>();
  return n;
}

struct applied {
  store::import_counts counts;
  std::int64_t written = 0;
};

class fixture {
 public:
  test_database db;
  std::unique_ptr<pqxx::connection> conn = db.connect();

  // One package: a writer in its own committed transaction.
  applied apply(const std::function<void(store::catalog_writer&)>& f, std::optional<std::int64_t> session = {},
                const std::string& source = "onec") {
    pqxx::work tx(*conn);
    const auto before = rows_total(tx);
    store::catalog_writer w(tx, source, session);
    f(w);
    applied a{w.counts(), rows_touched(tx) + std::abs(rows_total(tx) - before)};
    tx.commit();
    return a;
  }

  std::string one(const std::string& sql) {
    pqxx::work tx(*conn);
    const auto r = tx.exec(sql);
    REQUIRE(r.size() == 1);
    return r[0][0].is_null() ? "NULL" : r[0][0].as<std::string>();
  }

  std::vector<std::string> column(const std::string& sql) {
    pqxx::work tx(*conn);
    std::vector<std::string> out;
    for (const auto& r : tx.exec(sql)) out.push_back(r[0].is_null() ? "NULL" : r[0].as<std::string>());
    return out;
  }

  std::int64_t new_session() {
    pqxx::work tx(*conn);
    const auto id = tx.exec1(
        "INSERT INTO obmen.exchange_sessions (source, type, cookie_hash, expires_at) "
        "VALUES ('onec', 'catalog', md5(random()::text), now() + interval '1 hour') RETURNING id")[0].as<std::int64_t>();
    tx.commit();
    return id;
  }
};

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

model::category category(const std::string& id, const std::string& parent, const std::string& name) {
  model::category c;
  c.external_id = id;
  c.parent_external_id = parent;
  c.name = name;
  return c;
}

store::product_row product(const std::string& id, const std::string& name, const std::string& category = "") {
  store::product_row p;
  p.external_id = id;
  p.name = name;
  p.sku = "SKU-" + id;
  p.unit = "шт";
  p.unit_code = "796";
  p.vat_rate = "20";
  p.category_external_id = category;
  p.attributes = {{"Цвет", "красный"}, {"Размер", {"S", "M"}}};
  p.requisites = {{"Вес", "0.5"}};
  return p;
}

store::offer_row offer(const std::string& id, const std::string& product_id, const std::string& name) {
  store::offer_row o;
  o.external_id = id;
  o.product_external_id = product_id;
  o.name = name;
  return o;
}

store::price_row price(const std::string& type, const std::string& value) {
  store::price_row p;
  p.price_type_external_id = type;
  p.value = value;
  p.currency = "RUB";
  p.unit = "шт";
  return p;
}

std::vector<store::price_type_row> price_types() {
  return {{"pt-retail", "retail", "Розничная", "RUB"}, {"pt-opt", "wholesale", "Оптовая", "RUB"}};
}

std::vector<store::warehouse_row> warehouses() {
  return {{"wh-msk", "msk", "Москва", true}, {"wh-spb", "spb", "Санкт-Петербург", true}};
}

// A small catalog as one import.xml + offers.xml would carry it.
void catalog(store::catalog_writer& w) {
  w.put_categories({category("g1", "", "Одежда"), category("g2", "g1", "Футболки"), category("g3", "g1", "Брюки")});
  w.put_attributes({{"a-color", "Цвет", "Справочник", {{"c1", "красный"}, {"c2", "синий"}}, true}});
  w.put_products({product("p1", "Футболка", "g2"), product("p2", "Брюки", "g3")});
  w.put_price_types(price_types());
  w.put_warehouses(warehouses());
  auto o1 = offer("p1#red", "p1", "Футболка (красная)");
  o1.characteristics = nlohmann::json::array({{{"name", "Цвет"}, {"value", "красный"}}});
  o1.prices = std::vector<store::price_row>{price("pt-retail", "1234.5678"), price("pt-opt", "0.1")};
  o1.stock = std::vector<store::stock_row>{{"wh-msk", "10"}, {"wh-spb", "2.5"}};
  o1.quantity = "12.5";
  auto o2 = offer("p2", "p2", "Брюки");
  o2.prices = std::vector<store::price_row>{price("pt-retail", "2000")};
  o2.stock = std::vector<store::stock_row>{{"wh-msk", "3"}};
  o2.quantity = "3";
  w.put_offers({o1, o2});
}

// Writes bytes to a temporary file, removed with the object.
struct temp_file {
  std::filesystem::path path;
  explicit temp_file(const std::string& bytes, const std::string& name) {
    path = std::filesystem::temp_directory_path() / ("obmen_pgtest_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(path, std::ios::binary) << bytes;
  }
  ~temp_file() { std::filesystem::remove(path); }
};

}  // namespace

TEST_CASE("a catalog is stored with every field, and re-applying it changes nothing") {
  fixture f;
  const auto first = f.apply(catalog);
  CHECK(first.counts.warnings.empty());
  CHECK(first.counts.by_entity.at("categories") == counts(3, 0, 0));
  CHECK(first.counts.by_entity.at("attributes") == counts(1, 0, 0));
  CHECK(first.counts.by_entity.at("products") == counts(2, 0, 0));
  CHECK(first.counts.by_entity.at("price_types") == counts(2, 0, 0));
  CHECK(first.counts.by_entity.at("warehouses") == counts(2, 0, 0));
  CHECK(first.counts.by_entity.at("offers") == counts(2, 0, 0));
  CHECK(first.counts.by_entity.at("prices") == counts(3, 0, 0));
  CHECK(first.counts.by_entity.at("stock") == counts(3, 0, 0));
  CHECK(first.counts.changed());

  CHECK(f.one("SELECT p.name FROM portal.categories c JOIN portal.categories p ON p.id = c.parent_id "
              "WHERE c.external_id = 'g2'") == "Одежда");
  CHECK(f.one("SELECT parent_id FROM portal.categories WHERE external_id = 'g1'") == "NULL");
  CHECK(f.one("SELECT c.external_id FROM portal.products p JOIN portal.categories c ON c.id = p.category_id "
              "WHERE p.external_id = 'p1'") == "g2");
  CHECK(f.one("SELECT sku || '|' || unit || '|' || unit_code || '|' || vat_rate || '|' || attributes::text || '|' || "
              "requisites::text FROM portal.products WHERE external_id = 'p1'") ==
        R"(SKU-p1|шт|796|20|{"Цвет": "красный", "Размер": ["S", "M"]}|{"Вес": "0.5"})");
  CHECK(f.one("SELECT barcode FROM portal.products WHERE external_id = 'p1'") == "NULL");
  CHECK(f.one("SELECT options::text FROM portal.attributes") ==
        R"([{"id": "c1", "value": "красный"}, {"id": "c2", "value": "синий"}])");
  CHECK(f.one("SELECT o.name || '|' || p.external_id || '|' || o.quantity || '|' || o.characteristics::text "
              "FROM portal.offers o JOIN portal.products p ON p.id = o.product_id WHERE o.external_id = 'p1#red'") ==
        R"(Футболка (красная)|p1|12.5|[{"name": "Цвет", "value": "красный"}])");

  const auto updated_before = f.one("SELECT string_agg(updated_at::text, ',' ORDER BY id) FROM portal.products");
  const auto second = f.apply(catalog);
  CHECK(second.written == 0);
  CHECK(!second.counts.changed());
  CHECK(second.counts.warnings.empty());
  CHECK(second.counts.by_entity.at("categories") == counts(0, 0, 3));
  CHECK(second.counts.by_entity.at("attributes") == counts(0, 0, 1));
  CHECK(second.counts.by_entity.at("products") == counts(0, 0, 2));
  CHECK(second.counts.by_entity.at("price_types") == counts(0, 0, 2));
  CHECK(second.counts.by_entity.at("warehouses") == counts(0, 0, 2));
  CHECK(second.counts.by_entity.at("offers") == counts(0, 0, 2));
  CHECK(second.counts.by_entity.at("prices") == counts(0, 0, 3));
  CHECK(second.counts.by_entity.at("stock") == counts(0, 0, 3));
  CHECK(f.one("SELECT string_agg(updated_at::text, ',' ORDER BY id) FROM portal.products") == updated_before);
  CHECK(second.counts.summary() ==
        "categories: 0 new, 0 updated, 3 unchanged; attributes: 0 new, 0 updated, 1 unchanged; "
        "price_types: 0 new, 0 updated, 2 unchanged; warehouses: 0 new, 0 updated, 2 unchanged; "
        "products: 0 new, 0 updated, 2 unchanged; offers: 0 new, 0 updated, 2 unchanged; "
        "prices: 0 new, 0 updated, 3 unchanged; stock: 0 new, 0 updated, 3 unchanged");
}

TEST_CASE("a changed field updates only that row and moves its updated_at") {
  fixture f;
  f.apply(catalog);
  const auto p2_updated = f.one("SELECT updated_at::text FROM portal.products WHERE external_id = 'p2'");
  const auto r = f.apply([](store::catalog_writer& w) {
    auto p1 = product("p1", "Футболка хлопковая", "g2");
    w.put_products({p1, product("p2", "Брюки", "g3")});
  });
  CHECK(r.counts.by_entity.at("products") == counts(0, 1, 1));
  CHECK(r.written == 1);
  CHECK(f.one("SELECT name FROM portal.products WHERE external_id = 'p1'") == "Футболка хлопковая");
  CHECK(f.one("SELECT updated_at::text FROM portal.products WHERE external_id = 'p2'") == p2_updated);
  CHECK(f.one("SELECT updated_at > created_at FROM portal.products WHERE external_id = 'p1'") == "t");
}

TEST_CASE("categories: parents in the same batch, an unknown parent, deletion marks, full packages") {
  fixture f;
  // Child before parent in one batch; a parent nobody sent.
  const auto r = f.apply([](store::catalog_writer& w) {
    w.put_categories({category("c-child", "c-root", "Ребёнок"), category("c-root", "", "Корень"),
                      category("c-orphan", "c-missing", "Сирота")});
  });
  CHECK(r.counts.by_entity.at("categories") == counts(3, 0, 0));
  CHECK(r.counts.warnings == std::vector<std::string>{"category 'c-orphan': parent 'c-missing' is not known; placed at the root"});
  CHECK(f.one("SELECT p.external_id FROM portal.categories c JOIN portal.categories p ON p.id = c.parent_id "
              "WHERE c.external_id = 'c-child'") == "c-root");
  CHECK(f.one("SELECT parent_id FROM portal.categories WHERE external_id = 'c-orphan'") == "NULL");

  // The missing parent arrives later: the orphan is linked, counted as an update.
  const auto later = f.apply([](store::catalog_writer& w) {
    w.put_categories({category("c-missing", "", "Потерянный"), category("c-orphan", "c-missing", "Сирота")});
  });
  CHECK(later.counts.by_entity.at("categories") == counts(1, 1, 0));
  CHECK(later.counts.warnings.empty());

  // ПометкаУдаления.
  const auto marked = f.apply([](store::catalog_writer& w) {
    auto c = category("c-orphan", "c-missing", "Сирота");
    c.active = false;
    w.put_categories({c});
  });
  CHECK(marked.counts.by_entity.at("categories") == counts(0, 0, 0, 1));
  CHECK(f.one("SELECT active FROM portal.categories WHERE external_id = 'c-orphan'") == "f");

  // A partial package deactivates nothing; a full one deactivates what it did not carry.
  const auto partial = f.apply([](store::catalog_writer& w) {
    w.put_categories({category("c-root", "", "Корень")});
    w.finish_categories(false);
  });
  CHECK(partial.counts.by_entity.at("categories") == counts(0, 0, 1));
  CHECK(f.one("SELECT count(*) FROM portal.categories WHERE active") == "3");
  const auto full = f.apply([](store::catalog_writer& w) {
    w.put_categories({category("c-root", "", "Корень"), category("c-child", "c-root", "Ребёнок")});
    w.finish_categories(true);
  });
  CHECK(full.counts.by_entity.at("categories") == counts(0, 0, 2, 1));
  CHECK(f.column("SELECT external_id FROM portal.categories WHERE active ORDER BY 1") ==
        std::vector<std::string>{"c-child", "c-root"});
  // Another source's rows are not touched by this source's full package.
  f.apply([](store::catalog_writer& w) { w.put_categories({category("ms-1", "", "МойСклад")}); }, {}, "moysklad");
  f.apply([](store::catalog_writer& w) {
    w.put_categories({category("c-root", "", "Корень")});
    w.finish_categories(true);
  });
  CHECK(f.one("SELECT active FROM portal.categories WHERE source = 'moysklad'") == "t");
}

TEST_CASE("products and offers: full vs partial packages, deletion marks") {
  fixture f;
  f.apply(catalog);
  // Partial: only p1 carried, nothing deactivated.
  const auto partial = f.apply([](store::catalog_writer& w) {
    w.put_products({product("p1", "Футболка", "g2")});
    w.finish_products(false);
    w.put_offers({offer("p1#red", "p1", "Футболка (красная)")});
    w.finish_offers(false);
  });
  CHECK(partial.counts.by_entity.at("products") == counts(0, 0, 1));
  CHECK(f.one("SELECT count(*) FROM portal.products WHERE active") == "2");
  CHECK(f.one("SELECT count(*) FROM portal.offers WHERE active") == "2");
  // The offer element carried no quantity: the stored one stays.
  CHECK(f.one("SELECT quantity FROM portal.offers WHERE external_id = 'p1#red'") == "12.5");

  // Full: p2 and its offer disappear from the package → inactive, not deleted.
  const auto full = f.apply([](store::catalog_writer& w) {
    w.put_products({product("p1", "Футболка", "g2")});
    w.finish_products(true);
    w.put_offers({offer("p1#red", "p1", "Футболка (красная)")});
    w.finish_offers(true);
  });
  CHECK(full.counts.by_entity.at("products") == counts(0, 0, 1, 1));
  CHECK(full.counts.by_entity.at("offers") == counts(0, 0, 1, 1));
  CHECK(f.one("SELECT active FROM portal.products WHERE external_id = 'p2'") == "f");
  CHECK(f.one("SELECT active FROM portal.offers WHERE external_id = 'p2'") == "f");
  CHECK(f.one("SELECT count(*) FROM portal.prices p JOIN portal.offers o ON o.id = p.offer_id WHERE o.external_id = 'p2'") == "1");

  // Deletion mark on a product; it comes back when the source un-marks it.
  auto deleted = product("p1", "Футболка", "g2");
  deleted.active = false;
  const auto mark = f.apply([&](store::catalog_writer& w) { w.put_products({deleted}); });
  CHECK(mark.counts.by_entity.at("products") == counts(0, 0, 0, 1));
  CHECK(f.one("SELECT active FROM portal.products WHERE external_id = 'p1'") == "f");
  const auto back = f.apply([](store::catalog_writer& w) { w.put_products({product("p1", "Футболка", "g2")}); });
  CHECK(back.counts.by_entity.at("products") == counts(0, 1, 0));
  CHECK(f.one("SELECT active FROM portal.products WHERE external_id = 'p1'") == "t");
}

TEST_CASE("products: an unknown category is a warning and a NULL category") {
  fixture f;
  const auto r = f.apply([](store::catalog_writer& w) { w.put_products({product("p9", "Носки", "g-none")}); });
  CHECK(r.counts.by_entity.at("products") == counts(1, 0, 0));
  CHECK(r.counts.warnings == std::vector<std::string>{"product 'p9': category 'g-none' is not known"});
  CHECK(f.one("SELECT category_id FROM portal.products") == "NULL");
}

TEST_CASE("prices: exact values, unknown price types skipped, dropped types deactivated") {
  fixture f;
  f.apply(catalog);
  CHECK(f.column("SELECT p.value::text FROM portal.prices p JOIN portal.offers o ON o.id = p.offer_id "
                 "JOIN portal.price_types t ON t.id = p.price_type_id WHERE o.external_id = 'p1#red' ORDER BY t.code") ==
        std::vector<std::string>{"1234.5678", "0.1000"});
  CHECK(f.one("SELECT count(*) FROM portal.prices WHERE value = 0.1 OR value = 1234.5678") == "2");
  CHECK(f.one("SELECT coefficient::text || '|' || currency || '|' || unit FROM portal.prices LIMIT 1") == "1|RUB|шт");

  // The wholesale price is dropped, the retail one changes, an undeclared type appears.
  const auto r = f.apply([](store::catalog_writer& w) {
    auto o1 = offer("p1#red", "p1", "Футболка (красная)");
    o1.characteristics = nlohmann::json::array({{{"name", "Цвет"}, {"value", "красный"}}});
    o1.prices = std::vector<store::price_row>{price("pt-retail", "999999999.9999"), price("abc", "5")};
    w.put_offers({o1});
  });
  CHECK(r.counts.by_entity.at("prices") == counts(0, 1, 0, 1, 1));
  CHECK(r.counts.warnings == std::vector<std::string>{"offer 'p1#red': price type 'abc' is not declared; price skipped"});
  CHECK(f.column("SELECT t.code || '=' || p.value::text || ':' || p.active FROM portal.prices p "
                 "JOIN portal.offers o ON o.id = p.offer_id JOIN portal.price_types t ON t.id = p.price_type_id "
                 "WHERE o.external_id = 'p1#red' ORDER BY t.code") ==
        std::vector<std::string>{"retail=999999999.9999:true", "wholesale=0.1000:false"});
  // The other offer carried no prices in that package: untouched.
  CHECK(f.one("SELECT p.active FROM portal.prices p JOIN portal.offers o ON o.id = p.offer_id WHERE o.external_id = 'p2'") == "t");

  // Sending the type again re-activates it.
  const auto again = f.apply([](store::catalog_writer& w) {
    auto o1 = offer("p1#red", "p1", "Футболка (красная)");
    o1.characteristics = nlohmann::json::array({{{"name", "Цвет"}, {"value", "красный"}}});
    o1.prices = std::vector<store::price_row>{price("pt-retail", "999999999.9999"), price("pt-opt", "0.1")};
    w.put_offers({o1});
  });
  CHECK(again.counts.by_entity.at("prices") == counts(0, 1, 1));
  CHECK(f.one("SELECT count(*) FROM portal.prices WHERE active") == "3");

  // A value that is not a canonical decimal is refused without aborting the package.
  const auto bad = f.apply([](store::catalog_writer& w) {
    auto o2 = offer("p2", "p2", "Брюки");
    o2.prices = std::vector<store::price_row>{price("pt-retail", "12,5")};
    w.put_offers({o2});
  });
  CHECK(bad.counts.by_entity.at("prices").skipped == 1);
  CHECK(bad.counts.warnings == std::vector<std::string>{
      "offer 'p2': price '12,5' (coefficient '') for price type 'pt-retail' is not a valid amount; price skipped"});
  // That offer listed no valid price, so its retail price is off now rather than stale.
  CHECK(f.one("SELECT string_agg(p.active::text, ',') FROM portal.prices p JOIN portal.offers o ON o.id = p.offer_id "
              "WHERE o.external_id = 'p2'") == "false");
  // Too big for numeric(18,4): skipped, the package goes on.
  const auto huge = f.apply([](store::catalog_writer& w) {
    auto o2 = offer("p2", "p2", "Брюки");
    o2.prices = std::vector<store::price_row>{price("pt-retail", "123456789012345"), price("pt-opt", "99999999999999.9999")};
    w.put_offers({o2});
  });
  CHECK(huge.counts.by_entity.at("prices") == counts(1, 0, 0, 0, 1));
  // More than 4 decimal places: stored rounded, said so; re-sending it is "unchanged".
  for (int round = 0; round < 2; ++round) {
    const auto fine = f.apply([](store::catalog_writer& w) {
      auto o2 = offer("p2", "p2", "Брюки");
      o2.prices = std::vector<store::price_row>{price("pt-retail", "10.123456"), price("pt-opt", "7.50000")};
      w.put_offers({o2});
    });
    CHECK(fine.counts.warnings == std::vector<std::string>{
        "offer 'p2': price '10.123456' for price type 'pt-retail' has more than 4 decimal places; stored rounded"});
    CHECK(fine.counts.by_entity.at("prices") == (round == 0 ? counts(0, 2, 0) : counts(0, 0, 2)));
  }
  CHECK(f.one("SELECT string_agg(p.value::text, ',' ORDER BY p.value) FROM portal.prices p "
              "JOIN portal.offers o ON o.id = p.offer_id WHERE o.external_id = 'p2'") == "7.5000,10.1235");
}

TEST_CASE("stock: warehouses not listed drop to 0, unknown warehouses are skipped") {
  fixture f;
  f.apply(catalog);
  const auto r = f.apply([](store::catalog_writer& w) {
    auto o1 = offer("p1#red", "p1", "Футболка (красная)");
    o1.characteristics = nlohmann::json::array({{{"name", "Цвет"}, {"value", "красный"}}});
    o1.stock = std::vector<store::stock_row>{{"wh-msk", "7"}, {"wh-nowhere", "100"}};
    o1.quantity = "7";
    w.put_offers({o1});
  });
  CHECK(r.counts.by_entity.at("stock") == counts(0, 2, 0, 0, 1));
  CHECK(r.counts.by_entity.at("offers") == counts(0, 1, 0));
  CHECK(r.counts.warnings ==
        std::vector<std::string>{"offer 'p1#red': warehouse 'wh-nowhere' is not declared; stock skipped"});
  CHECK(f.column("SELECT w.code || '=' || s.quantity::text FROM portal.stock s JOIN portal.offers o ON o.id = s.offer_id "
                 "JOIN portal.warehouses w ON w.id = s.warehouse_id WHERE o.external_id = 'p1#red' ORDER BY w.code") ==
        std::vector<std::string>{"msk=7", "spb=0"});
  CHECK(f.one("SELECT quantity FROM portal.offers WHERE external_id = 'p1#red'") == "7");
  // The other offer carried no stock: untouched.
  CHECK(f.one("SELECT s.quantity FROM portal.stock s JOIN portal.offers o ON o.id = s.offer_id WHERE o.external_id = 'p2'") == "3");

  // An empty stock list means "none anywhere".
  const auto none = f.apply([](store::catalog_writer& w) {
    auto o2 = offer("p2", "p2", "Брюки");
    o2.stock = std::vector<store::stock_row>{};
    w.put_offers({o2});
  });
  CHECK(none.counts.by_entity.at("stock") == counts(0, 1, 0));
  CHECK(f.one("SELECT s.quantity FROM portal.stock s JOIN portal.offers o ON o.id = s.offer_id WHERE o.external_id = 'p2'") == "0");
}

TEST_CASE("header-only offers: descriptive fields kept, unknown offers created from their product or skipped") {
  fixture f;
  f.apply(catalog);
  const auto r = f.apply([](store::catalog_writer& w) {
    auto known = offer("p1#red", "p1", "");   // prices_*.xml: Ид and Цены only
    known.header_only = true;
    known.prices = std::vector<store::price_row>{price("pt-retail", "1500"), price("pt-opt", "0.1")};
    auto fresh = offer("p2#blue", "p2", "");  // a variant of a known product
    fresh.header_only = true;
    fresh.characteristic_id = "blue";
    fresh.stock = std::vector<store::stock_row>{{"wh-spb", "4"}};
    auto lost = offer("p404#x", "p404", "Призрак");
    lost.header_only = true;
    lost.prices = std::vector<store::price_row>{price("pt-retail", "1")};
    lost.stock = std::vector<store::stock_row>{{"wh-msk", "1"}};
    w.put_offers({known, fresh, lost});
  });
  CHECK(r.counts.by_entity.at("offers") == counts(1, 0, 1, 0, 1));
  CHECK(r.counts.by_entity.at("prices") == counts(0, 1, 1, 0, 1));
  CHECK(r.counts.by_entity.at("stock") == counts(1, 0, 0, 0, 1));
  CHECK(r.counts.warnings == std::vector<std::string>{"offer 'p404#x': unknown offer and product; prices/stock skipped"});
  CHECK(f.one("SELECT name || '|' || coalesce(sku, 'NULL') || '|' || characteristics::text FROM portal.offers WHERE external_id = 'p1#red'") ==
        R"(Футболка (красная)|NULL|[{"name": "Цвет", "value": "красный"}])");
  CHECK(f.one("SELECT o.name || '|' || p.external_id || '|' || o.characteristic_id FROM portal.offers o "
              "JOIN portal.products p ON p.id = o.product_id WHERE o.external_id = 'p2#blue'") == "Брюки|p2|blue");
  CHECK(f.one("SELECT count(*) FROM portal.offers WHERE external_id = 'p404#x'") == "0");
}

TEST_CASE("images are content-addressed; a product's list is replaced as a whole") {
  fixture f;
  const std::string sha_a(64, 'a'), sha_b(64, 'b');
  temp_file a(std::string("\x89PNG\r\n\x1a\n\0\x01binary", 15), "a.png"), b("JFIF jpeg bytes", "b.jpg");
  const auto r = f.apply([&](store::catalog_writer& w) {
    CHECK(w.put_image(sha_a, a.path, "image/png"));
    CHECK(!w.put_image(sha_a, a.path, "image/png"));  // same bytes for the second product
    CHECK(w.put_image(sha_b, b.path, "image/jpeg"));
    auto p1 = product("p1", "Футболка");
    p1.images = std::vector<std::string>{sha_a, sha_b};
    auto p2 = product("p2", "Брюки");
    p2.images = std::vector<std::string>{sha_a};
    w.put_products({p1, p2});
  });
  CHECK(r.counts.by_entity.at("images") == counts(2, 0, 1));
  CHECK(f.one("SELECT count(*) FROM portal.images") == "2");
  CHECK(f.one("SELECT size || '|' || mime || '|' || length(content) FROM portal.images WHERE sha256 = '" + sha_a + "'") ==
        "15|image/png|15");
  CHECK(f.column("SELECT pi.position || ':' || left(pi.sha256, 1) FROM portal.product_images pi "
                 "JOIN portal.products p ON p.id = pi.product_id WHERE p.external_id = 'p1' ORDER BY pi.position") ==
        std::vector<std::string>{"1:a", "2:b"});

  // The same list again: no change. nullopt: leave it.
  const auto same = f.apply([&](store::catalog_writer& w) {
    auto p1 = product("p1", "Футболка");
    p1.images = std::vector<std::string>{sha_a, sha_b};
    w.put_products({p1, product("p2", "Брюки")});
  });
  CHECK(same.counts.by_entity.at("products") == counts(0, 0, 2));
  CHECK(same.written == 0);
  CHECK(f.one("SELECT count(*) FROM portal.product_images") == "3");

  // A new order replaces the list and counts as an update; an image not stored is skipped.
  const auto reordered = f.apply([&](store::catalog_writer& w) {
    auto p1 = product("p1", "Футболка");
    p1.images = std::vector<std::string>{sha_b, std::string(64, 'c'), sha_a};
    auto p2 = product("p2", "Брюки");
    p2.images = std::vector<std::string>{};
    w.put_products({p1, p2});
  });
  CHECK(reordered.counts.by_entity.at("products") == counts(0, 2, 0));
  CHECK(reordered.counts.warnings ==
        std::vector<std::string>{"product 'p1': image " + std::string(64, 'c') + " is not stored; skipped"});
  CHECK(f.column("SELECT pi.position || ':' || left(pi.sha256, 1) FROM portal.product_images pi "
                 "JOIN portal.products p ON p.id = pi.product_id ORDER BY p.external_id, pi.position") ==
        std::vector<std::string>{"1:b", "2:a"});
  CHECK(f.one("SELECT count(*) FROM portal.images") == "2");
}

TEST_CASE("deactivate_unseen deactivates what the exchange session did not carry") {
  fixture f;
  f.apply(catalog);
  const auto session = f.new_session();
  f.apply(
      [](store::catalog_writer& w) {
        w.put_categories({category("g1", "", "Одежда"), category("g2", "g1", "Футболки")});
        w.put_products({product("p1", "Футболка", "g2")});
      },
      session);
  CHECK(f.one("SELECT count(*) FROM obmen.exchange_seen WHERE session_id = " + std::to_string(session)) == "3");
  f.apply(
      [](store::catalog_writer& w) {
        auto o1 = offer("p1#red", "p1", "Футболка (красная)");
        o1.characteristics = nlohmann::json::array({{{"name", "Цвет"}, {"value", "красный"}}});
        w.put_offers({o1});
      },
      session);

  pqxx::work tx(*f.conn);
  const auto r = store::deactivate_unseen(tx, "onec", session);
  tx.commit();
  CHECK(r.by_entity.at("categories") == counts(0, 0, 0, 1));
  CHECK(r.by_entity.at("products") == counts(0, 0, 0, 1));
  CHECK(r.by_entity.at("offers") == counts(0, 0, 0, 1));
  CHECK(r.summary() == "categories: 1 deactivated; products: 1 deactivated; offers: 1 deactivated");
  CHECK(f.column("SELECT external_id FROM portal.categories WHERE NOT active") == std::vector<std::string>{"g3"});
  CHECK(f.column("SELECT external_id FROM portal.products WHERE NOT active") == std::vector<std::string>{"p2"});
  CHECK(f.column("SELECT external_id FROM portal.offers WHERE NOT active") == std::vector<std::string>{"p2"});

  // A session that carried only offers leaves categories and products alone.
  const auto offers_only = f.new_session();
  f.apply([](store::catalog_writer& w) { w.put_offers({offer("p1#red", "p1", "Футболка (красная)")}); }, offers_only);
  pqxx::work tx2(*f.conn);
  const auto r2 = store::deactivate_unseen(tx2, "onec", offers_only);
  tx2.commit();
  CHECK(r2.by_entity.count("categories") == 0);
  CHECK(r2.by_entity.at("offers") == counts(0, 0, 0, 0));
  CHECK(r2.warnings == std::vector<std::string>{
      "categories: exchange session " + std::to_string(offers_only) + " carried none; left as they are",
      "products: exchange session " + std::to_string(offers_only) + " carried none; left as they are"});
  CHECK(r2.summary() == "offers: 0 deactivated; 2 warnings");
  CHECK(f.one("SELECT count(*) FROM portal.products WHERE active") == "1");
}

TEST_CASE("known_* read back this source's definitions") {
  fixture f;
  f.apply(catalog);
  pqxx::work tx(*f.conn);
  store::catalog_writer w(tx, "onec", std::nullopt);
  CHECK(w.known_price_types() == std::map<std::string, std::string>{{"pt-opt", "wholesale"}, {"pt-retail", "retail"}});
  CHECK(w.known_warehouses() == std::map<std::string, std::string>{{"wh-msk", "msk"}, {"wh-spb", "spb"}});
  const auto attrs = w.known_attributes();
  REQUIRE(attrs.size() == 1);
  const auto& a = attrs.at("a-color");
  CHECK(a.name == "Цвет");
  CHECK(a.value_type == "Справочник");
  REQUIRE(a.options.size() == 2);
  CHECK(a.options[1].external_id == "c2");
  CHECK(a.options[1].value == "синий");
  store::catalog_writer other(tx, "moysklad", std::nullopt);
  CHECK(other.known_price_types().empty());
}

TEST_CASE("text with COPY's special characters round-trips; duplicates in a batch count once") {
  fixture f;
  const std::string nasty = "tab\there\nnew line \\N back\\slash \r «ёлка» 'quote' \"dq\"";
  const auto r = f.apply([&](store::catalog_writer& w) {
    auto p = product("p-x", nasty);
    p.description = "\\.";
    p.requisites = {{"key\t", nasty}};
    p.attributes = {{"a\"b\\", nlohmann::json::array({std::string("x\x01y\x1f"), nasty})}, {"n", 1.5}};
    w.put_products({product("p-x", "first"), p});
  });
  CHECK(r.counts.by_entity.at("products") == counts(1, 0, 0));
  pqxx::work tx(*f.conn);
  const auto row = tx.exec1(
      "SELECT name, description, requisites->>'key\t', attributes->'a\"b\\'->>0, attributes->'a\"b\\'->>1, "
      "attributes->>'n' FROM portal.products");
  CHECK(row[0].as<std::string>() == nasty);
  CHECK(row[1].as<std::string>() == "\\.");
  CHECK(row[2].as<std::string>() == nasty);
  CHECK(row[3].as<std::string>() == "x\x01y\x1f");  // control characters written as \u00XX
  CHECK(row[4].as<std::string>() == nasty);
  CHECK(row[5].as<std::string>() == "1.5");
}

// ─── content hashes: unchanged rows are skipped before staging ──────────────────────────────

namespace {

// Rows a package left in the staging tables of its own transaction: none when every row was
// skipped by its content hash (or taken by the fast path for new rows).
std::int64_t staged_rows(pqxx::work& tx) {
  // A staging table is created when rows are first staged: one that does not exist holds none.
  std::int64_t n = 0;
  for (const char* t : {"obmen_stage_products", "obmen_stage_offers", "obmen_stage_prices", "obmen_stage_stock"})
    if (!tx.exec1(std::string("SELECT to_regclass('pg_temp.") + t + "') IS NULL")[0].as<bool>())
      n += tx.exec1(std::string("SELECT count(*) FROM ") + t)[0].as<std::int64_t>();
  return n;
}

store::offer_row red_offer(const std::string& retail) {
  auto o1 = offer("p1#red", "p1", "Футболка (красная)");
  o1.characteristics = nlohmann::json::array({{{"name", "Цвет"}, {"value", "красный"}}});
  o1.prices = std::vector<store::price_row>{price("pt-retail", retail), price("pt-opt", "0.1")};
  o1.stock = std::vector<store::stock_row>{{"wh-msk", "10"}, {"wh-spb", "2.5"}};
  o1.quantity = "12.5";
  return o1;
}

}  // namespace

TEST_CASE("content hash: an unchanged package stages nothing; a changed price alone is written") {
  fixture f;
  f.apply(catalog);
  CHECK(f.one("SELECT count(*) FROM portal.products WHERE content_hash IS NULL") == "0");
  CHECK(f.one("SELECT count(*) FROM portal.offers WHERE content_hash IS NULL") == "0");
  {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "onec", std::nullopt);
    w.put_products({product("p1", "Футболка", "g2"), product("p2", "Брюки", "g3")});
    w.put_offers({red_offer("1234.5678")});
    CHECK(staged_rows(tx) == 0);
    CHECK(w.counts().by_entity.at("products") == counts(0, 0, 2));
    CHECK(w.counts().by_entity.at("offers") == counts(0, 0, 1));
    CHECK(w.counts().by_entity.at("prices") == counts(0, 0, 2));
    CHECK(w.counts().by_entity.at("stock") == counts(0, 0, 2));
    CHECK(rows_touched(tx) == 0);
  }
  const auto hash_before = f.one("SELECT content_hash FROM portal.offers WHERE external_id = 'p1#red'");
  const auto offer_updated = f.one("SELECT updated_at::text FROM portal.offers WHERE external_id = 'p1#red'");
  // Only the retail price differs: the offer row stays as it was, the price is written, and the
  // offer stores the new hash (so the same package again is skipped).
  const auto changed = f.apply([](store::catalog_writer& w) { w.put_offers({red_offer("1300")}); });
  CHECK(changed.counts.by_entity.at("offers") == counts(0, 0, 1));
  CHECK(changed.counts.by_entity.at("prices") == counts(0, 1, 1));
  CHECK(changed.counts.by_entity.at("stock") == counts(0, 0, 2));
  CHECK(changed.written == 2);  // the price, and the offer's hash
  CHECK(f.one("SELECT p.value::text FROM portal.prices p JOIN portal.offers o ON o.id = p.offer_id "
              "JOIN portal.price_types t ON t.id = p.price_type_id WHERE o.external_id = 'p1#red' AND t.code = 'retail'") ==
        "1300.0000");
  CHECK(f.one("SELECT updated_at::text FROM portal.offers WHERE external_id = 'p1#red'") == offer_updated);
  CHECK(f.one("SELECT content_hash FROM portal.offers WHERE external_id = 'p1#red'") != hash_before);
  const auto again = f.apply([](store::catalog_writer& w) { w.put_offers({red_offer("1300")}); });
  CHECK(again.written == 0);
  CHECK(again.counts.by_entity.at("prices") == counts(0, 0, 2));
  // And back: the first price is written again, the hash is the first one again.
  const auto back = f.apply([](store::catalog_writer& w) { w.put_offers({red_offer("1234.5678")}); });
  CHECK(back.counts.by_entity.at("prices") == counts(0, 1, 1));
  CHECK(f.one("SELECT content_hash FROM portal.offers WHERE external_id = 'p1#red'") == hash_before);
}

TEST_CASE("content hash: what the mapping produced is part of it, so a mapping change re-applies") {
  fixture f;
  f.apply(catalog);
  // The same source data, but the rules now name the property differently and ignore the
  // wholesale price type: the writer sees other attribute names and fewer prices.
  const auto r = f.apply([](store::catalog_writer& w) {
    auto p1 = product("p1", "Футболка", "g2");
    p1.attributes = {{"Colour", "красный"}, {"Размер", {"S", "M"}}};
    w.put_products({p1, product("p2", "Брюки", "g3")});
    auto o1 = red_offer("1234.5678");
    o1.prices->pop_back();
    w.put_offers({o1});
  });
  CHECK(r.counts.by_entity.at("products") == counts(0, 1, 1));
  CHECK(r.counts.by_entity.at("prices") == counts(0, 0, 1, 1));
  CHECK(f.one("SELECT attributes->>'Colour' FROM portal.products WHERE external_id = 'p1'") == "красный");
  CHECK(f.one("SELECT count(*) FROM portal.prices WHERE active") == "2");
}

TEST_CASE("content hash: deactivation sees skipped rows as carried, and what it switched off comes back") {
  fixture f;
  f.apply(catalog);
  // p1 and its offer are unchanged (skipped by hash) yet carried: only p2 goes.
  const auto full = f.apply([](store::catalog_writer& w) {
    w.put_products({product("p1", "Футболка", "g2")});
    w.finish_products(true);
    w.put_offers({red_offer("1234.5678")});
    w.finish_offers(true);
  });
  CHECK(full.counts.by_entity.at("products") == counts(0, 0, 1, 1));
  CHECK(full.counts.by_entity.at("offers") == counts(0, 0, 1, 1));
  CHECK(f.column("SELECT external_id FROM portal.products WHERE active") == std::vector<std::string>{"p1"});
  CHECK(f.column("SELECT external_id FROM portal.offers WHERE active") == std::vector<std::string>{"p1#red"});
  CHECK(f.one("SELECT content_hash FROM portal.products WHERE external_id = 'p2'") == "NULL");
  // The same p2 as before, unchanged in the source: it must be switched on again, not skipped.
  const auto back = f.apply(catalog);
  CHECK(back.counts.by_entity.at("products") == counts(0, 1, 1));
  CHECK(back.counts.by_entity.at("offers") == counts(0, 1, 1));
  CHECK(f.one("SELECT count(*) FROM portal.products WHERE active") == "2");
  CHECK(f.one("SELECT count(*) FROM portal.offers WHERE active") == "2");

  // deactivate_unseen: a session whose rows were all skipped still recorded them as seen.
  const auto session = f.new_session();
  f.apply([](store::catalog_writer& w) { w.put_products({product("p1", "Футболка", "g2")}); }, session);
  f.apply([](store::catalog_writer& w) { w.put_offers({red_offer("1234.5678")}); }, session);
  CHECK(f.one("SELECT count(*) FROM obmen.exchange_seen WHERE session_id = " + std::to_string(session)) == "2");
  pqxx::work tx(*f.conn);
  const auto r = store::deactivate_unseen(tx, "onec", session);
  tx.commit();
  CHECK(r.by_entity.at("products") == counts(0, 0, 0, 1));
  CHECK(r.by_entity.at("offers") == counts(0, 0, 0, 1));
  CHECK(f.one("SELECT content_hash FROM portal.offers WHERE external_id = 'p2'") == "NULL");
  CHECK(f.apply(catalog).counts.by_entity.at("offers") == counts(0, 1, 1));
}

TEST_CASE("content hash: header-only packages and warnings leave no hash behind") {
  fixture f;
  f.apply(catalog);
  // A prices file changes p1#red's retail price; the full offers file with the old price must
  // then put it back rather than skip the offer as unchanged.
  f.apply([](store::catalog_writer& w) {
    auto known = offer("p1#red", "p1", "");
    known.header_only = true;
    known.prices = std::vector<store::price_row>{price("pt-retail", "1500"), price("pt-opt", "0.1")};
    w.put_offers({known});
  });
  CHECK(f.one("SELECT content_hash FROM portal.offers WHERE external_id = 'p1#red'") == "NULL");
  const auto r = f.apply(catalog);
  CHECK(r.counts.by_entity.at("prices") == counts(0, 1, 2));
  CHECK(f.one("SELECT p.value::text FROM portal.prices p JOIN portal.offers o ON o.id = p.offer_id "
              "JOIN portal.price_types t ON t.id = p.price_type_id WHERE o.external_id = 'p1#red' AND t.code = 'retail'") ==
        "1234.5678");

  // A row that warns is compared in full every time, so the warning is given every time.
  for (int round = 0; round < 2; ++round) {
    const auto w = f.apply([](store::catalog_writer& w) {
      w.put_products({product("p9", "Носки", "g-none")});
      auto o = offer("p9", "p9", "Носки");
      o.prices = std::vector<store::price_row>{price("pt-none", "1")};
      w.put_offers({o});
    });
    CHECK(w.counts.warnings == std::vector<std::string>{"product 'p9': category 'g-none' is not known",
                                                        "offer 'p9': price type 'pt-none' is not declared; price skipped"});
    CHECK(w.counts.by_entity.at("products") == (round == 0 ? counts(1, 0, 0) : counts(0, 0, 1)));
  }
  CHECK(f.one("SELECT content_hash FROM portal.products WHERE external_id = 'p9'") == "NULL");
  CHECK(f.one("SELECT content_hash FROM portal.offers WHERE external_id = 'p9'") == "NULL");
  // Once the category exists, the product resolves: linked, and its hash is stored.
  f.apply([](store::catalog_writer& w) {
    w.put_categories({category("g-none", "", "Носки")});
    w.put_products({product("p9", "Носки", "g-none")});
  });
  CHECK(f.one("SELECT content_hash IS NOT NULL AND category_id IS NOT NULL FROM portal.products WHERE external_id = 'p9'") ==
        "t");
}

TEST_CASE("content hash: a row stored without one (before migration 0006) gets it, unchanged and untouched") {
  fixture f;
  f.apply(catalog);
  const auto updated = f.one("SELECT string_agg(updated_at::text, ',' ORDER BY id) FROM portal.offers");
  {
    pqxx::work tx(*f.conn);
    tx.exec("UPDATE portal.products SET content_hash = NULL");
    tx.exec("UPDATE portal.offers SET content_hash = NULL");
    tx.commit();
  }
  const auto r = f.apply(catalog);
  CHECK(!r.counts.changed());
  CHECK(r.counts.by_entity.at("products") == counts(0, 0, 2));
  CHECK(r.counts.by_entity.at("offers") == counts(0, 0, 2));
  CHECK(r.counts.by_entity.at("prices") == counts(0, 0, 3));
  CHECK(f.one("SELECT count(*) FROM portal.offers WHERE content_hash IS NULL") == "0");
  CHECK(f.one("SELECT count(*) FROM portal.products WHERE content_hash IS NULL") == "0");
  CHECK(f.one("SELECT string_agg(updated_at::text, ',' ORDER BY id) FROM portal.offers") == updated);
  CHECK(f.apply(catalog).written == 0);
}

TEST_CASE("new rows COPied straight into the portal equal what the merge stores") {
  fixture f;
  // Source "a": everything new (the fast path). Source "b": the same rows over different ones
  // (the merge). The stored rows must be the same, field by field.
  f.apply([](store::catalog_writer& w) {
    w.put_categories({category("g2", "", "Футболки")});
    w.put_products({product("p1", "Old", "g2")});
    w.put_price_types(price_types());
    w.put_warehouses(warehouses());
    w.put_offers({offer("p1#red", "p1", "Old")});
  }, {}, "b");
  const auto load = [](store::catalog_writer& w) {
    w.put_categories({category("g2", "", "Футболки")});
    auto p = product("p1", "Футболка", "g2");
    p.description = "tab\there \\N";
    p.barcode = "4600000000001";
    w.put_products({p});
    w.put_price_types(price_types());
    w.put_warehouses(warehouses());
    auto o = red_offer("1234.5678");
    o.prices->back().coefficient = "10";
    o.version = "v7";
    w.put_offers({o});
  };
  {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "a", std::nullopt);
    load(w);
    CHECK(staged_rows(tx) == 0);  // all new: nothing went through the staging tables
    tx.commit();
  }
  f.apply(load, {}, "b");
  const auto rows = [&](const std::string& source) {
    return f.column(
        "SELECT concat_ws('|', p.sku, p.name, p.full_name, p.description, c.external_id, p.unit, p.unit_code, p.barcode, "
        "p.code, p.manufacturer, p.vat_rate, p.attributes::text, p.requisites::text, p.version, p.active, "
        "p.content_hash) FROM portal.products p LEFT JOIN portal.categories c ON c.id = p.category_id "
        "WHERE p.source = '" + source + "' UNION ALL "
        "SELECT concat_ws('|', o.external_id, op.external_id, o.product_external_id, o.characteristic_id, o.name, o.sku, "
        "o.barcode, o.characteristics::text, o.quantity, o.version, o.active, o.content_hash) FROM portal.offers o "
        "LEFT JOIN portal.products op ON op.id = o.product_id WHERE o.source = '" + source + "' UNION ALL "
        "(SELECT concat_ws('|', t.external_id, pr.value, pr.currency, pr.unit, pr.coefficient, pr.active) "
        "FROM portal.prices pr JOIN portal.price_types t ON t.id = pr.price_type_id JOIN portal.offers o ON o.id = pr.offer_id "
        "WHERE o.source = '" + source + "' ORDER BY 1) UNION ALL "
        "(SELECT concat_ws('|', w.external_id, s.quantity, s.reserved) FROM portal.stock s "
        "JOIN portal.warehouses w ON w.id = s.warehouse_id JOIN portal.offers o ON o.id = s.offer_id "
        "WHERE o.source = '" + source + "' ORDER BY 1)");
  };
  const auto a = rows("a");
  CHECK(a.size() == 6);
  CHECK(a == rows("b"));
}
