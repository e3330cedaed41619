#pragma once
// The portal store: the only code that writes SQL for schema `portal`.
//
// catalog_writer applies one imported package (one CommerceML file, one МойСклад page set …)
// inside the caller's transaction: it stages rows with COPY and merges them set-based,
// keyed by (source, external_id), so importing the same data again changes nothing and
// reports only "unchanged". Nothing is ever hard-deleted: a full package deactivates what it
// did not carry; deletion marks deactivate. Blocking: worker threads only.
//
// Rows arrive already translated by the mapping (portal codes, attribute names). Empty strings
// are stored as NULL. A row updates its portal row (and moves updated_at) only when some stored
// value differs; rows that are already as sent are not even locked. Problems with single rows
// (an undeclared price type, an unknown parent …) do not abort the package: the row or value is
// skipped or left NULL, counted, and described in import_counts::warnings. Database errors throw
// pqxx exceptions and leave the caller's transaction aborted.
//
// Schema and column meanings: docs/schema.md.
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
  // One line for 1C's log and the CLI, entities in import order, only those present:
  // "categories: 36 new, 0 updated, 0 unchanged; products: 282 new, 0 updated, 0 unchanged, 2 skipped; 2 warnings".
  // "N deactivated" / "N skipped" appear when non-zero; an entity with nothing carried shows
  // just them ("products: 5 deactivated", "offers: 0 deactivated"). Empty counts: "nothing imported".
  std::string summary() const;
  // {"products": {"inserted": 0, "updated": 0, "unchanged": 0, "deactivated": 0, "skipped": 0}, …,
  //  "warnings": [...]}
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
  // When set, the JSON text of attributes / requisites, taken instead of them: the 1C importer
  // writes it with json_object_text (building nlohmann trees to serialize and free them cost it
  // 0.7 s of CPU for an unchanged 100 000-product catalog).
  std::optional<std::string> attributes_text, requisites_text;
  std::optional<std::vector<std::string>> images;       // sha256 hex in order; nullopt = leave as is
  bool active = true;
};

// The JSON text of an object whose values are strings or lists of strings, written straight
// from the pairs: keys in order and unique, a key set again keeping its last value — the text
// the rows' nlohmann::json of the same assignments gives (so content hashes do not change).
class json_object_text {
 public:
  void set(std::string key, std::string value);
  void set(std::string key, std::vector<std::string> values);
  bool empty() const { return items_.empty(); }
  std::string text() &&;

 private:
  struct item {
    std::string key, value;
    std::vector<std::string> values;
    bool list;
  };
  std::vector<item> items_;
};

// Appends s as a JSON string (quoted, escaped) to out, as the rows' JSON texts write strings.
void append_json_string(std::string_view s, std::string& out);

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
  std::optional<std::string> characteristics_text;           // when set, taken instead (see product_row)
  bool active = true;
  bool header_only = false;            // split prices/rests files: only prices / stock are carried
  std::optional<std::vector<price_row>> prices;   // nullopt = not carried
  std::optional<std::vector<stock_row>> stock;
  std::optional<model::decimal> quantity;
};

// The fields of a product row that come straight from the model: identity, texts, unit, VAT
// (НДС wins over other taxes), the first category, requisites, active. Attributes and images are
// the caller's to fill: they need the mapping and the uploaded files.
product_row product_row_of(const model::product&);
product_row product_row_of(model::product&&);  // the same, taking the strings over

// Several writers may share one transaction (their counts and "carried" sets are their own);
// the staging tables are TEMP … ON COMMIT DROP. Within a batch a repeated external id counts
// once and its last row wins.
//
// A writer takes the source's import lock (the transaction-scoped advisory lock
// import_catalog_file takes) when it is made: writers of one source in different transactions
// run one after another. Products and offers store a content hash (docs/schema.md): a row sent
// again as it was is only counted, not staged; new rows are copied straight into the portal.
class catalog_writer {
 public:
  // exchange_session_id: the obmen.exchange_sessions row this import belongs to (for
  // `deactivate`), or nullopt for imports from the CLI. When set, every carried category,
  // product and offer id is recorded in obmen.exchange_seen.
  //
  // bulk_load: a portal table this writer is the first to fill (products, product_images, offers,
  // prices, stock: empty, for every source, when the writer first puts into it) is loaded
  // without its foreign keys, plain indexes, and the primary and unique keys no foreign key
  // references, which close() re-creates before the commit (the keys come back earlier when a
  // merge or look-up needs them) — PostgreSQL checks each foreign key of each copied row one by
  // one, and adds each row to each index with a WAL record of its own (measured: 560 000 stock
  // rows copy in 4.3 s with their keys and indexes, in 1.3 s with the foreign keys and plain
  // indexes re-created after, in 0.6 s with all of them). Dropping them takes ACCESS EXCLUSIVE locks on those tables and the
  // tables they reference until the commit, so the portal's reads of them wait: acceptable for a
  // first load, which is why only an empty table is loaded this way. The locks are waited for
  // 5 s at most; a table not locked in time is loaded the ordinary way. Everything is inside the
  // caller's transaction: a rollback leaves the schema as it was.
  catalog_writer(pqxx::work& tx, std::string source, std::optional<std::int64_t> exchange_session_id,
                 bool bulk_load = false);
  ~catalog_writer();
  catalog_writer(catalog_writer&&) noexcept;
  catalog_writer& operator=(catalog_writer&&) noexcept;

  // Parents are resolved by external id after the batch is stored, so a child may precede its
  // parent; a parent still unknown leaves parent_id NULL (warning). active=false (ПометкаУдаления)
  // deactivates, reported as "deactivated".
  void put_categories(const std::vector<model::category>&);
  void put_attributes(const std::vector<attribute_row>&);
  // An empty code stores the external id as code. Putting a type re-activates it.
  void put_price_types(const std::vector<price_type_row>&);
  void put_warehouses(const std::vector<warehouse_row>&);
  // Stores the file's bytes under its sha256 (lowercase hex, not re-computed) unless present;
  // returns false when it was. Counted under "images". Throws std::invalid_argument for a
  // malformed hash, std::runtime_error when the file cannot be read.
  bool put_image(const std::string& sha256, const std::filesystem::path& file, const std::string& mime);
  // Category by category_external_id (unknown → NULL, warning). images engaged: the product's
  // list becomes exactly these (images not stored by put_image are skipped with a warning and
  // the rest renumbered from 1); a different list counts the product as updated.
  void put_products(const std::vector<product_row>&);
  // Call after the products the offers refer to. A complete offer is upserted with everything
  // it carries (product_id NULL and a warning when its product is unknown; a quantity not
  // carried is kept). A header_only offer changes only quantity and prices/stock of an existing
  // offer (name, sku, barcode, characteristics, version and active stay); an unknown one is
  // created when its product is known (name: its own, else the product's), else skipped with
  // "offer '<id>': unknown offer and product; prices/stock skipped".
  // prices engaged: one row per (offer, price type); an undeclared type is skipped with a warning;
  // the offer's prices of types not listed become inactive ("deactivated"); a value that is not a
  // canonical decimal or does not fit numeric(18,4) is skipped with a warning.
  // stock engaged: one row per (offer, warehouse); an undeclared warehouse is skipped with a
  // warning; the offer's stock at warehouses not listed drops to 0 (counted as updated).
  void put_offers(const std::vector<offer_row>&);

  // The CPU half of put_products / put_offers — checking, formatting and hashing the rows, no
  // database work, no writer needed — so that it runs on another thread while the writer's
  // transaction works on the previous batch. put_* of the prepared batch does the rest, exactly
  // as put_* of the rows would (warnings included).
  struct product_batch;
  struct offer_batch;
  static std::shared_ptr<const product_batch> prepare_products(std::vector<product_row> rows);
  static std::shared_ptr<const offer_batch> prepare_offers(std::vector<offer_row> rows);
  void put_products(const std::shared_ptr<const product_batch>&);
  void put_offers(const std::shared_ptr<const offer_batch>&);

  // The rows of `entity` ("products" or "offers") to come are the source's whole set (a full
  // catalog or offers file, whose finish_*(true) will deactivate what it did not carry): the
  // writer reads the stored content hashes and ids of all of them now, in one scan, and settles
  // each batch in memory (24 bytes a stored row) instead of looking its ids up and recording
  // them as carried. Call it before the entity's first batch; another entity does nothing. A stored id whose 64-bit key
  // (std::hash) is also a carried new id's would count as carried (odds about n² / 2⁶⁴).
  void expect_whole(const std::string& entity);
  // The rows of `entity` ("products" or "offers") to come are changes only (СодержитТолькоИзменения):
  // finish_*(true) will not be called for it (it throws std::logic_error), so the writer records
  // no carried ids. Another entity does nothing.
  void expect_changes(const std::string& entity);

  // For a full package: deactivate this source's rows of the entity not carried by this writer
  // (header-only offers count as carried). full=false does nothing.
  void finish_categories(bool full);
  void finish_products(bool full);
  void finish_offers(bool full);

  // Definitions already in the portal for this source (external id → row), to resolve values.
  std::map<std::string, attribute_row> known_attributes();
  std::map<std::string, std::string> known_price_types();   // external id → code
  std::map<std::string, std::string> known_warehouses();    // external id → code

  const import_counts& counts() const;

  // Re-creates the keys, indexes and foreign keys a bulk load deferred (they are validated: a
  // repeated key or a row that breaks a foreign key throws and the transaction must be rolled back). A writer made with
  // bulk_load must be closed before its transaction commits; closing again does nothing.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// `deactivate` of the 1C protocol: marks this source's products, offers and categories that no
// import of the given exchange session touched as inactive. Returns what it deactivated (an
// entry per entity). An entity the session carried none of is left alone, with a warning: an
// offers-only exchange must not switch off the whole catalog.
import_counts deactivate_unseen(pqxx::work& tx, const std::string& source, std::int64_t exchange_session_id);

}  // namespace obmen::store
