// sync.hpp on a real PostgreSQL ($OBMEN_TEST_DATABASE_URL) against an in-memory МойСклад (`fake`
// below: collections built from the doc samples in $OBMEN_REFERENCE_DIR/moysklad/samples, served
// in pages of 2 with nextHref, filter=updated>=/archived= and single-entity GETs with 404).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "adapters/moysklad/sync.hpp"
#include "mapping/mapping.hpp"
#include "tests/support/test_database.hpp"

namespace ms = obmen::moysklad;
namespace store = obmen::store;
using nlohmann::json;
using obmen::test::test_database;

namespace {

const std::string base = "https://api.moysklad.ru/api/remap/1.2/";
const std::string pumpkin = "26b36824-2c83-11e6-8a84-bae50000001b";  // Тыква
const std::string bananas = "d950551c-2c7f-11e6-8a84-bae50000000b";  // Бананы
const std::string mask = "26b36824-2c83-11e6-8a84-bae50000031b";     // Маска
const std::string parent = "66ccbc9f-f7d2-11e5-8a84-bae500000076";   // the variant's product (added)
const std::string variant = "671402e4-f7d2-11e5-8a84-bae50000007c";
const std::string folder = "3ea73e1a-2cad-11e6-8a84-bae50000001d";   // Овощи
const std::string store_main = "850ee995-f504-11e5-8a84-bae500000160";  // Основной склад
const std::string store_002 = "caf46ce5-0569-11e6-9464-e4de00000000";
const std::string order_sync_id = "734a9e26-45a2-4ead-849c-e144daeb854d";
const std::string order_id = "34efe2ee-015e-11e6-9464-e4de0000006b";
const std::string agent = "9794d400-f689-11e5-8a84-bae500000078";

json sample(const std::string& name) {
  const char* ref = std::getenv("OBMEN_REFERENCE_DIR");
  REQUIRE_MESSAGE(ref != nullptr, "OBMEN_REFERENCE_DIR is not set (CTest sets it)");
  std::ifstream in(std::filesystem::path(ref) / "moysklad" / "samples" / name);
  REQUIRE_MESSAGE(in.good(), "cannot read sample " << name);
  return json::parse(in);
}

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

json ref(const std::string& type, const std::string& id) {
  return {{"meta", {{"href", base + "entity/" + type + "/" + id}, {"type", type}, {"mediaType", "application/json"}}}};
}

// An in-memory МойСклад: what the sync may ask of the real one, nothing more.
class fake : public ms::api {
 public:
  std::map<std::string, json> collections;  // "entity/product" → rows
  std::map<std::string, json> bodies;       // exact path (no query) → body (arrays, metadata)
  json stock_rows = json::array();          // report/stock/bystore/current, all items
  json changed_stock = json::array();       // its answer to changedSince=
  std::vector<std::string> requests;        // every GET, as asked (decoded)
  std::string fail_path;                    // a GET of this path throws a transient api_error
  std::size_t limit_seen = 0;

  json get(const std::string& url_in, ms::weight) override {
    std::string url = url_in.rfind(base, 0) == 0 ? url_in.substr(base.size()) : url_in;
    requests.push_back(percent_decode(url));
    const auto q = url.find('?');
    const std::string path = url.substr(0, q);
    std::map<std::string, std::string> params;
    if (q != std::string::npos) {
      std::string query = url.substr(q + 1);
      std::size_t at = 0;
      while (at <= query.size()) {
        auto amp = query.find('&', at);
        if (amp == std::string::npos) amp = query.size();
        const std::string kv = query.substr(at, amp - at);
        const auto eq = kv.find('=');
        params[kv.substr(0, eq)] = eq == std::string::npos ? "" : percent_decode(kv.substr(eq + 1));
        at = amp + 1;
      }
    }
    if (path == fail_path) throw ms::api_error("GET " + url_in + ": HTTP 503", 503, 0, true);
    if (path == "report/stock/bystore/current" || path == "report/stock/all/current") {
      if (params.count("changedSince")) return changed_stock;
      if (auto f = params.find("filter"); f != params.end()) {
        REQUIRE(f->second.rfind("assortmentId=", 0) == 0);
        std::set<std::string> ids;
        std::string list = f->second.substr(13) + ",";
        for (std::size_t at = 0, c; (c = list.find(',', at)) != std::string::npos; at = c + 1) ids.insert(list.substr(at, c - at));
        json out = json::array();
        for (const auto& r : stock_rows)
          if (ids.count(r["assortmentId"].get<std::string>())) out.push_back(r);
        return out;
      }
      return stock_rows;
    }
    if (auto b = bodies.find(path); b != bodies.end()) return b->second;
    if (auto c = collections.find(path); c != collections.end()) return page(path, c->second, params);
    // A single entity: <collection>/<id>.
    const auto slash = path.rfind('/');
    if (auto c = collections.find(path.substr(0, slash)); c != collections.end())
      for (const auto& r : c->second)
        if (r["id"] == path.substr(slash + 1)) return r;
    throw ms::api_error("GET " + url_in + ": HTTP 404 (1021 Объект не найден)", 404, 1021, false);
  }
  json post(const std::string&, const json&) override { throw std::logic_error("no writes in inbound sync"); }
  json put(const std::string&, const json&) override { throw std::logic_error("no writes in inbound sync"); }
  void del(const std::string&) override { throw std::logic_error("no writes in inbound sync"); }

  json& row(const std::string& collection, const std::string& id) {
    for (auto& r : collections.at(collection))
      if (r["id"] == id) return r;
    FAIL("no row " << id << " in " << collection);
    throw std::logic_error("unreachable");
  }

  std::vector<std::string> asked(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& r : requests)
      if (r.rfind(prefix, 0) == 0) out.push_back(r);
    return out;
  }

 private:
  json page(const std::string& path, const json& all, const std::map<std::string, std::string>& params) {
    std::string since;
    bool archived = false;
    if (auto f = params.find("filter"); f != params.end()) {
      std::string filter = f->second + ";";
      for (std::size_t at = 0, c; (c = filter.find(';', at)) != std::string::npos; at = c + 1) {
        const std::string cond = filter.substr(at, c - at);
        if (cond.rfind("updated>=", 0) == 0) since = cond.substr(9);
        else if (cond == "archived=true") archived = true;
        else if (cond != "archived=false") FAIL("unexpected filter condition " << cond);
      }
    }
    json rows = json::array();
    for (const auto& r : all) {
      if (!archived && r.value("archived", false)) continue;
      if (!since.empty() && r.value("updated", std::string()) < since) continue;
      rows.push_back(r);
    }
    const std::size_t limit = params.count("limit") ? std::stoul(params.at("limit")) : 1000;
    const std::size_t offset = params.count("offset") ? std::stoul(params.at("offset")) : 0;
    limit_seen = limit;
    json out;
    out["meta"] = {{"href", base + path}, {"size", rows.size()}, {"limit", limit}, {"offset", offset}};
    out["rows"] = json::array();
    for (std::size_t i = offset; i < rows.size() && i < offset + limit; ++i) out["rows"].push_back(rows[i]);
    if (offset + limit < rows.size()) {
      std::string next = base + path + "?";
      for (const auto& [k, v] : params)
        if (k != "offset") next += k + "=" + ms::url_encode(v) + "&";
      out["meta"]["nextHref"] = next + "offset=" + std::to_string(offset + limit);
    }
    return out;
  }
};

// The doc samples, made consistent where the docs are not (price types the products reference,
// the variant's product, attribute metadata).
void load_samples(fake& f) {
  json products = sample("product_list_response.json")["rows"];
  products[0]["productFolder"] = ref("productfolder", folder);
  json parent_row = products[2];
  parent_row["id"] = parent;
  parent_row["meta"] = ref("product", parent)["meta"];
  parent_row["name"] = "ТоварМногоМодификаций";
  parent_row["variantsCount"] = 1;
  parent_row.erase("salePrices");
  parent_row.erase("barcodes");
  products.push_back(parent_row);
  f.collections["entity/product"] = products;

  json variants = sample("variant_list_response.json")["rows"];
  variants[0]["salePrices"][0]["value"] = 150000.0;
  f.collections["entity/variant"] = variants;
  f.collections["entity/productfolder"] = sample("productfolder_list_response.json")["rows"];
  f.collections["entity/uom"] = json::parse(
      R"([{"meta":{"href":"https://api.moysklad.ru/api/remap/1.2/entity/uom/19f1edc0-fc42-4001-94cb-c9ec9c62ec10","type":"uom"},
          "id":"19f1edc0-fc42-4001-94cb-c9ec9c62ec10","name":"шт","code":"796"}])");
  f.collections["entity/currency"] = json::parse(
      R"([{"id":"6314188d-2c7f-11e6-8a84-bae500000055","name":"руб","isoCode":"RUB"}])");
  f.collections["entity/product/metadata/attributes"] = json::parse(
      R"([{"id":"0c2e54cd-2c80-11e6-8a84-bae50000009c","name":"Экспорт","type":"boolean"},
          {"id":"0c2e5dc5-2c80-11e6-8a84-bae50000009d","name":"Изготовитель","type":"string"}])");
  f.bodies["context/companysettings/pricetype"] = json::parse(
      R"([{"id":"672559f1-cbf3-11e1-9eb9-889ffa6f49fd","name":"Цена продажи"},
          {"id":"672559f1-cbf3-11e1-9eb9-889ffa6f2222","name":"Цена для друзей"},
          {"id":"672559f1-cbf3-11e1-9eb9-889ffa6f23fd","name":"Цена для масок"},
          {"id":"672559f1-cbf3-11e1-9eb9-889ffa6f4444","name":"Цена для конкурентов"}])");
  f.collections["entity/store"] = sample("store_list_response.json")["rows"];
  f.stock_rows = json::array({{{"assortmentId", pumpkin}, {"storeId", store_main}, {"stock", 11}},
                              {{"assortmentId", pumpkin}, {"storeId", store_002}, {"stock", 2.5}},
                              {{"assortmentId", bananas}, {"storeId", store_main}, {"stock", 0}},
                              {{"assortmentId", bananas}, {"storeId", nullptr}, {"stock", -1}},
                              {{"assortmentId", variant}, {"storeId", store_main}, {"stock", 7}}});

  json counterparties = sample("counterparty_list_response.json")["rows"];
  json buyer = sample("counterparty_get_response.json");
  buyer["id"] = agent;
  buyer["inn"] = "7701234567";
  counterparties.push_back(buyer);
  f.collections["entity/counterparty"] = counterparties;
  f.bodies["entity/customerorder/metadata"] = sample("customerorder_metadata_states_response.json");
  f.collections["entity/customerorder"] = sample("customerorder_list_response.json")["rows"];
  f.collections["entity/invoiceout"] = sample("invoiceout_list_response.json")["rows"];
  f.collections["entity/demand"] = sample("demand_list_response.json")["rows"];
}

struct clock {
  std::chrono::system_clock::time_point at = *ms::parse_msk("2024-05-01 12:00:00");
};

class fixture {
 public:
  test_database db;
  std::unique_ptr<pqxx::connection> conn = db.connect();
  fake api;
  std::shared_ptr<clock> now = std::make_shared<clock>();
  ms::source_settings settings;

  fixture() {
    load_samples(api);
    settings.name = "ms";
    settings.page_size = 2;
    auto c = now;
    settings.clock = [c] { return c->at; };
  }

  std::string one(const std::string& sql) {
    pqxx::work tx(*conn);
    const auto r = tx.exec(sql);
    REQUIRE_MESSAGE(r.size() == 1, sql);
    return r[0][0].is_null() ? "NULL" : r[0][0].as<std::string>();
  }
  std::vector<std::string> column(const std::string& sql) {
    pqxx::work tx(*conn);
    std::vector<std::string> out;
    for (const auto& r : tx.exec(sql)) out.push_back(r[0].is_null() ? "NULL" : r[0].as<std::string>());
    return out;
  }
  // Every portal row with its xmin: a sync that changes nothing leaves this identical.
  std::vector<std::string> row_versions() {
    std::vector<std::string> out;
    for (const char* t : {"categories", "attributes", "products", "offers", "price_types", "prices", "warehouses",
                          "stock", "counterparties", "orders", "documents"})
      for (auto& v : column(std::string("SELECT '") + t + ":' || id || ':' || xmin::text FROM portal." + t +
                            " ORDER BY id"))
        out.push_back(std::move(v));
    return out;
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

store::entity_counts entity(const store::import_counts& c, const std::string& name) {
  const auto it = c.by_entity.find(name);
  return it == c.by_entity.end() ? store::entity_counts{} : it->second;
}

std::shared_ptr<const obmen::mapping::rules> rules_from(const std::string& yaml) {
  auto r = obmen::mapping::parse(yaml, "mapping.yaml");
  REQUIRE(r.ok());
  return std::make_shared<const obmen::mapping::rules>(*r.value);
}

}  // namespace

namespace doctest {
template <>
struct StringMaker<store::entity_counts> {
  static String convert(const store::entity_counts& c) {
    const auto s = "{ins " + std::to_string(c.inserted) + ", upd " + std::to_string(c.updated) + ", same " +
                   std::to_string(c.unchanged) + ", deact " + std::to_string(c.deactivated) + ", skip " +
                   std::to_string(c.skipped) + "}";
    return String(s.c_str());
  }
};
}  // namespace doctest

TEST_CASE("full catalog sync: exact rows in the portal; a second one changes nothing") {
  fixture f;
  const auto c = ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  INFO(c.summary());
  CHECK(entity(c, "categories") == counts(2, 0, 0));
  CHECK(entity(c, "attributes") == counts(2, 0, 0));
  CHECK(entity(c, "price_types") == counts(4, 0, 0));
  CHECK(entity(c, "products") == counts(4, 0, 0));
  CHECK(entity(c, "offers") == counts(4, 0, 0));  // 3 products without variants + 1 variant
  CHECK(entity(c, "prices") == counts(6, 0, 0));  // the variant's prices of 0 are "not set"
  CHECK(c.warnings.empty());

  // paged at limit=2, following nextHref
  CHECK(f.api.limit_seen == 2);
  CHECK(f.api.asked("entity/product?").size() == 2);
  CHECK(f.api.asked("entity/product?limit=2&offset=2").size() == 1);

  CHECK(f.one("SELECT name || '|' || sku || '|' || barcode || '|' || unit || '|' || vat_rate || '|' || "
              "attributes::text FROM portal.products WHERE external_id = '" + pumpkin + "'") ==
        "Тыква|Ar23|20000000|шт|18|{\"Экспорт\": \"true\", \"Изготовитель\": \"фермерское хозяйство \\\"Петрович\\\"\"}");
  CHECK(f.one("SELECT c.external_id FROM portal.products p JOIN portal.categories c ON c.id = p.category_id "
              "WHERE p.external_id = '" + pumpkin + "'") == folder);
  CHECK(f.column("SELECT t.name || '=' || pr.value::text || ' ' || coalesce(pr.currency, '-') FROM portal.prices pr "
                 "JOIN portal.offers o ON o.id = pr.offer_id JOIN portal.price_types t ON t.id = pr.price_type_id "
                 "WHERE o.external_id = '" + bananas + "' ORDER BY t.name") ==
        std::vector<std::string>{"Цена для друзей=1.0000 RUB", "Цена продажи=3463472370.0000 RUB"});
  CHECK(f.one("SELECT p.external_id || '|' || o.characteristic_id || '|' || o.characteristics::text FROM portal.offers o "
              "JOIN portal.products p ON p.id = o.product_id WHERE o.external_id = '" + variant + "'") ==
        parent + "|" + variant +
            "|[{\"name\": \"Цвет\", \"value\": \"красны\"}, {\"name\": \"Свежесть\", \"value\": \"Свежий\"}, "
            "{\"name\": \"Вкус\", \"value\": \"Вкусный\"}]");
  CHECK(f.one("SELECT value::text FROM portal.prices pr JOIN portal.offers o ON o.id = pr.offer_id WHERE o.external_id = '" +
              variant + "'") == "1500.0000");
  // the signpost: the clock before the run minus the overlap, in MSK
  CHECK(ms::bookmark(*f.conn, "ms", "catalog") == "2024-05-01 11:55:00");

  const auto before = f.row_versions();
  const auto again = ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  INFO(again.summary());
  CHECK_FALSE(again.changed());
  CHECK(entity(again, "products") == counts(0, 0, 4));
  CHECK(entity(again, "offers") == counts(0, 0, 4));
  CHECK(f.row_versions() == before);

  // a full sync deactivates what it no longer carries
  auto& rows = f.api.collections["entity/product"];
  rows.erase(rows.begin() + 1);  // Бананы
  const auto third = ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  CHECK(entity(third, "products") == counts(0, 0, 3, 1));
  CHECK(entity(third, "offers") == counts(0, 0, 3, 1));
  CHECK(f.one("SELECT active FROM portal.products WHERE external_id = '" + bananas + "'") == "f");
}

TEST_CASE("incremental: filter=updated>=bookmark with archived rows, only changed rows applied") {
  fixture f;
  ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  f.api.requests.clear();
  f.api.row("entity/product", bananas)["name"] = "Бананы спелые";
  f.api.row("entity/product", bananas)["updated"] = "2024-05-01 11:58:10";
  f.api.row("entity/product", mask)["archived"] = true;
  f.api.row("entity/product", mask)["updated"] = "2024-05-01 11:59:00";
  f.now->at = *ms::parse_msk("2024-05-01 13:00:00");

  const auto c = ms::sync_incremental(*f.conn, f.api, f.settings, "catalog");
  INFO(c.summary());
  const auto asked = f.api.asked("entity/product?");
  REQUIRE(asked.size() == 1);
  CHECK(asked[0] == "entity/product?limit=2&filter=updated>=2024-05-01 11:55:00;archived=true;archived=false");
  CHECK(f.api.asked("entity/variant?")[0] ==
        "entity/variant?limit=2&filter=updated>=2024-05-01 11:55:00;archived=true;archived=false");
  // Бананы renamed, Маска archived → inactive; nothing else is carried or deactivated.
  CHECK(entity(c, "products") == counts(0, 1, 0, 1));
  CHECK(entity(c, "offers") == counts(0, 1, 0, 1));
  CHECK(entity(c, "categories") == store::entity_counts{});
  CHECK(f.one("SELECT name FROM portal.products WHERE external_id = '" + bananas + "'") == "Бананы спелые");
  CHECK(f.one("SELECT active FROM portal.products WHERE external_id = '" + mask + "'") == "f");
  CHECK(f.one("SELECT active FROM portal.offers WHERE external_id = '" + mask + "'") == "f");
  CHECK(f.one("SELECT count(*) FROM portal.products WHERE active") == "3");
  CHECK(ms::bookmark(*f.conn, "ms", "catalog") == "2024-05-01 12:55:00");

  // no bookmark → a full run
  f.api.requests.clear();
  ms::sync_incremental(*f.conn, f.api, f.settings, "counterparties");
  CHECK(f.api.asked("entity/counterparty?")[0] == "entity/counterparty?limit=2");
  CHECK(ms::bookmark(*f.conn, "ms", "counterparties") == "2024-05-01 12:55:00");
}

TEST_CASE("a sync that throws leaves the portal and the bookmark as they were") {
  fixture f;
  ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  const auto before = f.row_versions();
  f.api.row("entity/product", bananas)["name"] = "Бананы спелые";
  f.api.row("entity/product", bananas)["updated"] = "2024-05-01 11:58:10";
  f.api.fail_path = "entity/variant";  // after the products were applied in the transaction
  f.now->at = *ms::parse_msk("2024-05-01 13:00:00");
  try {
    ms::sync_incremental(*f.conn, f.api, f.settings, "catalog");
    FAIL("no exception");
  } catch (const ms::api_error& e) {
    CHECK(e.transient());
    CHECK(e.status() == 503);
  }
  CHECK(f.row_versions() == before);
  CHECK(f.one("SELECT name FROM portal.products WHERE external_id = '" + bananas + "'") == "Бананы");
  CHECK(ms::bookmark(*f.conn, "ms", "catalog") == "2024-05-01 11:55:00");

  // dry run: counts, no change, no bookmark
  f.api.fail_path.clear();
  const auto dry = ms::sync_incremental(*f.conn, f.api, f.settings, "catalog", true);
  CHECK(entity(dry, "products") == counts(0, 1, 0));
  CHECK(f.row_versions() == before);
  CHECK(ms::bookmark(*f.conn, "ms", "catalog") == "2024-05-01 11:55:00");
}

TEST_CASE("unmapped policy fail aborts with the portal unchanged; mapped and ignored price types") {
  fixture f;
  f.settings.rules = rules_from(
      "price_types:\n"
      "  - match: { name: \"Цена продажи\" }\n"
      "    code: retail\n"
      "  - match: { name: \"Цена для друзей\" }\n"
      "    ignore: true\n"
      "unmapped:\n"
      "  price_types: fail\n");
  try {
    ms::sync_full(*f.conn, f.api, f.settings, "catalog");
    FAIL("no exception");
  } catch (const ms::sync_error& e) {
    CHECK(std::string(e.what()).find("МойСклад source 'ms': ") == 0);
    CHECK(std::string(e.what()).find("Цена для масок") != std::string::npos);
  }
  CHECK(f.one("SELECT count(*) FROM portal.products") == "0");
  CHECK(f.one("SELECT count(*) FROM portal.price_types") == "0");
  CHECK_FALSE(ms::bookmark(*f.conn, "ms", "catalog"));

  f.settings.rules = rules_from(
      "price_types:\n"
      "  - match: { name: \"Цена продажи\" }\n"
      "    code: retail\n"
      "  - match: { name: \"Цена для друзей\" }\n"
      "    ignore: true\n"
      "unmapped:\n"
      "  price_types: ignore\n");
  const auto c = ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  CHECK(f.column("SELECT code FROM portal.price_types ORDER BY code") == std::vector<std::string>{"retail"});
  CHECK(entity(c, "prices") == counts(3, 0, 0));  // Тыква, Бананы, the variant: retail only
}

TEST_CASE("webhook events: an update is fetched and applied, a DELETE and a 404 deactivate") {
  fixture f;
  ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  f.api.requests.clear();
  f.api.row("entity/product", pumpkin)["name"] = "Тыква мускатная";
  f.api.row("entity/product", pumpkin)["salePrices"][0]["value"] = 5000;
  json body = sample("webhook_notification_payload.json");
  body["events"][0]["meta"]["href"] = base + "entity/product/" + pumpkin;
  const auto events = ms::parse_webhook(body);
  const auto c = ms::apply_events(*f.conn, f.api, f.settings, events);
  INFO(c.summary());
  CHECK(f.api.requests.front() == "entity/product/" + pumpkin);
  CHECK(entity(c, "products") == counts(0, 1, 0));
  CHECK(f.one("SELECT name FROM portal.products WHERE external_id = '" + pumpkin + "'") == "Тыква мускатная");
  CHECK(f.one("SELECT pr.value::text FROM portal.prices pr JOIN portal.offers o ON o.id = pr.offer_id "
              "JOIN portal.price_types t ON t.id = pr.price_type_id WHERE o.external_id = '" + pumpkin +
              "' AND t.name = 'Цена продажи'") == "50.0000");

  f.api.requests.clear();
  std::vector<ms::event> del = {{"product", bananas, base + "entity/product/" + bananas, "DELETE", {}},
                                {"variant", variant, base + "entity/variant/" + variant, "UPDATE", {}},
                                {"webhook", pumpkin, base + "entity/webhook/" + pumpkin, "UPDATE", {}}};
  f.api.collections["entity/variant"] = json::array();  // the variant is gone: GET → 404
  const auto d = ms::apply_events(*f.conn, f.api, f.settings, del);
  INFO(d.summary());
  CHECK(f.api.asked("entity/product/").empty());  // DELETE: no request
  CHECK(entity(d, "products") == counts(0, 0, 0, 1));
  CHECK(entity(d, "offers") == counts(0, 0, 0, 2));  // Бананы' base offer, the variant
  CHECK(f.one("SELECT active FROM portal.products WHERE external_id = '" + bananas + "'") == "f");
  CHECK(f.one("SELECT active FROM portal.offers WHERE external_id = '" + variant + "'") == "f");
  REQUIRE(d.warnings.size() == 1);
  CHECK(d.warnings[0] == "webhook event 3, webhook '" + pumpkin + "': type 'webhook' is not synced; skipped");

  // Restored in МойСклад and synced again unchanged: active again (the deactivation forgot the
  // row's content hash, so the import compares it in full instead of skipping it).
  ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  CHECK(f.one("SELECT active FROM portal.products WHERE external_id = '" + bananas + "'") == "t");
}

TEST_CASE("stock: full per store, incremental by changedSince, the stock webhook's report") {
  fixture f;
  ms::sync_full(*f.conn, f.api, f.settings, "catalog");
  const auto c = ms::sync_full(*f.conn, f.api, f.settings, "stock");
  INFO(c.summary());
  CHECK(f.api.asked("report/stock/bystore/current") ==
        std::vector<std::string>{"report/stock/bystore/current?include=zeroLines"});
  CHECK(entity(c, "warehouses") == counts(4, 0, 0));
  CHECK(entity(c, "stock") == counts(3, 0, 0));
  const std::string q = "SELECT o.external_id || '@' || w.name || '=' || s.quantity::text FROM portal.stock s "
                        "JOIN portal.offers o ON o.id = s.offer_id JOIN portal.warehouses w ON w.id = s.warehouse_id "
                        "ORDER BY 1";
  CHECK(f.column(q) == std::vector<std::string>{pumpkin + "@002=2.5", pumpkin + "@Основной склад=11",
                                                variant + "@Основной склад=7"});

  // incremental: the changed items, then their stock in every store
  f.api.requests.clear();
  f.api.stock_rows[0]["stock"] = 4;
  f.api.changed_stock = json::array({{{"assortmentId", pumpkin}, {"storeId", store_main}, {"stock", 4}}});
  f.now->at = *ms::parse_msk("2024-05-01 13:00:00");
  const auto inc = ms::sync_incremental(*f.conn, f.api, f.settings, "stock");
  CHECK(f.api.asked("report/stock/bystore/current") ==
        std::vector<std::string>{"report/stock/bystore/current?changedSince=2024-05-01 11:55:00",
                                 "report/stock/bystore/current?filter=assortmentId=" + pumpkin});
  CHECK(entity(inc, "stock") == counts(0, 1, 1));
  CHECK(f.column(q) == std::vector<std::string>{pumpkin + "@002=2.5", pumpkin + "@Основной склад=4",
                                                variant + "@Основной склад=7"});

  // a bookmark older than 24 hours: full stock again
  f.api.requests.clear();
  f.now->at = *ms::parse_msk("2024-05-03 13:00:00");
  ms::sync_incremental(*f.conn, f.api, f.settings, "stock");
  CHECK(f.api.asked("report/stock/bystore/current") ==
        std::vector<std::string>{"report/stock/bystore/current?include=zeroLines"});

  // the stock webhook: its reportUrl verbatim, then the items' stock by store; the variant sold out
  f.api.requests.clear();
  f.api.stock_rows.erase(f.api.stock_rows.size() - 1);
  f.api.changed_stock = json::array({{{"assortmentId", variant}, {"stock", 0}}});
  const std::string url = ms::parse_webhookstock(sample("webhookstock_notification_payload.json"));
  const auto w = ms::apply_stock_report(*f.conn, f.api, f.settings, url);
  CHECK(f.api.asked("report/stock/")[0] == "report/stock/all/current?changedSince=2022-09-24 19:14:32");
  CHECK(entity(w, "stock").updated == 1);
  CHECK(f.column(q) == std::vector<std::string>{pumpkin + "@002=2.5", pumpkin + "@Основной склад=4",
                                                variant + "@Основной склад=0"});
}

TEST_CASE("counterparties and orders: a portal order's state, its invoice and shipment") {
  fixture f;
  {
    pqxx::work tx(*f.conn);
    tx.exec_params("INSERT INTO portal.orders (guid, number, total) VALUES ($1::uuid, 'P-1', 10)", order_sync_id);
    tx.commit();
  }
  const auto cps = ms::sync_full(*f.conn, f.api, f.settings, "counterparties");
  CHECK(entity(cps, "counterparties") == counts(5, 0, 0));
  CHECK(f.one("SELECT name || '|' || legal_name || '|' || inn || '|' || kpp FROM portal.counterparties "
              "WHERE external_id = '12a8e347-692c-11e6-8a84-bae500000055'") ==
        "ООО \"Покупатель\"|Общество с ограниченной ответственностью \"Покупатель\"|7736570902|773601002");

  const auto c = ms::sync_full(*f.conn, f.api, f.settings, "orders");
  INFO(c.summary());
  for (const auto& w : c.warnings) INFO(w);
  CHECK(entity(c, "orders").updated == 1);
  CHECK(f.one("SELECT status || '|' || erp_status || '|' || erp_number || '|' || total::text || '|' || "
              "(SELECT external_id FROM portal.counterparties WHERE id = counterparty_id) FROM portal.orders") ==
        "Новый|Новый|00001|3464537012.06|" + agent);
  // the invoice linked to the order by its customerOrder (34efe2ee… → syncId = the order's guid)
  CHECK(f.one("SELECT kind || '|' || number || '|' || amount::text || '|' || (order_id IS NOT NULL)::text "
              "FROM portal.documents WHERE external_id = '2ee1ce22-019e-11e6-9464-e4de0000007d'") ==
        "invoice|13212|4087396116.76|true");
  CHECK(f.one("SELECT count(*) FROM portal.documents WHERE kind = 'waybill'") == "2");
  CHECK(f.one("SELECT count(*) FROM portal.documents WHERE kind = 'invoice'") == "3");
  // the order's id was known from the list: no extra GET of the order
  CHECK(f.api.asked("entity/customerorder/" + order_id).empty());

  const auto again = ms::sync_full(*f.conn, f.api, f.settings, "orders");
  CHECK_FALSE(again.changed());
}
