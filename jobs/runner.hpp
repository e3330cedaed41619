#pragma once
// obmend's side of resync jobs: notices new jobs, claims those of the sources this daemon serves,
// runs them one at a time, and enqueues scheduled jobs when they are due.
//
// Threads:
// * a listener thread with its own connection LISTENs on obmen_jobs (NOTIFY from the jobs table's
//   trigger) and wakes the runner on the io_context; it reconnects after a broken connection
//   (every 5 s until it succeeds) and wakes the runner after each (re)connect, since
//   notifications sent meanwhile are lost;
// * a timer on the io_context wakes the runner every `fallback` (default 30 s) as well, for
//   notifications missed anyway and for schedules;
// * jobs run on the runner's own one-thread worker pool, so a long resync never holds a thread
//   that 1C's exchange imports need. That thread has two connections: the pool's, for the
//   resync's data transactions, and a control connection (claims with their advisory lock,
//   progress, cancellation checks, outcomes).
// One job runs at a time per obmend; several obmend sharing the database share the work
// (claims use FOR UPDATE SKIP LOCKED). At every wake-up the runner also fails jobs whose obmend
// died (jobs::fail_orphans) and enqueues due schedules (jobs::enqueue_if_due).
//
// Lifecycle (daemon/daemon.cpp): construct after the daemon's pools, start() after READY,
// reconfigure() on SIGHUP (sources, mapping rules and schedules of the new configuration; a job
// already running keeps the rules it started with), stop() with the drain: no new claims, the
// running job stops at its next step boundary (its transaction in flight commits first) and is
// queued again for another obmend or the next start. All public functions: io_context thread
// only. The destructor joins the threads.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/net.hpp"
#include "common/worker_pool.hpp"
#include "config/config.hpp"
#include "jobs/resync.hpp"

namespace obmen::jobs {

// A source whose resync the adapter does itself (МойСклад: it pulls from the API). Called on the
// runner's thread with the data connection; returns the job's result JSON for `entity`
// ({"summary", "counts", …}); throws with the reason the job failed.
struct pull_source {
  std::string name;
  std::function<nlohmann::json(pqxx::connection&, const job&)> resync;
};

struct runner_settings {
  std::string database_url;
  std::vector<onec_source> sources;
  std::vector<pull_source> pull_sources;
  std::vector<config::schedule_config> schedules;
};

class runner {
 public:
  runner(net::io_context& ioc, runner_settings settings, std::chrono::seconds fallback = std::chrono::seconds(30));
  ~runner();
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;

  void start();
  void reconfigure(runner_settings settings);
  void stop();
  // Whether a poll (claim, job, schedules) is under way.
  bool busy() const { return busy_; }

 private:
  class listener;
  struct control;

  void wake();
  void arm_timer();
  net::awaitable<void> poll_loop();
  // On the pool thread: orphans, schedules, then claim and run one job. true when a job ran.
  bool poll_once(pqxx::connection& data, const runner_settings& s);
  void run_job(pqxx::connection& data, pqxx::connection& ctl, const job& j, const runner_settings& s);

  net::io_context& ioc_;
  std::shared_ptr<const runner_settings> settings_;
  std::chrono::seconds fallback_;
  net::steady_timer timer_;
  worker_pool pool_;
  std::unique_ptr<control> control_;    // used on the pool thread only
  std::unique_ptr<listener> listener_;
  std::string worker_id_;
  std::atomic<bool> stopping_{false};
  bool busy_ = false, wake_again_ = false, started_ = false;
};

}  // namespace obmen::jobs
