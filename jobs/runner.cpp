#include "jobs/runner.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <mutex>
#include <system_error>

#include <spdlog/spdlog.h>

namespace obmen::jobs {

namespace {

std::string host_and_pid() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "localhost") + ":" + std::to_string(::getpid());
}

class job_receiver final : public pqxx::notification_receiver {
 public:
  job_receiver(pqxx::connection_base& c, std::function<void()> on_job)
      : pqxx::notification_receiver(c, new_job_channel), on_job_(std::move(on_job)) {}
  void operator()(const std::string&, int) override { on_job_(); }

 private:
  std::function<void()> on_job_;
};

}  // namespace

// The LISTEN thread. poll() waits on the connection's socket and an eventfd, so stop() wakes it
// at once instead of waiting for an await_notification time-out.
class runner::listener {
 public:
  listener(std::string url, std::function<void()> on_job) : url_(std::move(url)), on_job_(std::move(on_job)) {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    thread_ = std::thread([this] { run(); });
  }
  ~listener() {
    stop();
    if (thread_.joinable()) thread_.join();
    ::close(stop_fd_);
  }
  void stop() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
  }
  void set_url(std::string url) {
    std::lock_guard lock(mutex_);
    url_ = std::move(url);
  }

 private:
  std::string url() {
    std::lock_guard lock(mutex_);
    return url_;
  }
  // Waits up to `ms` for stop(); true when stopping.
  bool wait_stop(int ms) {
    pollfd f{stop_fd_, POLLIN, 0};
    return ::poll(&f, 1, ms) > 0;
  }

  void run() {
    bool failed_before = false;
    while (true) {
      try {
        pqxx::connection c(url());
        job_receiver r(c, on_job_);
        if (failed_before) spdlog::info("jobs: listening for new jobs again");
        failed_before = false;
        on_job_();  // whatever was queued while we were not listening
        while (true) {
          pollfd fds[2] = {{c.sock(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
          if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "poll");
          }
          if (fds[1].revents) return;
          if (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) throw std::runtime_error("connection closed");
          if (fds[0].revents) c.get_notifs();
        }
      } catch (const std::exception& e) {
        if (!failed_before) spdlog::warn("jobs: listening for new jobs failed: {}; retrying every 5 s", e.what());
        failed_before = true;
      }
      if (wait_stop(5000)) return;
    }
  }

  std::mutex mutex_;
  std::string url_;
  std::function<void()> on_job_;
  int stop_fd_ = -1;
  std::thread thread_;
};

// The pool thread's control connection: claims hold their advisory lock on it.
struct runner::control {
  std::string url;
  std::unique_ptr<pqxx::connection> conn;
  pqxx::connection& get() {
    if (!conn || !idle_connection_alive(*conn)) {
      conn.reset();
      conn = std::make_unique<pqxx::connection>(url);
    }
    return *conn;
  }
};

runner::runner(net::io_context& ioc, runner_settings settings, std::chrono::seconds fallback)
    : ioc_(ioc),
      settings_(std::make_shared<const runner_settings>(std::move(settings))),
      fallback_(fallback),
      timer_(ioc),
      pool_(1, settings_->database_url),
      control_(std::make_unique<control>()),
      worker_id_(host_and_pid()) {
  control_->url = settings_->database_url;
}

runner::~runner() {
  stopping_ = true;
  listener_.reset();
  pool_.join();
}

void runner::start() {
  if (started_) return;
  started_ = true;
  listener_ = std::make_unique<listener>(settings_->database_url, [this] { net::post(ioc_, [this] { wake(); }); });
  spdlog::info("jobs: runner started as {} for source(s) {}, {} schedule(s)", worker_id_,
               [&] {
                 std::string names;
                 for (const auto& s : settings_->sources) names += (names.empty() ? "" : ", ") + s.name;
                 for (const auto& s : settings_->pull_sources) names += (names.empty() ? "" : ", ") + s.name;
                 return names.empty() ? std::string("(none)") : names;
               }(),
               settings_->schedules.size());
  arm_timer();
}

void runner::reconfigure(runner_settings settings) {
  // The control connection's URL is read on the pool thread: post the change there.
  const std::string url = settings.database_url;
  pool_.set_database_url(url);
  if (listener_) listener_->set_url(url);
  net::post(pool_.executor(), [this, url] {
    if (control_->url != url) {
      control_->url = url;
      control_->conn.reset();
    }
  });
  settings_ = std::make_shared<const runner_settings>(std::move(settings));
  wake();  // a new schedule may be due
}

void runner::stop() {
  if (stopping_) return;
  stopping_ = true;
  timer_.cancel();
  if (listener_) listener_->stop();
  if (busy_) spdlog::info("jobs: stopping; the running job stops at its next step and is queued again");
}

void runner::arm_timer() {
  timer_.expires_after(fallback_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    wake();
    arm_timer();
  });
}

void runner::wake() {
  if (stopping_ || !started_) return;
  if (busy_) {
    wake_again_ = true;
    return;
  }
  busy_ = true;
  net::co_spawn(ioc_, poll_loop(), [this](std::exception_ptr e) {
    busy_ = false;
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      // Database down, most likely: the timer or the listener's reconnect tries again.
      spdlog::error("jobs: {}", ex.what());
    }
  });
}

net::awaitable<void> runner::poll_loop() {
  while (!stopping_) {
    wake_again_ = false;
    auto settings = settings_;
    // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
    auto work = [this, settings](pqxx::connection& data) { return poll_once(data, *settings); };
    const bool ran = co_await pool_.run(work);
    if (!ran && !wake_again_) break;
  }
  co_return;
}

bool runner::poll_once(pqxx::connection& data, const runner_settings& s) {
  auto& ctl = control_->get();
  std::vector<std::string> names;
  for (const auto& src : s.sources) names.push_back(src.name);
  for (const auto& src : s.pull_sources) names.push_back(src.name);
  for (const auto id : fail_orphans(ctl, names))
    spdlog::warn("jobs: job {} was left running by an obmend that stopped; marked failed", id);
  for (const auto& sch : s.schedules) {
    request r{sch.source, sch.entity, sch.mode, sch.dry_run, "schedule",
              sch.source + "/" + sch.entity + "/" + sch.mode + (sch.dry_run ? "/dry_run" : "")};
    if (auto id = enqueue_if_due(ctl, r, sch.slot(), sch.every_seconds))
      spdlog::info("jobs: schedule {} (every {}s) enqueued job {}", *r.schedule, sch.every_seconds, *id);
  }
  if (stopping_) return false;
  auto j = claim(ctl, names, worker_id_);
  if (!j) return false;
  try {
    run_job(data, ctl, *j, s);
  } catch (...) {
    release(ctl, j->id);
    throw;
  }
  release(ctl, j->id);
  return true;
}

void runner::run_job(pqxx::connection& data, pqxx::connection& ctl, const job& j, const runner_settings& s) {
  const auto started = std::chrono::steady_clock::now();
  spdlog::info("jobs: job {} started: resync of {} from {} ({}{}), requested by {}", j.id, j.entity, j.source, j.mode,
               j.dry_run ? ", dry run" : "", j.requested_by.empty() ? "?" : j.requested_by);
  nlohmann::json result = nlohmann::json::object();
  const onec_source* src = nullptr;
  for (const auto& o : s.sources)
    if (o.name == j.source) src = &o;
  const pull_source* pull = nullptr;
  for (const auto& o : s.pull_sources)
    if (o.name == j.source) pull = &o;
  resync_hooks hooks;
  hooks.report = [&ctl, id = j.id](const nlohmann::json& p) { return report_progress(ctl, id, p); };
  hooks.stopping = [this] { return stopping_.load(); };
  const auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
  try {
    if (pull) {
      report_progress(ctl, j.id, nlohmann::json{{"step", j.entity}, {"text", "pulling " + j.entity + " from " + j.source}});
      result[j.entity] = pull->resync(data, j);
    } else {
      if (!src) throw std::runtime_error("source '" + j.source + "' is not served by this obmend");
      run_onec_resync(data, j, *src, hooks, result);
    }
    if (finish(ctl, j.id, result)) spdlog::info("jobs: job {} done in {:.2f} s", j.id, secs());
    else spdlog::info("jobs: job {} was cancelled as it finished", j.id);
  } catch (const job_cancelled&) {
    record_cancelled(ctl, j.id, result);
    spdlog::info("jobs: job {} cancelled after {:.2f} s; its step in progress was rolled back", j.id, secs());
  } catch (const job_interrupted&) {
    pqxx::work tx(ctl);
    tx.exec_params("UPDATE obmen.jobs SET state = 'queued', started_at = NULL, worker = NULL, "
                   "progress = jsonb_build_object('text', 'queued again: ' || $2::text || ' stopped') "
                   "WHERE id = $1 AND state = 'running'",
                   j.id, worker_id_);
    tx.commit();
    spdlog::info("jobs: job {} queued again: obmend is stopping", j.id);
  } catch (const std::exception& e) {
    // When the control connection is what broke, fail() throws too: the poll ends, the claim's
    // lock went with the connection, and fail_orphans settles the job at the next wake-up.
    spdlog::error("jobs: job {} failed after {:.2f} s: {}", j.id, secs(), e.what());
    fail(ctl, j.id, e.what(), result);
  }
}

}  // namespace obmen::jobs
