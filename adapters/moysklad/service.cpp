#include "adapters/moysklad/service.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>

#include <spdlog/spdlog.h>

#include "adapters/moysklad/client.hpp"
#include "adapters/moysklad/outbound.hpp"
#include "adapters/moysklad/sync.hpp"
#include "common/metrics.hpp"
#include "queue/queue.hpp"
#include "store/import_metrics.hpp"

namespace obmen::moysklad {

namespace fs = std::filesystem;
using json = nlohmann::json;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* webhook_kind = "webhook";
constexpr const char* token_file = "moysklad-token";
// Entity types whose changes МойСклад should post to us.
const char* const webhook_types[] = {"product", "variant", "productfolder", "counterparty", "store",
                                     "customerorder", "invoiceout", "demand"};
const char* const webhook_actions[] = {"CREATE", "UPDATE", "DELETE"};

std::string inbound_target(const std::string& source) { return source + "/in"; }
// Webhook deliveries claimed at once: at most this many entities are fetched within one batch's
// lease (5 min) — 500 × 4 units at 15 units/s is about 135 s.
constexpr int webhook_batch = 500;

void declare_metrics() {
  auto& r = metrics::default_registry();
  r.counter("obmen_moysklad_requests_total", "Requests to the МойСклад API answered, by source and HTTP status (0: network error or time-out).");
  r.counter("obmen_moysklad_rate_limit_waits_total", "Times a МойСклад request waited for the rate limit (budget or a 429), by source.");
  r.counter("obmen_moysklad_webhooks_total", "МойСклад webhook deliveries received, by source and outcome (queued, duplicate, rejected).");
  r.counter("obmen_moysklad_syncs_total", "МойСклад syncs finished, by source, kind (poll, webhook, resync) and outcome (ok, failed).");
  store::declare_import_metrics();
}

void count_sync(const std::string& source, const std::string& kind, bool ok) {
  auto& r = metrics::default_registry();
  r.add("obmen_moysklad_syncs_total", {{"source", source}, {"kind", kind}, {"outcome", ok ? "ok" : "failed"}});
  if (ok) store::mark_import_success(source, kind);
}

std::string read_saved_token(const fs::path& dir) {
  std::ifstream in(dir / token_file);
  std::string token;
  std::getline(in, token);
  return token;
}

void save_token(const fs::path& dir, const std::string& token) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path tmp = dir / (std::string(token_file) + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    ::chmod(tmp.c_str(), 0600);
    out << token << "\n";
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, dir / token_file);
}

std::shared_ptr<client> make_client(const service_settings& s) {
  client_options o;
  o.name = s.cfg.name;
  o.base_url = s.cfg.base_url;
  if (s.cfg.token.configured()) o.token = s.cfg.token.resolve();
  if (!s.cfg.login.empty()) {
    o.login = s.cfg.login;
    o.password = s.cfg.password.resolve();
    if (o.token.empty()) o.token = read_saved_token(s.state_dir);
    const fs::path dir = s.state_dir;
    const std::string name = s.cfg.name;
    o.save_token = [dir, name](const std::string& token) {
      try {
        save_token(dir, token);
        spdlog::info("moysklad[{}]: obtained a new API token with the login; kept in {}", name, (dir / token_file).string());
      } catch (const std::exception& e) {
        spdlog::warn("moysklad[{}]: obtained a new API token but cannot keep it: {}", name, e.what());
      }
    };
  }
  o.auth_weight = s.cfg.auth_weight;
  o.max_parallel = s.cfg.max_parallel;
  o.request_timeout = std::chrono::seconds(s.cfg.request_timeout_seconds);
  o.connect_timeout = std::chrono::seconds(std::min(s.cfg.request_timeout_seconds, 10));
  o.user_agent = std::string("obmen/") + OBMEN_VERSION;
  o.webhook_disable_prefix = s.cfg.webhook_url;
  return std::make_shared<client>(std::move(o));
}

source_settings source_of(const service_settings& s) { return source_settings{s.cfg.name, s.rules}; }

// Create-if-absent by (entity type, action, URL), in one mass POST; the stock webhook likewise.
void register_webhooks(api& ms, const config::moysklad_config& cfg) {
  std::set<std::pair<std::string, std::string>> have;
  ms.for_each_page("entity/webhook?limit=1000", [&](const json& rows) {
    for (const auto& w : rows)
      if (w.value("url", "") == cfg.webhook_url) have.emplace(w.value("entityType", ""), w.value("action", ""));
    return true;
  });
  json create = json::array();
  for (const char* type : webhook_types)
    for (const char* action : webhook_actions)
      if (!have.count({type, action})) create.push_back({{"url", cfg.webhook_url}, {"action", action}, {"entityType", type}});
  std::size_t failed = 0;
  if (!create.empty()) {
    const json answer = ms.post("entity/webhook", create);
    for (std::size_t i = 0; answer.is_array() && i < answer.size(); ++i)
      if (answer[i].contains("errors")) {
        ++failed;
        spdlog::warn("moysklad[{}]: webhook {} {} not created: {}", cfg.name, create[i]["entityType"].get<std::string>(),
                     create[i]["action"].get<std::string>(), answer[i]["errors"].dump());
      }
  }
  bool stock = false;
  ms.for_each_page("entity/webhookstock?limit=1000", [&](const json& rows) {
    for (const auto& w : rows)
      if (w.value("url", "") == cfg.webhook_url) stock = true;
    return true;
  });
  if (!stock)
    ms.post("entity/webhookstock", json{{"url", cfg.webhook_url}, {"enabled", true}, {"reportType", "bystore"}, {"stockType", "stock"}});
  spdlog::info("moysklad[{}]: webhooks to {}: {} present, {} created, {} failed; stock webhook {}", cfg.name, cfg.webhook_url,
               have.size(), create.size() - failed, failed, stock ? "present" : "created");
}

queue::outcome classify(const std::exception& e) {
  if (const auto* a = dynamic_cast<const api_error*>(&e))
    return a->transient() ? queue::outcome::transient(a->what()) : queue::outcome::permanent(a->what());
  if (dynamic_cast<const pqxx::broken_connection*>(&e) || dynamic_cast<const pqxx::sql_error*>(&e))
    return queue::outcome::transient(e.what());
  return queue::outcome::permanent(e.what());
}

}  // namespace

struct service::state {
  std::mutex m;
  std::condition_variable cv;
  bool stop = false, woken = false;
  std::uint64_t generation = 0;        // moves on reconfigure
  service_settings settings;
  std::shared_ptr<client> ms;
};

service::service(service_settings s) : state_(std::make_shared<state>()) {
  declare_metrics();
  state_->ms = make_client(s);
  state_->settings = std::move(s);
}

service::~service() {
  stop();
  wait();
}

void service::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void service::stop() {
  {
    std::lock_guard lk(state_->m);
    state_->stop = true;
  }
  state_->cv.notify_all();
}

void service::wait() {
  if (thread_.joinable()) thread_.join();
}

void service::reconfigure(service_settings s) {
  auto ms = make_client(s);
  {
    std::lock_guard lk(state_->m);
    state_->settings = std::move(s);
    state_->ms = std::move(ms);
    ++state_->generation;
    state_->woken = true;
  }
  state_->cv.notify_all();
}

void service::wake() {
  {
    std::lock_guard lk(state_->m);
    state_->woken = true;
  }
  state_->cv.notify_all();
}

json service::resync(pqxx::connection& c, const std::string& entity, const std::string& mode, bool dry_run) {
  service_settings s;
  std::shared_ptr<client> ms;
  {
    std::lock_guard lk(state_->m);
    s = state_->settings;
    ms = state_->ms;
  }
  try {
    const auto counts = mode == "full" ? sync_full(c, *ms, source_of(s), entity, dry_run)
                                       : sync_incremental(c, *ms, source_of(s), entity, dry_run);
    if (!dry_run) store::count_import_rows(s.cfg.name, counts);
    count_sync(s.cfg.name, "resync", true);
    return json{{"summary", counts.summary()}, {"counts", counts.to_json()}, {"changed", counts.changed()}};
  } catch (...) {
    count_sync(s.cfg.name, "resync", false);
    throw;
  }
}

void service::loop() {
  std::unique_ptr<pqxx::connection> db;
  std::uint64_t generation = ~0ull;
  service_settings s;
  std::shared_ptr<client> ms;
  std::unique_ptr<order_sender> sender;
  auto next_poll = clock::time_point::max();
  auto next_orders = clock::now();
  auto next_cleanup = clock::now();
  auto next_register = clock::now();
  bool registered = false;
  client_stats reported;
  const std::string webhook_worker_id = queue::default_worker_id() + ":webhooks";
  for (;;) {
    {
      std::lock_guard lk(state_->m);
      if (state_->stop) break;
      state_->woken = false;
      if (generation != state_->generation) {
        generation = state_->generation;
        s = state_->settings;
        ms = state_->ms;
        sender = std::make_unique<order_sender>(*ms, outbound_settings{s.cfg.name, s.cfg.organization, s.cfg.store, s.rules});
        registered = false;
        next_register = clock::now();
        // The first round after start (or a reload) polls, when polling is on.
        next_poll = s.cfg.poll_interval_seconds > 0 ? clock::now() : clock::time_point::max();
      }
    }
    const std::string& name = s.cfg.name;
    auto stopping = [this] {
      std::lock_guard lk(state_->m);
      return state_->stop;
    };
    busy_ = true;
    try {
      if (!db || !idle_connection_alive(*db)) db = std::make_unique<pqxx::connection>(s.database_url);
      // 1. Webhook deliveries.
      const source_settings src = source_of(s);
      auto apply_webhook = [&](const queue::item& item) -> queue::outcome {
        try {
          const json& body = item.payload.at("body");
          const auto counts = body.contains("reportUrl")
                                  ? apply_stock_report(*db, *ms, src, body.at("reportUrl").get<std::string>())
                                  : apply_events(*db, *ms, src, parse_webhook(body));
          store::count_import_rows(name, counts);
          count_sync(name, "webhook", true);
          spdlog::info("moysklad[{}]: webhook {} applied: {}", name, item.payload.value("request_id", ""), counts.summary());
          return queue::outcome::ok();
        } catch (const std::exception& e) {
          count_sync(name, "webhook", false);
          spdlog::warn("moysklad[{}]: webhook {}: {}", name, item.payload.value("request_id", ""), e.what());
          return classify(e);
        }
      };
      // Deliveries are claimed in batches and their entity events applied together: one sync run
      // (lookups loaded once, each entity fetched once however many deliveries name it, one
      // transaction). A burst of deliveries about a few entities then costs a few requests, not
      // several per delivery under the 45-units-per-3-s budget. When the batch fails as a whole,
      // its deliveries are applied one by one, so one bad delivery holds up no other.
      auto apply_batch = [&]() -> std::size_t {
        std::vector<queue::item> items;
        {
          pqxx::work tx(*db);
          items = queue::claim(tx, webhook_worker_id, inbound_target(name), webhook_batch, queue::worker_options{}.lease);
          tx.commit();
        }
        std::vector<event> events;
        std::vector<const queue::item*> together, alone;
        for (const auto& item : items) {
          const json& body = item.payload.at("body");
          if (body.contains("reportUrl")) {
            alone.push_back(&item);
            continue;
          }
          try {
            const auto e = parse_webhook(body);
            events.insert(events.end(), e.begin(), e.end());
            together.push_back(&item);
          } catch (const std::exception&) {
            alone.push_back(&item);  // apply_webhook reports it
          }
        }
        if (!together.empty()) {
          try {
            const auto counts = apply_events(*db, *ms, src, events);
            store::count_import_rows(name, counts);
            count_sync(name, "webhook", true);
            for (const auto* item : together) queue::complete(*db, *item);
            spdlog::info("moysklad[{}]: {} webhook deliveries ({} events) applied: {}", name, together.size(), events.size(),
                         counts.summary());
          } catch (const std::exception& e) {
            if (together.size() == 1) {
              alone.push_back(together.front());
            } else {
              spdlog::warn("moysklad[{}]: {} webhook deliveries applied together failed ({}); applying them one by one", name,
                           together.size(), e.what());
              alone.insert(alone.end(), together.begin(), together.end());
            }
          }
        }
        for (const auto* item : alone) {
          const auto outcome = apply_webhook(*item);
          if (outcome.result == queue::outcome::kind::ok)
            queue::complete(*db, *item);
          else
            queue::fail(*db, *item,
                        outcome.result == queue::outcome::kind::permanent ? queue::error_class::permanent : queue::error_class::transient,
                        outcome.message);
        }
        return items.size();
      };
      while (!stopping() && apply_batch() > 0) {
      }
      // 2. Outbound orders.
      if (s.cfg.export_orders) {
        if (clock::now() >= next_orders) {
          if (const auto n = queue_counterparties(*db, name); n > 0)
            spdlog::info("moysklad[{}]: {} portal counterpart(ies) queued for МойСклад", name, n);
          if (const auto n = queue_orders(*db, name); n > 0) spdlog::info("moysklad[{}]: {} portal order(s) queued for МойСклад", name, n);
          next_orders = clock::now() + std::chrono::seconds(s.cfg.orders_poll_interval_seconds);
        }
        auto deliver = [&](const queue::item& item) -> queue::outcome {
          auto outcome = sender->deliver(item);
          // Counterparties created in МойСклад become its rows even when the order then failed.
          if (const auto created = sender->take_created(); !created.empty())
            spdlog::info("moysklad[{}]: {} counterpart(ies) created in МойСклад, {} adopted", name, created.size(),
                         adopt_created(*db, name, created));
          const std::string what = item.kind == export_order_kind ? "order " + item.payload.value("number", "")
                                                                  : "counterparty " + item.payload.value("/counterparty/name"_json_pointer, std::string());
          if (outcome.result == queue::outcome::kind::ok) {
            if (item.kind == export_order_kind) acknowledge(*db, name, item.id);
            spdlog::info("moysklad[{}]: {} delivered", name, what);
          } else {
            spdlog::warn("moysklad[{}]: {}: {}", name, what, outcome.message);
          }
          return outcome;
        };
        // A batch of 10 deliveries is a few dozen requests (well under a minute within the rate
        // limit); a worker that lost its database connection mid-batch leaves its items to be
        // claimed again after this lease, not after the default 5 minutes.
        queue::worker_options outbound;
        outbound.lease = std::chrono::seconds(60);
        while (!stopping() && queue::run_once(*db, name, deliver, outbound).claimed > 0) {
        }
      }
      // 3. Webhook registration (retried hourly while it fails) and polling.
      if (!s.cfg.webhook_url.empty() && !registered && clock::now() >= next_register) {
        next_register = clock::now() + 1h;
        try {
          register_webhooks(*ms, s.cfg);
          registered = true;
        } catch (const std::exception& e) {
          spdlog::warn("moysklad[{}]: cannot register webhooks ({}); polling carries on", name, e.what());
        }
      }
      if (clock::now() >= next_poll && !stopping()) {
        next_poll = s.cfg.poll_interval_seconds > 0 ? clock::now() + std::chrono::seconds(s.cfg.poll_interval_seconds)
                                                    : clock::time_point::max();
        try {
          const auto counts = sync_incremental(*db, *ms, src, "all");
          store::count_import_rows(name, counts);
          count_sync(name, "poll", true);
          spdlog::info("moysklad[{}]: sync: {}", name, counts.summary());
        } catch (const std::exception& e) {
          count_sync(name, "poll", false);
          spdlog::error("moysklad[{}]: sync failed: {}", name, e.what());
        }
      }
      if (clock::now() >= next_cleanup) {
        next_cleanup = clock::now() + 1h;
        pqxx::work tx(*db);
        tx.exec_params("DELETE FROM obmen.webhook_events WHERE source = $1 AND received_at < now() - interval '7 days'", name);
        tx.commit();
      }
    } catch (const std::exception& e) {
      spdlog::error("moysklad[{}]: {}", name, e.what());
      if (db && !db->is_open()) db.reset();
    }
    // Client statistics → metrics (deltas since the last round).
    const auto now_stats = ms->stats();
    auto& r = metrics::default_registry();
    for (const auto& [status, n] : now_stats.responses) {
      const auto before = reported.responses.count(status) ? reported.responses.at(status) : 0;
      if (n > before) r.add("obmen_moysklad_requests_total", {{"source", name}, {"status", std::to_string(status)}}, static_cast<double>(n - before));
    }
    if (now_stats.rate_limit_waits > reported.rate_limit_waits)
      r.add("obmen_moysklad_rate_limit_waits_total", {{"source", name}}, static_cast<double>(now_stats.rate_limit_waits - reported.rate_limit_waits));
    reported = now_stats;
    busy_ = false;
    // Sleep until something is due: queue items in backoff are looked at every 2 s.
    auto until = std::min({next_poll, clock::now() + 2s, s.cfg.export_orders ? next_orders : clock::time_point::max()});
    std::unique_lock lk(state_->m);
    state_->cv.wait_until(lk, until, [&] { return state_->stop || state_->woken; });
  }
  busy_ = false;
}

// ─── the webhook route ──────────────────────────────────────────────────────────────────────

namespace {

class webhook_intake final : public http::route {
 public:
  webhook_intake(std::function<void()> wake, worker_pool& db, std::string source)
      : wake_(std::move(wake)), db_(db), source_(std::move(source)) {}

  net::awaitable<http::response> handle(http::request req) override {
    http::response r;
    auto reject = [&](int status, const std::string& why) {
      r.status = status;
      r.body = why + "\n";
      metrics::default_registry().add("obmen_moysklad_webhooks_total", {{"source", source_}, {"outcome", "rejected"}});
      spdlog::warn("moysklad[{}]: webhook from {} rejected: {}", source_, req.remote, why);
    };
    if (req.method != "POST") {
      reject(405, "webhooks are POSTed");
      r.headers.emplace_back("Allow", "POST");
      co_return r;
    }
    const std::string request_id = req.param("requestId");
    if (request_id.empty() || request_id.size() > 100) {
      reject(400, "missing or oversized requestId query parameter");
      co_return r;
    }
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      reject(400, "the body is not a JSON object");
      co_return r;
    }
    const bool stock = body.contains("reportUrl") && body["reportUrl"].is_string();
    const bool events = body.contains("events") && body["events"].is_array();
    if (!stock && !events) {
      reject(400, "the body has neither \"events\" nor \"reportUrl\"");
      co_return r;
    }
    bool queued = false;
    try {
      // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
      auto work = [source = source_, request_id, body = std::move(body)](pqxx::connection& c) {
        // One autocommitted statement (one round trip, one commit): the delivery row, and — only
        // when this statement created it — its queue item, whose id is drawn first so the row can
        // name it. A concurrent duplicate waits on the row's conflict and counts as a repeat.
        pqxx::nontransaction tx(c);
        const auto r = tx.exec_params(
            R"(WITH ev AS (
                 INSERT INTO obmen.webhook_events (source, request_id, queue_item_id)
                 VALUES ($1, $2, nextval(pg_get_serial_sequence('obmen.queue', 'id')))
                 ON CONFLICT (source, request_id) DO UPDATE SET deliveries = obmen.webhook_events.deliveries + 1
                 RETURNING deliveries, queue_item_id)
               INSERT INTO obmen.queue (id, kind, target, payload)
               SELECT queue_item_id, $3, $4, $5::jsonb FROM ev WHERE deliveries = 1
               RETURNING id)",
            source, request_id, std::string(webhook_kind), inbound_target(source),
            json{{"request_id", request_id}, {"body", body}}.dump());
        return !r.empty();
      };
      queued = co_await db_.run(work);
    } catch (const std::exception& e) {
      spdlog::error("moysklad[{}]: webhook {} not queued: {}", source_, request_id, e.what());
      r.status = 503;
      r.body = "not queued: database unavailable\n";
      co_return r;
    }
    metrics::default_registry().add("obmen_moysklad_webhooks_total", {{"source", source_}, {"outcome", queued ? "queued" : "duplicate"}});
    if (queued) {
      spdlog::debug("moysklad[{}]: webhook {} queued", source_, request_id);
      wake_();
    }
    r.status = 200;
    r.body = "";
    co_return r;
  }

 private:
  std::function<void()> wake_;
  worker_pool& db_;
  std::string source_;
};

}  // namespace

std::shared_ptr<http::route> service::webhook_route(worker_pool& db) {
  std::lock_guard lk(state_->m);
  if (state_->settings.cfg.webhook_url.empty()) return nullptr;
  std::weak_ptr<state> weak = state_;
  auto wake = [weak] {
    if (auto s = weak.lock()) {
      {
        std::lock_guard lk(s->m);
        s->woken = true;
      }
      s->cv.notify_all();
    }
  };
  return std::make_shared<webhook_intake>(std::move(wake), db, state_->settings.cfg.name);
}

}  // namespace obmen::moysklad
