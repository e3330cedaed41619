#include "store/orders_store.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

namespace obmen::store {

namespace {

using opt_str = std::optional<std::string>;
using opt_id = std::optional<std::int64_t>;

opt_str non_empty(const std::string& s) { return s.empty() ? opt_str{} : opt_str{s}; }
opt_str field_opt(const pqxx::field& f) { return f.is_null() ? opt_str{} : opt_str{f.as<std::string>()}; }
opt_id id_opt(const pqxx::field& f) { return f.is_null() ? opt_id{} : opt_id{f.as<std::int64_t>()}; }
opt_str id_param(opt_id id) { return id ? opt_str{std::to_string(*id)} : opt_str{}; }

// obmen's own writes carry SET LOCAL obmen.writer, so that the changed_at triggers of
// migration 0002 do not mistake them for the portal's and send the order back to the ERP.
class writer_mark {
 public:
  writer_mark(pqxx::transaction_base& tx, const std::string& source) : tx_(tx) {
    tx_.exec_params("SELECT set_config('obmen.writer', $1, true)", source.empty() ? std::string("obmen") : source);
  }
  // Only on the normal path: after an exception the transaction is aborted anyway.
  void release() { tx_.exec("SELECT set_config('obmen.writer', '', true)"); }

 private:
  pqxx::transaction_base& tx_;
};

bool looks_like_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// 1C writes booleans as true/false, sometimes Да/Нет or 1/0.
bool truthy(std::string_view v) {
  return v == "true" || v == "True" || v == "TRUE" || v == "1" || v == "Да" || v == "да" || v == "Истина" ||
         v == "истина";
}

// A date/time from the ERP → "YYYY-MM-DD HH:MM:SS" (local to the ERP). Accepts ISO
// ("2015-06-29T15:39:10", "2007-10-16 15:44:47", "2015-08-12") and 1C's Russian form
// ("29.06.2015 15:39:10"). 1C's empty date (year 0001) and anything else → nullopt.
std::optional<std::string> parse_erp_datetime(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  auto digits = [](std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::string y, m, d;
  std::string_view rest;
  if (s.size() >= 10 && s[4] == '-' && s[7] == '-') {
    y = s.substr(0, 4), m = s.substr(5, 2), d = s.substr(8, 2);
    rest = s.substr(10);
  } else if (s.size() >= 10 && s[2] == '.' && s[5] == '.') {
    d = s.substr(0, 2), m = s.substr(3, 2), y = s.substr(6, 4);
    rest = s.substr(10);
  } else {
    return std::nullopt;
  }
  if (!digits(y) || !digits(m) || !digits(d) || y == "0001" || y == "0000") return std::nullopt;
  std::string time = "00:00:00";
  if (!rest.empty()) {
    if (rest.front() != 'T' && rest.front() != ' ') return std::nullopt;
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    // h:mm or h:mm:ss (1C writes "9:05:00" too); fractions and zones are ignored.
    const auto c1 = rest.find(':');
    if (c1 == std::string_view::npos || c1 == 0 || c1 > 2) return std::nullopt;
    std::string h(rest.substr(0, c1));
    if (h.size() == 1) h.insert(0, "0");
    const std::string_view mm = rest.substr(c1 + 1, 2);
    std::string ss = "00";
    if (rest.size() >= c1 + 6 && rest[c1 + 3] == ':') ss = rest.substr(c1 + 4, 2);
    if (!digits(h) || !digits(mm) || mm.size() != 2 || !digits(ss)) return std::nullopt;
    time = h + ":" + std::string(mm) + ":" + ss;
  }
  return y + "-" + m + "-" + d + " " + time;
}

// Numeric text compared by value: "100.0000" and "100" are the same amount.
std::string canonical_number(std::string s) {
  if (s.empty()) return "0";
  bool negative = false;
  if (s.front() == '-' || s.front() == '+') {
    negative = s.front() == '-';
    s.erase(0, 1);
  }
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  while (s.size() > 1 && s[0] == '0' && s[1] != '.') s.erase(0, 1);
  if (s.empty() || s == "0") return "0";
  return negative ? "-" + s : s;
}

const std::string* requisite(const std::vector<model::requisite>& list, std::string_view name) {
  for (const auto& r : list)
    if (r.name == name) return &r.value;
  return nullptr;
}

std::string requisite_value(const model::document& d, std::string_view name) {
  const std::string* v = requisite(d.requisites, name);
  return v ? *v : std::string();
}

// ─── JSON payload of a document ─────────────────────────────────────────────────────────────

nlohmann::json requisites_json(const std::vector<model::requisite>& list) {
  auto j = nlohmann::json::array();
  for (const auto& r : list) j.push_back({{"name", r.name}, {"value", r.value}});
  return j;
}

nlohmann::json address_json(const model::address& a) {
  return {{"presentation", a.presentation}, {"fields", requisites_json(a.fields)}};
}

nlohmann::json counterparty_json(const model::counterparty& c) {
  auto contacts = nlohmann::json::array();
  for (const auto& k : c.contacts) contacts.push_back({{"type", k.type}, {"value", k.value}});
  auto reps = nlohmann::json::array();
  for (const auto& r : c.representatives)
    reps.push_back({{"relation", r.relation}, {"external_id", r.external_id}, {"name", r.name}});
  return {{"external_id", c.external_id}, {"name", c.name}, {"role", c.role}, {"full_name", c.full_name},
          {"official_name", c.official_name}, {"last_name", c.last_name}, {"first_name", c.first_name},
          {"middle_name", c.middle_name}, {"inn", c.inn}, {"kpp", c.kpp}, {"okpo", c.okpo},
          {"legal_entity", c.legal_entity}, {"legal_address", address_json(c.legal_address)},
          {"postal_address", address_json(c.postal_address)}, {"contacts", contacts}, {"representatives", reps},
          {"active", c.active}, {"version", c.version}};
}

nlohmann::json document_json(const model::document& d) {
  auto cps = nlohmann::json::array();
  for (const auto& c : d.counterparties) cps.push_back(counterparty_json(c));
  auto lines = nlohmann::json::array();
  for (const auto& l : d.lines)
    lines.push_back({{"offer_external_id", l.offer_external_id}, {"sku", l.sku}, {"name", l.name}, {"unit", l.unit},
                     {"unit_code", l.unit_code}, {"price", l.price}, {"quantity", l.quantity}, {"amount", l.amount},
                     {"discount", l.discount}, {"item_kind", l.item_kind}, {"item_type", l.item_type},
                     {"service", l.service}, {"requisites", requisites_json(l.requisites)}});
  auto subs = nlohmann::json::array();
  for (const auto& s : d.subordinates) subs.push_back(document_json(s));
  return {{"external_id", d.external_id}, {"number", d.number}, {"date", d.date}, {"time", d.time},
          {"operation", d.operation}, {"role", d.role}, {"currency", d.currency}, {"rate", d.rate},
          {"total", d.total}, {"comment", d.comment}, {"version", d.version}, {"deleted", d.deleted},
          {"erp_number", d.erp_number}, {"erp_date", d.erp_date}, {"base_document", d.base_document},
          {"counterparties", cps}, {"lines", lines}, {"requisites", requisites_json(d.requisites)},
          {"subordinates", subs}};
}

// ─── operations ─────────────────────────────────────────────────────────────────────────────

bool is_order_operation(const std::string& op) { return op.empty() || op == "Заказ товара"; }

// portal.documents.kind for a ХозОперация; nullopt for operations not stored.
std::optional<std::string> document_kind(const std::string& op) {
  if (op == "Счет на оплату" || op == "Счёт на оплату") return "invoice";
  if (op == "Отпуск товара" || op == "Реализация товаров и услуг" || op == "Реализация товаров" ||
      op == "Товарная накладная")
    return "waybill";
  if (op == "Счет-фактура" || op == "Счёт-фактура") return "vat_invoice";
  if (op == "УПД" || op.find("Универсальный передаточный документ") != std::string::npos) return "upd";
  if (op.rfind("Акт", 0) == 0) return "act";
  return std::nullopt;
}

const mapping::rules& default_rules() {
  static const mapping::rules r;
  return r;
}

// ─── applying documents ─────────────────────────────────────────────────────────────────────

struct order_state {
  std::int64_t id = 0;
  std::string number, status;
  opt_str erp_status;
  bool paid = false, shipped = false, cancelled = false;
  opt_id counterparty_id;
};

struct line_key {
  std::string offer, quantity, price, amount, discount;
  bool operator==(const line_key&) const = default;
};

class applier {
 public:
  applier(pqxx::transaction_base& tx, const documents_apply_options& o)
      : tx_(tx), o_(o), rules_(o.rules ? *o.rules : default_rules()) {}

  import_counts run(const std::vector<model::document>& docs, const std::vector<model::counterparty>& cps) {
    for (const auto& c : cps) counterparty(c);
    for (const auto& d : docs) {
      if (is_order_operation(d.operation)) apply_order(d);
      else apply_document(d, std::nullopt, std::nullopt);
    }
    return std::move(counts_);
  }

 private:
  entity_counts& count(const char* entity) { return counts_.by_entity[entity]; }
  void warn(std::string w) { counts_.warnings.push_back(std::move(w)); }

  static std::string order_label(const model::document& d) {
    if (!d.number.empty()) return "order '" + d.number + "'";
    return "order with Ид '" + d.external_id + "'";
  }

  // "Заказ товара № ТДЦУ-000001 от 2015-06-29 (onec)": names the ERP's document in history comments.
  std::string document_label(const model::document& d) const {
    std::string s = d.operation.empty() ? std::string("Заказ товара") : d.operation;
    const std::string& no = d.erp_number.empty() ? d.number : d.erp_number;
    if (!no.empty()) s += " № " + no;
    const std::string& date = d.erp_date.empty() ? d.date : d.erp_date;
    if (!date.empty()) s += " от " + date.substr(0, 10);
    return s + " (" + o_.source + ")";
  }

  // ── counterparties ──

  opt_id counterparty(const model::counterparty& c) {
    std::string name = c.name;
    if (name.empty()) name = !c.official_name.empty() ? c.official_name : c.full_name;
    if (name.empty()) {
      for (const auto* part : {&c.last_name, &c.first_name, &c.middle_name})
        if (!part->empty()) name += (name.empty() ? "" : " ") + *part;
    }
    if (name.empty()) name = c.external_id;
    const std::string legal = !c.official_name.empty() ? c.official_name : c.full_name;

    if (c.external_id.empty()) {
      // Nothing to key it by: use a known row with the same ИНН/КПП, write nothing.
      if (!c.inn.empty()) {
        auto r = tx_.exec_params("SELECT id FROM portal.counterparties WHERE inn = $1 AND coalesce(kpp, '') = $2 "
                                 "ORDER BY (source = $3) DESC NULLS LAST, id LIMIT 1",
                                 c.inn, c.kpp, o_.source);
        if (!r.empty()) return r[0][0].as<std::int64_t>();
      }
      warn("counterparty '" + name + "': no Ид and no known ИНН/КПП; skipped");
      ++count("counterparties").skipped;
      return std::nullopt;
    }
    if (auto it = seen_counterparties_.find(c.external_id); it != seen_counterparties_.end()) return it->second;

    opt_id id;
    auto r = tx_.exec_params("SELECT id FROM portal.counterparties WHERE source = $1 AND external_id = $2",
                             o_.source, c.external_id);
    if (!r.empty()) id = r[0][0].as<std::int64_t>();
    // A counterparty created on the portal comes back under the guid obmen sent for it …
    if (!id && looks_like_uuid(c.external_id)) {
      r = tx_.exec_params("SELECT id FROM portal.counterparties WHERE guid = $1::uuid AND source IS NULL",
                          c.external_id);
      if (!r.empty()) id = r[0][0].as<std::int64_t>();
    }
    // … or is recognised by ИНН + КПП (ИНН alone for a sole trader). Only rows no ERP owns yet.
    if (!id && !c.inn.empty()) {
      r = tx_.exec_params("SELECT id FROM portal.counterparties WHERE source IS NULL AND inn = $1 "
                          "AND coalesce(kpp, '') = $2 ORDER BY id LIMIT 1",
                          c.inn, c.kpp);
      if (!r.empty()) id = r[0][0].as<std::int64_t>();
    }

    if (id) {
      // What the ERP left empty keeps the portal's value (a price type the portal does not know
      // yet, too).
      auto u = tx_.exec_params(R"sql(
        WITH n AS (
          SELECT c.id, $2::text AS source, $3::text AS external_id, $4::text AS name,
                 coalesce($5, c.legal_name) AS legal_name, coalesce($6, c.inn) AS inn,
                 coalesce($7, c.kpp) AS kpp, $8::boolean AS active,
                 coalesce((SELECT t.id FROM portal.price_types t WHERE t.source = $2 AND t.external_id = $9),
                          c.price_type_id) AS price_type_id,
                 coalesce($10, c.manager) AS manager
          FROM portal.counterparties c WHERE c.id = $1)
        UPDATE portal.counterparties c
        SET source = n.source, external_id = n.external_id, name = n.name, legal_name = n.legal_name,
            inn = n.inn, kpp = n.kpp, active = n.active, price_type_id = n.price_type_id, manager = n.manager,
            updated_at = now()
        FROM n
        WHERE c.id = n.id AND (c.source, c.external_id, c.name, c.legal_name, c.inn, c.kpp, c.active, c.price_type_id,
                               c.manager)
              IS DISTINCT FROM (n.source, n.external_id, n.name, n.legal_name, n.inn, n.kpp, n.active, n.price_type_id,
                                n.manager)
        RETURNING c.id)sql",
                               *id, o_.source, c.external_id, name, non_empty(legal), non_empty(c.inn),
                               non_empty(c.kpp), c.active, non_empty(c.price_type_id), non_empty(c.manager));
      ++(u.empty() ? count("counterparties").unchanged : count("counterparties").updated);
    } else {
      id = tx_.exec_params1("INSERT INTO portal.counterparties (source, external_id, name, legal_name, inn, kpp, active, "
                            "price_type_id, manager) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                            "(SELECT t.id FROM portal.price_types t WHERE t.source = $1 AND t.external_id = $8), $9) "
                            "RETURNING id",
                            o_.source, c.external_id, name, non_empty(legal), non_empty(c.inn), non_empty(c.kpp),
                            c.active, non_empty(c.price_type_id), non_empty(c.manager))[0]
               .as<std::int64_t>();
      ++count("counterparties").inserted;
    }
    seen_counterparties_[c.external_id] = *id;
    return id;
  }

  // The buyer among a document's counterparties (all but the seller are stored).
  opt_id buyer(const model::document& d) {
    opt_id first, buyer;
    for (const auto& c : d.counterparties) {
      if (c.role == "Продавец") continue;
      const opt_id id = counterparty(c);
      if (!id) continue;
      if (!first) first = id;
      if (!buyer && c.role == "Покупатель") buyer = id;
    }
    return buyer ? buyer : first;
  }

  // ── finding orders ──

  struct found_order {
    std::optional<order_state> order;
    bool ambiguous = false;
  };

  order_state read_order(const pqxx::row& r) const {
    order_state s;
    s.id = r[0].as<std::int64_t>();
    s.number = r[1].as<std::string>();
    s.status = r[2].as<std::string>();
    s.erp_status = field_opt(r[3]);
    s.paid = r[4].as<bool>();
    s.shipped = r[5].as<bool>();
    s.cancelled = r[6].as<bool>();
    s.counterparty_id = id_opt(r[7]);
    return s;
  }

  // By Ид = guid, then (source, external_id), then Номер = number; locks the row.
  found_order find_order(const std::string& external_id, const std::string& number) {
    static const std::string columns =
        "SELECT id, number, status, erp_status, paid_at IS NOT NULL, shipped_at IS NOT NULL, cancelled, "
        "counterparty_id FROM portal.orders ";
    found_order f;
    if (looks_like_uuid(external_id)) {
      auto r = tx_.exec_params(columns + "WHERE guid = $1::uuid FOR UPDATE", external_id);
      if (!r.empty()) f.order = read_order(r[0]);
    }
    if (!f.order && !external_id.empty()) {
      auto r = tx_.exec_params(columns + "WHERE source = $1 AND external_id = $2 FOR UPDATE", o_.source, external_id);
      if (!r.empty()) f.order = read_order(r[0]);
    }
    if (!f.order && !number.empty()) {
      auto r = tx_.exec_params(columns + "WHERE number = $1 ORDER BY id LIMIT 2 FOR UPDATE", number);
      if (r.size() > 1) f.ambiguous = true;
      else if (r.size() == 1) f.order = read_order(r[0]);
    }
    return f;
  }

  // ── orders ──

  void apply_order(const model::document& d) {
    const std::string label = order_label(d);
    auto found = find_order(d.external_id, d.number);
    if (found.ambiguous) {
      warn(label + ": several portal orders have this number; skipped");
      ++count("orders").skipped;
      return;
    }
    bool created = false;
    if (!found.order) {
      if (o_.unknown_orders == unknown_order_policy::report) {
        warn(label + " (Ид '" + d.external_id + "') is not in the portal; skipped (unknown_orders: report)");
        ++count("orders").skipped;
        return;
      }
      if (d.external_id.empty()) {
        warn(label + ": an order without Ид cannot be created; skipped");
        ++count("orders").skipped;
        return;
      }
      if (d.deleted) {
        warn(label + " (Ид '" + d.external_id + "') is marked for deletion in the ERP; not created");
        ++count("orders").skipped;
        return;
      }
      found.order = create_order(d);
      created = true;
    }
    order_state& o = *found.order;
    const opt_id buyer_id = buyer(d);

    // ── status ──
    std::string status_id = requisite_value(d, "Статуса заказа ИД");
    std::string status_name = requisite_value(d, "Статус заказа");
    const std::string raw_status = !status_name.empty() ? status_name : status_id;
    // Bitrix-style "[F] Доставлен": the id in brackets, then the name.
    if (status_id.empty() && status_name.size() > 2 && status_name.front() == '[') {
      const auto close = status_name.find(']');
      if (close != std::string::npos && close > 1) {
        status_id = status_name.substr(1, close - 1);
        status_name = status_name.substr(close + 1);
        status_name.erase(0, status_name.find_first_not_of(' '));
      }
    }

    const auto pay_text = [&] {
      std::string v = requisite_value(d, "Дата оплаты по 1С");
      if (v.empty() && !(requisite(d.requisites, "Заказ оплачен") && !truthy(requisite_value(d, "Заказ оплачен"))))
        v = requisite_value(d, "Дата оплаты");
      return v;
    }();
    const std::string ship_text = requisite_value(d, "Дата отгрузки по 1С");
    const auto paid_at = parse_erp_datetime(pay_text);
    const auto shipped_at = parse_erp_datetime(ship_text);
    const auto erp_date = parse_erp_datetime(d.erp_date);
    const auto status_changed_at = parse_erp_datetime(requisite_value(d, "Дата изменения статуса"));
    for (const auto& [name, text, parsed] : {std::tuple{"Дата оплаты", &pay_text, &paid_at},
                                             std::tuple{"Дата отгрузки по 1С", &ship_text, &shipped_at},
                                             std::tuple{"Дата1С", &d.erp_date, &erp_date}})
      if (!text->empty() && !*parsed && text->rfind("0001", 0) != 0)
        warn(label + ": " + name + " '" + *text + "' is not a date; ignored");
    std::string payment_number = requisite_value(d, "Номер оплаты по 1С");
    if (payment_number.empty()) payment_number = requisite_value(d, "Номер платежного документа");
    const std::string shipment_number = requisite_value(d, "Номер отгрузки по 1С");
    const bool cancel = truthy(requisite_value(d, "Отменен")) || d.deleted;

    std::optional<std::string> new_status;
    std::string why;
    bool mapped_change = false;
    if (!raw_status.empty() && raw_status != o.erp_status.value_or("")) {
      const auto decision = rules_.status(status_id, status_name);
      if (!decision.target.empty()) {
        new_status = decision.target;
        why = "status '" + raw_status + "'";
        mapped_change = decision.reason.empty();
        if (!decision.reason.empty()) warn(label + ": " + decision.reason);
      }
    }
    // Facts new to the order move it to a derived status unless a mapped status says more.
    if (!mapped_change) {
      if (cancel && !o.cancelled) {
        new_status = rules_.derived_statuses.cancelled;
        why = d.deleted ? "marked for deletion" : "cancelled";
      } else if (shipped_at && !o.shipped) {
        new_status = rules_.derived_statuses.shipped;
        why = "shipped" + (shipment_number.empty() ? std::string() : " (shipment " + shipment_number + ")");
      } else if (paid_at && !o.paid) {
        new_status = rules_.derived_statuses.paid;
        why = "paid" + (payment_number.empty() ? std::string() : " (payment " + payment_number + ")");
      }
    }
    if (created && !new_status) new_status = "new";
    const bool status_change = new_status && (created || *new_status != o.status);
    if (created) why = why.empty() ? "created from the ERP" : "created from the ERP, " + why;

    // ── lines ──
    bool lines_replaced = false;
    opt_str delivery;
    if (!d.lines.empty()) {
      std::vector<const model::order_line*> lines;
      std::vector<std::string> delivery_amounts;
      for (const auto& l : d.lines) {
        if (l.offer_external_id == "ORDER_DELIVERY") delivery_amounts.push_back(l.amount.empty() ? l.price : l.amount);
        else lines.push_back(&l);
      }
      // Lines carried without a delivery line: the order has no delivery (any more).
      delivery = delivery_amounts.empty() ? std::string("0") : sum(delivery_amounts);
      lines_replaced = replace_lines_if_different(o, lines, label, created);
    }

    writer_mark mark(tx_, o_.source);
    const auto updated = tx_.exec_params(R"sql(
      WITH n AS (
        SELECT o.id,
               coalesce($2, o.status) AS status,
               coalesce($3, o.erp_status) AS erp_status,
               coalesce($4, o.erp_number) AS erp_number,
               coalesce($5::timestamp AT TIME ZONE $14, o.erp_date) AS erp_date,
               coalesce($6::timestamp AT TIME ZONE $14, o.paid_at) AS paid_at,
               coalesce($7, o.payment_number) AS payment_number,
               coalesce($8::timestamp AT TIME ZONE $14, o.shipped_at) AS shipped_at,
               coalesce($9, o.shipment_number) AS shipment_number,
               o.cancelled OR $10::boolean AS cancelled,
               CASE WHEN $11::numeric IS NULL OR o.total = $11::numeric THEN o.total ELSE $11::numeric END AS total,
               CASE WHEN $12::numeric IS NULL OR coalesce(o.delivery_price, 0) = $12::numeric THEN o.delivery_price
                    ELSE $12::numeric END AS delivery_price,
               coalesce(o.counterparty_id, $13::bigint) AS counterparty_id
        FROM portal.orders o WHERE o.id = $1)
      UPDATE portal.orders o
      SET status = n.status, erp_status = n.erp_status, erp_number = n.erp_number, erp_date = n.erp_date,
          paid_at = n.paid_at, payment_number = n.payment_number, shipped_at = n.shipped_at,
          shipment_number = n.shipment_number, cancelled = n.cancelled, total = n.total,
          delivery_price = n.delivery_price, counterparty_id = n.counterparty_id, updated_at = now()
      FROM n
      WHERE o.id = n.id AND
            (o.status, o.erp_status, o.erp_number, o.erp_date, o.paid_at, o.payment_number, o.shipped_at,
             o.shipment_number, o.cancelled, o.total, o.delivery_price, o.counterparty_id)
            IS DISTINCT FROM
            (n.status, n.erp_status, n.erp_number, n.erp_date, n.paid_at, n.payment_number, n.shipped_at,
             n.shipment_number, n.cancelled, n.total, n.delivery_price, n.counterparty_id)
      RETURNING o.id)sql",
                                         o.id, status_change ? new_status : opt_str{}, non_empty(raw_status),
                                         non_empty(d.erp_number), erp_date, paid_at, non_empty(payment_number),
                                         shipped_at, non_empty(shipment_number), cancel, non_empty(d.total),
                                         delivery, id_param(buyer_id), o_.erp_timezone);
    if (status_change) {
      tx_.exec_params("INSERT INTO portal.order_status_history (order_id, status, at, comment, origin) "
                      "VALUES ($1, $2, coalesce($3::timestamp AT TIME ZONE $4, now()), $5, $6)",
                      o.id, *new_status, created ? opt_str{} : status_changed_at, o_.erp_timezone,
                      document_label(d) + ": " + why, o_.source);
      ++count("order_status_history").inserted;
    }
    mark.release();

    if (created) ++count("orders").inserted;
    else if (!updated.empty() || lines_replaced || status_change) ++count("orders").updated;
    else ++count("orders").unchanged;

    for (const auto& sub : d.subordinates) {
      if (is_order_operation(sub.operation)) {
        warn(label + ": subordinate order '" + sub.number + "' ignored");
        ++count("documents").skipped;
        continue;
      }
      apply_document(sub, o.id, buyer_id ? buyer_id : o.counterparty_id);
    }
  }

  // Exact decimal sum, done by the database.
  std::string sum(const std::vector<std::string>& values) {
    std::string array = "{";
    for (std::size_t i = 0; i < values.size(); ++i) array += (i ? "," : "") + (values[i].empty() ? "0" : values[i]);
    array += "}";
    return tx_.exec_params1("SELECT sum(v)::text FROM unnest($1::numeric[]) v", array)[0].as<std::string>();
  }

  order_state create_order(const model::document& d) {
    std::string number = !d.number.empty() ? d.number : !d.erp_number.empty() ? d.erp_number : d.external_id;
    std::string currency = d.currency;
    if (currency.empty() || currency == "руб" || currency == "руб." || currency == "RUR" || currency == "643")
      currency = "RUB";
    const auto created_at = parse_erp_datetime(d.date + (d.time.empty() ? "" : " " + d.time));
    writer_mark mark(tx_, o_.source);
    const auto r = tx_.exec_params1(
        "INSERT INTO portal.orders (source, external_id, number, created_at, currency, total, comment, status) "
        "VALUES ($1, $2, $3, coalesce($4::timestamp AT TIME ZONE $5, now()), $6, coalesce($7::numeric, 0), $8, 'new') "
        "RETURNING id",
        o_.source, d.external_id, number, created_at, o_.erp_timezone, currency, non_empty(d.total),
        non_empty(d.comment));
    mark.release();
    order_state s;
    s.id = r[0].as<std::int64_t>();
    s.number = number;
    s.status = "new";
    return s;
  }

  // Replaces the order's lines when the ERP's differ (offer, quantity, price, amount, discount;
  // names are not compared: the ERP's item name is not the name the customer ordered under).
  bool replace_lines_if_different(const order_state& o, const std::vector<const model::order_line*>& lines,
                                  const std::string& label, bool created) {
    std::vector<line_key> wanted;
    for (const auto* l : lines)
      wanted.push_back({l->offer_external_id, canonical_number(l->quantity), canonical_number(l->price),
                        canonical_number(l->amount), canonical_number(l->discount)});
    std::vector<line_key> current;
    for (const auto& r : tx_.exec_params(
             "SELECT coalesce(f.external_id, i.offer_external_id, ''), i.quantity::text, i.price::text, "
             "i.amount::text, i.discount::text FROM portal.order_items i "
             "LEFT JOIN portal.offers f ON f.id = i.offer_id WHERE i.order_id = $1 ORDER BY i.id",
             o.id))
      current.push_back({r[0].as<std::string>(), canonical_number(r[1].as<std::string>()),
                         canonical_number(r[2].as<std::string>()), canonical_number(r[3].as<std::string>()),
                         canonical_number(r[4].as<std::string>())});
    if (current == wanted) {
      count("order_items").unchanged += static_cast<std::int64_t>(wanted.size());
      return false;
    }
    writer_mark mark(tx_, o_.source);
    tx_.exec_params("DELETE FROM portal.order_items WHERE order_id = $1", o.id);
    for (const auto* l : lines) {
      const bool known = tx_.exec_params1(R"sql(
        INSERT INTO portal.order_items (order_id, offer_id, offer_external_id, name, quantity, price, amount, discount)
        VALUES ($1, (SELECT id FROM portal.offers WHERE external_id = $2 ORDER BY (source = $3) DESC, id LIMIT 1),
                $2, $4, coalesce($5::numeric, 0), coalesce($6::numeric, 0),
                coalesce($7::numeric, coalesce($5::numeric, 0) * coalesce($6::numeric, 0)), coalesce($8::numeric, 0))
        RETURNING offer_id IS NOT NULL)sql",
                                          o.id, l->offer_external_id, o_.source,
                                          l->name.empty() ? l->offer_external_id : l->name, non_empty(l->quantity),
                                          non_empty(l->price), non_empty(l->amount), non_empty(l->discount))[0]
                               .as<bool>();
      if (!known && !l->service)
        warn(label + ": item '" + l->offer_external_id + "' (" + l->name +
             ") is not in the portal's catalog; line stored without an offer");
    }
    mark.release();
    count("order_items").inserted += static_cast<std::int64_t>(lines.size());
    if (!created && !current.empty())
      warn(label + ": lines changed in the ERP; " + std::to_string(current.size()) + " line(s) replaced by " +
           std::to_string(lines.size()));
    return true;
  }

  // ── other documents ──

  void apply_document(const model::document& d, opt_id parent_order, opt_id parent_counterparty) {
    const std::string what = "document '" + (d.number.empty() ? d.external_id : d.number) + "' (" +
                             (d.operation.empty() ? std::string("no operation") : d.operation) + ")";
    const auto kind = document_kind(d.operation);
    if (!kind) {
      warn(what + ": not stored (only invoices, waybills, VAT invoices, УПД and acts are)");
      ++count("documents").skipped;
      return;
    }
    if (d.external_id.empty()) {
      warn(what + ": no Ид; skipped");
      ++count("documents").skipped;
      return;
    }
    opt_id order_id = parent_order;
    if (!d.base_document.empty()) {
      auto f = find_order(d.base_document, d.base_document);
      if (f.order) order_id = f.order->id;
      else if (!parent_order) warn(what + ": base order '" + d.base_document + "' is not in the portal; stored unlinked");
    }
    opt_id counterparty_id = buyer(d);
    if (!counterparty_id) counterparty_id = parent_counterparty;
    if (!counterparty_id && order_id) {
      auto r = tx_.exec_params("SELECT counterparty_id FROM portal.orders WHERE id = $1", *order_id);
      if (!r.empty()) counterparty_id = id_opt(r[0][0]);
    }
    const auto date = parse_erp_datetime(d.date + (d.time.empty() ? "" : " " + d.time));
    const auto r = tx_.exec_params(R"sql(
      INSERT INTO portal.documents AS t (source, external_id, kind, number, date, order_id, counterparty_id, amount,
                                         payload, active)
      VALUES ($1, $2, $3, $4, $5::timestamp AT TIME ZONE $6, $7, $8, $9::numeric, $10::jsonb, $11)
      ON CONFLICT (source, external_id) DO UPDATE
      SET kind = excluded.kind, number = excluded.number, date = excluded.date,
          order_id = coalesce(excluded.order_id, t.order_id),
          counterparty_id = coalesce(excluded.counterparty_id, t.counterparty_id),
          amount = excluded.amount, payload = excluded.payload, active = excluded.active, updated_at = now()
      WHERE (t.kind, t.number, t.date, t.order_id, t.counterparty_id, t.amount, t.payload, t.active)
            IS DISTINCT FROM
            (excluded.kind, excluded.number, excluded.date, coalesce(excluded.order_id, t.order_id),
             coalesce(excluded.counterparty_id, t.counterparty_id), excluded.amount, excluded.payload, excluded.active)
      RETURNING (t.xmax = 0) AS inserted)sql",
                                   o_.source, d.external_id, *kind, non_empty(d.number), date, o_.erp_timezone,
                                   id_param(order_id), id_param(counterparty_id), non_empty(d.total),
                                   document_json(d).dump(), !d.deleted);
    if (r.empty()) ++count("documents").unchanged;
    else if (r[0][0].as<bool>()) ++count("documents").inserted;
    else ++count("documents").updated;
    for (const auto& sub : d.subordinates) apply_document(sub, order_id, counterparty_id);
  }

  pqxx::transaction_base& tx_;
  const documents_apply_options& o_;
  const mapping::rules& rules_;
  import_counts counts_;
  std::map<std::string, std::int64_t> seen_counterparties_;
};

// ─── building export documents ──────────────────────────────────────────────────────────────

model::requisite req(std::string name, std::string value) { return {std::move(name), std::move(value)}; }
std::string boolean(bool b) { return b ? "true" : "false"; }

}  // namespace

order_export_batch orders_to_export(pqxx::transaction_base& tx, const std::string& source,
                                    const std::string& erp_timezone, std::size_t limit) {
  order_export_batch batch;
  if (limit == 0) return batch;
  const auto rows = tx.exec_params(R"sql(
    SELECT o.id, o.guid::text, o.number,
           to_char(o.created_at AT TIME ZONE $2, 'YYYY-MM-DD'), to_char(o.created_at AT TIME ZONE $2, 'HH24:MI:SS'),
           o.currency, o.total::text, coalesce(o.comment, ''), o.status, o.paid_at IS NOT NULL, o.cancelled,
           o.delivery_allowed, coalesce(o.payment_method, ''),
           CASE WHEN o.delivery_price > 0 THEN o.delivery_price::text ELSE '' END,
           to_char(o.changed_at AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI:SS'),
           to_char(o.changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           c.id IS NOT NULL, CASE WHEN c.source = $1 THEN c.external_id ELSE c.guid::text END,
           coalesce(c.name, ''), coalesce(c.legal_name, ''), coalesce(c.inn, ''), coalesce(c.kpp, ''),
           coalesce(a.email, '')
    FROM portal.orders o
    LEFT JOIN obmen.order_exports e ON e.source = $1 AND e.order_id = o.id
    LEFT JOIN portal.counterparties c ON c.id = o.counterparty_id
    LEFT JOIN portal.accounts a ON a.id = o.account_id
    WHERE o.source IS NULL AND (e.acknowledged_changed_at IS NULL OR o.changed_at > e.acknowledged_changed_at)
    ORDER BY o.changed_at, o.id
    LIMIT $3)sql",
                                   source, erp_timezone,
                                   static_cast<long long>(std::min<std::size_t>(limit, 1'000'000'000)));
  if (rows.empty()) return batch;

  std::map<std::int64_t, std::size_t> index;
  std::string ids = "{";
  for (const auto& r : rows) {
    model::document d;
    const auto id = r[0].as<std::int64_t>();
    d.external_id = r[1].as<std::string>();
    d.number = r[2].as<std::string>();
    d.date = r[3].as<std::string>();
    d.time = r[4].as<std::string>();
    d.operation = "Заказ товара";
    d.role = "Продавец";
    d.currency = r[5].as<std::string>();
    d.rate = "1";
    d.total = r[6].as<std::string>();
    d.comment = r[7].as<std::string>();
    const std::string status = r[8].as<std::string>();
    const bool paid = r[9].as<bool>(), cancelled = r[10].as<bool>(), delivery_allowed = r[11].as<bool>();
    const std::string payment_method = r[12].as<std::string>(), delivery_price = r[13].as<std::string>();
    // The version this batch saw; record_export remembers it as what the node got.
    d.version = r[15].as<std::string>();
    if (r[16].as<bool>()) {
      model::counterparty c;
      c.external_id = r[17].as<std::string>();
      c.name = r[18].as<std::string>();
      c.role = "Покупатель";
      const std::string legal = r[19].as<std::string>();
      c.inn = r[20].as<std::string>();
      c.kpp = r[21].as<std::string>();
      c.legal_entity = !c.inn.empty() || !legal.empty();
      if (c.legal_entity) c.official_name = legal.empty() ? c.name : legal;
      else c.full_name = c.name;
      if (const auto email = r[22].as<std::string>(); !email.empty()) c.contacts.push_back({"Почта", email});
      d.counterparties.push_back(std::move(c));
    }
    if (!delivery_price.empty()) {
      // Kept aside and appended after the goods below.
      model::order_line l;
      l.offer_external_id = "ORDER_DELIVERY";
      l.name = "Доставка заказа";
      l.unit = "шт";
      l.unit_code = "796";
      l.price = l.amount = delivery_price;
      l.quantity = "1";
      l.item_kind = l.item_type = "Услуга";
      l.service = true;
      d.lines.push_back(std::move(l));
    }
    if (!payment_method.empty()) d.requisites.push_back(req("Метод оплаты", payment_method));
    d.requisites.push_back(req("Заказ оплачен", boolean(paid)));
    d.requisites.push_back(req("Доставка разрешена", boolean(delivery_allowed)));
    d.requisites.push_back(req("Отменен", boolean(cancelled)));
    d.requisites.push_back(req("Финальный статус", boolean(cancelled || status == "completed")));
    d.requisites.push_back(req("Статус заказа", status));
    d.requisites.push_back(req("Дата изменения статуса", r[14].as<std::string>()));

    index[id] = batch.orders.size();
    ids += (batch.order_ids.empty() ? "" : ",") + std::to_string(id);
    batch.order_ids.push_back(id);
    batch.orders.push_back(std::move(d));
  }
  ids += "}";

  std::vector<std::vector<model::order_line>> goods(batch.orders.size());
  for (const auto& r : tx.exec_params(R"sql(
    SELECT i.order_id, coalesce(f.external_id, i.offer_external_id, ''), coalesce(f.sku, p.sku, ''), i.name,
           coalesce(p.unit, ''), coalesce(p.unit_code, ''), i.price::text, i.quantity::text, i.amount::text,
           CASE WHEN i.discount <> 0 THEN i.discount::text ELSE '' END
    FROM portal.order_items i
    LEFT JOIN portal.offers f ON f.id = i.offer_id
    LEFT JOIN portal.products p ON p.id = f.product_id
    WHERE i.order_id = ANY($1::bigint[])
    ORDER BY i.order_id, i.id)sql",
                                      ids)) {
    model::order_line l;
    l.offer_external_id = r[1].as<std::string>();
    l.sku = r[2].as<std::string>();
    l.name = r[3].as<std::string>();
    l.unit = r[4].as<std::string>();
    l.unit_code = r[5].as<std::string>();
    l.price = r[6].as<std::string>();
    l.quantity = r[7].as<std::string>();
    l.amount = r[8].as<std::string>();
    l.discount = r[9].as<std::string>();
    goods[index.at(r[0].as<std::int64_t>())].push_back(std::move(l));
  }
  for (std::size_t i = 0; i < batch.orders.size(); ++i) {
    auto& lines = batch.orders[i].lines;  // holds only the delivery line, if any
    goods[i].insert(goods[i].end(), std::make_move_iterator(lines.begin()), std::make_move_iterator(lines.end()));
    lines = std::move(goods[i]);
  }
  return batch;
}

void record_export(pqxx::transaction_base& tx, const std::string& source, std::int64_t session_id,
                   const order_export_batch& batch) {
  if (batch.order_ids.size() != batch.orders.size())
    throw std::invalid_argument("record_export: order_ids and orders differ in size");
  if (batch.order_ids.empty()) return;
  std::string ids = "{", versions = "{";
  for (std::size_t i = 0; i < batch.order_ids.size(); ++i) {
    ids += (i ? "," : "") + std::to_string(batch.order_ids[i]);
    const std::string& v = batch.orders[i].version;
    versions += (i ? "," : "") + (v.empty() ? std::string("NULL") : "\"" + v + "\"");
  }
  ids += "}";
  versions += "}";
  // Without a version (a batch built by hand) the order's current changed_at counts as sent.
  tx.exec_params(R"sql(
    INSERT INTO obmen.order_exports (source, order_id, session_id, changed_at_sent, sent_at)
    SELECT $1, v.id, $2, coalesce(v.changed_at, o.changed_at), now()
    FROM unnest($3::bigint[], $4::timestamptz[]) AS v (id, changed_at)
    JOIN portal.orders o ON o.id = v.id
    ON CONFLICT (source, order_id) DO UPDATE
    SET session_id = excluded.session_id, changed_at_sent = excluded.changed_at_sent, sent_at = excluded.sent_at)sql",
                 source, session_id, ids, versions);
}

std::size_t acknowledge_export(pqxx::transaction_base& tx, const std::string& source, std::int64_t session_id) {
  writer_mark mark(tx, source);
  const auto r = tx.exec_params1(R"sql(
    WITH acked AS (
      UPDATE obmen.order_exports
      SET acknowledged_changed_at = greatest(acknowledged_changed_at, changed_at_sent),
          acknowledged_session_id = session_id, acknowledged_at = now(), session_id = NULL, changed_at_sent = NULL
      WHERE source = $1 AND session_id = $2
      RETURNING order_id),
    stamped AS (
      UPDATE portal.orders o SET exported_at = now() FROM acked WHERE o.id = acked.order_id RETURNING o.id)
    SELECT (SELECT count(*) FROM acked), (SELECT count(*) FROM stamped))sql",
                                 source, session_id);
  mark.release();
  return r[0].as<std::size_t>();
}

import_counts apply_documents(pqxx::transaction_base& tx, const std::vector<model::document>& docs,
                              const std::vector<model::counterparty>& counterparties,
                              const documents_apply_options& options) {
  applier a(tx, options);
  return a.run(docs, counterparties);
}

bool adopt_counterparty(pqxx::transaction_base& tx, const std::string& source, const std::string& guid,
                        const std::string& external_id) {
  tx.exec_params("SELECT set_config('obmen.writer', $1, true)", source);
  const auto r = tx.exec_params(
      "UPDATE portal.counterparties SET source = $1, external_id = $2, exported_at = now(), updated_at = now() "
      "WHERE guid = $3::uuid AND source IS NULL "
      "AND NOT EXISTS (SELECT 1 FROM portal.counterparties o WHERE o.source = $1 AND o.external_id = $2)",
      source, external_id, guid);
  tx.exec("SELECT set_config('obmen.writer', '', true)");
  return r.affected_rows() == 1;
}

}  // namespace obmen::store
