#pragma once
// One МойСклад source inside obmend: everything that runs on its own, on one background thread
// with its own database connection and its own rate-limited client (client.hpp).
//
// The thread's loop, each round:
//   1. webhook events: applies queued deliveries (queue target "<source>/in", filled by the
//      webhook route below) — each fetches the entity named by the event and applies it
//      (sync.hpp apply_events), or pulls the stock report the stock webhook names;
//   2. outbound: queues new/changed portal orders (outbound.hpp queue_orders) every
//      orders_poll_interval and delivers due export_order items (queue target "<source>");
//   3. polling: an incremental sync of everything every poll_interval (the safety net under the
//      webhooks, or the only feed on tariffs without them); the first round after start is one too,
//      which is a full sync when no bookmark exists yet;
//   then sleeps until the next due moment or until woken (a webhook arrived, stop()).
// At start it registers the webhooks it needs (create-if-absent by entity type, action and URL,
// plus the stock webhook) when webhooks.url is configured; a tariff without webhooks is logged
// and polling carries on.
//
// Failures never stop the loop: an upstream or database error is logged (with the source) and
// retried at the next round — queue items with backoff (queue.hpp), polling at the next interval.
//
// Threads: construct/start/stop/reconfigure on the io_context thread; the route's handler runs
// on the io_context and does its database work on the daemon's pool.
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "common/http.hpp"
#include "common/worker_pool.hpp"
#include "config/config.hpp"
#include "mapping/mapping.hpp"

namespace obmen::moysklad {

struct service_settings {
  config::moysklad_config cfg;
  std::shared_ptr<const mapping::rules> rules;  // never null
  std::string database_url;
  std::filesystem::path state_dir;              // <spool.dir>/<source>: a token obtained with login is kept here (0600)
};

class service {
 public:
  explicit service(service_settings);
  ~service();                                    // stops and joins
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  void start();
  void stop();                                   // asks the loop to end after the step in progress
  void wait();                                   // joins the thread
  void reconfigure(service_settings);            // used from the next round on
  void wake();                                   // work arrived: run a round now
  bool busy() const { return busy_; }

  // The route МойСклад posts webhooks to (cfg.webhook_path); null when webhooks are off. It
  // answers 200 only after the delivery is durably queued (or was already: same requestId).
  std::shared_ptr<http::route> webhook_route(worker_pool& db);

  // What the jobs runner calls for `obmenctl resync` of this source, on the runner's thread with
  // its connection: entity catalog|prices|stock|counterparties|orders|all, mode full|incremental.
  // Returns {"summary": …, "counts": …}; throws with the reason on failure.
  nlohmann::json resync(pqxx::connection&, const std::string& entity, const std::string& mode, bool dry_run);

 private:
  struct state;
  void loop();
  std::shared_ptr<state> state_;
  std::thread thread_;
  std::atomic<bool> busy_{false};
};

}  // namespace obmen::moysklad
