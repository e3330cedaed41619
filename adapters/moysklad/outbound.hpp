#pragma once
// Portal → МойСклад: new and changed portal orders become customer orders, their buyers
// counterparties. Delivery goes through the durable queue (queue/queue.hpp, target = the source
// name), so a dead API, a 5xx or a time-out only delays it.
//
//   producer  queue_orders(): portal orders created on the portal (orders.source IS NULL) that
//             this source never acknowledged, or that changed since (orders.changed_at), and are
//             not already queued at this version. Each is snapshotted into the item's payload
//             (number, date in Moscow time, status, cancelled, comment, buyer, lines with the
//             МойСклад ids of their offers) and recorded in obmen.order_exports with the queue
//             item as "session" — in ONE transaction, so an order is queued exactly when its
//             export is recorded. The idempotency key moysklad:<source>:order:<guid> coalesces
//             repeated changes of one order into one pending item (never more than one PUT per
//             change; the API bans > 100 PUTs per entity per minute).
//   delivery  deliver_order(): the buyer first — a counterparty this source sent to the portal
//             is referenced by its id, any other is created with syncId = its portal guid (a
//             retry finds the one created before) — then POST entity/customerorder with
//             syncId = externalCode = the order's guid: a POST that timed out after МойСклад
//             accepted it returns the order created the first time on the retry, never a
//             duplicate. When the order exists with another state (a later portal change, e.g.
//             cancellation), one PUT sets the state. Then acknowledge() records the version as
//             delivered (orders.exported_at).
// Every write carries X-Lognex-WebHook-DisableByPrefix (client.hpp), so these writes do not come
// back as webhooks. Blocking: worker threads only.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "adapters/moysklad/api.hpp"
#include "mapping/mapping.hpp"
#include "queue/queue.hpp"

namespace obmen::moysklad {

inline constexpr const char* export_order_kind = "export_order";
inline constexpr const char* export_counterparty_kind = "export_counterparty";

// Queues what needs sending; returns how many orders were queued (0 when nothing changed).
std::size_t queue_orders(pqxx::connection&, const std::string& source, std::size_t limit = 500);

// Counterparties created on the portal (source IS NULL) and not yet delivered (exported_at NULL
// or older than changed_at), unless already queued or parked dead under their key
// moysklad:<source>:counterparty:<guid>: each is queued as export_counterparty. Delivered ones
// are adopted (orders_store.hpp adopt_counterparty) and so are not picked again.
std::size_t queue_counterparties(pqxx::connection&, const std::string& source, std::size_t limit = 500);

// What deliveries need to know, resolved once from the account and cached.
struct outbound_settings {
  std::string source;
  std::string organization;            // name or id; empty = the account's first organization
  std::string store;                   // name or id; empty = none
  std::shared_ptr<const mapping::rules> rules;  // portal status → state name (statuses rules, reversed)
};

class order_sender {
 public:
  order_sender(api& ms, outbound_settings settings);
  // Delivers one export_order or export_counterparty item; classifies failures (queue::outcome).
  queue::outcome deliver(const queue::item&);
  // Counterparties created in МойСклад since the last call: (portal guid, МойСклад id), to adopt.
  std::vector<std::pair<std::string, std::string>> take_created();

 private:
  nlohmann::json organization_meta();
  std::optional<nlohmann::json> store_meta();
  std::optional<nlohmann::json> state_meta(const std::string& portal_status);
  nlohmann::json agent_meta(const nlohmann::json& buyer);
  queue::outcome deliver_order(const queue::item&);

  api& ms_;
  outbound_settings settings_;
  std::optional<nlohmann::json> organization_, store_;
  std::optional<std::map<std::string, nlohmann::json>> states_;  // state name → meta
  std::vector<std::pair<std::string, std::string>> created_;
};

// Adopts the counterparties a sender created (own transaction each); returns how many.
std::size_t adopt_created(pqxx::connection&, const std::string& source,
                          const std::vector<std::pair<std::string, std::string>>& created);

// Records the delivery of `item_id` (its order version) in its own transaction; true when an
// export was pending under it (false: a newer version was queued meanwhile and is pending).
bool acknowledge(pqxx::connection&, const std::string& source, std::int64_t item_id);

}  // namespace obmen::moysklad
