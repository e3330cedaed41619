#pragma once
// Inbound sync from МойСклад into the portal: pulls JSON through `api`, decodes it (decode.hpp),
// applies the source's mapping::rules exactly as the 1C import does (price types, stores →
// warehouses, custom fields → properties, order states → statuses; the same unmapped policies) and
// writes through the portal store (catalog_writer, apply_documents). The portal sees one model
// whichever ERP feeds it.
//
// Blocking (HTTP and libpq): call on a worker thread with that thread's connection. Every call
// applies each entity kind in ONE transaction (the portal shows all of it or none of it), holding
// the same per-source advisory lock as the 1C import, so two imports of one source never
// interleave. Anything thrown — api_error (the caller's job/queue decides about retries by
// transient()), sync_error (an unmapped value under `fail`, an answer of the wrong shape), pqxx
// errors — rolls the transaction back: the portal and the bookmarks are unchanged. Rows that cannot
// be decoded are skipped and described in import_counts::warnings.
//
// Entities ("entity" arguments):
//   catalog        price types (context/companysettings/pricetype), uoms and currencies (lookups),
//                  product custom-field definitions (entity/product/metadata/attributes),
//                  productfolder → categories, product → products + their base offer (products
//                  without variants), variant → offers; prices come with them (salePrices).
//   prices         price types, then the salePrices of products and variants only (offers are
//                  touched header-only: name, sku … stay).
//   stock          entity/store → warehouses, then report/stock/bystore/current → stock per offer
//                  and warehouse (full: include=zeroLines, so offers now at 0 everywhere drop to 0).
//   counterparties entity/counterparty → portal counterparties (upsert by (source, id)).
//   orders         customer orders' states (entity/customerorder/metadata), customerorder →
//                  portal orders' status/ERP number/total (matched by syncId = the portal order's
//                  guid, then by (source, id)), invoiceout → invoices, demand → waybills.
//   all            catalog, stock, counterparties, orders — each its own transaction, in that order;
//                  the counts are summed.
//
// Full vs incremental. Full pages through everything (limit = page_size, following nextHref) and
// deactivates the categories, products and offers it did not carry (catalog only). Incremental
// asks for filter=updated>=<bookmark>;archived=true;archived=false (archived rows come too, so
// archiving deactivates; documents have no archived flag and get updated>= only), never
// deactivates what it did not see, and falls back to full when there is no bookmark. Stock
// incremental asks report/stock/bystore/current?changedSince=<bookmark> for the changed items and
// then re-reads those items' stock in every store (filter=assortmentId=…), because a partial store
// list would zero the others; a bookmark older than 24 hours (the report's limit) means full.
//
// Bookmarks: obmen.bookmarks (source, entity ∈ catalog|prices|stock|counterparties|orders), value =
// MSK wire time "YYYY-MM-DD HH:MM:SS". Saved in the transaction of the data it covers, by full and
// incremental runs alike, never by a dry run. The new value is a signpost taken BEFORE the first
// request: settings.clock() (the local clock; the api interface exposes no Date header) converted
// to MSK, minus settings.overlap — never the largest `updated` seen, so a change committed in
// МойСклад while the run paged is fetched again next time rather than lost. The overlap covers clock
// skew between this host and МойСклад; re-applying a row is harmless (unchanged rows are not written).
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "adapters/moysklad/api.hpp"
#include "adapters/moysklad/decode.hpp"
#include "mapping/mapping.hpp"
#include "store/orders_store.hpp"
#include "store/portal_store.hpp"

namespace obmen::moysklad {

// A sync that cannot be applied as asked: an unmapped value under the `fail` policy ("МойСклад
// source 'ms': price type 'Опт' (id …) is not mapped …"), an answer of the wrong shape, an
// unknown entity name. Permanent: retrying the same data fails the same way.
class sync_error : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct source_settings {
  std::string name;                                  // portal rows' `source`, bookmarks' source
  std::shared_ptr<const mapping::rules> rules;       // nullptr = defaults (import everything as-is)
  // Orders МойСклад has that the portal does not (not created on the portal): report = warn and
  // skip; create = insert them as ERP orders.
  store::unknown_order_policy unknown_orders = store::unknown_order_policy::report;
  std::size_t page_size = 1000;                      // limit= of list requests (1..1000)
  std::chrono::seconds overlap{300};                 // subtracted from the signpost (see above)
  // Now, for the signpost; nullptr = std::chrono::system_clock::now. Tests pin it.
  std::function<std::chrono::system_clock::time_point()> clock;
};

// The entity names above, in the order "all" runs them.
const std::vector<std::string>& sync_entities();

// Full sync of `entity` (see above). dry_run: everything is fetched and applied, then rolled back
// (the counts say what would change; bookmarks stay). Throws sync_error for an unknown entity.
store::import_counts sync_full(pqxx::connection&, api&, const source_settings&, const std::string& entity,
                               bool dry_run = false);

// Incremental sync of `entity` from its bookmark (full when there is none, or for stock when it
// is older than 24 hours).
store::import_counts sync_incremental(pqxx::connection&, api&, const source_settings&, const std::string& entity,
                                      bool dry_run = false);

// The bookmark of (source, entity), nullopt when none; for status pages and tests.
std::optional<std::string> bookmark(pqxx::connection&, const std::string& source, const std::string& entity);

// Webhook events (decode.hpp: struct event, parse_webhook(body) — throws decode_error naming the
// field). Applies them in order in ONE transaction: each event's href is fetched verbatim and that
// one entity applied — product (+ base offer), variant, productfolder, counterparty, customerorder,
// invoiceout, demand, store. action DELETE deactivates a product (and its offers), a variant's offer
// or a category without a request; a 404 on the GET counts as deleted. Other types, and DELETE of
// types obmen does not deactivate, are skipped with a warning. Events of one entity repeated in the
// batch are fetched once.
store::import_counts apply_events(pqxx::connection&, api&, const source_settings&, const std::vector<event>&);

// A stock webhook: GETs report_url verbatim (the client encodes its raw space), then the changed
// items' stock in every store, and applies it (one transaction). Bookmarks are not moved.
store::import_counts apply_stock_report(pqxx::connection&, api&, const source_settings&, const std::string& report_url);

}  // namespace obmen::moysklad
