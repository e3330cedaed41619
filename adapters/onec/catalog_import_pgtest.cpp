// import_catalog_file on a real PostgreSQL ($OBMEN_TEST_DATABASE_URL): real CommerceML samples
// ($OBMEN_REFERENCE_DIR/commerceml/samples, counts from SOURCES.md §3) and copies edited in a
// temporary folder, checked against the portal tables row by row.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "adapters/onec/catalog_import.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/reader.hpp"
#include "mapping/mapping.hpp"
#include "store/portal_store.hpp"
#include "tests/support/test_database.hpp"
#include "tests/support/temp_dir.hpp"

using obmen::test::temp_dir;

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
template <>
struct StringMaker<std::map<std::string, std::int64_t>> {
  static String convert(const std::map<std::string, std::int64_t>& m) {
    std::string s = "{";
    for (const auto& [k, v] : m) s += (s.size() > 1 ? ", " : "") + k + ": " + std::to_string(v);
    return String((s + "}").c_str());
  }
};
template <>
struct StringMaker<std::vector<std::string>> {
  static String convert(const std::vector<std::string>& v) {
    std::string s = "[";
    for (const auto& x : v) s += (s.size() > 1 ? ", \"" : "\"") + x + "\"";
    return String((s + "]").c_str());
  }
};
}  // namespace doctest

namespace fs = std::filesystem;
namespace onec = obmen::onec;
namespace store = obmen::store;
namespace mapping = obmen::mapping;
namespace commerceml = obmen::commerceml;
using obmen::test::test_database;

namespace {

const char* const portal_tables[] = {"categories", "attributes", "products", "images", "product_images", "offers",
                                     "price_types", "prices", "warehouses", "stock"};

// Ids of the dobromyslov UT 11 pair (data__import0_1.xml + data__offers0_1.xml).
const std::string product_wp = "bd8c4e15-18f9-11e7-80c2-0cc47ab29cd1";  // first Товар, PM-421-WP
const std::string product_le = "5edfbda4-19c0-11e7-80c2-0cc47ab29cd1";  // second Товар, PM-421-LE
const std::string price_base = "279b6812-740b-11e8-80c8-0cc47ab29cd1";  // ТипЦены BASE
const std::string wh_vladivostok = "6abdb0b5-18fd-11e7-80c2-0cc47ab29cd1";
const std::string wh_novosibirsk = "d2a52d49-19c9-11e7-80c2-0cc47ab29cd1";
const std::string wh_moscow = "dd306af1-19c9-11e7-80c2-0cc47ab29cd1";

fs::path samples_dir() {
  const char* ref = std::getenv("OBMEN_REFERENCE_DIR");
  REQUIRE_MESSAGE(ref != nullptr, "OBMEN_REFERENCE_DIR is not set (CTest sets it)");
  return fs::path(ref) / "commerceml" / "samples";
}

fs::path dobromyslov(const std::string& name) { return samples_dir() / "dobromyslov__commerceml-parser" / name; }
fs::path argent(const std::string& name) { return samples_dir() / "ArgentCrusade__commerceml" / name; }

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
  REQUIRE_MESSAGE(out.good(), "cannot write " << p.string());
}

// Replaces exactly one occurrence: an edit that matches nothing or more than meant is a broken
// test, not a passing one.
std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "not found: " << from);
  REQUIRE_MESSAGE(s.find(from, at + 1) == std::string::npos, "found more than once: " << from);
  return s.replace(at, from.size(), to);
}

// The <Товар>…</Товар> element whose Ид is `id`, with the indentation before it.
std::pair<std::size_t, std::size_t> product_span(const std::string& xml, const std::string& id) {
  const auto id_at = xml.find("<Ид>" + id + "</Ид>");
  REQUIRE(id_at != std::string::npos);
  auto begin = xml.rfind("<Товар", id_at);
  REQUIRE(begin != std::string::npos);
  begin = xml.rfind('\n', begin) + 1;
  const std::string close = "</Товар>";
  const auto end = xml.find(close, id_at);
  REQUIRE(end != std::string::npos);
  return {begin, end + close.size() + 1};  // and the newline after it
}


mapping::rules rules_from(const std::string& yaml) {
  auto r = mapping::parse(yaml, "mapping.yaml");
  std::string problems;
  for (const auto& p : r.problems) problems += p.message + "\n";
  REQUIRE_MESSAGE(r.ok(), problems);
  return *r.value;
}

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

store::entity_counts entity(const store::import_counts& c, const std::string& name) {
  const auto it = c.by_entity.find(name);
  return it == c.by_entity.end() ? store::entity_counts{} : it->second;
}

std::vector<std::string> warnings_containing(const store::import_counts& c, const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& w : c.warnings)
    if (w.find(needle) != std::string::npos) out.push_back(w);
  return out;
}

class fixture {
 public:
  test_database db;
  std::unique_ptr<pqxx::connection> conn = db.connect();

  store::import_counts import(const fs::path& file, const mapping::rules* rules = nullptr,
                              const fs::path& files_root = {}) {
    onec::import_options o;
    o.source = "onec";
    o.rules = rules;
    o.files_root = files_root;
    return onec::import_catalog_file(*conn, file, o);
  }

  std::string one(const std::string& sql) {
    pqxx::work tx(*conn);
    const auto r = tx.exec(sql);
    REQUIRE_MESSAGE(r.size() == 1, sql);
    return r[0][0].is_null() ? "NULL" : r[0][0].as<std::string>();
  }

  std::int64_t count(const std::string& table, const std::string& where = "") {
    return std::stoll(one("SELECT count(*) FROM portal." + table + (where.empty() ? "" : " WHERE " + where)));
  }

  std::map<std::string, std::int64_t> all_counts() {
    std::map<std::string, std::int64_t> m;
    for (const char* t : portal_tables) m[t] = count(t);
    return m;
  }

  std::vector<std::string> column(const std::string& sql) {
    pqxx::work tx(*conn);
    std::vector<std::string> out;
    for (const auto& r : tx.exec(sql)) out.push_back(r[0].is_null() ? "NULL" : r[0].as<std::string>());
    return out;
  }

  // Every portal row with its xmin: an import that changes nothing must leave this identical
  // (no row rewritten, none locked into a new version).
  std::vector<std::string> row_versions() {
    std::vector<std::string> out;
    for (const char* t : portal_tables) {
      const std::string key = std::string(t) == "images" ? "sha256" : std::string(t) == "product_images"
                                                                           ? "product_id::text || '/' || position"
                                                                           : "id::text";
      for (auto& v : column("SELECT '" + std::string(t) + ":' || " + key + " || '@' || xmin::text FROM portal." + t +
                            " ORDER BY 1"))
        out.push_back(std::move(v));
    }
    return out;
  }

  // Everything the portal holds that an import writes, as text, ids and timestamps left out
  // (two databases filled from different encodings must compare equal).
  std::string content() {
    std::string out;
    const std::map<std::string, std::string> queries = {
        {"categories", "SELECT c.external_id, c.name, c.description, p.external_id, c.active FROM portal.categories c "
                       "LEFT JOIN portal.categories p ON p.id = c.parent_id"},
        {"attributes", "SELECT external_id, name, value_type, options::text, active FROM portal.attributes"},
        {"products", "SELECT p.external_id, p.sku, p.name, p.full_name, p.description, c.external_id, p.unit, "
                     "p.unit_code, p.barcode, p.code, p.manufacturer, p.vat_rate, p.attributes::text, "
                     "p.requisites::text, p.version, p.active FROM portal.products p "
                     "LEFT JOIN portal.categories c ON c.id = p.category_id"},
        {"offers", "SELECT o.external_id, p.external_id, o.product_external_id, o.characteristic_id, o.name, o.sku, "
                   "o.barcode, o.characteristics::text, o.quantity, o.version, o.active FROM portal.offers o "
                   "LEFT JOIN portal.products p ON p.id = o.product_id"},
        {"price_types", "SELECT external_id, code, name, currency, active FROM portal.price_types"},
        {"prices", "SELECT o.external_id, t.external_id, x.value, x.currency, x.unit, x.coefficient, x.active "
                   "FROM portal.prices x JOIN portal.offers o ON o.id = x.offer_id "
                   "JOIN portal.price_types t ON t.id = x.price_type_id"},
        {"warehouses", "SELECT external_id, code, name, active FROM portal.warehouses"},
        {"stock", "SELECT o.external_id, w.external_id, s.quantity, s.reserved FROM portal.stock s "
                  "JOIN portal.offers o ON o.id = s.offer_id JOIN portal.warehouses w ON w.id = s.warehouse_id"},
    };
    pqxx::work tx(*conn);
    for (const auto& [table, sql] : queries) {
      std::vector<std::string> rows;
      for (const auto& r : tx.exec(sql)) {
        std::string line = table + ":";
        for (const auto& f : r) line += "|" + (f.is_null() ? std::string("NULL") : f.as<std::string>());
        rows.push_back(std::move(line));
      }
      std::sort(rows.begin(), rows.end());
      for (auto& l : rows) out += l + "\n";
    }
    return out;
  }
};

// The classic pair, both files, as 1C sends them.
void import_classic_pair(fixture& f, const mapping::rules* rules = nullptr) {
  f.import(dobromyslov("data__import0_1.xml"), rules);
  f.import(dobromyslov("data__offers0_1.xml"), rules);
}

}  // namespace

// ─── the classic UT 11 pair ─────────────────────────────────────────────────────────────────

TEST_CASE("UT 11 pair: import0_1.xml then offers0_1.xml fill the portal exactly") {
  fixture f;
  const auto imp = f.import(dobromyslov("data__import0_1.xml"));
  CHECK(entity(imp, "categories") == counts(1, 0, 0));
  CHECK(entity(imp, "attributes") == counts(12, 0, 0));
  // 35 listed + 1 with Статус="Удален": new, and inactive from the start.
  CHECK(entity(imp, "products").inserted == 36);
  CHECK(entity(imp, "products").updated == 0);
  CHECK(imp.warnings == std::vector<std::string>{});

  const auto off = f.import(dobromyslov("data__offers0_1.xml"));
  CHECK(entity(off, "price_types") == counts(1, 0, 0));
  CHECK(entity(off, "warehouses") == counts(3, 0, 0));
  CHECK(entity(off, "offers") == counts(44, 0, 0));
  CHECK(entity(off, "prices") == counts(44, 0, 0));
  CHECK(entity(off, "stock") == counts(132, 0, 0));
  // The offers file's Классификатор carries no groups: the catalog's groups and products stay.
  CHECK(entity(off, "categories") == counts(0, 0, 0));
  CHECK(entity(off, "products") == counts(0, 0, 0));

  CHECK(f.all_counts() == std::map<std::string, std::int64_t>{{"categories", 1},
                                                               {"attributes", 12},
                                                               {"products", 36},
                                                               {"images", 0},
                                                               {"product_images", 0},
                                                               {"offers", 44},
                                                               {"price_types", 1},
                                                               {"prices", 44},
                                                               {"warehouses", 3},
                                                               {"stock", 132}});
  CHECK(f.count("products", "NOT active") == 1);
  CHECK(f.count("categories", "NOT active") == 0);
  CHECK(f.count("offers", "NOT active") == 0);
  // 8 offers name products import0_1.xml does not carry: kept, unlinked, their product id remembered.
  CHECK(f.count("offers", "product_id IS NULL") == 8);
  CHECK(f.count("offers", "product_external_id IS NULL") == 0);
  CHECK(f.count("products", "source <> 'onec'") == 0);

  SUBCASE("a product's fields and attributes, Справочник values resolved to their text") {
    CHECK(f.one("SELECT sku || ' | ' || name || ' | ' || barcode || ' | ' || vat_rate || ' | ' || manufacturer "
                "FROM portal.products WHERE external_id = '" + product_wp + "'") ==
          "PM-421-WP | Портативный коврик Portable 140x200x1 см, Деревянные лошадки | 8809288404089 | 20 | Crazy Boom");
    CHECK(f.one("SELECT c.name FROM portal.products p JOIN portal.categories c ON c.id = p.category_id "
                "WHERE p.external_id = '" + product_wp + "'") == "Коврики для дома");
    const std::string attr = "SELECT attributes ->> '%' FROM portal.products WHERE external_id = '" + product_wp + "'";
    auto attribute = [&](const std::string& name) {
      std::string q = attr;
      return f.one(q.replace(q.find('%'), 1, name));
    };
    CHECK(attribute("Страна производства") == "КОРЕЯ, РЕСПУБЛИКА");  // Справочник af848a7e-…
    CHECK(attribute("Линейка") == "Portable");                        // Справочник 259d77bb-…
    CHECK(attribute("Материал") == "PE");                             // Справочник 46b9ad0c-…
    CHECK(attribute("Код ОЗОН") == "149831179");                      // Строка
    CHECK(attribute("Расцветка") == "Деревянные лошадки");
    CHECK(attribute("Габарит_Вес") == "1,4");                         // Число, as 1C wrote it
    CHECK(f.one("SELECT count(*) FROM portal.products p, jsonb_object_keys(p.attributes) k "
                "WHERE p.external_id = '" + product_wp + "'") == "12");
    CHECK(f.one("SELECT requisites ->> 'ВидНоменклатуры' FROM portal.products WHERE external_id = '" + product_wp +
                "'") == "Коврики для дома");
    CHECK(f.one("SELECT name FROM portal.attributes WHERE external_id = '3268183f-18fa-11e7-80c2-0cc47ab29cd1'") ==
          "Страна производства");
    CHECK(f.one("SELECT options::text FROM portal.attributes WHERE external_id = "
                "'3268183f-18fa-11e7-80c2-0cc47ab29cd1'") ==
          R"([{"id": "af848a7e-18fa-11e7-80c2-0cc47ab29cd1", "value": "КОРЕЯ, РЕСПУБЛИКА"}])");
  }

  SUBCASE("an offer's price as in the XML and its stock per warehouse") {
    CHECK(f.one("SELECT trim_scale(x.value)::text || ' ' || x.currency || ' ' || x.unit || ' ' || "
                "trim_scale(x.coefficient)::text || ' ' || t.name || ' ' || t.code "
                "FROM portal.prices x JOIN portal.offers o ON o.id = x.offer_id "
                "JOIN portal.price_types t ON t.id = x.price_type_id WHERE o.external_id = '" + product_wp + "'") ==
          "100 RUB PCE 1 BASE " + price_base);
    CHECK(f.one("SELECT quantity::text FROM portal.offers WHERE external_id = '" + product_wp + "'") == "377");
    CHECK(f.one("SELECT p.external_id FROM portal.offers o JOIN portal.products p ON p.id = o.product_id "
                "WHERE o.external_id = '" + product_wp + "'") == product_wp);
    const auto stock = [&](const std::string& offer, const std::string& wh) {
      return f.one("SELECT s.quantity::text FROM portal.stock s JOIN portal.offers o ON o.id = s.offer_id "
                   "JOIN portal.warehouses w ON w.id = s.warehouse_id "
                   "WHERE o.external_id = '" + offer + "' AND w.external_id = '" + wh + "'");
    };
    CHECK(stock(product_wp, wh_vladivostok) == "1");
    CHECK(stock(product_wp, wh_novosibirsk) == "0");
    CHECK(stock(product_wp, wh_moscow) == "376");
    CHECK(stock(product_le, wh_vladivostok) == "1");
    CHECK(stock(product_le, wh_novosibirsk) == "5");
    CHECK(stock(product_le, wh_moscow) == "5");
    CHECK(f.one("SELECT string_agg(name || '=' || code, ', ' ORDER BY name) FROM portal.warehouses") ==
          "Владивосток=" + wh_vladivostok + ", Москва=" + wh_moscow + ", Новосибирск=" + wh_novosibirsk);
    // Stock per warehouse adds up to Количество for every offer of the sample.
    CHECK(f.one("SELECT count(*) FROM portal.offers o WHERE o.quantity <> "
                "(SELECT sum(quantity) FROM portal.stock s WHERE s.offer_id = o.id)") == "0");
  }
}

TEST_CASE("UT 11 pair imported again: nothing inserted, updated or deactivated; no row rewritten") {
  fixture f;
  import_classic_pair(f);
  const auto before = f.row_versions();
  const auto counts_before = f.all_counts();

  const auto imp = f.import(dobromyslov("data__import0_1.xml"));
  const auto off = f.import(dobromyslov("data__offers0_1.xml"));
  CHECK_FALSE(imp.changed());
  CHECK_FALSE(off.changed());
  CHECK(entity(imp, "categories") == counts(0, 0, 1));
  CHECK(entity(imp, "attributes") == counts(0, 0, 12));
  CHECK(entity(imp, "products") == counts(0, 0, 36));
  CHECK(entity(off, "price_types") == counts(0, 0, 1));
  CHECK(entity(off, "warehouses") == counts(0, 0, 3));
  CHECK(entity(off, "offers") == counts(0, 0, 44));
  CHECK(entity(off, "prices") == counts(0, 0, 44));
  CHECK(entity(off, "stock") == counts(0, 0, 132));
  CHECK(f.all_counts() == counts_before);
  CHECK(f.row_versions() == before);
}

// ─── full vs partial packages ───────────────────────────────────────────────────────────────

TEST_CASE("full catalog without a product deactivates it; a changes-only one deactivates nothing") {
  fixture f;
  temp_dir tmp;
  const std::string original = read_bytes(dobromyslov("data__import0_1.xml"));
  f.import(dobromyslov("data__import0_1.xml"));
  REQUIRE(f.count("products", "active") == 35);

  const auto [b, e] = product_span(original, product_le);
  std::string without = original;
  without.erase(b, e - b);

  SUBCASE("full: the missing product becomes inactive, nothing else changes") {
    write_bytes(tmp / "import0_1.xml", without);
    const auto c = f.import(tmp / "import0_1.xml");
    CHECK(entity(c, "products") == counts(0, 0, 35, 1));
    CHECK(f.one("SELECT active::text FROM portal.products WHERE external_id = '" + product_le + "'") == "false");
    CHECK(f.count("products") == 36);  // never deleted
    CHECK(f.count("products", "active") == 34);

    // Back in the next full package: active again.
    const auto back = f.import(dobromyslov("data__import0_1.xml"));
    CHECK(entity(back, "products") == counts(0, 1, 35));
    CHECK(f.one("SELECT active::text FROM portal.products WHERE external_id = '" + product_le + "'") == "true");
  }

  SUBCASE("changes only: products it does not carry stay as they are") {
    std::string partial = replace_once(without, "<Каталог СодержитТолькоИзменения=\"false\">",
                                       "<Каталог СодержитТолькоИзменения=\"true\">");
    // Keep just one product: a typical changes-only package.
    const auto [pb, pe] = product_span(partial, product_wp);
    const auto first = partial.find("<Товары>") + std::string("<Товары>\n").size();
    const auto last = partial.find("</Товары>");
    partial = partial.substr(0, first) + partial.substr(pb, pe - pb) + partial.substr(partial.rfind('\n', last) + 1);
    write_bytes(tmp / "import0_1.xml", partial);
    const auto before = f.row_versions();
    const auto c = f.import(tmp / "import0_1.xml");
    CHECK(entity(c, "products") == counts(0, 0, 1));
    CHECK_FALSE(c.changed());
    CHECK(f.count("products", "active") == 35);
    CHECK(f.row_versions() == before);
  }

  const std::string mark = "<Ид>" + product_le + "</Ид>\n\t\t\t\t<ПометкаУдаления>true</ПометкаУдаления>";
  const std::string marked = replace_once(original, "<Ид>" + product_le + "</Ид>", mark);
  auto check_marked = [&](const std::string& xml) {
    write_bytes(tmp / "import0_1.xml", xml);
    const auto c = f.import(tmp / "import0_1.xml");
    CHECK(entity(c, "products") == counts(0, 0, 35, 1));
    CHECK(f.one("SELECT active::text FROM portal.products WHERE external_id = '" + product_le + "'") == "false");
    CHECK(f.count("products") == 36);
    CHECK(f.count("products", "active") == 34);
  };

  SUBCASE("ПометкаУдаления on a product deactivates it (full package)") { check_marked(marked); }

  SUBCASE("ПометкаУдаления on a product deactivates it (changes-only package)") {
    check_marked(replace_once(marked, "<Каталог СодержитТолькоИзменения=\"false\">",
                              "<Каталог СодержитТолькоИзменения=\"true\">"));
  }
}

// ─── mapping policies ───────────────────────────────────────────────────────────────────────

TEST_CASE("mapping: price type mapped to a code; prices reference it") {
  fixture f;
  const auto rules = rules_from("price_types:\n  - match: { name: \"BASE\" }\n    code: retail\n");
  import_classic_pair(f, &rules);
  CHECK(f.one("SELECT code || ' ' || name || ' ' || external_id FROM portal.price_types") ==
        "retail BASE " + price_base);
  CHECK(f.count("prices") == 44);
  CHECK(f.one("SELECT count(*) FROM portal.prices x JOIN portal.price_types t ON t.id = x.price_type_id "
              "WHERE t.code = 'retail'") == "44");
}

TEST_CASE("mapping: an ignored price type stores no prices and warns naming it") {
  fixture f;
  const auto rules = rules_from("price_types:\n  - match: { name: \"BASE\" }\n    ignore: true\n");
  f.import(dobromyslov("data__import0_1.xml"), &rules);
  const auto c = f.import(dobromyslov("data__offers0_1.xml"), &rules);
  CHECK(f.count("price_types") == 0);
  CHECK(f.count("prices") == 0);
  CHECK(f.count("offers") == 44);
  CHECK(f.count("stock") == 132);  // the rest of the offers file is imported
  const auto w = warnings_containing(c, "BASE");
  REQUIRE(w.size() == 1);
  CHECK(w[0].find("ignored") != std::string::npos);
  CHECK(w[0].find("mapping.yaml:2") != std::string::npos);
}

TEST_CASE("mapping: unmapped.price_types fail stops the import naming the type; the portal is unchanged") {
  fixture f;
  f.import(dobromyslov("data__import0_1.xml"));
  const auto before = f.all_counts();
  const auto versions = f.row_versions();
  const auto rules = rules_from("unmapped:\n  price_types: fail\n");
  try {
    f.import(dobromyslov("data__offers0_1.xml"), &rules);
    FAIL("import_error expected");
  } catch (const onec::import_error& e) {
    const std::string what = e.what();
    CHECK(what.find("data__offers0_1.xml") != std::string::npos);
    CHECK(what.find("BASE") != std::string::npos);
    CHECK(what.find("fail") != std::string::npos);
  }
  CHECK(f.all_counts() == before);
  CHECK(f.row_versions() == versions);
  // The connection is usable for the next import.
  CHECK(f.count("offers") == 0);
}

TEST_CASE("mapping: an ignored warehouse gets no stock rows") {
  fixture f;
  const auto rules = rules_from("warehouses:\n  - match: { name: \"Москва\" }\n    ignore: true\n"
                                "  - match: { id: \"" + wh_vladivostok + "\" }\n    code: vvo\n");
  import_classic_pair(f, &rules);
  CHECK(f.column("SELECT code FROM portal.warehouses ORDER BY code") ==
        std::vector<std::string>{wh_novosibirsk, "vvo"});
  CHECK(f.count("stock") == 88);
  CHECK(f.one("SELECT count(*) FROM portal.stock s JOIN portal.warehouses w ON w.id = s.warehouse_id "
              "WHERE w.name = 'Москва'") == "0");
  CHECK(f.one("SELECT count(*) FROM portal.stock s JOIN portal.warehouses w ON w.id = s.warehouse_id "
              "WHERE w.code = 'vvo'") == "44");
}

TEST_CASE("mapping: a property renamed becomes the attributes key; an ignored one disappears") {
  fixture f;
  const auto rules = rules_from(
      "properties:\n"
      "  - match: { name: \"Страна производства\" }\n    attribute: country\n"
      "  - match: { id: \"a3e9701f-2483-11e9-80c9-0cc47ab29cd1\" }\n    attribute: color\n"
      "  - match: { name: \"Код ОЗОН\" }\n    ignore: true\n");
  const auto c = f.import(dobromyslov("data__import0_1.xml"), &rules);
  CHECK(f.count("attributes") == 11);
  CHECK(f.column("SELECT name FROM portal.attributes WHERE name IN ('country', 'color', 'Код ОЗОН', "
                 "'Страна производства', 'Расцветка') ORDER BY name") ==
        std::vector<std::string>{"color", "country"});
  CHECK(f.one("SELECT attributes ->> 'country' FROM portal.products WHERE external_id = '" + product_wp + "'") ==
        "КОРЕЯ, РЕСПУБЛИКА");
  CHECK(f.one("SELECT attributes ->> 'color' FROM portal.products WHERE external_id = '" + product_wp + "'") ==
        "Деревянные лошадки");
  CHECK(f.count("products", "attributes ? 'Код ОЗОН' OR attributes ? 'Страна производства' OR "
                            "attributes ? 'Расцветка'") == 0);
  CHECK(f.count("products", "attributes ? 'country'") > 0);
  const auto w = warnings_containing(c, "Код ОЗОН");
  REQUIRE(w.size() == 1);
  CHECK(w[0].find("ignored") != std::string::npos);
}

// Bitrix-module packages split one exchange into several files: properties, price types and
// warehouses are declared in one file and referenced from the next. A mapping decision taken on
// the declaration (by name) must hold for the references in the later files too.
namespace {

// `xml` without the first <tag>…</tag> element (and the line it starts on).
std::string without_element(std::string xml, const std::string& tag) {
  auto open = xml.find("<" + tag + ">");
  if (open == std::string::npos) open = xml.find("<" + tag + " ");
  REQUIRE_MESSAGE(open != std::string::npos, "no <" << tag << ">");
  const std::string close = "</" + tag + ">";
  const auto end = xml.find(close, open);
  REQUIRE(end != std::string::npos);
  const auto begin = xml.rfind('\n', open) + 1;
  return xml.erase(begin, end + close.size() + 1 - begin);
}

}  // namespace

TEST_CASE("split package: a property ignored by name where it is declared stays ignored in the catalog file") {
  fixture f;
  temp_dir tmp;
  const std::string original = read_bytes(dobromyslov("data__import0_1.xml"));
  write_bytes(tmp / "import0_1.xml", without_element(original, "Каталог"));      // classifier only
  write_bytes(tmp / "import0_2.xml", without_element(original, "Свойства"));     // groups + catalog
  const auto rules = rules_from("properties:\n  - match: { name: \"Код ОЗОН\" }\n    ignore: true\n"
                                "  - match: { name: \"Расцветка\" }\n    attribute: color\n");
  const auto classifier = f.import(tmp / "import0_1.xml", &rules);
  CHECK(entity(classifier, "attributes") == counts(11, 0, 0));
  CHECK(f.count("products") == 0);
  const auto catalog = f.import(tmp / "import0_2.xml", &rules);
  CHECK(entity(catalog, "products").inserted == 36);
  CHECK(f.count("products", "attributes ? 'Код ОЗОН' OR attributes ? '8d11c16f-1d64-11e9-80c9-0cc47ab29cd1'") == 0);
  CHECK(f.one("SELECT attributes ->> 'color' FROM portal.products WHERE external_id = '" + product_wp + "'") ==
        "Деревянные лошадки");
  CHECK(f.one("SELECT count(*) FROM portal.products p, jsonb_object_keys(p.attributes) k "
              "WHERE p.external_id = '" + product_wp + "'") == "11");
}

TEST_CASE("split package: prices and stock files without declarations follow the declaring file's mapping") {
  fixture f;
  temp_dir tmp;
  const std::string offers = read_bytes(dobromyslov("data__offers0_1.xml"));
  // 3.1-style prices file: the offers' Цены only; rests file: the offers' stock only.
  std::string prices = without_element(without_element(offers, "ТипыЦен"), "Склады");
  std::string rests = prices;
  while (rests.find("<Цены>") != std::string::npos) rests = without_element(rests, "Цены");
  while (prices.find("<Склад ИдСклада") != std::string::npos) {
    const auto at = prices.find("<Склад ИдСклада");
    const auto begin = prices.rfind('\n', at) + 1;
    prices.erase(begin, prices.find('\n', at) + 1 - begin);
  }
  write_bytes(tmp / "offers0_1.xml", offers);
  write_bytes(tmp / "prices0_1.xml", prices);
  write_bytes(tmp / "rests0_1.xml", rests);
  const auto rules = rules_from(
      "price_types:\n  - match: { name: \"BASE\" }\n    ignore: true\n"
      "warehouses:\n  - match: { name: \"Москва\" }\n    ignore: true\n"
      "  - match: { name: \"Владивосток\" }\n    code: vvo\n  - match: { name: \"Новосибирск\" }\n    code: nsk\n"
      "unmapped:\n  price_types: fail\n  warehouses: fail\n");
  f.import(dobromyslov("data__import0_1.xml"), &rules);
  f.import(tmp / "offers0_1.xml", &rules);
  CHECK(f.count("prices") == 0);
  CHECK(f.count("stock") == 88);
  const auto before = f.row_versions();

  const auto p = f.import(tmp / "prices0_1.xml", &rules);  // must neither fail nor store BASE prices
  CHECK(f.count("prices") == 0);
  CHECK(warnings_containing(p, "BASE").size() == 1);
  const auto r = f.import(tmp / "rests0_1.xml", &rules);   // nor stock in Москва
  CHECK(f.count("stock") == 88);
  CHECK(warnings_containing(r, "Москва").size() == 1);
  CHECK_FALSE(p.changed());
  CHECK_FALSE(r.changed());
  CHECK(f.row_versions() == before);
}

// ─── images ─────────────────────────────────────────────────────────────────────────────────

namespace {

std::string catalog_with_images(const std::vector<std::pair<std::string, std::vector<std::string>>>& products) {
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\" "
      "ДатаФормирования=\"2024-01-01T00:00:00\">\n"
      "  <Классификатор><Ид>cls</Ид><Наименование>Классификатор</Наименование>\n"
      "    <Группы><Группа><Ид>g1</Ид><Наименование>Группа</Наименование></Группа></Группы>\n"
      "  </Классификатор>\n"
      "  <Каталог СодержитТолькоИзменения=\"false\"><Ид>cat</Ид><ИдКлассификатора>cls</ИдКлассификатора>"
      "<Наименование>Каталог</Наименование>\n    <Товары>\n";
  for (const auto& [id, images] : products) {
    xml += "      <Товар><Ид>" + id + "</Ид><Артикул>A-" + id + "</Артикул><Наименование>Товар " + id +
           "</Наименование><Группы><Ид>g1</Ид></Группы>";
    for (const auto& i : images) xml += "<Картинка>" + i + "</Картинка>";
    xml += "</Товар>\n";
  }
  return xml + "    </Товары>\n  </Каталог>\n</КоммерческаяИнформация>\n";
}

const std::string jpeg_bytes = std::string("\xFF\xD8\xFF\xE0", 4) + "not really a jpeg, but its magic says so";
const std::string png_bytes = std::string("\x89PNG\r\n\x1a\n", 8) + "png body";

}  // namespace

TEST_CASE("images: one stored file shared by two products; a missing file warns and does not fail") {
  fixture f;
  temp_dir tmp;
  write_bytes(tmp / "import_files/ab/x.jpg", jpeg_bytes);
  write_bytes(tmp / "import_files/cd/y.png", png_bytes);
  write_bytes(tmp / "import0_1.xml", catalog_with_images({{"p1", {"import_files/ab/x.jpg"}},
                                                          {"p2", {"import_files/ab/x.jpg", "import_files/cd/y.png"}},
                                                          {"p3", {"import_files/ef/missing.jpg"}}}));
  const auto c = f.import(tmp / "import0_1.xml", nullptr, tmp.path());
  CHECK(entity(c, "products") == counts(3, 0, 0));
  CHECK(entity(c, "images").inserted == 2);
  CHECK(f.count("images") == 2);
  CHECK(f.count("images", "mime = 'image/jpeg' AND size = " + std::to_string(jpeg_bytes.size())) == 1);
  CHECK(f.count("images", "mime = 'image/png'") == 1);
  CHECK(f.one("SELECT count(DISTINCT pi.product_id) FROM portal.product_images pi JOIN portal.images i "
              "ON i.sha256 = pi.sha256 WHERE i.mime = 'image/jpeg'") == "2");
  CHECK(f.column("SELECT p.external_id || ':' || pi.position || ':' || i.mime FROM portal.product_images pi "
                 "JOIN portal.products p ON p.id = pi.product_id JOIN portal.images i ON i.sha256 = pi.sha256 "
                 "ORDER BY 1") == std::vector<std::string>{"p1:1:image/jpeg", "p2:1:image/jpeg", "p2:2:image/png"});
  CHECK(f.one("SELECT (encode(sha256(content), 'hex') = sha256)::text FROM portal.images WHERE mime = 'image/jpeg'") ==
        "true");
  const auto w = warnings_containing(c, "missing.jpg");
  REQUIRE(w.size() == 1);
  CHECK(w[0].find("p3") != std::string::npos);
  CHECK(f.count("product_images", "product_id = (SELECT id FROM portal.products WHERE external_id = 'p3')") == 0);

  SUBCASE("re-import with a different list replaces the product's list") {
    write_bytes(tmp / "import0_1.xml", catalog_with_images({{"p1", {"import_files/cd/y.png"}},
                                                            {"p2", {"import_files/ab/x.jpg"}},
                                                            {"p3", {"import_files/ef/missing.jpg"}}}));
    const auto again = f.import(tmp / "import0_1.xml", nullptr, tmp.path());
    CHECK(entity(again, "products") == counts(0, 2, 1));
    CHECK(entity(again, "images").inserted == 0);
    CHECK(f.count("images") == 2);  // nothing stored twice
    CHECK(f.column("SELECT p.external_id || ':' || pi.position || ':' || i.mime FROM portal.product_images pi "
                   "JOIN portal.products p ON p.id = pi.product_id JOIN portal.images i ON i.sha256 = pi.sha256 "
                   "ORDER BY 1") == std::vector<std::string>{"p1:1:image/png", "p2:1:image/jpeg"});
  }

  SUBCASE("same list again changes nothing") {
    const auto before = f.row_versions();
    const auto again = f.import(tmp / "import0_1.xml", nullptr, tmp.path());
    CHECK_FALSE(again.changed());
    CHECK(f.row_versions() == before);
  }
}

// ─── encodings and broken files ─────────────────────────────────────────────────────────────

TEST_CASE("windows-1251 copy of the UT 11 pair gives the same portal as the UTF-8 original") {
  temp_dir tmp;
  for (const char* name : {"data__import0_1.xml", "data__offers0_1.xml"}) {
    std::string utf8 = read_bytes(dobromyslov(name));
    REQUIRE(utf8.rfind("\xEF\xBB\xBF", 0) == 0);
    utf8.erase(0, 3);
    utf8 = replace_once(utf8, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
                        "<?xml version=\"1.0\" encoding=\"windows-1251\"?>");
    const std::string cp1251 = commerceml::utf8_to_cp1251(utf8);
    REQUIRE(std::count(cp1251.begin(), cp1251.end(), '?') == std::count(utf8.begin(), utf8.end(), '?'));
    REQUIRE(commerceml::cp1251_to_utf8(cp1251) == utf8);
    write_bytes(tmp / name, cp1251);
  }
  fixture utf8, cp1251;
  import_classic_pair(utf8);
  cp1251.import(tmp / "data__import0_1.xml");
  cp1251.import(tmp / "data__offers0_1.xml");
  const auto a = utf8.content(), b = cp1251.content();
  CHECK(a.size() > 10000);
  CHECK(a == b);
  CHECK(b.find("Портативный коврик Portable 140x200x1 см, Деревянные лошадки") != std::string::npos);
}

TEST_CASE("a file truncated in the middle fails with file:line:col and changes nothing") {
  fixture f;
  temp_dir tmp;
  import_classic_pair(f);
  const auto before = f.all_counts();
  const auto versions = f.row_versions();
  for (const char* name : {"data__import0_1.xml", "data__offers0_1.xml"}) {
    CAPTURE(name);
    const std::string full = read_bytes(dobromyslov(name));
    write_bytes(tmp / name, full.substr(0, full.size() / 2));
    try {
      f.import(tmp / name);
      FAIL("parse_error expected");
    } catch (const commerceml::parse_error& e) {
      const std::string what = e.what();
      CHECK(e.line() > 1);
      CHECK(e.column() >= 1);
      const std::string prefix = e.file() + ":" + std::to_string(e.line()) + ":" + std::to_string(e.column()) + ": ";
      CHECK(what.rfind(prefix, 0) == 0);
      CHECK(e.file().find(name) != std::string::npos);
    }
    CHECK(f.all_counts() == before);
    CHECK(f.row_versions() == versions);
  }
}

TEST_CASE("a file that is not CommerceML or holds orders is refused; the portal is unchanged") {
  fixture f;
  temp_dir tmp;
  import_classic_pair(f);
  const auto before = f.all_counts();
  const auto versions = f.row_versions();

  SUBCASE("root <html>") {
    write_bytes(tmp / "import0_1.xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n");
    try {
      f.import(tmp / "import0_1.xml");
      FAIL("parse_error expected");
    } catch (const commerceml::parse_error& e) {
      CHECK(e.line() == 2);
      CHECK(std::string(e.what()).find("import0_1.xml:2:") != std::string::npos);
    }
  }

  SUBCASE("an orders file (off-doc-1c orders.xml)") {
    try {
      f.import(samples_dir() / "irpsv__commerceml" / "tests__assets__off-doc-1c__orders.xml");
      FAIL("import_error expected");
    } catch (const onec::import_error& e) {
      const std::string what = e.what();
      CHECK(what.find("tests__assets__off-doc-1c__orders.xml") != std::string::npos);
      CHECK(what.find("order documents") != std::string::npos);
    }
  }

  CHECK(f.all_counts() == before);
  CHECK(f.row_versions() == versions);
}

// ─── split Bitrix-module 3.1 files ──────────────────────────────────────────────────────────

TEST_CASE("Bitrix-module 3.1 split files: groups, products, prices, remainders in that order") {
  fixture f;
  const auto groups = f.import(argent("tests__fixtures__group-example.xml"));
  CHECK(entity(groups, "categories") == counts(12, 0, 0));
  CHECK(f.count("categories", "parent_id IS NULL") == 2);  // the two roots; every other parent resolved
  CHECK(groups.warnings == std::vector<std::string>{});

  const auto products = f.import(argent("tests__fixtures__products-example.xml"));
  CHECK(entity(products, "products") == counts(1, 0, 0));
  CHECK(f.one("SELECT name FROM portal.products") == "Гироскутер 10\"");
  CHECK(f.one("SELECT version FROM portal.products") == "AAAHgAAAAAA=32906");
  // Its group (dad4ab38-…) is not among the 12 of group-example.xml: left NULL with a warning.
  CHECK(f.one("SELECT (category_id IS NULL)::text FROM portal.products") == "true");
  CHECK(warnings_containing(products, "dad4ab38-8d6c-11e7-80e5-9e70408b1b6c").size() == 1);
  // Five Картинка, none uploaded (no files root): five warnings, no images, no failure.
  CHECK(warnings_containing(products, "was not uploaded").size() == 5);
  CHECK(products.warnings.size() == 6);
  CHECK(f.count("images") == 0);
  // The changes-only groups file and catalog deactivate nothing.
  CHECK(f.count("categories", "active") == 12);

  // Prices and rests for offers whose product the portal does not know: skipped, one warning each.
  const auto prices = f.import(argent("tests__fixtures__prices-example.xml"));
  CHECK(entity(prices, "offers").inserted == 0);
  CHECK(entity(prices, "offers").skipped == 3);
  CHECK(warnings_containing(prices, "unknown offer and product").size() == 3);
  CHECK(prices.warnings.size() == 3);

  const auto rests = f.import(argent("tests__fixtures__remainders-example.xml"));
  CHECK(entity(rests, "offers").inserted == 0);
  CHECK(entity(rests, "offers").skipped == 2);
  CHECK(warnings_containing(rests, "unknown offer and product").size() == 2);
  CHECK(rests.warnings.size() == 2);

  CHECK(f.all_counts() == std::map<std::string, std::int64_t>{{"categories", 12},
                                                               {"attributes", 0},
                                                               {"products", 1},
                                                               {"images", 0},
                                                               {"product_images", 0},
                                                               {"offers", 0},
                                                               {"price_types", 0},
                                                               {"prices", 0},
                                                               {"warehouses", 0},
                                                               {"stock", 0}});
}

// ─── file order ─────────────────────────────────────────────────────────────────────────────

TEST_CASE("order_for_import: import, offers, prices, rests, others; stable within a kind") {
  using v = std::vector<std::string>;
  CHECK(onec::order_for_import({}) == v{});
  CHECK(onec::order_for_import({"offers0_1.xml", "import0_1.xml"}) == v{"import0_1.xml", "offers0_1.xml"});
  CHECK(onec::order_for_import({"rests0_1.xml", "prices0_1.xml", "offers0_1.xml", "import0_1.xml"}) ==
        v{"import0_1.xml", "offers0_1.xml", "prices0_1.xml", "rests0_1.xml"});
  // Bitrix module 3.1 packages: several files of a kind keep the order 1C gave them.
  CHECK(onec::order_for_import({"offers0_2.xml", "import0_2.xml", "offers0_1.xml", "import0_1.xml"}) ==
        v{"import0_2.xml", "import0_1.xml", "offers0_2.xml", "offers0_1.xml"});
  // Case-insensitive, on the file name only (zip entries and folders keep their path).
  CHECK(onec::order_for_import({"x/Offers.XML", "documents.xml", "IMPORT.xml", "a/import/rests.xml"}) ==
        v{"IMPORT.xml", "x/Offers.XML", "a/import/rests.xml", "documents.xml"});
  CHECK(onec::order_for_import({"v8.zip/offers0_1.xml", "v8.zip/import0_1.xml"}) ==
        v{"v8.zip/import0_1.xml", "v8.zip/offers0_1.xml"});
  CHECK(onec::order_for_import({"b.xml", "a.xml"}) == v{"b.xml", "a.xml"});
}

// ─── bulk load: a first import into empty tables (store::catalog_writer, bulk_load) ─────────

namespace {

// Every constraint (with its definition and whether it is validated) and index of schema portal.
std::string portal_schema_signature(pqxx::connection& c) {
  pqxx::work tx(c);
  return tx.exec1(R"sql(
    SELECT string_agg(x, E'\n' ORDER BY x) FROM (
      SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) ||
             CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END
        FROM pg_constraint WHERE connamespace = 'portal'::regnamespace
      UNION ALL
      SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'portal') s(x))sql")[0]
      .as<std::string>();
}

}  // namespace

TEST_CASE("bulk load: the first import into empty tables leaves every constraint and index as migrated") {
  fixture f;
  const auto migrated = portal_schema_signature(*f.conn);
  REQUIRE(migrated.find("FOREIGN KEY (offer_id) REFERENCES portal.offers(id)") != std::string::npos);
  const std::string key_oid = "SELECT oid FROM pg_constraint WHERE conname = 'stock_offer_id_fkey'";
  const auto key_before = f.one(key_oid);
  import_classic_pair(f);  // both files find their tables empty
  CHECK(f.one(key_oid) != key_before);  // dropped and re-created, i.e. loaded in bulk
  CHECK(f.count("products") == 36);
  CHECK(f.count("offers") == 44);
  CHECK(f.count("prices") == 44);
  CHECK(f.count("stock") == 132);
  CHECK(portal_schema_signature(*f.conn) == migrated);
  // The statistics the merges plan with were taken before the commit.
  CHECK(f.one("SELECT count(*) FROM pg_stats WHERE schemaname = 'portal' AND tablename = 'stock'") != "0");
  // The second time the tables hold rows: the ordinary path, and nothing changes.
  const auto versions = f.row_versions();
  import_classic_pair(f);
  CHECK(f.row_versions() == versions);
  CHECK(portal_schema_signature(*f.conn) == migrated);
}

TEST_CASE("bulk load: a failed first import rolls the dropped keys and indexes back with the rows") {
  fixture f;
  temp_dir tmp;
  const auto migrated = portal_schema_signature(*f.conn);
  f.import(dobromyslov("data__import0_1.xml"));
  const std::string full = read_bytes(dobromyslov("data__offers0_1.xml"));
  write_bytes(tmp / "offers.xml", full.substr(0, full.size() * 3 / 4));
  CHECK_THROWS_AS(f.import(tmp / "offers.xml"), commerceml::parse_error);
  CHECK(f.count("offers") == 0);
  CHECK(portal_schema_signature(*f.conn) == migrated);
  f.import(dobromyslov("data__offers0_1.xml"));
  CHECK(f.count("stock") == 132);
  CHECK(portal_schema_signature(*f.conn) == migrated);
}

TEST_CASE("bulk load: close() validates the re-created keys; a broken one fails the transaction") {
  fixture f;
  const auto migrated = portal_schema_signature(*f.conn);
  {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "onec", std::nullopt, /*bulk_load=*/true);
    store::product_row p;
    p.external_id = "p1";
    p.name = "one";
    w.put_products({p});
    SUBCASE("a foreign key") {
      // Without its foreign key, nothing stops a dangling category id until close().
      tx.exec("UPDATE portal.products SET category_id = 987654321");
      CHECK_THROWS_AS(w.close(), pqxx::foreign_key_violation);
    }
    SUBCASE("a unique key") {
      // Without its unique key, nothing stops a second p1 until close().
      tx.exec("INSERT INTO portal.products (source, external_id, name) VALUES ('onec', 'p1', 'again')");
      CHECK_THROWS_AS(w.close(), pqxx::unique_violation);
    }
  }
  CHECK(f.count("products") == 0);
  CHECK(portal_schema_signature(*f.conn) == migrated);
}

TEST_CASE("bulk load: a table the portal holds a lock on is loaded the ordinary way, after 5 s at most") {
  fixture f;
  const auto migrated = portal_schema_signature(*f.conn);
  f.import(dobromyslov("data__import0_1.xml"));
  // A portal session reading warehouses in an open transaction: dropping stock's foreign key to
  // warehouses needs an exclusive lock there, which it does not get.
  auto portal = f.db.connect();
  pqxx::work reading(*portal);
  reading.exec("SELECT count(*) FROM portal.warehouses");
  const auto oid = [&](const char* key) { return f.one(std::string("SELECT oid FROM pg_constraint WHERE conname = '") + key + "'"); };
  const auto stock_key = oid("stock_warehouse_id_fkey"), prices_key = oid("prices_offer_id_fkey");
  const auto off = f.import(dobromyslov("data__offers0_1.xml"));
  reading.commit();
  CHECK(oid("stock_warehouse_id_fkey") == stock_key);  // kept: stock was loaded the ordinary way
  CHECK(oid("prices_offer_id_fkey") != prices_key);    // prices did not need the lock: bulk
  CHECK(entity(off, "offers") == counts(44, 0, 0));
  CHECK(entity(off, "stock") == counts(132, 0, 0));
  CHECK(f.count("stock") == 132);
  CHECK(portal_schema_signature(*f.conn) == migrated);
}

TEST_CASE("bulk load: an id repeated in a later batch updates the row the earlier batch put") {
  fixture f;
  {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "onec", std::nullopt, /*bulk_load=*/true);
    store::product_row p1, p2;
    p1.external_id = "p1";
    p1.name = "one";
    p2.external_id = "p2";
    p2.name = "two";
    w.put_products({p1});
    p1.name = "one, renamed";
    w.put_products({p1, p2});
    w.put_products({p2});  // as it was: unchanged
    w.close();
    CHECK(entity(w.counts(), "products") == counts(2, 1, 1));
    tx.commit();
  }
  CHECK(f.column("SELECT external_id || '=' || name FROM portal.products ORDER BY 1") ==
        std::vector<std::string>{"p1=one, renamed", "p2=two"});
}

TEST_CASE("bulk load: keys are left out while rows are copied and come back before a merge needs them") {
  fixture f;
  const auto migrated = portal_schema_signature(*f.conn);
  std::int64_t session = 0;
  {
    pqxx::work tx(*f.conn);
    session = tx.exec1("INSERT INTO obmen.exchange_sessions (source, type, cookie_hash, expires_at) "
                       "VALUES ('onec', 'catalog', md5(random()::text), now() + interval '1 hour') RETURNING id")[0]
                  .as<std::int64_t>();
    tx.commit();
  }
  {
    pqxx::work tx(*f.conn);
    const auto has = [&](const char* constraint) {
      return tx.exec1(std::string("SELECT count(*) FROM pg_constraint WHERE conname = '") + constraint + "'")[0]
                 .as<int>() == 1;
    };
    store::catalog_writer w(tx, "onec", session, /*bulk_load=*/true);
    w.put_price_types({{"pt", "", "Розничная", "RUB"}});
    w.put_warehouses({{"wh", "", "Склад", true}});
    store::product_row p;
    p.external_id = "p1";
    p.name = "one";
    w.put_products({p});
    CHECK_FALSE(has("products_source_external_id_key"));  // copied without it
    CHECK(has("products_pkey"));                           // offers' foreign key references it: kept
    store::offer_row o;
    o.external_id = "p1";
    o.product_external_id = "p1";
    o.name = "one";
    o.prices = std::vector<store::price_row>{{"pt", "10", "RUB", "", ""}};
    o.stock = std::vector<store::stock_row>{{"wh", "3"}};
    w.put_offers({o});
    CHECK_FALSE(has("prices_pkey"));
    CHECK_FALSE(has("prices_offer_id_price_type_id_key"));
    CHECK_FALSE(has("stock_offer_id_warehouse_id_key"));
    CHECK(has("offers_pkey"));  // order_items' foreign key references it
    // The same offer again, with a new price: upserted by key, so the keys are back first.
    o.prices = std::vector<store::price_row>{{"pt", "12.5", "RUB", "", ""}};
    w.put_offers({o});
    CHECK(has("prices_offer_id_price_type_id_key"));
    CHECK(has("stock_offer_id_warehouse_id_key"));
    CHECK(has("offers_source_external_id_key"));
    w.close();
    CHECK(entity(w.counts(), "offers") == counts(1, 0, 1));
    CHECK(entity(w.counts(), "prices") == counts(1, 1, 0));
    CHECK(entity(w.counts(), "stock") == counts(1, 0, 1));
    tx.commit();
  }
  CHECK(f.one("SELECT value FROM portal.prices") == "12.5000");
  CHECK(f.one("SELECT count(*) FROM portal.stock") == "1");
  // In an exchange session every id is recorded as seen, though none was looked up.
  CHECK(f.one("SELECT count(*) FROM obmen.exchange_seen WHERE session_id = " + std::to_string(session)) == "2");
  CHECK(portal_schema_signature(*f.conn) == migrated);
}

TEST_CASE("whole set: stored hashes read in one scan; an id that comes back is looked up; the rest is deactivated") {
  fixture f;
  const auto put = [&](const std::vector<std::vector<std::string>>& batches, bool whole) {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "onec", std::nullopt, /*bulk_load=*/true);
    if (whole) w.expect_whole("products");
    for (const auto& names : batches) {
      std::vector<store::product_row> rows;
      for (const auto& n : names) {
        store::product_row p;
        p.external_id = n.substr(0, n.find('='));
        p.name = n.substr(n.find('=') + 1);
        rows.push_back(p);
      }
      w.put_products(rows);
    }
    w.finish_products(true);
    w.close();
    auto c = w.counts();
    tx.commit();
    return c;
  };
  put({{"p1=one", "p2=two", "p3=three"}}, false);
  // p1 changes and changes back within the file: its second row is compared with what the first
  // one wrote, not with the hash read before the file; p3 is not carried; p4 is new, then repeated.
  const auto c = put({{"p1=uno", "p2=two", "p4=four"}, {"p1=one", "p4=four"}}, true);
  CHECK(entity(c, "products") == counts(1, 2, 2, 1));
  CHECK(f.column("SELECT external_id || '=' || name || (CASE WHEN active THEN '' ELSE ' (off)' END) "
                 "FROM portal.products ORDER BY 1") ==
        std::vector<std::string>{"p1=one", "p2=two", "p3=three (off)", "p4=four"});
  // The row switched off lost its hash (so the next import compares it in full); the others kept theirs.
  CHECK(f.column("SELECT external_id FROM portal.products WHERE content_hash IS NULL") ==
        std::vector<std::string>{"p3"});
}

TEST_CASE("changes only: no carried ids are recorded, and finishing such an entity in full is refused") {
  fixture f;
  const auto put = [&](bool changes) {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "onec", std::nullopt, /*bulk_load=*/true);
    if (changes) w.expect_changes("products");
    store::product_row p;
    p.external_id = "p1";
    p.name = changes ? "one, renamed" : "one";
    w.put_products({p});
    const auto carried = tx.exec1("SELECT count(*) FROM obmen_carried")[0].as<int>();
    if (changes) CHECK_THROWS_AS(w.finish_products(true), std::logic_error);
    w.finish_products(false);
    w.close();
    tx.commit();
    return carried;
  };
  put(false);  // a first load: bulk, nothing carried either
  CHECK(put(true) == 0);
  CHECK(f.one("SELECT name FROM portal.products") == "one, renamed");
}

TEST_CASE("declarations the portal holds as they are are settled by one read, without staging") {
  fixture f;
  const auto put = [&](const std::string& currency, bool warehouse_active) {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "onec", std::nullopt, /*bulk_load=*/true);
    w.put_price_types({{"pt", "", "Розничная", currency}});
    w.put_warehouses({{"wh", "", "Склад", warehouse_active}});
    const bool staged = !tx.exec1("SELECT to_regclass('pg_temp.obmen_stage_price_types') IS NULL AND "
                                  "to_regclass('pg_temp.obmen_stage_warehouses') IS NULL")[0]
                             .as<bool>();
    w.close();
    auto c = w.counts();
    tx.commit();
    return std::pair(staged, c);
  };
  CHECK(put("RUB", true).first);  // new: staged and merged
  const auto [staged, same] = put("RUB", true);
  CHECK_FALSE(staged);
  CHECK(entity(same, "price_types") == counts(0, 0, 1));
  CHECK(entity(same, "warehouses") == counts(0, 0, 1));
  // A change in either takes the merge again.
  const auto [staged2, changed] = put("", false);
  CHECK(staged2);
  CHECK(entity(changed, "price_types") == counts(0, 1, 0));
  CHECK(entity(changed, "warehouses") == counts(0, 0, 0, 1));  // switched off
  CHECK(f.one("SELECT coalesce(currency, 'NULL') FROM portal.price_types") == "NULL");
}

TEST_CASE("an offer whose product is not known is stored with a warning and no hash, and linked once it is") {
  fixture f;
  const auto put = [&](const std::vector<std::string>& products) {
    pqxx::work tx(*f.conn);
    store::catalog_writer w(tx, "onec", std::nullopt, /*bulk_load=*/true);
    std::vector<store::product_row> rows;
    for (const auto& id : products) {
      store::product_row p;
      p.external_id = id;
      p.name = id;
      rows.push_back(p);
    }
    w.put_products(rows);
    std::vector<store::offer_row> offers;
    for (const char* id : {"p1", "p2"}) {
      store::offer_row o;
      o.external_id = id;
      o.product_external_id = id;
      o.name = id;
      offers.push_back(o);
    }
    w.put_offers(offers);
    w.close();
    auto c = w.counts();
    tx.commit();
    return c;
  };
  const auto first = put({"p1"});
  CHECK(first.warnings == std::vector<std::string>{"offer 'p2': product 'p2' is not known"});
  CHECK(f.column("SELECT external_id || ':' || coalesce(product_id::text, '-') || ':' || "
                 "(content_hash IS NULL)::text FROM portal.offers ORDER BY 1") ==
        std::vector<std::string>{"p1:1:false", "p2:-:true"});
  // Sent again once its product exists: compared in full (no hash), so it is linked now.
  const auto second = put({"p1", "p2"});
  CHECK(second.warnings.empty());
  CHECK(f.one("SELECT count(*) FROM portal.offers WHERE product_id IS NOT NULL AND content_hash IS NOT NULL") == "2");
}

TEST_CASE("prefetch: the next file is checked while this one finishes, and imports the same with that check") {
  fixture f;
  temp_dir tmp;
  std::future<std::optional<commerceml::document_info>> next;
  onec::import_options o;
  o.source = "onec";
  o.prefetch = dobromyslov("data__offers0_1.xml");
  o.prefetched = &next;
  onec::import_catalog_file(*f.conn, dobromyslov("data__import0_1.xml"), o);
  REQUIRE(next.valid());
  const auto checked = next.get();
  REQUIRE(checked.has_value());
  CHECK(checked->kind == commerceml::document_kind::offers);
  CHECK(checked->has_offers);

  onec::import_options o2;
  o2.source = "onec";
  o2.checked = checked;
  const auto off = onec::import_catalog_file(*f.conn, dobromyslov("data__offers0_1.xml"), o2);
  CHECK(entity(off, "offers") == counts(44, 0, 0));
  CHECK(entity(off, "stock") == counts(132, 0, 0));

  // A broken next file: no check result, and importing it reports the error itself.
  const std::string full = read_bytes(dobromyslov("data__offers0_1.xml"));
  write_bytes(tmp / "offers.xml", full.substr(0, full.size() / 2));
  o.prefetch = tmp / "offers.xml";
  onec::import_catalog_file(*f.conn, dobromyslov("data__import0_1.xml"), o);
  REQUIRE(next.valid());
  CHECK_FALSE(next.get().has_value());
  CHECK_THROWS_AS(f.import(tmp / "offers.xml"), commerceml::parse_error);
}
