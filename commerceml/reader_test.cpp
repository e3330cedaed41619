// CommerceML reader tests: every sample file against the counts in samples/SOURCES.md §3, the
// sliced reader against the whole-document reader, content checks, and hostile input.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "commerceml/dom_reader.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/reader.hpp"
#include "commerceml/sliced_reader.hpp"
#include "tests/support/catalog_dump.hpp"

namespace fs = std::filesystem;
using namespace obmen;
using namespace obmen::commerceml;

namespace {

fs::path samples_dir() {
  const char* dir = std::getenv("OBMEN_REFERENCE_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "OBMEN_REFERENCE_DIR is not set");
  return fs::path(dir) / "commerceml" / "samples";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string sample(std::string_view name) { return slurp(samples_dir() / name); }

using recorder = testing::catalog_recorder;
using testing::dump;

recorder read_sliced(std::string_view data, std::string_view name, read_options opt = {}) {
  recorder r;
  read_catalog_buffer(data, name, r, opt);
  return r;
}

recorder read_whole(std::string_view data, std::string_view name, read_options opt = {}) {
  recorder r;
  detail::read_whole_document(data, name, r, opt);
  return r;
}

// what() of the parse_error `f` throws, or "no error".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const parse_error& e) {
    return e.what();
  }
  return "no error";
}

std::string sliced_error(std::string_view data, std::string_view name, read_options opt = {}) {
  return error_of([&] { read_sliced(data, name, opt); });
}
std::string whole_error(std::string_view data, std::string_view name, read_options opt = {}) {
  return error_of([&] { read_whole(data, name, opt); });
}

bool detail_is_char_start(const std::string& s, std::size_t i) {
  return i >= s.size() || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
}

struct expected_counts {
  const char* file;
  const char* version;
  const char* encoding;
  bool bom;
  const char* xmlns;
  std::size_t groups, props, price_types, warehouses, products, offers, offers_hash, offers_xt, products_xt,
      products_img, prices, rests, stock_attr;
  std::optional<bool> classifier_changes, catalog_changes, offers_changes;
  document_kind kind;
};

// samples/SOURCES.md §3, column by column (cparties / docs are out of scope). The section flags
// are the СодержитТолькоИзменения column, false for a present section without the attribute.
const expected_counts samples_table[] = {
    {"ArgentCrusade__commerceml/tests__fixtures__contractors-example.xml", "2.09", "utf-8", false, "urn:1C.ru:commerceml_2", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt, std::nullopt, document_kind::unknown},
    {"ArgentCrusade__commerceml/tests__fixtures__documents-example.xml", "2.09", "utf-8", false, "urn:1C.ru:commerceml_2", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt, std::nullopt, document_kind::documents},
    {"ArgentCrusade__commerceml/tests__fixtures__group-example.xml", "3.1", "utf-8", false, "urn:1C.ru:commerceml_3", 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, true, std::nullopt, std::nullopt, document_kind::import},
    {"ArgentCrusade__commerceml/tests__fixtures__prices-example.xml", "3.1", "utf-8", false, "urn:1C.ru:commerceml_3", 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3, 0, 0, std::nullopt, std::nullopt, true, document_kind::offers},
    {"ArgentCrusade__commerceml/tests__fixtures__products-example.xml", "3.1", "utf-8", false, "urn:1C.ru:commerceml_3", 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, std::nullopt, true, std::nullopt, document_kind::import},
    {"ArgentCrusade__commerceml/tests__fixtures__remainders-example.xml", "3.1", "utf-8", false, "urn:1C.ru:commerceml_3", 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 14, 0, std::nullopt, std::nullopt, true, document_kind::offers},
    {"ArtemiusUA__django-cml/tests__tests_fixtures__import.xml", "2.05", "utf-8", true, "", 36, 3, 0, 0, 282, 0, 0, 0, 0, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"bigperson__exchange1c/tests__xml__import.xml", "2.08", "utf-8", true, "urn:1C.ru:commerceml_210", 5, 3, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"bigperson__exchange1c/tests__xml__offers.xml", "2.08", "utf-8", true, "urn:1C.ru:commerceml_210", 0, 1, 3, 0, 0, 2, 2, 2, 0, 0, 6, 0, 0, false, std::nullopt, false, document_kind::offers},
    {"carono__yii2-1c-exchange/files__xml__from.xml", "2.03", "windows-1251", false, "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt, std::nullopt, document_kind::documents},
    {"carono__yii2-1c-exchange/files__xml__import.xml", "2.07", "utf-8", true, "urn:1C.ru:commerceml_2", 22, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"carono__yii2-1c-exchange/files__xml__offers.xml", "2.07", "utf-8", true, "urn:1C.ru:commerceml_2", 0, 0, 1, 5, 0, 5, 5, 0, 0, 0, 5, 0, 5, false, std::nullopt, false, document_kind::offers},
    {"carono__yii2-1c-exchange/files__xml__to.xml", "2.03", "windows-1251", false, "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt, std::nullopt, document_kind::documents},
    {"dobromyslov__commerceml-parser/data__bitrix-query-response-empty.xml", "2.05", "windows-1251", false, "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt, std::nullopt, document_kind::unknown},
    {"dobromyslov__commerceml-parser/data__bitrix-query-response-full.xml", "2.05", "windows-1251", false, "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt, std::nullopt, document_kind::documents},
    {"dobromyslov__commerceml-parser/data__import0_1.xml", "2.07", "utf-8", true, "urn:1C.ru:commerceml_2", 1, 12, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"dobromyslov__commerceml-parser/data__import0_1_with_nested_groups.xml", "2.07", "utf-8", true, "urn:1C.ru:commerceml_2", 13, 20, 0, 0, 283, 0, 0, 0, 0, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"dobromyslov__commerceml-parser/data__offers0_1.xml", "2.07", "utf-8", true, "urn:1C.ru:commerceml_2", 0, 0, 1, 3, 0, 44, 0, 0, 0, 0, 44, 0, 132, false, std::nullopt, false, document_kind::offers},
    {"irpsv__commerceml/tests__assets__cs-cart__import.xml", "2.04", "utf-8", true, "", 4, 1, 0, 0, 27, 0, 0, 0, 0, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"irpsv__commerceml/tests__assets__cs-cart__offers.xml", "2.04", "utf-8", true, "", 0, 0, 2, 0, 0, 1455, 1455, 1455, 0, 0, 2910, 0, 0, std::nullopt, std::nullopt, false, document_kind::offers},
    {"irpsv__commerceml/tests__assets__off-doc-1c__import.xml", "2.04", "utf-8", false, "", 1, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"irpsv__commerceml/tests__assets__off-doc-1c__offers.xml", "2.04", "utf-8", false, "", 0, 0, 4, 0, 0, 2, 2, 0, 0, 0, 8, 0, 0, std::nullopt, std::nullopt, false, document_kind::offers},
    {"irpsv__commerceml/tests__assets__off-doc-1c__orders.xml", "2.03", "utf-8", false, "", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, std::nullopt, std::nullopt, std::nullopt, document_kind::documents},
    {"irpsv__commerceml/tests__assets__ready-script__import.xml", "2.05", "utf-8", false, "", 4, 7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, true, true, std::nullopt, document_kind::import},
    {"irpsv__commerceml/tests__assets__ready-script__offers.xml", "2.05", "utf-8", false, "", 0, 0, 1, 0, 0, 2, 1, 1, 0, 0, 2, 0, 0, std::nullopt, std::nullopt, true, document_kind::offers},
    {"irpsv__commerceml/tests__assets__umi-cms__import.xml", "2.04", "utf-8", true, "", 1, 1, 0, 0, 3, 0, 0, 0, 0, 3, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"irpsv__commerceml/tests__assets__umi-cms__offers.xml", "2.04", "utf-8", true, "", 0, 0, 5, 0, 0, 14, 0, 0, 0, 0, 70, 0, 0, std::nullopt, std::nullopt, false, document_kind::offers},
    {"sukhikh18__woocommerce-ml/tests__fixtures__import0_1.xml", "2.07", "utf-8", true, "urn:1C.ru:commerceml_2", 6, 2, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, false, false, std::nullopt, document_kind::import},
    {"sukhikh18__woocommerce-ml/tests__fixtures__offers0_1.xml", "2.07", "utf-8", true, "urn:1C.ru:commerceml_2", 0, 0, 1, 1, 0, 3, 0, 0, 0, 0, 3, 0, 3, false, std::nullopt, false, document_kind::offers},
};

}  // namespace

TEST_CASE("every sample file gives the counts of SOURCES.md §3") {
  REQUIRE(std::size(samples_table) == 29);
  for (const auto& e : samples_table) {
    const std::string file = e.file;
    CAPTURE(file);
    recorder r;
    std::vector<std::pair<bool, bool>> ahead;  // on_items_ahead: (offers, changes only)
    read_options o;
    o.on_items_ahead = [&](bool offers, bool changes_only) { ahead.emplace_back(offers, changes_only); };
    read_catalog_file(samples_dir() / e.file, r, o);
    // The first pass's early word on each item list agrees with on_document's.
    for (const auto& [offers, changes_only] : ahead)
      CHECK((offers ? r.info.offers_changes_only : r.info.catalog_changes_only) == std::optional<bool>(changes_only));
    const auto announced = [&](bool offers) {
      return std::any_of(ahead.begin(), ahead.end(), [&](const auto& a) { return a.first == offers; });
    };
    if (e.products > 0) CHECK(announced(false));
    if (e.offers > 0) CHECK(announced(true));
    CHECK(r.documents == 1);
    CHECK(r.info.file_name == (samples_dir() / e.file).string());
    CHECK(r.info.schema_version == e.version);
    CHECK(r.info.encoding == e.encoding);
    CHECK(r.info.bom == e.bom);
    CHECK(r.info.xmlns == e.xmlns);
    CHECK(r.info.kind == e.kind);
    CHECK(r.info.classifier_changes_only == e.classifier_changes);
    CHECK(r.info.catalog_changes_only == e.catalog_changes);
    CHECK(r.info.offers_changes_only == e.offers_changes);
    CHECK(r.info.has_classifier == e.classifier_changes.has_value());
    CHECK(r.info.has_catalog == e.catalog_changes.has_value());
    CHECK(r.info.has_offers == e.offers_changes.has_value());
    CHECK(r.categories.size() == e.groups);
    CHECK(r.attribute_defs.size() == e.props);
    CHECK(r.price_types.size() == e.price_types);
    CHECK(r.warehouses.size() == e.warehouses);
    CHECK(r.products.size() == e.products);
    CHECK(r.offers.size() == e.offers);
    const auto count = [](const auto& v, auto pred) { return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), pred)); };
    CHECK(count(r.offers, [](const model::offer& o) { return o.external_id.find('#') != std::string::npos; }) == e.offers_hash);
    CHECK(count(r.offers, [](const model::offer& o) { return !o.characteristics.empty(); }) == e.offers_xt);
    CHECK(count(r.products, [](const model::product& p) { return !p.characteristics.empty(); }) == e.products_xt);
    CHECK(count(r.products, [](const model::product& p) { return !p.images.empty(); }) == e.products_img);
    std::size_t prices = 0, stock_rows = 0, offers_with_stock = 0;
    for (const auto& o : r.offers) {
      if (o.prices) prices += o.prices->size();
      if (o.stock) {
        stock_rows += o.stock->size();
        ++offers_with_stock;
      }
      CHECK(o.product_external_id == o.external_id.substr(0, o.external_id.find('#')));
    }
    CHECK(prices == e.prices);
    // Every Остаток carries a Склад in the samples, and every attribute-form Склад is one row.
    CHECK(stock_rows == e.rests + e.stock_attr);
    CHECK(offers_with_stock == ((e.rests + e.stock_attr) > 0 ? e.offers : 0));
    // Groups are emitted parents-first.
    for (std::size_t i = 0; i < r.categories.size(); ++i) {
      const auto& parent = r.categories[i].parent_external_id;
      if (parent.empty()) continue;
      const auto it = std::find_if(r.categories.begin(), r.categories.begin() + static_cast<std::ptrdiff_t>(i),
                                   [&](const model::category& c) { return c.external_id == parent; });
      CHECK_MESSAGE(it != r.categories.begin() + static_cast<std::ptrdiff_t>(i), r.categories[i].external_id);
    }
  }
}

TEST_CASE("the sliced reader gives exactly what the whole-document reader gives, on every sample") {
  for (const auto& e : samples_table) {
    const std::string file = e.file;
    CAPTURE(file);
    const std::string data = sample(e.file);
    const std::string reference = dump(read_whole(data, e.file));
    CHECK(dump(read_sliced(data, e.file)) == reference);
    // One item per batch, and chunks so small that every tag, fragment and UTF-8 sequence is
    // cut somewhere: same calls, one by one.
    const std::string one_by_one = dump(read_whole(data, e.file, {.batch_size = 1}));
    const bool big = data.size() > 500'000;
    for (std::size_t chunk : big ? std::vector<std::size_t>{4093} : std::vector<std::size_t>{1, 2, 7, 64, 4096}) {
      CAPTURE(chunk);
      CHECK(dump(read_sliced(data, e.file, {.batch_size = 1, .chunk_size = chunk})) == one_by_one);
    }
    CHECK(dump(read_sliced(data, e.file, {.batch_size = 3, .chunk_size = 5})) ==
          dump(read_whole(data, e.file, {.batch_size = 3})));
  }
}

TEST_CASE("a truncated file fails, with the same message in both readers") {
  const std::string data = sample("carono__yii2-1c-exchange/files__xml__import.xml");
  std::size_t half = data.size() / 2;
  while (!detail_is_char_start(data, half)) --half;  // not inside a character
  const std::string cut = data.substr(0, half);
  // Cut inside the classifier (a ВариантыЗначений/Справочник/Значение): line 460 is the last, partial one.
  CHECK(sliced_error(cut, "import.xml") == "import.xml:460:26: malformed XML: Start-end tags mismatch");
  CHECK(whole_error(cut, "import.xml") == "import.xml:460:26: malformed XML: Start-end tags mismatch");
  // Nothing reached the sink: the structure is checked before on_document.
  recorder r;
  CHECK_THROWS_AS(read_catalog_buffer(cut, "import.xml", r), parse_error);
  CHECK(r.calls.empty());
}

TEST_CASE("cut anywhere: both readers report the same error, at the same place") {
  for (const char* name : {"sukhikh18__woocommerce-ml/tests__fixtures__offers0_1.xml",   // UTF-8, BOM, namespace
                           "irpsv__commerceml/tests__assets__ready-script__import.xml",  // classifier + catalog
                           "carono__yii2-1c-exchange/files__xml__to.xml"}) {             // windows-1251 document
    const std::string file = name;
    CAPTURE(file);
    const std::string data = sample(name);
    const std::size_t root_end = data.rfind('>');
    for (std::size_t n = 0; n < data.size(); n += 5) {
      if (!detail_is_char_start(data, n)) continue;
      CAPTURE(n);
      const std::string cut = data.substr(0, n);
      const std::string sliced = sliced_error(cut, "f.xml", {.chunk_size = 5});
      CHECK(sliced == whole_error(cut, "f.xml"));
      if (n <= root_end) CHECK(sliced != "no error");
    }
  }
}

namespace {

const char* const small_catalog = R"(<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" ВерсияСхемы="2.07" ДатаФормирования="2024-01-01T00:00:00">
  <Классификатор>
    <Ид>cls</Ид>
    <Группы>
      <Группа><Ид>g1</Ид><Наименование>Root</Наименование>
        <Группы><Группа><Ид>g2</Ид><Наименование>Child</Наименование><ПометкаУдаления>true</ПометкаУдаления></Группа></Группы>
      </Группа>
    </Группы>
  </Классификатор>
  <Каталог>
    <СодержитТолькоИзменения>true</СодержитТолькоИзменения>
    <Товары>
      <Товар><Ид>p1</Ид><Наименование>One</Наименование></Товар>
      <Товар Статус="Удален"><Ид>p2</Ид><Наименование>Two</Наименование></Товар>
      <Товар><Ид>p3</Ид><Наименование>Three</Наименование><БазоваяЕдиница Код="796 " НаименованиеКраткое="шт"/></Товар>
    </Товары>
  </Каталог>
</КоммерческаяИнформация>
)";

}  // namespace

TEST_CASE("sample content: products") {
  const recorder umi = read_sliced(sample("irpsv__commerceml/tests__assets__umi-cms__import.xml"), "umi.xml");
  REQUIRE(umi.products.size() == 3);
  const model::product& p = umi.products[0];
  CHECK(p.external_id == "bd72d927-55bc-11d9-848a-00112f43529a");
  CHECK(p.sku == "КВ- 900");
  CHECK(p.name == "Комбайн кухонный BINATONE FP 67");
  CHECK(p.full_name == "Комбайн кухонный BINATONE FP 67");
  CHECK(p.unit == "шт");
  CHECK(p.unit_code == "796");
  CHECK(p.category_ids == std::vector<std::string>{"bd72d925-55bc-11d9-848a-00112f43529a"});
  CHECK(p.images ==
        std::vector<std::string>{"import_files/bd/bd72d92755bc11d9848a00112f43529a_80a7832b39c811e0a35a000b0d4caf68.jpg"});
  REQUIRE(p.attributes.size() == 1);
  CHECK(p.attributes[0].attribute_id == "14ed8b20-55bd-11d9-848a-00112f43529a");
  CHECK(p.attributes[0].values == std::vector<std::string>{"14ed8b25-55bd-11d9-848a-00112f43529a"});
  REQUIRE(p.taxes.size() == 1);
  CHECK(p.taxes[0].name == "НДС");
  CHECK(p.taxes[0].rate == "18");
  REQUIRE(p.requisites.size() == 4);
  CHECK(p.requisites[1].name == "ВидНоменклатуры");
  CHECK(p.requisites[1].value == "Электротовары");
  REQUIRE(umi.attribute_defs.size() == 1);
  CHECK(umi.attribute_defs[0].value_type == "Справочник");
  CHECK(umi.attribute_defs[0].for_offers == false);
  REQUIRE(umi.attribute_defs[0].options.size() == 2);
  CHECK(umi.attribute_defs[0].options[0].external_id == "14ed8b24-55bd-11d9-848a-00112f43529a");
  CHECK(umi.attribute_defs[0].options[0].value == "ЗАО \"Алекс\"");

  // 3.1: five pictures in document order, the unit as sent (a code in the text), a version.
  const recorder argent = read_sliced(sample("ArgentCrusade__commerceml/tests__fixtures__products-example.xml"), "p.xml");
  REQUIRE(argent.products.size() == 1);
  const model::product& g = argent.products[0];
  CHECK(g.name == "Гироскутер 10\"");
  CHECK(g.version == "AAAHgAAAAAA=32906");
  CHECK(g.unit == "796");
  REQUIRE(g.images.size() == 5);
  CHECK(g.images[0] == "import_files/ac/ac0184b3-7821-11e6-80ca-a72a8c906e0a_eda38572-b3ce-11e7-80ed-bfaadcf435ce.jpg");
  CHECK(g.images[4] == "import_files/ac/ac0184b3-7821-11e6-80ca-a72a8c906e0a_eda38573-b3ce-11e7-80ed-bfaadcf435ce.jpg");
  REQUIRE(g.attributes.size() == 1);
  CHECK(g.attributes[0].values.empty());  // <Значение/>: unset

  // 2.04: characteristics on catalog products.
  const recorder off = read_sliced(sample("irpsv__commerceml/tests__assets__off-doc-1c__import.xml"), "i.xml");
  REQUIRE(off.products.size() == 4);
  CHECK(off.products[1].external_id == "05e26d70-01e4-11dc-a411-00055d80a2d1#218a1598-044b-11dc-a414-00055d80a2d1");
  REQUIRE(off.products[1].characteristics.size() == 1);
  CHECK(off.products[1].characteristics[0].name == "Цвет");
  CHECK(off.products[1].characteristics[0].value == "Красный");
}

TEST_CASE("sample content: groups nest parents-first, 3.1") {
  const recorder r = read_sliced(sample("ArgentCrusade__commerceml/tests__fixtures__group-example.xml"), "g.xml");
  REQUIRE(r.categories.size() == 12);
  CHECK(r.categories[0].name == "Автомобильные аксессуары");
  CHECK(r.categories[0].parent_external_id.empty());
  CHECK(r.categories[1].parent_external_id == r.categories[0].external_id);
  CHECK(r.categories[8].name == "Антигравитационные чехлы");
  CHECK(r.categories[8].parent_external_id == "d11e7e01-7821-11e6-80ca-a72a8c906e0a");
  CHECK(r.calls == std::vector<std::string>{"document", "categories 12"});
}

TEST_CASE("sample content: offers, prices and both stock forms") {
  const recorder d = read_sliced(sample("dobromyslov__commerceml-parser/data__offers0_1.xml"), "o.xml");
  REQUIRE(d.offers.size() == 44);
  const model::offer& o = d.offers[0];
  CHECK(o.external_id == "bd8c4e15-18f9-11e7-80c2-0cc47ab29cd1");
  CHECK(o.product_external_id == o.external_id);
  CHECK(o.characteristic_id.empty());
  CHECK(o.sku == "PM-421-WP");
  CHECK(o.name == "Портативный коврик Portable 140x200x1 см, Деревянные лошадки");
  REQUIRE(o.prices.has_value());
  REQUIRE(o.prices->size() == 1);
  CHECK((*o.prices)[0].price_type_id == "279b6812-740b-11e8-80c8-0cc47ab29cd1");
  CHECK((*o.prices)[0].value == "100");
  CHECK((*o.prices)[0].currency == "RUB");
  CHECK((*o.prices)[0].unit == "PCE");
  CHECK((*o.prices)[0].coefficient == "1");
  CHECK(o.quantity == "377");
  REQUIRE(o.stock.has_value());
  REQUIRE(o.stock->size() == 3);
  CHECK((*o.stock)[2].warehouse_id == "dd306af1-19c9-11e7-80c2-0cc47ab29cd1");
  CHECK((*o.stock)[2].quantity == "376");
  REQUIRE(d.warehouses.size() == 3);
  CHECK(d.warehouses[2].name == "Москва");
  CHECK(d.price_types[0].name == "BASE");
  CHECK(d.price_types[0].currency == "RUB");

  // Split 3.1 rests: Остатки/Остаток/Склад{Ид, Количество}, no prices element → prices unknown.
  const recorder rests = read_sliced(sample("ArgentCrusade__commerceml/tests__fixtures__remainders-example.xml"), "r.xml");
  REQUIRE(rests.offers.size() == 2);
  const model::offer& r1 = rests.offers[1];
  CHECK(r1.external_id == "6c4e0c4d-6c2c-11e7-81d6-38d547224d22");
  CHECK_FALSE(r1.prices.has_value());
  CHECK_FALSE(r1.quantity.has_value());
  REQUIRE(r1.stock.has_value());
  std::vector<std::string> quantities;
  for (const auto& s : *r1.stock) quantities.push_back(s.quantity);
  CHECK(quantities == std::vector<std::string>{"0", "0", "0", "7", "29", "9", "12"});
  CHECK((*r1.stock)[3].warehouse_id == "9bf5be08-af08-11e7-a56d-38d547224d22");

  // Split 3.1 prices: offer ids without '#', no stock element → stock unknown.
  const recorder prices = read_sliced(sample("ArgentCrusade__commerceml/tests__fixtures__prices-example.xml"), "p.xml");
  REQUIRE(prices.offers.size() == 3);
  CHECK_FALSE(prices.offers[2].stock.has_value());
  REQUIRE(prices.offers[2].prices.has_value());
  CHECK((*prices.offers[2].prices)[0].value == "600");
  CHECK((*prices.offers[2].prices)[0].coefficient.empty());

  // 2.08 offers: guid#guid, ХарактеристикиТовара, offer properties in the top-level classifier.
  const recorder big = read_sliced(sample("bigperson__exchange1c/tests__xml__offers.xml"), "b.xml");
  REQUIRE(big.offers.size() == 2);
  CHECK(big.offers[0].product_external_id == "ffce323d-c133-11e8-8111-0050569b2b72");
  CHECK(big.offers[0].characteristic_id == "8a4e5ea9-d129-11e8-8112-0050569b2b72");
  REQUIRE(big.offers[0].characteristics.size() == 1);
  CHECK(big.offers[0].characteristics[0].name == "Цвет");
  CHECK(big.offers[0].characteristics[0].value == "Бежевый");
  CHECK(big.offers[0].quantity == "2");
  REQUIRE(big.offers[0].prices->size() == 3);
  CHECK((*big.offers[0].prices)[1].value == "15500");
  CHECK((*big.offers[0].prices)[1].currency == "руб");
  REQUIRE(big.attribute_defs.size() == 1);
  CHECK(big.attribute_defs[0].for_offers);  // ДляПредложений=true
  CHECK(big.attribute_defs[0].options.size() == 4);
}

TEST_CASE("windows-1251: decoded to UTF-8, same model as the UTF-8 original") {
  // The real windows-1251 samples are order documents (not parsed here): check their header.
  const recorder q = read_sliced(sample("dobromyslov__commerceml-parser/data__bitrix-query-response-empty.xml"), "q.xml");
  CHECK(q.info.encoding == "windows-1251");
  CHECK(q.info.schema_version == "2.05");
  CHECK(q.info.kind == document_kind::unknown);
  // A catalog written in windows-1251, declared as "windows-1251" or "CP1251".
  std::string utf8 = sample("sukhikh18__woocommerce-ml/tests__fixtures__import0_1.xml");
  utf8.erase(0, 3);  // BOM
  const recorder original = read_sliced(utf8, "import.xml");
  for (const char* label : {"windows-1251", "CP1251"}) {
    CAPTURE(std::string(label));
    std::string cp = utf8_to_cp1251(utf8);
    const std::size_t at = cp.find("UTF-8");
    REQUIRE(at < 60);
    cp.replace(at, 5, label);
    recorder converted = read_sliced(cp, "import.xml");
    CHECK(converted.info.encoding == "windows-1251");
    CHECK(dump(read_whole(cp, "import.xml")) == dump(converted));
    converted.info.encoding = original.info.encoding;
    CHECK(dump(converted) == dump(original));
    REQUIRE(!converted.products.empty());
    CHECK(converted.products[0].name == original.products[0].name);
  }
  CHECK(original.products[0].name.find("\xD0") != std::string::npos);  // really Cyrillic
}

TEST_CASE("section flags, deletion marks, unit fallback, batching") {
  const recorder r = read_sliced(small_catalog, "small.xml", {.batch_size = 2});
  CHECK(r.info.kind == document_kind::import);
  CHECK(r.info.classifier_changes_only == false);
  CHECK(r.info.catalog_changes_only == true);  // child-element form
  CHECK(r.info.offers_changes_only == std::nullopt);
  REQUIRE(r.categories.size() == 2);
  CHECK(r.categories[1].parent_external_id == "g1");
  CHECK(r.categories[1].active == false);
  REQUIRE(r.products.size() == 3);
  CHECK(r.products[0].active);
  CHECK_FALSE(r.products[1].active);  // Статус="Удален"
  CHECK(r.products[2].unit == "шт");
  CHECK(r.products[2].unit_code == "796");
  CHECK(r.calls == std::vector<std::string>{"document", "categories 2", "products 2", "products 1"});
  CHECK(dump(read_whole(small_catalog, "small.xml", {.batch_size = 2})) == dump(r));

  // 282 products in batches of 100.
  const recorder a = read_sliced(sample("ArtemiusUA__django-cml/tests__tests_fixtures__import.xml"), "a.xml",
                                 {.batch_size = 100});
  std::vector<std::string> product_calls;
  for (const auto& c : a.calls)
    if (c.starts_with("products")) product_calls.push_back(c);
  CHECK(product_calls == std::vector<std::string>{"products 100", "products 100", "products 82"});
}

TEST_CASE("prefixes, CDATA, comments, ИзмененияПакетаПредложений, offers classifier") {
  const std::string doc = R"(<?xml version="1.0" encoding="utf-8"?>
<!-- <Товар> in a comment is not a product -->
<c:КоммерческаяИнформация xmlns:c="urn:1C.ru:commerceml_3" c:ВерсияСхемы="3.1">
  <c:ПакетПредложений СодержитТолькоИзменения="false">
    <c:Классификатор><c:Свойства><c:Свойство><c:Ид>size</c:Ид><c:Наименование>Размер</c:Наименование></c:Свойство></c:Свойства></c:Классификатор>
    <c:ТипыЦен><c:ТипЦены><c:Ид>retail</c:Ид><c:Наименование>Розница</c:Наименование><c:Валюта>RUB</c:Валюта></c:ТипЦены></c:ТипыЦен>
    <c:Предложения>
      <!-- </c:Предложения> -->
      <c:Предложение><c:Ид>p#v</c:Ид><c:Наименование><![CDATA[A <b>&</b> "B" </c:Предложение>]]></c:Наименование>
        <c:Цены><c:Цена><c:ИдТипаЦены>retail</c:ИдТипаЦены><c:ЦенаЗаЕдиницу>1 234,50</c:ЦенаЗаЕдиницу></c:Цена></c:Цены>
        <c:Остатки><c:Остаток><c:Количество>-2.5</c:Количество></c:Остаток></c:Остатки>
        <c:ЗначенияСвойств><c:ЗначенияСвойства><c:Ид>size</c:Ид><c:Значение>42</c:Значение><c:Значение/><c:Значение>44</c:Значение></c:ЗначенияСвойства></c:ЗначенияСвойств>
      </c:Предложение>
      <c:Предложение/>
    </c:Предложения>
  </c:ПакетПредложений>
  <c:ИзмененияПакетаПредложений>
    <c:Предложения><c:Предложение><c:Ид>p</c:Ид><c:ИдХарактеристики>v</c:ИдХарактеристики>
      <c:Склады><c:Склад ИдСклада="w1" КоличествоНаСкладе="3"/></c:Склады><c:Количество>3</c:Количество></c:Предложение></c:Предложения>
  </c:ИзмененияПакетаПредложений>
</c:КоммерческаяИнформация>)";
  const recorder r = read_sliced(doc, "x.xml", {.batch_size = 1, .chunk_size = 3});
  CHECK(dump(r) == dump(read_whole(doc, "x.xml", {.batch_size = 1})));
  CHECK(r.info.xmlns == "urn:1C.ru:commerceml_3");
  CHECK(r.info.schema_version == "3.1");
  CHECK(r.info.kind == document_kind::offers);
  CHECK(r.info.offers_changes_only == false);  // the first offers section's flag
  REQUIRE(r.attribute_defs.size() == 1);
  CHECK(r.attribute_defs[0].for_offers);  // ПакетПредложений/Классификатор
  REQUIRE(r.price_types.size() == 1);
  REQUIRE(r.offers.size() == 3);
  CHECK(r.offers[0].name == "A <b>&</b> \"B\" </c:Предложение>");
  CHECK(r.offers[0].characteristic_id == "v");
  CHECK((*r.offers[0].prices)[0].value == "1234.50");
  CHECK(r.offers[0].quantity == "-2.5");  // Остатки/Остаток/Количество without Склад
  CHECK_FALSE(r.offers[0].stock.has_value());
  REQUIRE(r.offers[0].attributes.size() == 1);
  CHECK(r.offers[0].attributes[0].values == std::vector<std::string>{"42", "44"});
  CHECK(r.offers[1].external_id.empty());
  CHECK(r.offers[2].external_id == "p#v");  // Ид + ИдХарактеристики
  CHECK(r.offers[2].product_external_id == "p");
  REQUIRE(r.offers[2].stock.has_value());
  CHECK((*r.offers[2].stock)[0].warehouse_id == "w1");
  CHECK((*r.offers[2].stock)[0].quantity == "3");
  CHECK(r.calls == std::vector<std::string>{"document", "attribute_defs 1", "price_types 1", "offers 1", "offers 1",
                                            "offers 1"});
}

TEST_CASE("not CommerceML, bad encodings, bad numbers: exact messages") {
  const std::string html = "<!DOCTYPE html>\n<html><body><p>502 Bad Gateway<br></body></html>\n";
  CHECK(sliced_error(html, "import.xml") == "import.xml:2:1: not a CommerceML document: root element is 'html'");
  CHECK(whole_error(html, "import.xml") == "import.xml:2:1: not a CommerceML document: root element is 'html'");
  CHECK(sliced_error("", "e.xml") == "e.xml:1:1: malformed XML: No document element found");
  CHECK(sliced_error("\xEF\xBB\xBF  \n", "e.xml") == "e.xml:2:1: malformed XML: No document element found");

  std::string bad_utf8 = small_catalog;
  bad_utf8.insert(bad_utf8.find("Three"), "\xC3\x28");  // "Ã(" cut short
  CHECK(sliced_error(bad_utf8, "small.xml") == "small.xml:16:39: invalid UTF-8 byte 0xC3");
  CHECK(whole_error(bad_utf8, "small.xml") == "small.xml:16:39: invalid UTF-8 byte 0xC3");
  std::string overlong = small_catalog;
  overlong.insert(overlong.find("Root"), "\xC0\xBC");  // overlong '<'
  CHECK(sliced_error(overlong, "small.xml", {.chunk_size = 1}) == "small.xml:6:40: invalid UTF-8 byte 0xC0");
  // After the root too, and a sequence cut by the end of the file.
  CHECK(sliced_error(std::string(small_catalog) + "\xE2\x82", "small.xml", {.chunk_size = 1}) ==
        "small.xml:20:1: invalid UTF-8 byte 0xE2");
  CHECK(whole_error(std::string(small_catalog) + "\xE2\x82", "small.xml") == "small.xml:20:1: invalid UTF-8 byte 0xE2");

  const std::string koi = "<?xml version=\"1.0\" encoding=\"koi8-r\"?>\n<КоммерческаяИнформация/>";
  CHECK(sliced_error(koi, "k.xml") == "k.xml:1:31: unsupported encoding 'koi8-r'");
  CHECK(whole_error(koi, "k.xml") == "k.xml:1:31: unsupported encoding 'koi8-r'");
  CHECK(sliced_error(std::string("\xFF\xFE<\0", 4), "u.xml") == "u.xml:1:1: unsupported encoding 'UTF-16'");

  std::string bad_price = sample("sukhikh18__woocommerce-ml/tests__fixtures__offers0_1.xml");
  const std::size_t at = bad_price.rfind("<ЦенаЗаЕдиницу>");
  REQUIRE(at != std::string::npos);
  bad_price.insert(at + std::string_view("<ЦенаЗаЕдиницу>").size(), "12,3.");
  CHECK(sliced_error(bad_price, "offers.xml") ==
        "offers.xml:140:25: invalid number '12,3.5500' in ЦенаЗаЕдиницу");
  CHECK(whole_error(bad_price, "offers.xml") == sliced_error(bad_price, "offers.xml", {.batch_size = 1, .chunk_size = 2}));
}

TEST_CASE("malformed content inside a fragment: file position, earlier batches delivered") {
  std::string doc = small_catalog;
  const std::string good = "<Наименование>Three</Наименование>";
  doc.replace(doc.find(good), good.size(), "<Наименование a=1>Three</Наименование>");
  recorder r;
  CHECK(error_of([&] { read_catalog_buffer(doc, "small.xml", r, {.batch_size = 1}); }) ==
        "small.xml:16:41: malformed XML: Error parsing element attribute");
  CHECK(whole_error(doc, "small.xml") == "small.xml:16:41: malformed XML: Error parsing element attribute");
  CHECK(r.products.size() == 2);  // the sliced reader found it in the third batch

  std::string mismatch = small_catalog;
  const std::string close = "</Наименование></Товар>\n      <Товар Статус";
  mismatch.replace(mismatch.find(close), std::string("</Наименование>").size(), "</Наименовани>");
  CHECK(sliced_error(mismatch, "small.xml") == "small.xml:14:44: malformed XML: Start-end tags mismatch");
  CHECK(whole_error(mismatch, "small.xml") == "small.xml:14:44: malformed XML: Start-end tags mismatch");
}

TEST_CASE("pass 1 jumps over item lists; what could mislead the jump is scanned in full, same result") {
  const std::string item = "<Товар><Ид>p1</Ид><Наименование>One</Наименование></Товар>";
  for (const std::string& odd : {
           std::string("<Товар><Ид>p1</Ид><!-- </Товары> --><Наименование>One</Наименование></Товар>"),
           std::string("<Товар><Ид>p1</Ид><Наименование><![CDATA[</Товары>]]></Наименование></Товар>"),
           std::string("<Товар><Ид>p1</Ид><Наименование>One</Наименование><Товары><Товар/></Товары></Товар>"),
           std::string("<Товар><Ид>p1</Ид><Наименование a=\"</Товары>\">One</Наименование></Товар>"),
       }) {
    CAPTURE(odd);
    std::string doc = small_catalog;
    doc.replace(doc.find(item), item.size(), odd);
    for (std::size_t chunk : {3, 4096}) {
      CAPTURE(chunk);
      CHECK(dump(read_sliced(doc, "small.xml", {.chunk_size = chunk})) == dump(read_whole(doc, "small.xml")));
    }
  }
  // Truncated inside a list: the jump finds no end tag, and the full pass gives its message.
  const std::string cut(small_catalog, 0, std::string_view(small_catalog).find("<Товар Статус") + 9);
  CHECK(sliced_error(cut, "small.xml") == whole_error(cut, "small.xml"));
  CHECK(sliced_error(cut, "small.xml") != "no error");
  // A mismatch inside an item is no longer found before on_document: the items before it are
  // delivered, then the batch that holds it fails (the importer's transaction undoes them).
  std::string mismatch = small_catalog;
  const std::string close = "</Наименование><БазоваяЕдиница";  // p3's, the third item
  mismatch.replace(mismatch.find(close), std::string("</Наименование>").size(), "</Наименовани>");
  recorder r;
  const auto error = error_of([&] { read_catalog_buffer(mismatch, "small.xml", r, {.batch_size = 1}); });
  CHECK(error == "small.xml:16:46: malformed XML: Start-end tags mismatch");
  CHECK(error == whole_error(mismatch, "small.xml"));
  CHECK(r.products.size() == 2);
}

TEST_CASE("hostile input: entity expansion and deep nesting") {
  std::string lol = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n";
  lol += " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n";
  for (int i = 2; i <= 9; ++i) {
    lol += " <!ENTITY lol" + std::to_string(i) + " \"";
    for (int k = 0; k < 10; ++k) lol += "&lol" + std::to_string(i - 1) + ";";
    lol += "\">\n";
  }
  lol += "]>\n<КоммерческаяИнформация><Классификатор><Группы><Группа><Ид>&lol9;</Ид>"
         "<Наименование>&lol9;</Наименование></Группа></Группы></Классификатор></КоммерческаяИнформация>\n";
  const auto start = std::chrono::steady_clock::now();
  const recorder r = read_sliced(lol, "lol.xml", {.chunk_size = 16});
  const recorder w = read_whole(lol, "lol.xml");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  REQUIRE(r.categories.size() == 1);
  CHECK(r.categories[0].name == "&lol9;");  // left as written, never expanded
  CHECK(dump(r) == dump(w));

  std::string deep = "<КоммерческаяИнформация><Классификатор>";
  for (int i = 0; i < 100000; ++i) deep += "<Группы><Группа>";
  for (int i = 0; i < 100000; ++i) deep += "</Группа></Группы>";
  deep += "</Классификатор></КоммерческаяИнформация>";
  // Element 257 is the Группы of the 128th pair: 39 characters of root and Классификатор, 127 × 16.
  const std::string expected = "deep.xml:1:2072: elements nested deeper than 256 levels";
  CHECK(sliced_error(deep, "deep.xml") == expected);
  CHECK(whole_error(deep, "deep.xml") == expected);
}

namespace {

// A catalog of `count` products made up on the fly, so that a big input costs no memory here.
class generated_catalog final : public detail::byte_source {
 public:
  explicit generated_catalog(std::size_t count) : count_(count) { rewind(); }
  std::size_t read(char* out, std::size_t n) override {
    std::size_t done = 0;
    while (done < n) {
      if (pos_ == piece_.size() && !next_piece()) break;
      const std::size_t k = std::min(n - done, piece_.size() - pos_);
      piece_.copy(out + done, k, pos_);
      pos_ += k;
      done += k;
    }
    bytes_ += done;
    return done;
  }
  void rewind() override {
    index_ = 0;
    piece_ =
        "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<КоммерческаяИнформация xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.07\">\n"
        "<Каталог СодержитТолькоИзменения=\"false\"><Ид>c</Ид><Товары>\n";
    pos_ = 0;
  }
  std::size_t bytes() const { return bytes_; }

 private:
  bool next_piece() {
    if (index_ > count_) return false;
    if (index_ == count_) {
      piece_ = "</Товары></Каталог></КоммерческаяИнформация>\n";
    } else {
      piece_ = "  <Товар><Ид>" + std::to_string(index_) +
               "</Ид><Артикул>АРТ-1</Артикул><Наименование>Портативный коврик Portable 140x200x1 см</Наименование>"
               "<БазоваяЕдиница Код=\"796 \" НаименованиеПолное=\"Штука\">шт</БазоваяЕдиница>"
               "<Группы><Ид>5a1b2c3d-0000-11e7-80c2-0cc47ab29cd1</Ид></Группы>"
               "<Описание>Коврик для пикника из мягкого флиса с непромокаемой основой; складывается в сумку.</Описание>"
               "<ЗначенияСвойств><ЗначенияСвойства><Ид>p1</Ид><Значение>42</Значение></ЗначенияСвойства></ЗначенияСвойств>"
               "<СтавкиНалогов><СтавкаНалога><Наименование>НДС</Наименование><Ставка>20</Ставка></СтавкаНалога></СтавкиНалогов>"
               "<ЗначенияРеквизитов><ЗначениеРеквизита><Наименование>Полное наименование</Наименование>"
               "<Значение>Портативный коврик Portable 140x200x1 см, деревянные лошадки</Значение></ЗначениеРеквизита>"
               "</ЗначенияРеквизитов></Товар>\n";
    }
    ++index_;
    pos_ = 0;
    return true;
  }
  std::size_t count_;
  std::size_t index_ = 0;
  std::string piece_;
  std::size_t pos_ = 0;
  std::size_t bytes_ = 0;
};

std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

struct counting_sink final : catalog_sink {
  std::size_t products = 0, peak_rss = 0;
  bool in_order = true;
  void on_products(std::vector<model::product> v) override {
    for (const auto& p : v) in_order = in_order && p.external_id == std::to_string(products++);
    peak_rss = std::max(peak_rss, resident_bytes());
  }
};

}  // namespace

TEST_CASE("memory stays bounded: 120 000 products (~160 MB) through the sliced reader") {
  generated_catalog source(120'000);
  counting_sink sink;
  const std::size_t before = resident_bytes();
  detail::read_sliced(source, "big.xml", sink, {});
  CHECK(sink.products == 120'000);
  CHECK(sink.in_order);
  CHECK(source.bytes() > 2 * 150'000'000);  // read twice
  MESSAGE("input " << source.bytes() / 2 / 1'000'000 << " MB, resident growth "
                   << (sink.peak_rss - std::min(before, sink.peak_rss)) / 1'000'000 << " MB");
#ifndef __SANITIZE_ADDRESS__  // AddressSanitizer keeps freed memory in quarantine
  CHECK(sink.peak_rss < before + 48'000'000);
#endif
}
