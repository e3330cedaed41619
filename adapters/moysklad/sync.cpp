#include "adapters/moysklad/sync.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace obmen::moysklad {

namespace {

using nlohmann::json;

const mapping::rules& default_rules() {
  static const mapping::rules r;
  return r;
}

bool is_not_found(const api_error& e) { return e.status() == 404 || e.code() == 1021; }

// Mapping decisions for price types, warehouses and properties, taken once per id and run, the
// way adapters/onec/catalog_import.cpp takes them (keep / skip with one warning / fail throws).
// МойСклад always names what it references (salePrices carry priceType.name, rows carry the
// attribute's name), so no cross-file name memory is needed here.
class decider {
 public:
  decider(const mapping::rules& rules, std::string source, std::vector<std::string>& warnings)
      : rules_(rules), source_(std::move(source)), warnings_(warnings) {}

  enum class kind { price_type, warehouse, property };

  // The portal code / attribute name, or nullopt when the rules skip it.
  std::optional<std::string> decide(kind k, const std::string& id, const std::string& name) {
    auto& memo = memo_[static_cast<int>(k)];
    if (auto it = memo.find(id); it != memo.end()) return it->second;
    const auto d = k == kind::price_type  ? rules_.price_type(id, name)
                   : k == kind::warehouse ? rules_.warehouse(id, name)
                                          : rules_.property(id, name);
    std::optional<std::string> out;
    switch (d.what) {
      case mapping::decision::action::keep: out = d.target; break;
      case mapping::decision::action::skip:
        if (reported_.insert(d.reason).second) warnings_.push_back(d.reason);
        break;
      case mapping::decision::action::fail: throw sync_error("МойСклад source '" + source_ + "': " + d.reason);
    }
    memo[id] = out;
    return out;
  }

  void name(kind k, const std::string& id, const std::string& n) { names_[static_cast<int>(k)][id] = n; }
  std::string name_of(kind k, const std::string& id) const {
    const auto& m = names_[static_cast<int>(k)];
    const auto it = m.find(id);
    return it == m.end() ? std::string() : it->second;
  }

 private:
  const mapping::rules& rules_;
  std::string source_;
  std::vector<std::string>& warnings_;
  std::map<std::string, std::optional<std::string>> memo_[3];
  std::map<std::string, std::string> names_[3];
  std::set<std::string> reported_;
};

// One transaction of one sync: the lock, the writer, the decisions and the caches it needs.
class run {
 public:
  run(pqxx::connection& db, api& a, const source_settings& s)
      : tx_(db),
        api_(a),
        s_(s),
        rules_(s.rules ? *s.rules : default_rules()),
        decider_(rules_, s.name, warnings_),
        writer_(tx_, s.name, std::nullopt) {
    // The 1C import's lock: one import per source at a time, whatever the ERP.
    tx_.exec_params("select pg_advisory_xact_lock(hashtext('obmen.import'), hashtext($1))", s.name);
  }

  pqxx::work& tx() { return tx_; }

  // ── bookmarks ──
  std::optional<std::string> bookmark(const std::string& entity) {
    const auto r = tx_.exec_params("SELECT value FROM obmen.bookmarks WHERE source = $1 AND entity = $2", s_.name,
                                   entity);
    if (r.empty()) return std::nullopt;
    return r[0][0].as<std::string>();
  }
  void save_bookmark(const std::string& entity, const std::string& value) {
    tx_.exec_params(
        "INSERT INTO obmen.bookmarks (source, entity, value) VALUES ($1, $2, $3) "
        "ON CONFLICT (source, entity) DO UPDATE SET value = excluded.value, updated_at = now()",
        s_.name, entity, value);
  }

  // ── lists ──
  std::string list_url(const std::string& path, const std::string& filter) const {
    std::string url = path + "?limit=" + std::to_string(std::clamp<std::size_t>(s_.page_size, 1, 1000));
    if (!filter.empty()) url += "&filter=" + url_encode(filter);
    return url;
  }
  // Pages through `url`, decoding each row with fn (rows that fail become warnings), and hands
  // each page's decoded rows to `apply`.
  template <class T>
  void pages(const std::string& url, std::string_view kind, std::string_view where,
             const std::function<T(const json&)>& fn, const std::function<void(std::vector<T>&)>& apply) {
    std::size_t row = 1;
    api_.for_each_page(url, [&](const json& rows) {
      auto decoded = decode_rows<T>(rows, kind, where, row, fn, warnings_);
      row += rows.size();
      if (!decoded.empty()) apply(decoded);
      return true;
    });
  }

  // ── lookups ──
  void load_currencies() {
    if (have_currencies_) return;
    api_.for_each_page(list_url("entity/currency", ""), [&](const json& rows) {
      add_currencies(lookups_, rows);
      return true;
    });
    have_currencies_ = true;
  }
  void load_uoms() {
    if (have_uoms_) return;
    api_.for_each_page(list_url("entity/uom", ""), [&](const json& rows) {
      add_uoms(lookups_, rows);
      return true;
    });
    have_uoms_ = true;
  }
  void load_states() {
    if (have_states_) return;
    add_states(lookups_, expect_object(api_.get("entity/customerorder/metadata"), "entity/customerorder/metadata"));
    have_states_ = true;
  }

  // ── catalog pieces ──
  void price_types() {
    if (have_price_types_) return;
    const json body = api_.get("context/companysettings/pricetype");
    if (!body.is_array()) throw sync_error("GET context/companysettings/pricetype: the answer is not an array");
    const auto types = decode_rows<model::price_type>(body, "price type", "context/companysettings/pricetype", 1,
                                                      decode_price_type, warnings_);
    std::vector<store::price_type_row> rows;
    for (const auto& t : types) {
      decider_.name(decider::kind::price_type, t.external_id, t.name);
      if (auto code = decider_.decide(decider::kind::price_type, t.external_id, t.name))
        rows.push_back({t.external_id, *code, t.name, t.currency});
    }
    writer_.put_price_types(rows);
    have_price_types_ = true;
  }

  void attribute_defs() {
    if (have_attributes_) return;
    std::vector<store::attribute_row> rows;
    api_.for_each_page(list_url("entity/product/metadata/attributes", ""), [&](const json& page) {
      json wrapped = json::object();
      wrapped["rows"] = page;
      for (const auto& d : decode_attribute_defs(wrapped)) {
        decider_.name(decider::kind::property, d.external_id, d.name);
        if (auto name = decider_.decide(decider::kind::property, d.external_id, d.name))
          rows.push_back({d.external_id, *name, d.value_type, {}, true});
      }
      return true;
    });
    writer_.put_attributes(rows);
    have_attributes_ = true;
  }

  void warehouses() {
    if (have_warehouses_) return;
    pages<model::warehouse>(list_url("entity/store", "archived=true;archived=false"), "store", "entity/store", decode_store,
                            [&](std::vector<model::warehouse>& items) {
                              std::vector<store::warehouse_row> rows;
                              for (const auto& w : items) {
                                decider_.name(decider::kind::warehouse, w.external_id, w.name);
                                if (auto code = decider_.decide(decider::kind::warehouse, w.external_id, w.name))
                                  rows.push_back({w.external_id, *code, w.name, w.active});
                              }
                              writer_.put_warehouses(rows);
                            });
    have_warehouses_ = true;
  }

  void put_folders(const std::vector<model::category>& items) { writer_.put_categories(items); }

  void put_products(std::vector<decoded_product>& items, bool prices_only) {
    std::vector<store::product_row> products;
    std::vector<store::offer_row> offers;
    for (auto& d : items) {
      for (const auto& def : d.attribute_defs)
        if (decider_.name_of(decider::kind::property, def.external_id).empty())
          decider_.name(decider::kind::property, def.external_id, def.name);
      if (!prices_only) products.push_back(product_row(d.product));
      if (d.base_offer) offers.push_back(offer_row(*d.base_offer, prices_only));
    }
    if (!prices_only) writer_.put_products(products);
    writer_.put_offers(offers);
  }

  void put_variants(const std::vector<model::offer>& items, bool prices_only) {
    std::vector<store::offer_row> offers;
    for (const auto& o : items) offers.push_back(offer_row(o, prices_only));
    writer_.put_offers(offers);
  }

  void finish_catalog(bool full) {
    writer_.finish_categories(full);
    writer_.finish_products(full);
    writer_.finish_offers(full);
  }

  // ── stock ──
  // Current-stock rows → header-only offers carrying their complete store list (stores the rows
  // do not list drop to 0 in the store); rows without a store are skipped.
  void put_stock(const std::vector<stock_current_row>& rows) {
    std::vector<store::offer_row> offers;
    std::map<std::string, std::size_t> at;
    for (const auto& r : rows) {
      auto [it, fresh] = at.try_emplace(r.assortment_id, offers.size());
      if (fresh) {
        store::offer_row o;
        o.external_id = r.assortment_id;
        o.product_external_id = r.assortment_id;  // right for base offers; variants exist already
        o.header_only = true;
        o.stock.emplace();
        offers.push_back(std::move(o));
      }
      if (r.store_id.empty()) continue;
      const auto code = decider_.decide(decider::kind::warehouse, r.store_id,
                                        decider_.name_of(decider::kind::warehouse, r.store_id));
      if (!code) continue;
      if (r.quantity.find_first_not_of("-0.") == std::string::npos) continue;  // 0: same as not listed
      offers[it->second].stock->push_back({r.store_id, r.quantity});
    }
    for (std::size_t i = 0; i < offers.size(); i += 5000) {
      std::vector<store::offer_row> batch(offers.begin() + static_cast<std::ptrdiff_t>(i),
                                          offers.begin() + static_cast<std::ptrdiff_t>(std::min(offers.size(), i + 5000)));
      writer_.put_offers(batch);
    }
  }

  std::vector<stock_current_row> stock_report(const std::string& url) {
    return decode_stock_current(api_.get(url), warnings_);
  }

  // The complete per-store stock of the items `changed` names, re-read by id (100 per request,
  // far below the 8 KB URL limit).
  void put_stock_of(const std::vector<stock_current_row>& changed) {
    std::vector<std::string> ids;
    std::set<std::string> seen;
    for (const auto& r : changed)
      if (seen.insert(r.assortment_id).second) ids.push_back(r.assortment_id);
    std::vector<stock_current_row> rows;
    for (std::size_t i = 0; i < ids.size(); i += 100) {
      std::string list;
      for (std::size_t k = i; k < std::min(ids.size(), i + 100); ++k) list += (list.empty() ? "" : ",") + ids[k];
      auto part = stock_report("report/stock/bystore/current?filter=" + url_encode("assortmentId=" + list));
      rows.insert(rows.end(), part.begin(), part.end());
    }
    // Items now at 0 in every store come back with no rows: carry them with an empty list.
    for (const auto& id : ids) rows.push_back({id, "", "0"});
    put_stock(rows);
  }

  // ── counterparties and documents ──
  void put_counterparties(const std::vector<model::counterparty>& items) {
    std::vector<model::counterparty> named = items;
    name_managers(named);
    for (const auto& c : named) counterparties_[c.external_id] = c;
    apply({}, named);
  }

  // owner → the employee's name (entity/employee, read once per run). A user without the right to
  // read employees gets one warning; the portal then keeps its managers.
  void name_managers(std::vector<model::counterparty>& items) {
    bool wanted = false;
    for (const auto& c : items) wanted = wanted || (!c.manager_id.empty() && c.manager.empty());
    if (!wanted) return;
    if (!employees_) {
      employees_.emplace();
      try {
        api_.for_each_page("entity/employee?limit=1000", [&](const json& rows) {
          for (const auto& e : rows) {
            if (!e.is_object() || !e.contains("id") || !e["id"].is_string()) continue;
            std::string name = e.value("fullName", std::string());
            if (name.empty()) name = e.value("name", std::string());
            (*employees_)[e["id"].get<std::string>()] = name;
          }
          return true;
        });
      } catch (const api_error& e) {
        if (e.transient()) throw;
        warnings_.push_back(std::string("employees (entity/employee) cannot be read: ") + e.what() +
                            "; counterparties' managers left as they are");
      }
    }
    for (auto& c : items)
      if (c.manager.empty())
        if (auto it = employees_->find(c.manager_id); it != employees_->end()) c.manager = it->second;
  }

  void put_documents(std::vector<model::document>& docs) {
    resolve_agents(docs);
    apply(docs, {});
  }

  // Linked documents name their order by МойСклад id; the portal knows portal-made orders by the
  // syncId obmen gave them. Orders seen in this run are known; others are fetched (once).
  void resolve_orders(const json& rows) {
    if (!rows.is_array()) return;
    for (const auto& r : rows) {
      std::optional<std::string> id;
      try {
        id = linked_order_id(r);
      } catch (const decode_error&) {
        continue;  // decode_rows reports the row
      }
      if (!id || lookups_.order_sync_ids.count(*id)) continue;
      std::string sync;
      try {
        const json order = api_.get(r["customerOrder"]["meta"]["href"].get<std::string>());
        if (order.is_object() && order.contains("syncId") && order["syncId"].is_string())
          sync = order["syncId"].get<std::string>();
      } catch (const api_error& e) {
        if (!is_not_found(e)) throw;
      }
      lookups_.order_sync_ids[*id] = sync;
    }
  }

  void remember_order(const json& row) {
    if (!row.is_object() || !row.contains("id") || !row["id"].is_string()) return;
    std::string sync;
    if (row.contains("syncId") && row["syncId"].is_string()) sync = row["syncId"].get<std::string>();
    lookups_.order_sync_ids[row["id"].get<std::string>()] = sync;
  }

  // ── deletions ──
  // Deactivates by external id. NOTE: portal SQL outside the store — catalog_writer has no
  // "deactivate these ids" call yet; move this there (same statements) when it gets one. Clears
  // content_hash (migration 0006): the next import of the row must compare it in full, or a
  // product sent again unchanged would stay inactive.
  void deactivate(const std::string& entity, const std::string& id) {
    std::string sql;
    if (entity == "products")
      sql = "UPDATE portal.products SET active = false, content_hash = NULL, updated_at = now() "
            "WHERE source = $1 AND external_id = $2 AND active";
    else if (entity == "offers")
      sql = "UPDATE portal.offers SET active = false, content_hash = NULL, updated_at = now() "
            "WHERE source = $1 AND (external_id = $2 OR product_external_id = $2) AND active";
    else
      sql = "UPDATE portal.categories SET active = false, updated_at = now() WHERE source = $1 AND external_id = $2 AND active";
    const auto r = tx_.exec_params(sql, s_.name, id);
    extra_.by_entity[entity].deactivated += static_cast<std::int64_t>(r.affected_rows());
  }

  api& client() { return api_; }
  const lookups& lookup() const { return lookups_; }
  std::vector<std::string>& warnings() { return warnings_; }

  store::import_counts finish(bool commit) {
    store::import_counts c = writer_.counts();
    c += extra_;
    c.warnings.insert(c.warnings.end(), warnings_.begin(), warnings_.end());
    if (commit) tx_.commit();
    else tx_.abort();
    return c;
  }

 private:
  static const json& expect_object(const json& j, const std::string& what) {
    if (!j.is_object()) throw sync_error("GET " + what + ": the answer is not a JSON object");
    return j;
  }

  void apply(const std::vector<model::document>& docs, const std::vector<model::counterparty>& cps) {
    store::documents_apply_options o;
    o.source = s_.name;
    o.rules = &rules_;
    o.unknown_orders = s_.unknown_orders;
    o.erp_timezone = "Europe/Moscow";
    extra_ += store::apply_documents(tx_, docs, cps, o);
  }

  // Replaces each document's agent placeholder (decode.hpp) by the full counterparty: from this
  // run, else fetched — one GET each, or the whole list when many are missing. An agent that is
  // not a counterparty (404) is dropped: the document then takes its order's counterparty.
  void resolve_agents(std::vector<model::document>& docs) {
    std::set<std::string> missing;
    for (const auto& d : docs)
      for (const auto& c : d.counterparties)
        if (!counterparties_.count(c.external_id) && !absent_.count(c.external_id)) missing.insert(c.external_id);
    if (missing.size() > 50 && !all_counterparties_) {
      pages<model::counterparty>(list_url("entity/counterparty", ""), "counterparty", "entity/counterparty",
                                 decode_counterparty, [&](std::vector<model::counterparty>& items) {
                                   for (auto& c : items) counterparties_[c.external_id] = std::move(c);
                                 });
      all_counterparties_ = true;
    }
    for (const auto& id : missing) {
      if (counterparties_.count(id)) continue;
      if (all_counterparties_) {
        absent_.insert(id);
        continue;
      }
      try {
        const json row = api_.get("entity/counterparty/" + id);
        counterparties_[id] = decode_counterparty(row);
      } catch (const api_error& e) {
        if (!is_not_found(e)) throw;
        absent_.insert(id);
      } catch (const decode_error& e) {
        warnings_.push_back("counterparty '" + id + "' (entity/counterparty/" + id + "): " + e.what() + "; skipped");
        absent_.insert(id);
      }
    }
    for (auto& d : docs) {
      std::vector<model::counterparty> full;
      for (const auto& c : d.counterparties)
        if (auto it = counterparties_.find(c.external_id); it != counterparties_.end()) full.push_back(it->second);
      name_managers(full);
      d.counterparties = std::move(full);
    }
  }

  nlohmann::json attributes_json(const std::vector<model::attribute_value>& values) {
    json out = json::object();
    for (const auto& v : values) {
      const auto name = decider_.decide(decider::kind::property, v.attribute_id,
                                        decider_.name_of(decider::kind::property, v.attribute_id));
      if (!name || v.values.empty()) continue;
      out[*name] = v.values.size() == 1 ? json(v.values.front()) : json(v.values);
    }
    return out;
  }

  store::product_row product_row(const model::product& p) {
    store::product_row r = store::product_row_of(p);  // decode_product fills no requisites
    r.attributes = attributes_json(p.attributes);
    // images: nullopt — МойСклад images are not synced; the portal keeps what it has.
    return r;
  }

  store::offer_row offer_row(const model::offer& o, bool prices_only) {
    store::offer_row r;
    r.external_id = o.external_id;
    r.product_external_id = o.product_external_id;
    r.characteristic_id = o.characteristic_id;
    r.header_only = prices_only;
    if (!prices_only) {
      r.version = o.version;
      r.name = o.name;
      r.sku = o.sku;
      r.barcode = o.barcode;
      r.active = o.active;
      for (const auto& c : o.characteristics) r.characteristics.push_back({{"name", c.name}, {"value", c.value}});
    }
    if (o.prices) {
      r.prices.emplace();
      for (const auto& p : *o.prices) {
        if (!decider_.decide(decider::kind::price_type, p.price_type_id,
                             decider_.name_of(decider::kind::price_type, p.price_type_id)))
          continue;
        r.prices->push_back({p.price_type_id, p.value, p.currency, p.unit, p.coefficient});
      }
    }
    return r;
  }

  pqxx::work tx_;
  api& api_;
  const source_settings& s_;
  const mapping::rules& rules_;
  std::vector<std::string> warnings_;
  decider decider_;
  store::catalog_writer writer_;
  store::import_counts extra_;
  lookups lookups_;
  std::map<std::string, model::counterparty> counterparties_;
  std::optional<std::map<std::string, std::string>> employees_;  // employee id → name, once read
  std::set<std::string> absent_;
  bool all_counterparties_ = false;
  bool have_currencies_ = false, have_uoms_ = false, have_states_ = false, have_price_types_ = false,
       have_attributes_ = false, have_warehouses_ = false;
};

std::chrono::system_clock::time_point now(const source_settings& s) {
  return s.clock ? s.clock() : std::chrono::system_clock::now();
}

// filter for incremental lists; empty for full.
std::string since_filter(const std::optional<std::string>& since, bool archivable) {
  if (!since) return {};
  return "updated>=" + *since + (archivable ? ";archived=true;archived=false" : "");
}

void sync_catalog(run& r, const std::optional<std::string>& since, bool prices_only) {
  r.price_types();
  r.load_currencies();
  if (!prices_only) {
    r.load_uoms();
    r.attribute_defs();
    r.pages<model::category>(r.list_url("entity/productfolder", since_filter(since, true)), "productfolder",
                             "entity/productfolder", decode_folder,
                             [&](std::vector<model::category>& items) { r.put_folders(items); });
  }
  const lookups& l = r.lookup();
  r.pages<decoded_product>(r.list_url("entity/product", since_filter(since, true)), "product", "entity/product",
                           [&](const json& row) { return decode_product(row, l); },
                           [&](std::vector<decoded_product>& items) { r.put_products(items, prices_only); });
  r.pages<model::offer>(r.list_url("entity/variant", since_filter(since, true)), "variant", "entity/variant",
                        [&](const json& row) { return decode_variant(row, l); },
                        [&](std::vector<model::offer>& items) { r.put_variants(items, prices_only); });
  if (!prices_only) r.finish_catalog(!since.has_value());
}

void sync_stock(run& r, const std::optional<std::string>& since) {
  r.warehouses();
  if (!since) {
    // zeroLines: every item, so one now at 0 in every store is carried (and drops to 0).
    r.put_stock(r.stock_report("report/stock/bystore/current?include=zeroLines"));
    return;
  }
  r.put_stock_of(r.stock_report("report/stock/bystore/current?changedSince=" + url_encode(*since)));
}

void sync_counterparties(run& r, const std::optional<std::string>& since) {
  r.pages<model::counterparty>(r.list_url("entity/counterparty", since_filter(since, true)), "counterparty",
                               "entity/counterparty", decode_counterparty,
                               [&](std::vector<model::counterparty>& items) { r.put_counterparties(items); });
}

void sync_orders(run& r, const std::optional<std::string>& since) {
  r.load_states();
  r.load_currencies();
  const lookups& l = r.lookup();
  const std::string filter = since_filter(since, false);
  std::size_t row = 1;
  r.client().for_each_page(r.list_url("entity/customerorder", filter), [&](const json& rows) {
    auto docs = decode_rows<model::document>(
        rows, "customerorder", "entity/customerorder", row, [&](const json& x) { return decode_customer_order(x, l); },
        r.warnings());
    row += rows.size();
    for (const auto& x : rows) r.remember_order(x);
    r.put_documents(docs);
    return true;
  });
  using decoder = model::document (*)(const json&, const lookups&);
  for (const auto& linked : {std::pair<std::string, decoder>{"entity/invoiceout", decode_invoice_out},
                             std::pair<std::string, decoder>{"entity/demand", decode_demand}}) {
    const std::string& path = linked.first;
    const decoder decode = linked.second;
    const std::string kind = path.substr(7);
    row = 1;
    r.client().for_each_page(r.list_url(path, filter), [&](const json& rows) {
      r.resolve_orders(rows);
      auto docs = decode_rows<model::document>(
          rows, kind, path, row, [&](const json& x) { return decode(x, l); }, r.warnings());
      row += rows.size();
      r.put_documents(docs);
      return true;
    });
  }
}

void run_entity(run& r, const std::string& entity, const std::optional<std::string>& since) {
  if (entity == "catalog") sync_catalog(r, since, false);
  else if (entity == "prices") sync_catalog(r, since, true);
  else if (entity == "stock") sync_stock(r, since);
  else if (entity == "counterparties") sync_counterparties(r, since);
  else if (entity == "orders") sync_orders(r, since);
}

void check_entity(const std::string& entity) {
  const auto& all = sync_entities();
  if (entity != "all" && entity != "prices" && std::find(all.begin(), all.end(), entity) == all.end())
    throw sync_error("unknown МойСклад sync entity '" + entity +
                     "' (catalog, prices, stock, counterparties, orders or all)");
}

store::import_counts sync_one(pqxx::connection& db, api& a, const source_settings& s, const std::string& entity,
                              bool incremental, bool dry_run) {
  // The signpost: before the first request.
  const auto started = now(s);
  const std::string signpost = to_msk(started - s.overlap);
  run r(db, a, s);
  std::optional<std::string> since;
  if (incremental) {
    since = r.bookmark(entity);
    if (since && entity == "stock") {
      // changedSince reaches back 24 hours at most; older means a full stock.
      const auto at = parse_msk(*since);
      if (!at || started - *at > std::chrono::hours(24) - std::chrono::minutes(5)) since.reset();
    }
  }
  run_entity(r, entity, since);
  if (!dry_run) r.save_bookmark(entity, signpost);
  return r.finish(!dry_run);
}

store::import_counts sync(pqxx::connection& db, api& a, const source_settings& s, const std::string& entity,
                          bool incremental, bool dry_run) {
  check_entity(entity);
  if (entity != "all") return sync_one(db, a, s, entity, incremental, dry_run);
  store::import_counts total;
  for (const auto& e : sync_entities()) total += sync_one(db, a, s, e, incremental, dry_run);
  return total;
}

}  // namespace

const std::vector<std::string>& sync_entities() {
  static const std::vector<std::string> names = {"catalog", "stock", "counterparties", "orders"};
  return names;
}

store::import_counts sync_full(pqxx::connection& db, api& a, const source_settings& s, const std::string& entity,
                               bool dry_run) {
  return sync(db, a, s, entity, false, dry_run);
}

store::import_counts sync_incremental(pqxx::connection& db, api& a, const source_settings& s,
                                      const std::string& entity, bool dry_run) {
  return sync(db, a, s, entity, true, dry_run);
}

std::optional<std::string> bookmark(pqxx::connection& db, const std::string& source, const std::string& entity) {
  pqxx::read_transaction tx(db);
  const auto r = tx.exec_params("SELECT value FROM obmen.bookmarks WHERE source = $1 AND entity = $2", source, entity);
  if (r.empty()) return std::nullopt;
  return r[0][0].as<std::string>();
}

store::import_counts apply_events(pqxx::connection& db, api& a, const source_settings& s,
                                  const std::vector<event>& events) {
  run r(db, a, s);
  std::set<std::pair<std::string, std::string>> done;  // (action class, href)
  std::size_t n = 0;
  for (const auto& e : events) {
    ++n;
    const bool deleted_action = e.action == "DELETE";
    if (!done.insert({deleted_action ? "DELETE" : "GET", e.href}).second) continue;
    const std::string where = "webhook event " + std::to_string(n) + ", " + e.type + " '" + e.id + "'";
    const bool catalog = e.type == "product" || e.type == "variant" || e.type == "productfolder";
    static const std::set<std::string> known = {"product",       "variant",    "productfolder", "counterparty",
                                                "customerorder", "invoiceout", "demand",        "store"};
    if (!known.count(e.type)) {
      r.warnings().push_back(where + ": type '" + e.type + "' is not synced; skipped");
      continue;
    }
    auto deactivate = [&] {
      if (e.type == "product") {
        r.deactivate("products", e.id);
        r.deactivate("offers", e.id);
      } else if (e.type == "variant") {
        r.deactivate("offers", e.id);
      } else {
        r.deactivate("categories", e.id);
      }
    };
    if (deleted_action) {
      if (catalog) deactivate();
      else r.warnings().push_back(where + ": DELETE is not applied to this type; skipped");
      continue;
    }
    json row;
    try {
      row = a.get(e.href);
    } catch (const api_error& x) {
      if (!is_not_found(x)) throw;
      if (catalog) deactivate();
      else r.warnings().push_back(where + ": not found in МойСклад; skipped");
      continue;
    }
    try {
      if (!row.is_object()) throw decode_error("the answer is not a JSON object");
      if (e.type == "productfolder") {
        r.put_folders({decode_folder(row)});
      } else if (e.type == "product") {
        r.price_types();
        r.load_currencies();
        r.load_uoms();
        r.attribute_defs();
        std::vector<decoded_product> items{decode_product(row, r.lookup())};
        r.put_products(items, false);
      } else if (e.type == "variant") {
        r.price_types();
        r.load_currencies();
        r.put_variants({decode_variant(row, r.lookup())}, false);
      } else if (e.type == "counterparty") {
        r.put_counterparties({decode_counterparty(row)});
      } else if (e.type == "store") {
        r.warehouses();  // the list carries the store (or its archived state) with the mapping applied
      } else if (e.type == "customerorder") {
        r.load_states();
        r.load_currencies();
        r.remember_order(row);
        std::vector<model::document> docs{decode_customer_order(row, r.lookup())};
        r.put_documents(docs);
      } else {
        r.load_currencies();
        r.resolve_orders(json::array({row}));
        std::vector<model::document> docs{e.type == "invoiceout" ? decode_invoice_out(row, r.lookup())
                                                                 : decode_demand(row, r.lookup())};
        r.put_documents(docs);
      }
    } catch (const decode_error& x) {
      r.warnings().push_back(where + ": " + x.what() + "; skipped");
    }
  }
  return r.finish(true);
}

store::import_counts apply_stock_report(pqxx::connection& db, api& a, const source_settings& s,
                                        const std::string& report_url) {
  run r(db, a, s);
  r.warehouses();
  r.put_stock_of(r.stock_report(report_url));
  return r.finish(true);
}

}  // namespace obmen::moysklad
