#pragma once
// МойСклад JSON API 1.2 → the canonical model (model/catalog.hpp, model/order.hpp). Pure: no I/O,
// no database, no clock; thread-safe. sync.hpp fetches the JSON and applies what comes out here.
//
// Wire facts this file relies on (reference/moysklad/API.md §4, §5, §10, §11):
//  - money is in kopecks, a JSON number that may be a float with fractional kopecks;
//  - dates are MSK (fixed UTC+3, no DST) "YYYY-MM-DD HH:MM:SS[.mmm]", some minute precision;
//  - references are {"meta":{"href":…}}; an id is the last segment of the href's path (hrefs of
//    report rows carry a query string: …/entity/product/<id>?expand=supplier);
//  - empty optional fields are omitted, never null.
//
// Errors: a value of the wrong type or shape throws decode_error whose what() names the field by
// its JSON path ("salePrices[0].value is not a number"). decode_rows() turns that into a warning
// naming the object and the row and skips the row; a list whose top level is not the expected
// shape throws decode_error from the list decoder itself.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/catalog.hpp"
#include "model/order.hpp"

namespace obmen::moysklad {

class decode_error : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ─── scalars ────────────────────────────────────────────────────────────────────────────────

// Kopecks (a JSON number: integer or float) → currency units as exact decimal text, the canonical
// form for portal numeric(18,4): the number the server wrote (integers exactly up to ±2^63, floats
// by their shortest round-trip digits) divided by 100, rounded half away from zero at the 4th
// fraction digit, trailing zeros trimmed but never below 2 fraction digits:
//   55500 → "555.00", 12345.5 → "123.455", 50260.86956521739 → "502.6087", 0 → "0.00",
//   -150 → "-1.50", 0.004 → "0.00" (never "-0.00").
// Throws decode_error("<what> is not a number") for anything but a number.
std::string kopecks_to_decimal(const nlohmann::json& value, std::string_view what = "value");
// Currency-unit decimal text ("555", "555.00", "123.455", "1 234,5") → kopecks, rounded half away
// from zero to a whole kopeck ("123.455" → 12346). For writes (positions' price, …).
// Throws decode_error naming the text when it is not a number or does not fit int64 (INT64_MIN
// included: "-92233720368547758.08").
std::int64_t decimal_to_kopecks(std::string_view text);
// A quantity (stock, quantity: JSON number, fractional for weighed goods) → decimal text without
// scaling: 11 → "11", 4.5 → "4.5", -5 → "-5". Throws decode_error when not a number.
std::string quantity_to_decimal(const nlohmann::json& value, std::string_view what = "value");

// MSK wire time "YYYY-MM-DD HH:MM[:SS[.fff]]" → UTC "YYYY-MM-DDTHH:MM:SS[.fff]Z" (the fraction is
// kept as sent, minute precision gets ":00"); nullopt when the text is not such a time, names
// an impossible date ("2024-02-30 …") or converts to a year outside 0000–9999.
std::optional<std::string> msk_to_utc(std::string_view msk);
// UTC "YYYY-MM-DDTHH:MM:SS[.fff]Z" (also with ' ' for 'T', or "+00:00" for 'Z') → MSK wire time
// "YYYY-MM-DD HH:MM:SS[.fff]"; nullopt when malformed or past year 9999 in MSK.
std::optional<std::string> utc_to_msk(std::string_view utc);
// A moment ↔ MSK wire text "YYYY-MM-DD HH:MM:SS" (whole seconds, truncated). parse_msk gives
// nullopt for a time system_clock cannot hold (before 1678 or after 2262).
std::string to_msk(std::chrono::system_clock::time_point t);
std::optional<std::chrono::system_clock::time_point> parse_msk(std::string_view msk);

// The id in an href: the last non-empty segment of its path, query string and fragment ignored
// ("…/entity/product/<id>?expand=supplier" → "<id>"). Throws decode_error("href '…' has no id")
// when that segment is not a UUID (8-4-4-4-12 hex digits).
std::string id_from_href(std::string_view href);
// The id of a reference {"meta":{"href":…}} (its "id" member when present, else from meta.href);
// nullopt when `ref` is absent/null. Throws decode_error naming `what` when it has no usable href.
std::optional<std::string> ref_id(const nlohmann::json* ref, std::string_view what);

// Percent-encodes everything but unreserved characters (A-Z a-z 0-9 - _ . ~), for query values:
// "updated>=2024-01-01 12:00:00" → "updated%3E%3D2024-01-01%2012%3A00%3A00".
std::string url_encode(std::string_view s);

// {"errors":[{"error":…,"code":…,"parameter":…},…]} → one line: "3000 Ошибка …: поле 'name' …
// (parameter 'name')"; several errors joined with "; ". A body without errors → "".
std::string error_message(const nlohmann::json& body);

// ─── lookups the entity decoders need ───────────────────────────────────────────────────────

struct uom {                            // entity/uom
  std::string name;                     // "шт"
  std::string code;                     // "796"
};

struct lookups {
  std::map<std::string, uom> uoms;                   // uom id → name/code (product.uom)
  std::map<std::string, std::string> currencies;     // currency id → isoCode ("RUB"); salePrices, rate
  std::map<std::string, std::string> states;         // customerorder state id → name
  std::map<std::string, std::string> order_sync_ids; // customerorder id → its syncId (documents' base)
};

// entity/uom rows → lookups::uoms; entity/currency rows → lookups::currencies (isoCode, else
// code, else name); entity/customerorder/metadata → lookups::states (its "states" array).
void add_uoms(lookups&, const nlohmann::json& rows);
void add_currencies(lookups&, const nlohmann::json& rows);
void add_states(lookups&, const nlohmann::json& metadata);

// ─── entities ───────────────────────────────────────────────────────────────────────────────
// Each decoder takes one row (a JSON object) and throws decode_error on a malformed field.

// productfolder → category: parent from productFolder.meta.href, archived → inactive,
// description.
model::category decode_folder(const nlohmann::json& row);

struct decoded_product {
  model::product product;
  // The product's own offer (external_id = product_external_id = the product id, no
  // characteristic) when variantsCount is 0 or absent; nullopt for a product with variants (its
  // offers are the variants).
  std::optional<model::offer> base_offer;
  // Custom-field definitions seen in attributes[] (id, name, type), for values whose metadata
  // was not listed.
  std::vector<model::attribute_def> attribute_defs;
};

// product → model::product (+ base offer). sku = article, code, name, description, barcode = the
// first barcode of any kind, unit/unit_code through lookups.uoms, category = productFolder's id,
// active = !archived, version = updated (MSK text as sent), taxes: НДС = effectiveVat (else vat)
// when VAT is enabled, "Без налога" when effectiveVatEnabled/vatEnabled is false. attributes[]:
// value text — strings as is, numbers as decimal text, booleans "true"/"false", objects (custom
// entity, …) their name. Base offer: name, sku, barcode, version and active of the product,
// prices = decode_sale_prices(salePrices); stock not carried.
decoded_product decode_product(const nlohmann::json& row, const lookups&);
// variant → offer: external_id = characteristic_id = the variant id, product_external_id = its
// product's id, name, sku = article, barcode, characteristics[] (id, name, value), its own prices,
// active = !archived, version = updated.
model::offer decode_variant(const nlohmann::json& row, const lookups&);
// salePrices[] → prices (price_type_id = priceType.id, value in currency units, currency through
// lookups.currencies, empty when unknown). A price of 0 is МойСклад's "not set": it is left out,
// so the portal deactivates that price type for the offer instead of selling at 0.
std::vector<model::price> decode_sale_prices(const nlohmann::json& sale_prices, const lookups&,
                                             std::string_view path = "salePrices");

// context/companysettings/pricetype element → price_type (id, name; currency empty).
model::price_type decode_price_type(const nlohmann::json& row);
// store → warehouse (id, name, active = !archived).
model::warehouse decode_store(const nlohmann::json& row);
// Custom-field definitions (id, name, type) from entity/<type>/metadata/attributes (a collection:
// its rows) or from entity/<type>/metadata when its "attributes" is an array or an expanded
// collection; a collection reference without rows gives none (GET its href). Throws decode_error
// when the list is present but not an array.
std::vector<model::attribute_def> decode_attribute_defs(const nlohmann::json& metadata);

// counterparty → counterparty: external_id = id, name, role "Покупатель", legal_entity for
// companyType legal/legalUZ/legalKZ (also when absent); official_name = full_name = legalTitle
// (legal) or "legalLastName legalFirstName legalMiddleName" (persons), last/first/middle name,
// inn, kpp, okpo, legal_address = legalAddress, postal_address = actualAddress, contacts
// {"Почта", email} and {"ТелефонРабочий", phone}, active = !archived, version = updated.
model::counterparty decode_counterparty(const nlohmann::json& row);

// customerorder → document "Заказ товара": external_id = syncId when present, else the id (obmen
// sends portal orders with syncId = the portal order's guid, so a round trip finds its order);
// number = erp_number = name; date/time = moment (MSK, the ERP's local time as the model wants);
// erp_date = moment; total = sum (currency units); currency through lookups (rate.currency, else
// "RUB"); comment = description; deleted when the row carries "deleted" (recycle bin);
// requisites "Статус заказа" = state name (lookups.states) and "Статуса заказа ИД" = state id;
// counterparties = one placeholder {external_id = agent id, role "Покупатель"} that the caller
// must replace by the full counterparty (or drop) — an id alone would rename the portal's row;
// lines from positions.rows when expanded (offer = assortment id, quantity, price, discount as a
// sum, amount = price × quantity less the discount, rounded to kopecks).
model::document decode_customer_order(const nlohmann::json& row, const lookups&);
// invoiceout → "Счет на оплату", demand → "Отпуск товара": external_id = the id, number/date/
// total/agent as for orders, base_document = the linked customerOrder's syncId from
// lookups.order_sync_ids, else its МойСклад id (apply_documents links by Ид = guid, then by
// (source, external_id)).
model::document decode_invoice_out(const nlohmann::json& row, const lookups&);
model::document decode_demand(const nlohmann::json& row, const lookups&);
// The customerOrder id a document row links to, nullopt when none.
std::optional<std::string> linked_order_id(const nlohmann::json& row);

// Current stock: report/stock/{all,bystore}/current plain array [{"assortmentId","storeId"?,
// "<stockType>": n}] → rows. The value is the member other than assortmentId/storeId ("stock",
// "freeStock", "quantity" …); null (still recalculating) rows are skipped with a warning.
// store_id empty = not tied to a store (or an "all" report). Throws decode_error when `body` is
// not an array; a malformed element is skipped with a warning "stock row N: …".
struct stock_current_row {
  std::string assortment_id;
  std::string store_id;
  model::decimal quantity;
};
std::vector<stock_current_row> decode_stock_current(const nlohmann::json& body, std::vector<std::string>& warnings);

// ─── webhooks ───────────────────────────────────────────────────────────────────────────────

struct event {
  std::string type;                     // meta.type: product, variant, customerorder …
  std::string id;                       // from meta.href
  std::string href;                     // meta.href verbatim (GET it for the entity)
  std::string action;                   // CREATE | UPDATE | DELETE | PROCESSED
  std::vector<std::string> updated_fields;  // only with diffType=FIELDS
};
// A webhook body {"auditContext":…, "events":[{meta{type,href}, action, updatedFields?}]} →
// events. Throws decode_error naming the field ("events[0].meta.href is missing").
std::vector<event> parse_webhook(const nlohmann::json& body);
// A webhookstock body → its reportUrl (verbatim, with its raw space). Throws decode_error.
std::string parse_webhookstock(const nlohmann::json& body);

// ─── rows with context ──────────────────────────────────────────────────────────────────────

// Decodes each element of `rows` (a JSON array) with `fn`; an element that throws decode_error
// (or is not an object) is skipped and described in `warnings` as
//   "<kind> '<id>' (<where> row <n>): <reason>"   e.g.
//   "product '26b36824-…' (entity/product row 17): salePrices[0].value is not a number"
// (n = first_row + index, 1-based across pages; no '<id>' when the row has none).
// Throws decode_error when `rows` is not an array.
template <class T>
std::vector<T> decode_rows(const nlohmann::json& rows, std::string_view kind, std::string_view where,
                           std::size_t first_row, const std::function<T(const nlohmann::json&)>& fn,
                           std::vector<std::string>& warnings);

// "<kind> '<id>' (<where> row <n>): " — the prefix decode_rows uses, for callers that decode
// rows themselves.
std::string row_label(const nlohmann::json& row, std::string_view kind, std::string_view where, std::size_t n);

template <class T>
std::vector<T> decode_rows(const nlohmann::json& rows, std::string_view kind, std::string_view where,
                           std::size_t first_row, const std::function<T(const nlohmann::json&)>& fn,
                           std::vector<std::string>& warnings) {
  if (!rows.is_array()) throw decode_error(std::string(where) + ": rows is not an array");
  std::vector<T> out;
  out.reserve(rows.size());
  std::size_t n = first_row;
  for (const auto& row : rows) {
    try {
      if (!row.is_object()) throw decode_error("not an object");
      out.push_back(fn(row));
    } catch (const decode_error& e) {
      warnings.push_back(row_label(row, kind, where, n) + e.what() + "; skipped");
    }
    ++n;
  }
  return out;
}

}  // namespace obmen::moysklad
