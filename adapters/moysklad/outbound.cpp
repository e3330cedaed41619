#include "adapters/moysklad/outbound.hpp"

#include <cmath>
#include <stdexcept>

#include "adapters/moysklad/decode.hpp"
#include "store/orders_store.hpp"

namespace obmen::moysklad {

namespace {

using json = nlohmann::json;

std::string text(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }

json meta_of(const std::string& href, const std::string& type) {
  return {{"meta", {{"href", href}, {"type", type}, {"mediaType", "application/json"}}}};
}

std::string base_of(const json& entity) {
  // An entity's href is <base>/entity/<type>/<id>: the base is what comes before "/entity/".
  const std::string href = entity.at("meta").at("href").get<std::string>();
  const auto at = href.find("/entity/");
  if (at == std::string::npos) throw std::runtime_error("unexpected href '" + href + "'");
  return href.substr(0, at);
}

queue::outcome failure(const api_error& e) {
  return e.transient() ? queue::outcome::transient(e.what()) : queue::outcome::permanent(e.what());
}

}  // namespace

std::size_t queue_orders(pqxx::connection& c, const std::string& source, std::size_t limit) {
  pqxx::work tx(c);
  const auto orders = tx.exec_params(
      R"(SELECT o.id, o.guid::text, o.number, to_char(o.created_at AT TIME ZONE 'Europe/Moscow', 'YYYY-MM-DD HH24:MI:SS'),
                o.status, o.cancelled, o.comment, o.total::text, o.currency, o.changed_at::text, o.delivery_price::text,
                c.source, c.external_id, c.guid::text, c.name, c.legal_name, c.inn, c.kpp
           FROM portal.orders o
           LEFT JOIN portal.counterparties c ON c.id = o.counterparty_id
           LEFT JOIN obmen.order_exports e ON e.source = $1 AND e.order_id = o.id
          WHERE o.source IS NULL
            AND (e.acknowledged_changed_at IS NULL OR o.changed_at > e.acknowledged_changed_at)
            AND (e.changed_at_sent IS NULL OR e.changed_at_sent <> o.changed_at)
          ORDER BY o.changed_at, o.id
          LIMIT $2
          FOR UPDATE OF o SKIP LOCKED)",
      source, static_cast<long long>(limit));
  std::size_t queued = 0;
  for (const auto& o : orders) {
    const auto order_id = o[0].as<std::int64_t>();
    json p;
    p["order_id"] = order_id;
    p["guid"] = o[1].as<std::string>();
    p["number"] = o[2].as<std::string>();
    p["moment"] = o[3].as<std::string>();
    p["status"] = o[4].as<std::string>();
    p["cancelled"] = o[5].as<bool>();
    p["comment"] = text(o[6]);
    p["total"] = o[7].as<std::string>();
    p["currency"] = o[8].as<std::string>();
    p["version"] = o[9].as<std::string>();
    p["delivery_price"] = text(o[10]);
    if (!o[13].is_null()) {
      p["buyer"] = {{"source", text(o[11])}, {"external_id", text(o[12])}, {"guid", text(o[13])},
                    {"name", text(o[14])}, {"legal_name", text(o[15])}, {"inn", text(o[16])}, {"kpp", text(o[17])}};
    }
    json lines = json::array();
    for (const auto& l : tx.exec_params(
             R"(SELECT i.name, i.quantity::text, i.price::text, i.discount::text,
                       f.source, f.external_id, f.product_external_id, f.characteristic_id
                  FROM portal.order_items i LEFT JOIN portal.offers f ON f.id = i.offer_id
                 WHERE i.order_id = $1 ORDER BY i.id)",
             order_id)) {
      lines.push_back({{"name", l[0].as<std::string>()}, {"quantity", l[1].as<std::string>()},
                       {"price", l[2].as<std::string>()}, {"discount", l[3].as<std::string>()},
                       {"offer_source", text(l[4])}, {"offer_id", text(l[5])}, {"product_id", text(l[6])},
                       {"variant_id", text(l[7])}});
    }
    p["lines"] = std::move(lines);
    const auto item = queue::enqueue(tx, export_order_kind, source, p, "moysklad:" + source + ":order:" + p["guid"].get<std::string>());
    tx.exec_params(
        R"(INSERT INTO obmen.order_exports (source, order_id, session_id, changed_at_sent, sent_at)
           VALUES ($1, $2, $3, $4::timestamptz, now())
           ON CONFLICT (source, order_id) DO UPDATE
             SET session_id = EXCLUDED.session_id, changed_at_sent = EXCLUDED.changed_at_sent, sent_at = now())",
        source, order_id, item.id, p["version"].get<std::string>());
    ++queued;
  }
  tx.commit();
  return queued;
}

std::size_t queue_counterparties(pqxx::connection& c, const std::string& source, std::size_t limit) {
  pqxx::work tx(c);
  const std::string prefix = "moysklad:" + source + ":counterparty:";
  const auto rows = tx.exec_params(
      R"(SELECT c.guid::text, c.name, c.legal_name, c.inn, c.kpp
           FROM portal.counterparties c
          WHERE c.source IS NULL AND c.active
            AND (c.exported_at IS NULL OR c.changed_at > c.exported_at)
            AND NOT EXISTS (SELECT 1 FROM obmen.queue q
                             WHERE q.idempotency_key = $1 || c.guid::text AND q.state IN ('pending', 'in_flight', 'dead'))
          ORDER BY c.id
          LIMIT $2)",
      prefix, static_cast<long long>(limit));
  for (const auto& r : rows) {
    const json buyer = {{"guid", r[0].as<std::string>()}, {"name", text(r[1])}, {"legal_name", text(r[2])},
                        {"inn", text(r[3])}, {"kpp", text(r[4])}};
    queue::enqueue(tx, export_counterparty_kind, source, json{{"counterparty", buyer}}, prefix + r[0].as<std::string>());
  }
  tx.commit();
  return rows.size();
}

std::size_t adopt_created(pqxx::connection& c, const std::string& source,
                          const std::vector<std::pair<std::string, std::string>>& created) {
  std::size_t n = 0;
  for (const auto& [guid, id] : created) {
    pqxx::work tx(c);
    n += store::adopt_counterparty(tx, source, guid, id) ? 1 : 0;
    tx.commit();
  }
  return n;
}

bool acknowledge(pqxx::connection& c, const std::string& source, std::int64_t item_id) {
  pqxx::work tx(c);
  const auto n = store::acknowledge_export(tx, source, item_id);
  tx.commit();
  return n > 0;
}

order_sender::order_sender(api& ms, outbound_settings settings) : ms_(ms), settings_(std::move(settings)) {}

json order_sender::organization_meta() {
  if (organization_) return *organization_;
  const json page = ms_.get("entity/organization?limit=100");
  const json& rows = page.at("rows");
  for (const auto& r : rows) {
    if (settings_.organization.empty() || r.value("name", "") == settings_.organization ||
        r.value("id", "") == settings_.organization) {
      organization_ = json{{"meta", r.at("meta")}};
      return *organization_;
    }
  }
  throw api_error(settings_.organization.empty()
                      ? "the МойСклад account has no organization (юрлицо) to put on orders"
                      : "no organization named '" + settings_.organization + "' in the МойСклад account (sources." +
                            settings_.source + ".organization)",
                  200, 0, false);
}

std::optional<json> order_sender::store_meta() {
  if (settings_.store.empty()) return std::nullopt;
  if (store_) return *store_;
  bool found = false;
  ms_.for_each_page("entity/store?limit=1000", [&](const json& rows) {
    for (const auto& r : rows)
      if (r.value("name", "") == settings_.store || r.value("id", "") == settings_.store) {
        store_ = json{{"meta", r.at("meta")}};
        found = true;
        return false;
      }
    return true;
  });
  if (!found)
    throw api_error("no store named '" + settings_.store + "' in the МойСклад account (sources." + settings_.source +
                        ".store)",
                    200, 0, false);
  return store_;
}

std::optional<json> order_sender::state_meta(const std::string& portal_status) {
  // The statuses mapping read backwards: the first rule whose status is this one names the state.
  std::string name, id;
  if (settings_.rules)
    for (const auto& r : settings_.rules->statuses)
      if (r.target == portal_status) {
        name = r.match_name;
        id = r.match_id;
        break;
      }
  if (name.empty() && id.empty()) return std::nullopt;  // unmapped: МойСклад's default state
  if (!states_) {
    states_.emplace();
    const json md = ms_.get("entity/customerorder/metadata");
    for (const auto& s : md.value("states", json::array())) {
      (*states_)[s.value("name", "")] = json{{"meta", s.at("meta")}};
      (*states_)["#" + s.value("id", "")] = json{{"meta", s.at("meta")}};
    }
  }
  const auto it = states_->find(id.empty() ? name : "#" + id);
  if (it == states_->end())
    throw api_error("order status '" + portal_status + "' maps to state '" + (id.empty() ? name : id) +
                        "', which customer orders in the МойСклад account do not have",
                    200, 0, false);
  return it->second;
}

json order_sender::agent_meta(const json& buyer) {
  if (buyer.value("source", "") == settings_.source && !buyer.value("external_id", "").empty())
    return meta_of(base_of(organization_meta()) + "/entity/counterparty/" + buyer["external_id"].get<std::string>(),
                   "counterparty");
  // Not known to МойСклад: create it, idempotently (syncId = the portal's guid).
  json c;
  const std::string inn = buyer.value("inn", "");
  c["name"] = buyer.value("name", "");
  c["syncId"] = buyer.value("guid", "");
  c["externalCode"] = buyer.value("guid", "");
  if (!inn.empty()) c["inn"] = inn;
  if (!buyer.value("kpp", "").empty()) c["kpp"] = buyer["kpp"];
  if (!buyer.value("legal_name", "").empty()) c["legalTitle"] = buyer["legal_name"];
  c["companyType"] = inn.size() == 12 ? "entrepreneur" : (inn.empty() && buyer.value("legal_name", "").empty() ? "individual" : "legal");
  const json created = ms_.post("entity/counterparty", c);
  created_.emplace_back(buyer.value("guid", ""), created.at("id").get<std::string>());
  return json{{"meta", created.at("meta")}};
}

std::vector<std::pair<std::string, std::string>> order_sender::take_created() { return std::exchange(created_, {}); }

queue::outcome order_sender::deliver(const queue::item& item) {
  if (item.kind == export_order_kind) return deliver_order(item);
  if (item.kind != export_counterparty_kind) return queue::outcome::permanent("unknown item kind '" + item.kind + "'");
  const json& buyer = item.payload.at("counterparty");
  try {
    (void)organization_meta();  // the base URL of hrefs
    (void)agent_meta(buyer);
    return queue::outcome::ok();
  } catch (const api_error& e) {
    return failure(e);
  } catch (const json::exception& e) {
    return queue::outcome::permanent("counterparty " + buyer.value("name", "") + ": unexpected answer from МойСклад: " + e.what());
  }
}

queue::outcome order_sender::deliver_order(const queue::item& item) {
  const json& p = item.payload;
  const std::string number = p.value("number", "");
  try {
    if (!p.contains("buyer"))
      return queue::outcome::permanent("order " + number + " has no counterparty; МойСклад needs an agent");
    const json org = organization_meta();
    const std::string base = base_of(org);
    json positions = json::array();
    for (const auto& l : p.at("lines")) {
      if (l.value("offer_source", "") != settings_.source || l.value("offer_id", "").empty())
        return queue::outcome::permanent("order " + number + ", line '" + l.value("name", "") +
                                         "': the item is not from МойСклад source '" + settings_.source + "'");
      const bool variant = !l.value("variant_id", "").empty();
      const std::string href = base + (variant ? "/entity/variant/" + l["variant_id"].get<std::string>()
                                               : "/entity/product/" + l.value("product_id", l["offer_id"].get<std::string>()));
      json pos;
      pos["quantity"] = std::stod(l.at("quantity").get<std::string>());
      pos["price"] = static_cast<double>(decimal_to_kopecks(l.at("price").get<std::string>()));
      if (const auto d = l.value("discount", "0"); !d.empty() && decimal_to_kopecks(d) != 0) {
        // The portal's discount is an amount for the line; МойСклад wants a percent.
        const double amount = static_cast<double>(decimal_to_kopecks(l["price"].get<std::string>())) * pos["quantity"].get<double>();
        if (amount > 0) pos["discount"] = std::round(static_cast<double>(decimal_to_kopecks(d)) * 10000.0 / amount) / 100.0;
      }
      pos["assortment"] = meta_of(href, variant ? "variant" : "product");
      positions.push_back(std::move(pos));
    }
    json order;
    order["name"] = number;
    order["syncId"] = p.at("guid");
    order["externalCode"] = p.at("guid");
    order["moment"] = p.value("moment", "");
    order["organization"] = org;
    order["agent"] = agent_meta(p.at("buyer"));
    std::string description = p.value("comment", "");
    if (const auto dp = p.value("delivery_price", ""); !dp.empty() && decimal_to_kopecks(dp) > 0)
      description += (description.empty() ? "" : "\n") + std::string("Доставка: ") + dp;
    if (!description.empty()) order["description"] = description;
    order["positions"] = std::move(positions);
    if (auto s = store_meta()) order["store"] = *s;
    const std::string status = p.value("cancelled", false) ? (settings_.rules ? settings_.rules->derived_statuses.cancelled : "cancelled")
                                                           : p.value("status", "");
    const auto state = state_meta(status);
    if (state) order["state"] = *state;
    const json created = ms_.post("entity/customerorder", order);
    // syncId made the POST idempotent: an order created earlier comes back as it is now.
    if (state) {
      const std::string have = created.contains("state") ? created["state"]["meta"].value("href", "") : "";
      if (have != (*state)["meta"].value("href", ""))
        ms_.put(created.at("meta").at("href").get<std::string>(), json{{"state", *state}});
    }
    return queue::outcome::ok();
  } catch (const api_error& e) {
    return failure(e);
  } catch (const decode_error& e) {
    return queue::outcome::permanent("order " + number + ": " + e.what());
  } catch (const json::exception& e) {
    return queue::outcome::permanent("order " + number + ": unexpected answer from МойСклад: " + e.what());
  }
}

}  // namespace obmen::moysklad
