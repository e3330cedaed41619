// decode.hpp on the real МойСклад doc samples ($OBMEN_REFERENCE_DIR/moysklad/samples) and on
// copies edited in memory; exact values and messages.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "adapters/moysklad/decode.hpp"

namespace ms = obmen::moysklad;
using nlohmann::json;

namespace {

json sample(const std::string& name) {
  const char* ref = std::getenv("OBMEN_REFERENCE_DIR");
  REQUIRE_MESSAGE(ref != nullptr, "OBMEN_REFERENCE_DIR is not set (CTest sets it)");
  const auto path = std::filesystem::path(ref) / "moysklad" / "samples" / name;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path.string());
  return json::parse(in);
}

std::string money(const std::string& number_text) { return ms::kopecks_to_decimal(json::parse(number_text)); }

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const ms::decode_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("money: kopecks to currency units, canonical form") {
  CHECK(money("55500") == "555.00");
  CHECK(money("55500.0") == "555.00");
  CHECK(money("12345.5") == "123.455");
  CHECK(money("50260.86956521739") == "502.6087");  // report_stock_all_response.json cost
  CHECK(money("346453701206") == "3464537012.06");  // customerorder_get_response.json sum
  CHECK(money("346347237000.0") == "3463472370.00");
  CHECK(money("0") == "0.00");
  CHECK(money("0.0") == "0.00");
  CHECK(money("1") == "0.01");
  CHECK(money("-150") == "-1.50");
  CHECK(money("-0.004") == "0.00");
  CHECK(money("0.005") == "0.0001");        // half away from zero at the 4th digit
  CHECK(money("-0.005") == "-0.0001");
  CHECK(money("99.999999") == "1.00");
  CHECK(money("9007199254740993") == "90071992547409.93");  // 2^53 + 1 stays exact as an integer
  CHECK(money("9223372036854775807") == "92233720368547758.07");
  CHECK(money("1e3") == "10.00");
  CHECK(error_of([] { ms::kopecks_to_decimal(json("12"), "salePrices[0].value"); }) ==
        "salePrices[0].value is not a number");
  CHECK(error_of([] { ms::kopecks_to_decimal(json(nullptr)); }) == "value is not a number");
}

TEST_CASE("money: decimal text back to kopecks") {
  CHECK(ms::decimal_to_kopecks("555") == 55500);
  CHECK(ms::decimal_to_kopecks("555.00") == 55500);
  CHECK(ms::decimal_to_kopecks("123.455") == 12346);
  CHECK(ms::decimal_to_kopecks("-1.505") == -151);
  CHECK(ms::decimal_to_kopecks("1 234,5") == 123450);
  CHECK(ms::decimal_to_kopecks("0.004") == 0);
  CHECK(ms::decimal_to_kopecks("90071992547409.93") == 9007199254740993);
  CHECK(error_of([] { ms::decimal_to_kopecks("12a"); }) == "'12a' is not a number");
  CHECK(error_of([] { ms::decimal_to_kopecks("100000000000000000000"); }) ==
        "'100000000000000000000' does not fit in kopecks");
}

TEST_CASE("quantities keep their digits") {
  CHECK(ms::quantity_to_decimal(json::parse("11")) == "11");
  CHECK(ms::quantity_to_decimal(json::parse("4.5")) == "4.5");
  CHECK(ms::quantity_to_decimal(json::parse("-5")) == "-5");
  CHECK(ms::quantity_to_decimal(json::parse("46.50")) == "46.5");
  CHECK(ms::quantity_to_decimal(json::parse("0.001")) == "0.001");
}

TEST_CASE("dates: MSK wire time <-> UTC") {
  CHECK(ms::msk_to_utc("2016-04-13 12:57:00") == "2016-04-13T09:57:00Z");
  CHECK(ms::msk_to_utc("2020-06-17 18:08:32.000") == "2020-06-17T15:08:32.000Z");
  CHECK(ms::msk_to_utc("2024-01-01 02:30") == "2023-12-31T23:30:00Z");  // minute precision, across a year
  CHECK(ms::msk_to_utc("2024-03-01 01:00:00") == "2024-02-29T22:00:00Z");  // leap day
  CHECK(ms::msk_to_utc("1970-01-01 03:00:00") == "1970-01-01T00:00:00Z");
  CHECK_FALSE(ms::msk_to_utc("2024-02-30 10:00:00"));
  CHECK_FALSE(ms::msk_to_utc("2024-01-01T10:00:00"));
  CHECK_FALSE(ms::msk_to_utc("2024-01-01 24:00:00"));
  CHECK_FALSE(ms::msk_to_utc("2024-01-01 10:00:00Z"));
  CHECK_FALSE(ms::msk_to_utc("yesterday"));
  CHECK(ms::utc_to_msk("2023-12-31T23:30:00Z") == "2024-01-01 02:30:00");
  CHECK(ms::utc_to_msk("2020-06-17T15:08:32.123Z") == "2020-06-17 18:08:32.123");
  CHECK(ms::utc_to_msk("2020-06-17 15:08:32+00:00") == "2020-06-17 18:08:32");
  CHECK_FALSE(ms::utc_to_msk("2020-06-17T15:08:32"));
  CHECK_FALSE(ms::utc_to_msk("2020-06-17T15:08Z"));
  const auto t = ms::parse_msk("2024-05-01 12:00:00");
  REQUIRE(t);
  CHECK(ms::to_msk(*t) == "2024-05-01 12:00:00");
  CHECK(ms::to_msk(*t + std::chrono::milliseconds(999)) == "2024-05-01 12:00:00");
  CHECK(ms::to_msk(std::chrono::system_clock::time_point{}) == "1970-01-01 03:00:00");
}

TEST_CASE("ids from hrefs, with and without a query string") {
  CHECK(ms::id_from_href("https://api.moysklad.ru/api/remap/1.2/entity/product/26b36824-2c83-11e6-8a84-bae50000001b") ==
        "26b36824-2c83-11e6-8a84-bae50000001b");
  // report/stock/all rows (report_stock_all_response.json)
  const json report = sample("report_stock_all_response.json");
  const std::string href = report["rows"][0]["meta"]["href"];
  REQUIRE(href.find('?') != std::string::npos);
  CHECK(ms::id_from_href(href).size() == 36);
  CHECK(href.find(ms::id_from_href(href) + "?") != std::string::npos);
  CHECK(ms::id_from_href("https://x/entity/variant/671402e4-f7d2-11e5-8a84-bae50000007c?expand=product.supplier") ==
        "671402e4-f7d2-11e5-8a84-bae50000007c");
  CHECK(ms::id_from_href("https://x/entity/productfolder/3ea73e1a-2cad-11e6-8a84-bae50000001d/") ==
        "3ea73e1a-2cad-11e6-8a84-bae50000001d");
  CHECK(error_of([] { ms::id_from_href("https://x/entity/product/metadata"); }) ==
        "href 'https://x/entity/product/metadata' has no id");
  CHECK(ms::url_encode("updated>=2024-01-01 12:00:00;archived=true") ==
        "updated%3E%3D2024-01-01%2012%3A00%3A00%3Barchived%3Dtrue");
}

TEST_CASE("error bodies become one line") {
  CHECK(ms::error_message(sample("error_3000_required_field.json")) ==
        "3000 Ошибка сохранения объекта: поле 'name' не может быть пустым или отсутствовать (parameter 'name')");
  const json two = json::parse(R"({"errors":[{"error":"a\nb","code":1},{"error":"c"}]})");
  CHECK(ms::error_message(two) == "1 a b; c");
  CHECK(ms::error_message(json::object()) == "");
}

TEST_CASE("productfolder -> category") {
  const json list = sample("productfolder_list_response.json");
  std::vector<std::string> warnings;
  const auto folders = ms::decode_rows<obmen::model::category>(list["rows"], "productfolder", "entity/productfolder", 1,
                                                                ms::decode_folder, warnings);
  REQUIRE(folders.size() == 2);
  CHECK(warnings.empty());
  CHECK(folders[0].external_id == "3ea73e1a-2cad-11e6-8a84-bae50000001d");
  CHECK(folders[0].name == "Овощи");
  CHECK(folders[0].parent_external_id == "");
  CHECK(folders[0].active);
  json child = list["rows"][0];
  child["productFolder"] = list["rows"][1]; // a reference: {"meta":…} plus fields when expanded
  child["archived"] = true;
  const auto c = ms::decode_folder(child);
  CHECK(c.parent_external_id == "275961ab-2cad-11e6-8a84-bae50000001a");
  CHECK_FALSE(c.active);
}

TEST_CASE("product -> product + base offer, prices in currency units") {
  const json list = sample("product_list_response.json");
  ms::lookups l;
  l.uoms["19f1edc0-fc42-4001-94cb-c9ec9c62ec10"] = {"шт", "796"};
  l.currencies["6314188d-2c7f-11e6-8a84-bae500000055"] = "RUB";
  const auto d = ms::decode_product(list["rows"][0], l);
  const auto& p = d.product;
  CHECK(p.external_id == "26b36824-2c83-11e6-8a84-bae50000001b");
  CHECK(p.name == "Тыква");
  CHECK(p.description == "Тыква, Германия");
  CHECK(p.code == "pumpkin1");
  CHECK(p.sku == "Ar23");
  CHECK(p.barcode == "20000000");  // the first one, whatever its kind
  CHECK(p.unit == "шт");
  CHECK(p.unit_code == "796");
  CHECK(p.version == "2016-06-07 10:40:48");
  CHECK(p.active);
  REQUIRE(p.taxes.size() == 1);
  CHECK(p.taxes[0].rate == "18");
  REQUIRE(p.attributes.size() == 2);
  CHECK(p.attributes[0].attribute_id == "0c2e54cd-2c80-11e6-8a84-bae50000009c");
  CHECK(p.attributes[0].values == std::vector<std::string>{"true"});
  CHECK(p.attributes[1].values == std::vector<std::string>{"фермерское хозяйство \"Петрович\""});
  REQUIRE(d.attribute_defs.size() == 2);
  CHECK(d.attribute_defs[1].name == "Изготовитель");
  REQUIRE(d.base_offer);
  const auto& o = *d.base_offer;
  CHECK(o.external_id == p.external_id);
  CHECK(o.product_external_id == p.external_id);
  CHECK(o.characteristic_id == "");
  REQUIRE(o.prices);
  REQUIRE(o.prices->size() == 2);
  CHECK((*o.prices)[0].price_type_id == "672559f1-cbf3-11e1-9eb9-889ffa6f49fd");
  CHECK((*o.prices)[0].value == "33.53");
  CHECK((*o.prices)[0].currency == "RUB");
  CHECK((*o.prices)[1].value == "32.53");
  CHECK_FALSE(o.stock);

  const auto bananas = ms::decode_product(list["rows"][1], ms::lookups{});
  CHECK((*bananas.base_offer->prices)[0].value == "3463472370.00");
  CHECK((*bananas.base_offer->prices)[0].currency == "");  // currency not in the lookup
  CHECK(bananas.product.unit == "");

  json with_variants = list["rows"][0];
  with_variants["variantsCount"] = 3;
  with_variants["archived"] = true;
  with_variants["productFolder"] = json::parse(
      R"({"meta":{"href":"https://api.moysklad.ru/api/remap/1.2/entity/productfolder/3ea73e1a-2cad-11e6-8a84-bae50000001d"}})");
  const auto v = ms::decode_product(with_variants, l);
  CHECK_FALSE(v.base_offer);
  CHECK_FALSE(v.product.active);
  CHECK(v.product.category_ids == std::vector<std::string>{"3ea73e1a-2cad-11e6-8a84-bae50000001d"});

  json zero = list["rows"][0];
  zero["salePrices"][0]["value"] = 0.0;
  CHECK(ms::decode_product(zero, l).base_offer->prices->size() == 1);  // 0 = not set
}

TEST_CASE("a row that cannot be decoded is skipped with a warning naming it") {
  json list = sample("product_list_response.json");
  list["rows"][1]["salePrices"][0]["value"] = "100";
  list["rows"][2]["name"] = 5;
  std::vector<std::string> warnings;
  const auto rows = ms::decode_rows<ms::decoded_product>(
      list["rows"], "product", "entity/product", 16,
      [](const json& r) { return ms::decode_product(r, ms::lookups{}); }, warnings);
  CHECK(rows.size() == list["rows"].size() - 2);
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0] ==
        "product 'd950551c-2c7f-11e6-8a84-bae50000000b' (entity/product row 17): salePrices[0].value is not a "
        "number; skipped");
  CHECK(warnings[1] == "product '26b36824-2c83-11e6-8a84-bae50000031b' (entity/product row 18): name is not a string; skipped");
  CHECK(error_of([&] {
          ms::decode_rows<ms::decoded_product>(
              json::object(), "product", "entity/product", 1,
              [](const json& r) { return ms::decode_product(r, ms::lookups{}); }, warnings);
        }) == "entity/product: rows is not an array");
}

TEST_CASE("variant -> offer with characteristics") {
  const json list = sample("variant_list_response.json");
  const auto o = ms::decode_variant(list["rows"][0], ms::lookups{});
  CHECK(o.external_id == "671402e4-f7d2-11e5-8a84-bae50000007c");
  CHECK(o.characteristic_id == o.external_id);
  CHECK(o.product_external_id == "66ccbc9f-f7d2-11e5-8a84-bae500000076");
  CHECK(o.name == "ТоварМногоМодификаций (1, 100, 10)");
  CHECK(o.sku == "T01 (M01)");
  CHECK(o.barcode == "20000000");
  REQUIRE(o.characteristics.size() == 3);
  CHECK(o.characteristics[0].name == "Цвет");
  CHECK(o.characteristics[0].value == "красны");
  CHECK(o.characteristics[0].external_id == "7a6078e4-3c64-11e6-8a84-bae500000003");
  CHECK(o.characteristics[2].value == "Вкусный");
  REQUIRE(o.prices);
  CHECK(o.prices->empty());  // the sample's prices are all 0
  json priced = list["rows"][0];
  priced["salePrices"][1]["value"] = 12345.5;
  REQUIRE(ms::decode_variant(priced, ms::lookups{}).prices->size() == 1);
  CHECK(ms::decode_variant(priced, ms::lookups{}).prices->at(0).value == "123.455");
  json orphan = list["rows"][0];
  orphan.erase("product");
  CHECK(error_of([&] { ms::decode_variant(orphan, ms::lookups{}); }) == "product is missing");
}

TEST_CASE("price types, stores, attribute metadata, uoms, currencies, states") {
  const json types = sample("pricetype_list_response.json");
  const auto t = ms::decode_price_type(types[1]);
  CHECK(t.external_id == "5fc65f53-a470-11e7-9464-d04800000035");
  CHECK(t.name == "Цена для друзей");
  const json stores = sample("store_list_response.json");
  const auto w = ms::decode_store(stores["rows"][1]);
  CHECK(w.external_id == "850ee995-f504-11e5-8a84-bae500000160");
  CHECK(w.name == "Основной склад");
  CHECK(w.active);
  // entity/product/metadata carries attributes as a collection reference only
  CHECK(ms::decode_attribute_defs(sample("product_metadata_response.json")).empty());
  // entity/product/metadata/attributes: the collection, rows shaped like the order metadata's
  json attrs = json::object();
  attrs["rows"] = sample("customerorder_metadata_states_response.json")["attributes"];
  attrs["rows"][0]["id"] = "c2ecd338-015e-11e6-9464-e4de0000008f";
  const auto defs = ms::decode_attribute_defs(attrs);
  REQUIRE(defs.size() == 1);
  CHECK(defs[0].external_id == "c2ecd338-015e-11e6-9464-e4de0000008f");
  CHECK(defs[0].name == "AttributeName1");
  CHECK(defs[0].value_type == "boolean");
  attrs["rows"][0].erase("id");  // the id from meta.href then
  CHECK(ms::decode_attribute_defs(attrs)[0].external_id == "c2ecd338-015e-11e6-9464-e4de0000008f");
  CHECK(error_of([] { ms::decode_attribute_defs(json::parse(R"({"rows":{}})")); }) == "rows is not an array");

  ms::lookups l;
  ms::add_states(l, sample("customerorder_metadata_states_response.json"));
  CHECK(l.states.at("fb56c504-2e58-11e6-8a84-bae500000069") == "Новый");
  CHECK(l.states.at("fb56cae3-2e58-11e6-8a84-bae50000006a") == "Подтвержден");
  ms::add_uoms(l, json::parse(R"([{"meta":{"href":"https://x/entity/uom/19f1edc0-fc42-4001-94cb-c9ec9c62ec10"},"name":"шт","code":"796"}])"));
  CHECK(l.uoms.at("19f1edc0-fc42-4001-94cb-c9ec9c62ec10").code == "796");
  ms::add_currencies(l, json::parse(R"([{"id":"6314188d-2c7f-11e6-8a84-bae500000055","name":"руб","isoCode":"RUB"}])"));
  CHECK(l.currencies.at("6314188d-2c7f-11e6-8a84-bae500000055") == "RUB");
}

TEST_CASE("counterparty -> counterparty") {
  const json list = sample("counterparty_list_response.json");
  const auto c = ms::decode_counterparty(list["rows"][1]);
  CHECK(c.external_id == "12a8e347-692c-11e6-8a84-bae500000055");
  CHECK(c.name == "ООО \"Покупатель\"");
  CHECK(c.official_name == "Общество с ограниченной ответственностью \"Покупатель\"");
  CHECK(c.legal_entity);
  CHECK(c.inn == "7736570902");
  CHECK(c.kpp == "773601002");
  CHECK(c.legal_address.presentation == "125009, Россия, г Москва, Москва, ул Тверская, 1, 123, addInfo");
  CHECK(c.postal_address.presentation == "125009, Россия, г Москва, Москва, ул Тверская, 1, 111, addInfo");
  CHECK(c.role == "Покупатель");
  CHECK(c.active);
  CHECK(c.contacts.empty());

  json person = list["rows"][1];
  person["companyType"] = "entrepreneur";
  person.erase("legalTitle");
  person["legalLastName"] = "Иванов";
  person["legalFirstName"] = "Пётр";
  person["legalMiddleName"] = "Сергеевич";
  person["okpo"] = "0123456789";
  person["email"] = "ip@example.ru";
  person["phone"] = "+7 495 000-00-00";
  person["archived"] = true;
  const auto p = ms::decode_counterparty(person);
  CHECK_FALSE(p.legal_entity);
  CHECK(p.full_name == "Иванов Пётр Сергеевич");
  CHECK(p.official_name == "");
  CHECK(p.last_name == "Иванов");
  CHECK(p.okpo == "0123456789");
  REQUIRE(p.contacts.size() == 2);
  CHECK(p.contacts[0].type == "Почта");
  CHECK(p.contacts[0].value == "ip@example.ru");
  CHECK(p.contacts[1].type == "ТелефонРабочий");
  CHECK_FALSE(p.active);
}

TEST_CASE("customerorder -> document with state, sum and positions") {
  ms::lookups l;
  ms::add_states(l, sample("customerorder_metadata_states_response.json"));
  l.currencies["bc1b4fde-019a-11e6-9464-e4de00000073"] = "USD";
  json order = sample("customerorder_get_response.json");
  const auto d = ms::decode_customer_order(order, l);
  CHECK(d.operation == "Заказ товара");
  CHECK(d.external_id == "734a9e26-45a2-4ead-849c-e144daeb854d");  // syncId
  CHECK(d.number == "00001");
  CHECK(d.erp_number == "00001");
  CHECK(d.date == "2016-04-13");
  CHECK(d.time == "12:57:00");
  CHECK(d.total == "3464537012.06");
  CHECK(d.currency == "USD");
  CHECK(d.rate == "214");
  CHECK(d.comment == "Это комментарий к заказу покупателя!");
  CHECK_FALSE(d.deleted);
  REQUIRE(d.requisites.size() == 2);
  CHECK(d.requisites[0].name == "Статус заказа");
  CHECK(d.requisites[0].value == "Новый");
  CHECK(d.requisites[1].name == "Статуса заказа ИД");
  CHECK(d.requisites[1].value == "fb56c504-2e58-11e6-8a84-bae500000069");
  REQUIRE(d.counterparties.size() == 1);
  CHECK(d.counterparties[0].external_id == "9794d400-f689-11e5-8a84-bae500000078");
  CHECK(d.counterparties[0].role == "Покупатель");
  CHECK(d.lines.empty());  // positions not expanded

  order.erase("syncId");
  order["positions"]["rows"] = sample("customerorder_positions_list_response.json")["rows"];
  order["positions"]["rows"][0]["discount"] = 10;
  order["positions"]["rows"][0]["quantity"] = 3;
  const auto e = ms::decode_customer_order(order, l);
  CHECK(e.external_id == "34efe2ee-015e-11e6-9464-e4de0000006b");
  REQUIRE(e.lines.size() == 4);
  CHECK(e.lines[0].offer_external_id == "66ccbc9f-f7d2-11e5-8a84-bae500000076");
  CHECK(e.lines[0].price == "1230.50");
  CHECK(e.lines[0].quantity == "3");
  CHECK(e.lines[0].amount == "3322.35");   // 1230.50 × 3 × 0.9
  CHECK(e.lines[0].discount == "369.15");
  CHECK(e.lines[3].offer_external_id == "66cc36dc-f7d2-11e5-8a84-bae500000074");
  CHECK(e.lines[3].amount == "421410.94");
  CHECK(e.lines[3].discount == "");

  json bad = sample("customerorder_get_response.json");
  bad["moment"] = "13.04.2016";
  CHECK(error_of([&] { ms::decode_customer_order(bad, l); }) == "moment '13.04.2016' is not a date and time");
}

TEST_CASE("invoiceout and demand link to their order") {
  ms::lookups l;
  const json invoices = sample("invoiceout_list_response.json");
  const auto plain = ms::decode_invoice_out(invoices["rows"][0], l);
  CHECK(plain.operation == "Счет на оплату");
  CHECK(plain.external_id == "0cb8d047-f664-11e5-8a84-bae500000095");
  CHECK(plain.base_document == "");
  CHECK(plain.total == "1230.00");
  CHECK(plain.date == "2016-03-30");
  const auto linked = ms::decode_invoice_out(invoices["rows"][1], l);
  CHECK(linked.base_document == "34efe2ee-015e-11e6-9464-e4de0000006b");  // the order's id: syncId unknown
  l.order_sync_ids["34efe2ee-015e-11e6-9464-e4de0000006b"] = "734a9e26-45a2-4ead-849c-e144daeb854d";
  CHECK(ms::decode_invoice_out(invoices["rows"][1], l).base_document == "734a9e26-45a2-4ead-849c-e144daeb854d");
  const auto demand = ms::decode_demand(sample("demand_get_response.json"), l);
  CHECK(demand.operation == "Отпуск товара");
  CHECK(demand.external_id == "405f69c0-019e-11e6-9464-e4de00000085");
  CHECK(demand.base_document == "734a9e26-45a2-4ead-849c-e144daeb854d");
  CHECK(demand.number == "24124");
  CHECK(demand.total == "3463895014.20");
}

TEST_CASE("current stock rows") {
  std::vector<std::string> warnings;
  const auto rows = ms::decode_stock_current(sample("report_stock_bystore_current_freestock_response.json"), warnings);
  REQUIRE(rows.size() == 4);
  CHECK(warnings.empty());
  CHECK(rows[0].assortment_id == "12345678-5838-aaeb-0a80-003a003ef439");
  CHECK(rows[0].store_id == "12345678-b123-aaee-0a80-012b0001bb10");
  CHECK(rows[0].quantity == "4");
  CHECK(rows[2].store_id == "");  // null: reserve not tied to a store
  CHECK(rows[2].quantity == "-5");
  const auto all = ms::decode_stock_current(sample("report_stock_all_current_changedsince_response.json"), warnings);
  REQUIRE(all.size() == 2);
  CHECK(all[1].quantity == "4.5");
  const auto mixed = ms::decode_stock_current(
      json::parse(R"([{"assortmentId":"a","storeId":"s","stock":null},{"storeId":"s","stock":1},{"assortmentId":"b","stock":"x"}])"),
      warnings);
  CHECK(mixed.empty());
  REQUIRE(warnings.size() == 3);
  CHECK(warnings[0] == "stock row 1 'a': stock is null (still recalculating); skipped");
  CHECK(warnings[1] == "stock row 2: assortmentId is missing; skipped");
  CHECK(warnings[2] == "stock row 3 'b': stock is not a number; skipped");
  CHECK(error_of([&] { ms::decode_stock_current(json::object(), warnings); }) ==
        "stock report: the answer is not an array");
}

TEST_CASE("webhook payloads") {
  const auto events = ms::parse_webhook(sample("webhook_notification_payload.json"));
  REQUIRE(events.size() == 1);
  CHECK(events[0].type == "product");
  CHECK(events[0].id == "75c896d0-db16-11eb-c0a8-800d00000002");
  CHECK(events[0].href == "https://api.moysklad.ru/api/remap/1.2/entity/product/75c896d0-db16-11eb-c0a8-800d00000002");
  CHECK(events[0].action == "UPDATE");
  CHECK(events[0].updated_fields == std::vector<std::string>{"name", "description"});
  CHECK(ms::parse_webhookstock(sample("webhookstock_notification_payload.json")) ==
        "https://api.moysklad.ru/api/remap/1.2/report/stock/all/current?changedSince=2022-09-24 19:14:32");

  CHECK(error_of([] { ms::parse_webhook(json::parse("[]")); }) == "webhook body is not a JSON object");
  CHECK(error_of([] { ms::parse_webhook(json::parse("{}")); }) == "events is missing");
  CHECK(error_of([] { ms::parse_webhook(json::parse(R"({"events":[{"action":"UPDATE"}]})")); }) ==
        "events[0].meta is missing");
  CHECK(error_of([] { ms::parse_webhook(json::parse(R"({"events":[{"meta":{"type":"product"},"action":"UPDATE"}]})")); }) ==
        "events[0].meta.href is missing");
  CHECK(error_of([] {
          ms::parse_webhook(json::parse(R"({"events":[{"meta":{"type":"product","href":"https://x/entity/product"},"action":"UPDATE"}]})"));
        }) == "events[0].meta.href: href 'https://x/entity/product' has no id");
  CHECK(error_of([] { ms::parse_webhookstock(json::parse(R"({"reportUrl":1})")); }) == "reportUrl is not a string");
}
