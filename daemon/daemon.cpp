#include "daemon/daemon.hpp"

#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "adapters/moysklad/service.hpp"
#include "adapters/onec/exchange.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "common/net.hpp"
#include "common/worker_pool.hpp"
#include "config/config.hpp"
#include "daemon/http_server.hpp"
#include "jobs/runner.hpp"
#include "mapping/settings.hpp"
#include "store/database.hpp"

namespace obmen::daemon {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

using loaded = mapping::settings;

std::optional<loaded> load_all(const fs::path& path, std::vector<std::string>& problems) {
  return mapping::load_settings(path, problems);
}

http_limits limits_of(const config::http_config& h) {
  return {h.read_timeout_seconds, h.write_timeout_seconds, h.idle_timeout_seconds, h.max_header_bytes, h.max_body_bytes,
          h.max_connections, h.trusted_proxies};
}

// What the jobs runner needs of the configuration: every 1C source with its mapping and spool
// folder (the same <spool.dir>/<source> the exchange writes), and the schedules.
using moysklad_services = std::map<std::string, std::shared_ptr<moysklad::service>>;

jobs::runner_settings runner_settings_of(const loaded& l, const moysklad_services& ms) {
  jobs::runner_settings s;
  s.database_url = config::database_url(l.cfg);
  for (const auto& src : l.cfg.onec)
    s.sources.push_back({src.name, l.rules_by_source.at(src.name), fs::path(l.cfg.spool.dir) / src.name});
  for (const auto& [name, svc] : ms) {
    std::weak_ptr<moysklad::service> weak = svc;
    s.pull_sources.push_back({name, [weak, name = name](pqxx::connection& c, const jobs::job& j) {
                                auto alive = weak.lock();
                                if (!alive) throw std::runtime_error("source '" + name + "' was removed from the configuration");
                                return alive->resync(c, j.entity, j.mode, j.dry_run);
                              }});
  }
  s.schedules = l.cfg.schedules;
  return s;
}

moysklad::service_settings service_settings_of(const loaded& l, const config::moysklad_config& src) {
  return {src, l.rules_by_source.at(src.name), config::database_url(l.cfg), fs::path(l.cfg.spool.dir) / src.name};
}

moysklad_services make_moysklad(const loaded& l) {
  moysklad_services out;
  for (const auto& src : l.cfg.moysklad) out[src.name] = std::make_shared<moysklad::service>(service_settings_of(l, src));
  return out;
}

class healthz final : public http::route {
 public:
  healthz(worker_pool& db, std::chrono::steady_clock::time_point started) : db_(db), started_(started) {}
  net::awaitable<http::response> handle(http::request) override {
    http::response r;
    r.content_type = "application/json";
    nlohmann::json body;
    body["uptime_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
    try {
      // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
      auto work_0 = [](pqxx::connection& c) { return store::schema_version(c); };
      const int version = co_await db_.run(work_0);
      body["status"] = "ok";
      body["database"] = "ok";
      body["schema_version"] = version;
    } catch (const std::exception& e) {
      r.status = 503;
      body["status"] = "unavailable";
      body["database"] = e.what();
    }
    r.body = body.dump() + "\n";
    co_return r;
  }

 private:
  worker_pool& db_;
  std::chrono::steady_clock::time_point started_;
};

// Prometheus text format (docs/metrics.md): what obmend accumulated (metrics::default_registry)
// plus what is measured now — the queue by state (one grouped count on the db pool; left out
// with a comment line when the database is down, still 200) and the process itself.
class metrics_route final : public http::route {
 public:
  metrics_route(worker_pool& db, std::chrono::steady_clock::time_point started) : db_(db), started_(started) {}
  net::awaitable<http::response> handle(http::request) override {
    http::response r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    metrics::registry now;
    std::string omitted;
    try {
      // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
      auto work_0 = [](pqxx::connection& c) {
        pqxx::read_transaction tx(c);
        std::map<std::string, std::int64_t> by_state = {{"pending", 0}, {"in_flight", 0}, {"done", 0}, {"dead", 0}};
        for (const auto& row : tx.exec("select state, count(*) from obmen.queue group by state"))
          by_state[row[0].as<std::string>()] = row[1].as<std::int64_t>();
        return by_state;
      };
      const auto by_state = co_await db_.run(work_0);
      now.gauge("obmen_queue_items", "Items in the retry queue (obmen.queue), by state.");
      now.gauge("obmen_queue_dead_items", "Items in the retry queue that gave up (state dead) and wait for an admin.");
      for (const auto& [state, n] : by_state) now.set("obmen_queue_items", {{"state", state}}, static_cast<double>(n));
      now.set("obmen_queue_dead_items", {}, static_cast<double>(by_state.at("dead")));
    } catch (const std::exception&) {
      omitted = "# obmen_queue_items and obmen_queue_dead_items omitted: database unavailable\n";
    }
    now.gauge("obmen_process_resident_memory_bytes", "Resident set size of obmend (/proc/self/statm).");
    now.gauge("obmen_process_open_fds", "File descriptors obmend has open (/proc/self/fd).");
    now.gauge("obmen_uptime_seconds", "Seconds since obmend started.");
    now.gauge("obmen_build_info", "Always 1; the version obmend was built as.");
    std::ifstream statm("/proc/self/statm");
    long pages = 0, resident = 0;
    if (statm >> pages >> resident)
      now.set("obmen_process_resident_memory_bytes", {}, static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)));
    std::error_code ec;
    std::size_t fds = 0;
    for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
    if (!ec) now.set("obmen_process_open_fds", {}, static_cast<double>(fds));
    now.set("obmen_uptime_seconds", {},
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    now.set("obmen_build_info", {{"version", OBMEN_VERSION}}, 1);
    r.body = metrics::default_registry().render() + now.render() + omitted;
    co_return r;
  }

 private:
  worker_pool& db_;
  std::chrono::steady_clock::time_point started_;
};

class daemon_state {
 public:
  daemon_state(net::io_context& ioc, loaded l, fs::path config_path, std::optional<std::string> level_override)
      : ioc_(ioc),
        config_path_(std::move(config_path)),
        level_override_(std::move(level_override)),
        current_(std::move(l)),
        db_(static_cast<std::size_t>(current_.cfg.database.pool_size), config::database_url(current_.cfg)),
        imports_(static_cast<std::size_t>(std::max(1, current_.cfg.workers - 1)), config::database_url(current_.cfg)),
        // /healthz has a connection of its own: it must answer while exchanges keep db_ busy.
        health_(1, config::database_url(current_.cfg)),
        // МойСклад sources: each runs its own thread once started.
        moysklad_(make_moysklad(current_)),
        // Resync jobs (jobs/runner.hpp): constructed after the pools, idle until start().
        jobs_(ioc, runner_settings_of(current_, moysklad_)),
        server_(ioc),
        signals_(ioc, SIGTERM, SIGINT, SIGHUP),
        watchdog_(ioc),
        cleaner_(ioc) {}

  void start() {
    build_routes();
    server_.set_limits(limits_of(current_.cfg.http));
    if (!current_.cfg.http.tls_certificate.empty())
      server_.set_tls(http_server::make_tls(current_.cfg.http.tls_certificate, current_.cfg.http.tls_key));
    listen_ = server_.listen(current_.cfg.http.address, current_.cfg.http.port);
    server_.start();
    spdlog::info("listening on {}://{} ({} exchange endpoint(s))", current_.cfg.http.tls_certificate.empty() ? "http" : "https",
                 listen_, exchanges_.size());
    wait_signal();
    start_watchdog();
    clean_spool();
    notify("READY=1\nSTATUS=" + status_line() + "\nX_OBMEN_LISTEN=" + listen_);
    // After READY: the runner LISTENs for jobs and picks up what is queued (a slow database
    // must not delay start-up); МойСклад sources start syncing.
    jobs_.start();
    for (auto& [name, svc] : moysklad_) svc->start();
  }

 private:
  std::string status_line() const {
    return "serving on " + listen_ + "; " + std::to_string(exchanges_.size()) + " 1C endpoint(s), " +
           std::to_string(moysklad_.size()) + " МойСклад source(s)";
  }

  void build_routes() {
    http_server::route_table routes;
    routes["/healthz"] = std::make_shared<healthz>(health_, started_);
    routes["/metrics"] = std::make_shared<metrics_route>(db_, started_);
    std::map<std::string, std::shared_ptr<onec::exchange>> next;
    for (const auto& src : current_.cfg.onec) {
      auto rules = current_.rules_by_source.at(src.name);
      std::shared_ptr<onec::exchange> ex;
      if (auto it = exchanges_.find(src.name); it != exchanges_.end()) {
        ex = it->second;
        ex->reconfigure(src, rules);
      } else {
        ex = std::make_shared<onec::exchange>(ioc_, src, rules, fs::path(current_.cfg.spool.dir) / src.name, db_, imports_);
      }
      next[src.name] = ex;
      routes[src.path] = ex;
    }
    exchanges_ = std::move(next);
    for (auto& [name, svc] : moysklad_)
      for (const auto& src : current_.cfg.moysklad)
        if (src.name == name && !src.webhook_path.empty())
          if (auto route = svc->webhook_route(db_)) routes[src.webhook_path] = route;
    server_.set_routes(std::move(routes));
  }

  void wait_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP && !stopping_) {
        reload();
        wait_signal();
        return;
      }
      if (stopping_) {
        spdlog::warn("second stop signal: exiting now");
        std::_Exit(1);
      }
      stop();
      wait_signal();
    });
  }

  void reload() {
    notify("RELOADING=1\nSTATUS=reloading configuration");
    spdlog::info("SIGHUP: reloading {}", config_path_.string());
    std::vector<std::string> problems;
    auto next = load_all(config_path_, problems);
    if (!next) {
      for (const auto& p : problems) spdlog::error("reload: {}", p);
      spdlog::error("reload failed ({} problem(s)); keeping the previous configuration", problems.size());
      notify("READY=1\nSTATUS=reload failed (" + std::to_string(problems.size()) + " problem(s)), previous configuration kept; " +
             status_line());
      return;
    }
    const auto& old_http = current_.cfg.http;
    if (next->cfg.http.address != old_http.address || next->cfg.http.port != old_http.port)
      spdlog::warn("reload: http.address/http.port changed; restart obmend to listen on the new address");
    if (next->cfg.database.pool_size != current_.cfg.database.pool_size || next->cfg.workers != current_.cfg.workers)
      spdlog::warn("reload: database.pool_size/workers changed; takes effect after a restart");
    try {
      current_ = std::move(*next);
      reconfigure_moysklad();
      build_routes();
      jobs_.reconfigure(runner_settings_of(current_, moysklad_));  // new mapping rules and schedules for the next job
    } catch (const std::exception& e) {
      spdlog::error("reload failed: {}", e.what());
    }
    server_.set_limits(limits_of(current_.cfg.http));
    try {
      // New connections use the new certificate (renewed by certbot and friends, then SIGHUP).
      server_.set_tls(current_.cfg.http.tls_certificate.empty()
                          ? nullptr
                          : http_server::make_tls(current_.cfg.http.tls_certificate, current_.cfg.http.tls_key));
    } catch (const std::exception& e) {
      spdlog::error("reload: {}; keeping the previous TLS certificate", e.what());
    }
    const auto url = config::database_url(current_.cfg);
    db_.set_database_url(url);
    imports_.set_database_url(url);
    health_.set_database_url(url);
    apply_log_level();
    spdlog::info("configuration reloaded:\n{}", config::describe_masked(current_.cfg));
    notify("READY=1\nSTATUS=" + status_line());
  }

 public:
  void apply_log_level() {
    const std::string name = level_override_.value_or(current_.cfg.log_level);
    log::setup(log::parse_level(name).value_or(spdlog::level::info));
  }

  void stop() {
    stopping_ = true;
    notify("STOPPING=1\nSTATUS=stopping: finishing requests and imports in flight");
    spdlog::info("stopping: {} connection(s) open, {} import(s) running", server_.connections(), running_jobs());
    watchdog_.cancel();
    cleaner_.cancel();
    jobs_.stop();  // no new claims; a running job stops at its next step and is queued again
    for (auto& [name, svc] : moysklad_) svc->stop();  // each ends after the step in progress
    server_.on_drained([this] { wait_for_jobs(); });
    server_.stop();
  }

 private:
  std::size_t running_jobs() const {
    std::size_t n = 0;
    for (const auto& [name, ex] : exchanges_) n += ex->running_jobs();
    for (const auto& [name, svc] : moysklad_) n += svc->busy() ? 1 : 0;
    return n;
  }

  // Sources kept by name get the new settings; new ones start; removed ones stop.
  void reconfigure_moysklad() {
    moysklad_services next;
    for (const auto& src : current_.cfg.moysklad) {
      if (auto it = moysklad_.find(src.name); it != moysklad_.end()) {
        it->second->reconfigure(service_settings_of(current_, src));
        next[src.name] = it->second;
      } else {
        auto svc = std::make_shared<moysklad::service>(service_settings_of(current_, src));
        svc->start();
        next[src.name] = svc;
      }
    }
    for (auto& [name, svc] : moysklad_)
      if (!next.count(name)) svc->stop();  // joined when the last reference goes
    moysklad_ = std::move(next);
  }

  // Imports run on the import pool; their transactions are allowed to finish.
  void wait_for_jobs() {
    if (running_jobs() == 0 && !jobs_.busy()) {
      spdlog::info("stopped: no connection or import left");
      signals_.cancel();
      return;
    }
    watchdog_.expires_after(100ms);
    watchdog_.async_wait([this](const boost::system::error_code&) { wait_for_jobs(); });
  }

  void start_watchdog() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
    watchdog_interval_ = std::chrono::microseconds(usec / 2);
    spdlog::info("systemd watchdog: pinging every {} ms", watchdog_interval_.count() / 1000);
    ping_watchdog();
  }

  void ping_watchdog() {
    notify("WATCHDOG=1");
    watchdog_.expires_after(watchdog_interval_);
    watchdog_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !stopping_) ping_watchdog();
    });
  }

  void clean_spool() {
    for (auto& [name, ex] : exchanges_) {
      net::co_spawn(ioc_, ex->clean_spool(current_.cfg.spool.keep_days), [name = name](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::warn("1c[{}] spool cleanup failed: {}", name, ex.what());
        }
      });
    }
    cleaner_.expires_after(1h);
    cleaner_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !stopping_) clean_spool();
    });
  }

  net::io_context& ioc_;
  fs::path config_path_;
  std::optional<std::string> level_override_;
  loaded current_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  worker_pool db_;
  worker_pool imports_;
  worker_pool health_;
  moysklad_services moysklad_;         // before jobs_: the runner's settings refer to them
  jobs::runner jobs_;
  http_server server_;
  net::signal_set signals_;
  net::steady_timer watchdog_;
  net::steady_timer cleaner_;
  std::chrono::microseconds watchdog_interval_{0};
  std::map<std::string, std::shared_ptr<onec::exchange>> exchanges_;
  std::string listen_;
  bool stopping_ = false;
};

}  // namespace

int run(const options& opts) {
  // Signals first (STYLE habit 11): a SIGTERM during start-up must not kill us half-way, and
  // a client vanishing mid-answer must not raise SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  // Blocked until the io_context's signal_set is listening; Asio's handler then takes them.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  log::setup(opts.log_level ? log::parse_level(*opts.log_level).value_or(spdlog::level::info) : spdlog::level::info);
  std::vector<std::string> problems;
  auto l = load_all(opts.config_path, problems);
  if (!l) {
    for (const auto& p : problems) spdlog::error("{}", p);
    spdlog::critical("cannot start: {} problem(s) in the configuration ({})", problems.size(), opts.config_path.string());
    return 1;
  }
  log::setup(log::parse_level(opts.log_level.value_or(l->cfg.log_level)).value_or(spdlog::level::info));
  spdlog::info("obmend {} starting; effective configuration from {}:\n{}", OBMEN_VERSION, opts.config_path.string(),
               config::describe_masked(l->cfg));
  if (!std::getenv("PGCONNECT_TIMEOUT"))
    ::setenv("PGCONNECT_TIMEOUT", std::to_string(l->cfg.database.connect_timeout_seconds).c_str(), 1);

  try {
    auto conn = store::connect(config::database_url(l->cfg));
    store::require_current_schema(*conn);
  } catch (const store::schema_mismatch& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: database {}: {}", config::mask_url(config::database_url(l->cfg)), e.what());
    return 1;
  }

  std::error_code ec;
  fs::create_directories(l->cfg.spool.dir, ec);
  if (ec) {
    spdlog::critical("cannot start: spool.dir '{}': {}", l->cfg.spool.dir, ec.message());
    return 1;
  }

  net::io_context ioc{1};
  try {
    daemon_state state(ioc, std::move(*l), opts.config_path, opts.log_level);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    state.start();
    ioc.run();
  } catch (const std::exception& e) {
    spdlog::critical("obmend: {}", e.what());
    notify("STATUS=failed: " + std::string(e.what()));
    return 1;
  }
  spdlog::info("obmend stopped");
  return 0;
}

}  // namespace obmen::daemon
