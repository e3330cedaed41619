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

struct recorder final : catalog_sink {
  document_info info;
  int documents = 0;
  std::vector<model::category> categories;
  std::vector<model::attribute_def> attribute_defs;
  std::vector<model::price_type> price_types;
  std::vector<model::warehouse> warehouses;
  std::vector<model::product> products;
  std::vector<model::offer> offers;
  std::vector<std::string> calls;  // "products 2", … in order

  template <class T>
  void take(const char* what, std::vector<T>& into, std::vector<T>&& v) {
    calls.push_back(std::string(what) + " " + std::to_string(v.size()));
    for (auto& x : v) into.push_back(std::move(x));
  }
  void on_document(const document_info& i) override {
    info = i;
    ++documents;
    calls.push_back("document");
  }
  void on_categories(std::vector<model::category> v) override { take("categories", categories, std::move(v)); }
  void on_attribute_defs(std::vector<model::attribute_def> v) override {
    take("attribute_defs", attribute_defs, std::move(v));
  }
  void on_price_types(std::vector<model::price_type> v) override { take("price_types", price_types, std::move(v)); }
  void on_warehouses(std::vector<model::warehouse> v) override { take("warehouses", warehouses, std::move(v)); }
  void on_products(std::vector<model::product> v) override { take("products", products, std::move(v)); }
  void on_offers(std::vector<model::offer> v) override { take("offers", offers, std::move(v)); }
};

// Every field of everything the sink received, one line per value.
std::string dump(const recorder& r, bool with_calls = true) {
  std::ostringstream o;
  const auto& i = r.info;
  auto flag = [](const std::optional<bool>& f) { return f ? (*f ? "true" : "false") : "none"; };
  o << "info " << i.file_name << '|' << i.schema_version << '|' << i.xmlns << '|' << i.encoding << '|' << i.bom << '|'
    << static_cast<int>(i.kind) << '|' << flag(i.classifier_changes_only) << '|' << flag(i.catalog_changes_only) << '|'
    << flag(i.offers_changes_only) << '|' << i.has_classifier << i.has_catalog << i.has_offers << '\n';
  for (const auto& c : r.categories)
    o << "category " << c.external_id << '|' << c.parent_external_id << '|' << c.name << '|' << c.description << '|'
      << c.active << '\n';
  for (const auto& a : r.attribute_defs) {
    o << "attribute " << a.external_id << '|' << a.name << '|' << a.value_type << '|' << a.for_offers << '|' << a.active;
    for (const auto& op : a.options) o << '|' << op.external_id << '=' << op.value;
    o << '\n';
  }
  for (const auto& p : r.price_types) o << "price_type " << p.external_id << '|' << p.name << '|' << p.currency << '\n';
  for (const auto& w : r.warehouses) o << "warehouse " << w.external_id << '|' << w.name << '|' << w.active << '\n';
  auto values = [&o](const std::vector<model::attribute_value>& vs) {
    for (const auto& v : vs) {
      o << " attr " << v.attribute_id;
      for (const auto& x : v.values) o << '=' << x;
    }
  };
  auto chars = [&o](const std::vector<model::characteristic>& cs) {
    for (const auto& c : cs) o << " char " << c.external_id << '|' << c.name << '|' << c.value;
  };
  for (const auto& p : r.products) {
    o << "product " << p.external_id << '|' << p.version << '|' << p.active << '|' << p.sku << '|' << p.barcode << '|'
      << p.code << '|' << p.name << '|' << p.full_name << '|' << p.description << '|' << p.unit << '|' << p.unit_code
      << '|' << p.manufacturer;
    for (const auto& c : p.category_ids) o << " group " << c;
    for (const auto& im : p.images) o << " image " << im;
    values(p.attributes);
    for (const auto& t : p.taxes) o << " tax " << t.name << '=' << t.rate;
    for (const auto& q : p.requisites) o << " req " << q.name << '=' << q.value;
    chars(p.characteristics);
    o << '\n';
  }
  for (const auto& f : r.offers) {
    o << "offer " << f.external_id << '|' << f.product_external_id << '|' << f.characteristic_id << '|' << f.version
      << '|' << f.active << '|' << f.name << '|' << f.sku << '|' << f.barcode;
    chars(f.characteristics);
    values(f.attributes);
    if (f.prices) {
      o << " prices";
      for (const auto& p : *f.prices)
        o << ' ' << p.price_type_id << '=' << p.value << '/' << p.currency << '/' << p.unit << '/' << p.coefficient;
    }
    if (f.quantity) o << " quantity " << *f.quantity;
    if (f.stock) {
      o << " stock";
      for (const auto& s : *f.stock) o << ' ' << s.warehouse_id << '=' << s.quantity;
    }
    o << '\n';
  }
  if (with_calls)
    for (const auto& c : r.calls) o << "call " << c << '\n';
  return o.str();
}

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
    read_catalog_file(samples_dir() / e.file, r);
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
  const std::string cut = data.substr(0, data.size() / 2);
  MESSAGE(sliced_error(cut, "import.xml"));
  CHECK(sliced_error(cut, "import.xml") == whole_error(cut, "import.xml"));
}
