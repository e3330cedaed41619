#pragma once
// The portal store: the only code that writes SQL for schema `portal`.
//
// catalog_writer applies one imported package (one CommerceML file, one МойСклад page set …)
// inside the caller's transaction: it stages rows with COPY and merges them set-based,
// keyed by (source, external_id), so importing the same data again changes nothing and
// reports only "unchanged". Nothing is ever hard-deleted: a full package deactivates what it
// did not carry; deletion marks deactivate. Blocking: worker threads only.
//
// Rows arrive already translated by the mapping (portal codes, attribute names).
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "model/catalog.hpp"

namespace obmen::store {

struct entity_counts {
  std::int64_t inserted = 0, updated = 0, unchanged = 0, deactivated = 0, skipped = 0;
  entity_counts& operator+=(const entity_counts&);
  bool operator==(const entity_counts&) const = default;
};

// Entities: categories, attributes, price_types, warehouses, products, images, offers, prices, stock.
struct import_counts {
  std::map<std::string, entity_counts> by_entity;
  std::vector<std::string> warnings;   // e.g. "offer 'x#y': price type 'abc' is not declared; price skipped"
  import_counts& operator+=(const import_counts&);
  bool changed() const;                // anything inserted, updated or deactivated
  // "categories 36 new, products 282 new 0 updated 0 unchanged …" — one line, for 1C's log and the CLI.
  std::string summary() const;
  nlohmann::json to_json() const;
};

struct price_type_row {
  std::string external_id, code, name, currency;
};

struct warehouse_row {
  std::string external_id, code, name;
  bool active = true;
};

struct attribute_row {                 // property definition, remembered to resolve values across files
  std::string external_id, name;       // name = mapped attribute name
  std::string value_type;
  std::vector<model::attribute_option> options;
  bool active = true;
};

struct product_row {
  std::string external_id, version, sku, barcode, code, name, full_name, description, unit,
      unit_code, manufacturer, vat_rate;
  std::string category_external_id;    // first group; empty = none
  nlohmann::json attributes = nlohmann::json::object();  // mapped name → string or array of strings
  nlohmann::json requisites = nlohmann::json::object();  // name → value
  std::optional<std::vector<std::string>> images;       // sha256 hex in order; nullopt = leave as is
  bool active = true;
};

struct price_row {
  std::string price_type_external_id;
  model::decimal value;
  std::string currency, unit;
  model::decimal coefficient;          // empty = 1
};

struct stock_row {
  std::string warehouse_external_id;
  model::decimal quantity;
};

struct offer_row {
  std::string external_id, product_external_id, characteristic_id, version, name, sku, barcode;
  nlohmann::json characteristics = nlohmann::json::array();  // [{"name":…, "value":…}]
  bool active = true;
  bool header_only = false;            // split prices/rests files: only prices / stock are carried
  std::optional<std::vector<price_row>> prices;   // nullopt = not carried
  std::optional<std::vector<stock_row>> stock;
  std::optional<model::decimal> quantity;
};

class catalog_writer {
 public:
  // exchange_session_id: the obmen.exchange_sessions row this import belongs to (for
  // `deactivate`), or nullopt for imports from the CLI.
  catalog_writer(pqxx::work& tx, std::string source, std::optional<std::int64_t> exchange_session_id);
  ~catalog_writer();
  catalog_writer(catalog_writer&&) noexcept;
  catalog_writer& operator=(catalog_writer&&) noexcept;

  void put_categories(const std::vector<model::category>&);
  void put_attributes(const std::vector<attribute_row>&);
  void put_price_types(const std::vector<price_type_row>&);
  void put_warehouses(const std::vector<warehouse_row>&);
  // Stores the file's bytes under its sha256 (hex) unless present; returns false when it was.
  bool put_image(const std::string& sha256, const std::filesystem::path& file, const std::string& mime);
  void put_products(const std::vector<product_row>&);
  void put_offers(const std::vector<offer_row>&);

  // For a full package: deactivate this source's rows of the entity not carried by this writer.
  void finish_categories(bool full);
  void finish_products(bool full);
  void finish_offers(bool full);

  // Definitions already in the portal for this source (external id → row), to resolve values.
  std::map<std::string, attribute_row> known_attributes();
  std::map<std::string, std::string> known_price_types();   // external id → code
  std::map<std::string, std::string> known_warehouses();    // external id → code

  const import_counts& counts() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// `deactivate` of the 1C protocol: marks this source's products, offers and categories that no
// import of the given exchange session touched as inactive. Returns what it deactivated.
import_counts deactivate_unseen(pqxx::work& tx, const std::string& source, std::int64_t exchange_session_id);

}  // namespace obmen::store
