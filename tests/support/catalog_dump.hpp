#pragma once
// Test support: a catalog_sink that keeps everything it is given, and a dump of every field of
// it, one line per value — two readers (or two runs) agree when their dumps are equal.
// commerceml/reader_test.cpp compares the sliced and whole-document readers with it on the
// samples; fuzz/catalog.cpp does the same on fuzzed input. Header-only, no test framework.
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "commerceml/reader.hpp"

namespace obmen::testing {

struct catalog_recorder final : commerceml::catalog_sink {
  commerceml::document_info info;
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
  void on_document(const commerceml::document_info& i) override {
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
inline std::string dump(const catalog_recorder& r, bool with_calls = true) {
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

}  // namespace obmen::testing
