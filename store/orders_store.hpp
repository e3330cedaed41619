#pragma once
// Order exchange in the portal store: which portal orders an ERP node must receive
// ("sale/query"), remembering what a session sent and what the node acknowledged
// ("sale/success"), and applying what the ERP sends back ("sale/file" + "sale/import"):
// order statuses, payment and shipment, ERP numbers, edited lines, the ERP's documents
// (invoices, waybills, VAT invoices, УПД, acts) and counterparties.
//
// Every function runs inside the caller's transaction and blocks (libpq): worker threads only.
// Database errors throw pqxx exceptions and leave the transaction aborted. Problems with single
// documents (an unknown order, an unknown offer …) do not abort: they are counted as skipped and
// described in import_counts::warnings.
//
// Bookkeeping lives in obmen.order_exports (one row per node and order: the order version sent,
// by which session, the version acknowledged). The portal's contract — how it creates orders,
// which columns obmen writes back, the status history and its NOTIFY — is docs/orders.md.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "mapping/mapping.hpp"
#include "model/order.hpp"
#include "store/portal_store.hpp"

namespace obmen::store {

// ---- portal → 1C ("sale/query" / "sale/success") ----

struct order_export_batch {
  std::vector<model::document> orders;      // ready to write as CommerceML
  std::vector<std::int64_t> order_ids;      // portal.orders.id, parallel to `orders`
};

// Orders that need to go to the ERP node `source`: orders created on the portal
// (portal.orders.source IS NULL) that this node never acknowledged, or that changed
// (portal.orders.changed_at) after the version this node acknowledged; oldest change first, at
// most `limit`. Each document is complete: Ид = orders.guid, Номер, Дата/Время from created_at
// in `erp_timezone` (an IANA name, e.g. "Europe/Moscow"), Валюта, Курс 1, Сумма, Роль
// "Продавец", Комментарий; the buyer (Роль "Покупатель"; Ид = the counterparty's external_id,
// else its guid; a person when it has neither ИНН nor legal name); lines in order_items.id order
// (Ид = the offer's external_id, "product#characteristic" for variants; unit from the product);
// requisites "Метод оплаты" (when set), "Заказ оплачен", "Доставка разрешена", "Отменен",
// "Финальный статус", "Статус заказа", "Дата изменения статуса". A delivery price
// (orders.delivery_price > 0) becomes the service line ORDER_DELIVERY.
//
// Each document's НомерВерсии (version) is the order's changed_at in that snapshot (UTC,
// microseconds): record_export remembers exactly that version as sent.
//
// Call it in a REPEATABLE READ (or SERIALIZABLE) transaction: the batch is one snapshot, and an
// order the portal is still writing (uncommitted) is not visible, so it is never half-exported
// (docs/orders.md asks the portal to insert an order and its lines in one transaction).
order_export_batch orders_to_export(pqxx::transaction_base& tx, const std::string& source,
                                    const std::string& erp_timezone, std::size_t limit);

// Remembers that exchange session `session_id` sent these orders, each at the version
// (changed_at) it had in the batch's snapshot — a document without a version counts at the
// order's current changed_at. Call it in the transaction of orders_to_export (or one that
// commits before the answer goes out). A later record for the same node and order replaces the
// pending one. Throws std::invalid_argument when orders and order_ids differ in size.
void record_export(pqxx::transaction_base& tx, const std::string& source, std::int64_t session_id,
                   const order_export_batch&);

// "success": everything `session_id` sent to `source` counts as delivered at the version it was
// sent (a change made after the query is sent again next time). Also sets portal.orders.exported_at.
// Returns how many orders were acknowledged; a session with nothing pending → 0 (so a repeated
// success is harmless).
std::size_t acknowledge_export(pqxx::transaction_base& tx, const std::string& source, std::int64_t session_id);

// ---- 1C → portal ("sale/file" + "sale/import") ----

enum class unknown_order_policy {
  create,   // insert the order (source/external_id = the ERP's), with counterparty and lines
  report    // warn and write nothing for it
};

struct documents_apply_options {
  std::string source;                          // source name from the config, e.g. "onec"
  const mapping::rules* rules = nullptr;       // status mapping; nullptr = default rules
  unknown_order_policy unknown_orders = unknown_order_policy::report;
  std::string erp_timezone = "Europe/Moscow";  // how to read the ERP's local dates and times
};

// Applies documents from the ERP, in order.
//
// Orders (ХозОперация "Заказ товара") are matched by Ид = orders.guid, then (source, external_id),
// then Номер = orders.number. Written back: status (mapped by rules->status() from "Статус заказа"
// / "Статуса заказа ИД"; the raw value goes to erp_status; a payment / shipment date without a
// mapped status change moves to the derived paid / shipped status; Отменен=true or
// ПометкаУдаления=true → cancelled (never cleared by the ERP); derived statuses apply only to facts
// new to the order, cancelled before shipped before paid), erp_number / erp_date
// ("Номер по 1С" / "Дата по 1С", Номер1С / Дата1С), paid_at + payment_number ("Дата оплаты по 1С" /
// "Дата оплаты", "Номер оплаты по 1С" / "Номер платежного документа"), shipped_at + shipment_number
// ("Дата отгрузки по 1С", "Номер отгрузки по 1С"), lines and total when the document carries lines
// that differ (order_items replaced; ORDER_DELIVERY goes to delivery_price). Every status change
// appends a row to portal.order_status_history (origin = options.source, comment naming the 1C
// document and the reason), whose trigger sends NOTIFY portal_order_status; a document that
// changes nothing writes nothing. obmen's writes carry SET LOCAL obmen.writer (reset before
// returning), so the changed_at triggers of migration 0002 ignore them and the ERP's changes are
// not exported back to it.
//
// Other operations become portal.documents, keyed by (source, Ид): "Счет на оплату" → invoice,
// "Отпуск товара" / "Реализация товаров и услуг" → waybill, "Счет-фактура" → vat_invoice,
// УПД → upd, акт → act; subordinate documents of an order are stored the same way. Each is linked
// to its order (base_document, the order it is subordinate to, or its Номер) and counterparty;
// payload = the whole document as JSON. Other operations are skipped with a warning.
//
// Counterparties (root-level and inside documents) are upserted by (source, Ид); an unknown Ид is
// matched by ИНН+КПП (ИНН alone for a sole trader) and that row is adopted (source/external_id set).
//
// Counts per entity: orders (inserted = created, updated, unchanged, skipped = unknown or
// ambiguous), order_items (inserted = lines written when an order's lines were replaced,
// unchanged = lines that matched), order_status_history (inserted), documents (skipped =
// operations not stored), counterparties.
import_counts apply_documents(pqxx::transaction_base& tx, const std::vector<model::document>& docs,
                              const std::vector<model::counterparty>& counterparties,
                              const documents_apply_options&);

// ---- counterparties created on the portal, delivered to an ERP that keeps its own ids ----

// A counterparty the portal created (source IS NULL, found by its guid) that the ERP `source` now
// holds as `external_id`: it becomes that source's row (source, external_id; exported_at = now()),
// so the next sync of counterparties updates it instead of adding a second one. Written as obmen
// (SET LOCAL obmen.writer). Returns false, changing nothing, when there is no such portal-created
// row (already adopted) or the source already has a row with that external id.
bool adopt_counterparty(pqxx::transaction_base& tx, const std::string& source, const std::string& guid,
                        const std::string& external_id);

}  // namespace obmen::store
