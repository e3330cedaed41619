#pragma once
// The 1C site-exchange endpoint (type=catalog) for one configured 1C node: the protocol state
// machine of reference/commerceml/PROTOCOL.md §10.
//
//   checkauth  Basic auth (constant-time) → new exchange session: cookie, sessid, timestamp
//   init       wipes the session's spool folder → "zip=yes|no\nfile_limit=N\n"
//   file       body streamed to <spool>/<session>/<name>, appended chunk after chunk, fsynced
//              and recorded before "success"
//   import     runs the import as a background job on the import pool and answers "progress"
//              until it is done, then "success\n<counts>" / "failure\n<reason>"
//   deactivate marks what this session's imports did not touch inactive
//   complete   closes the session
//
// Sessions, files and requests are recorded in schema obmen; spooled files are removed
// spool.keep_days after the session ended. Runs on the io_context thread; all database and
// disk work hops to the worker pools.
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/http.hpp"
#include "common/net.hpp"
#include "common/worker_pool.hpp"
#include "config/config.hpp"
#include "mapping/mapping.hpp"

namespace obmen::onec {

inline constexpr const char* cookie_name = "obmen_session";

class exchange final : public http::route, public std::enable_shared_from_this<exchange> {
 public:
  // Resolves the password secret now; throws std::runtime_error when it cannot.
  exchange(net::io_context& ioc, config::onec_config cfg, std::shared_ptr<const mapping::rules> rules,
           std::filesystem::path spool_root, worker_pool& db, worker_pool& imports);

  // SIGHUP: new settings and mapping for sessions' next requests; running imports keep theirs.
  void reconfigure(config::onec_config cfg, std::shared_ptr<const mapping::rules> rules);

  bool is_upload(const http::request&) const override;
  net::awaitable<http::upload_decision> prepare_upload(http::request) override;
  net::awaitable<http::response> finish_upload(http::request, http::upload_target, std::string error,
                                               std::uint64_t bytes) override;
  net::awaitable<http::response> handle(http::request) override;

  // Expires idle sessions and removes spool folders of sessions ended more than keep_days ago.
  net::awaitable<void> clean_spool(int keep_days);

  // Number of import/unzip jobs not finished yet (for shutdown logging and STATUS).
  std::size_t running_jobs() const;

  struct job;
  struct session;

 private:
  net::awaitable<http::response> serve(http::request);  // handle() without the request metric
  net::awaitable<http::response> checkauth(const http::request&);
  net::awaitable<http::response> init(const session&, const http::request&);
  net::awaitable<http::response> query(const session&);
  net::awaitable<http::response> acknowledge(const session&);
  http::response info() const;
  // type=sale "old" protocol: the uploaded documents file is imported within mode=file.
  net::awaitable<http::response> import_now(const session&, const std::string& relative);
  net::awaitable<http::response> import(const session&, const std::string& filename);
  net::awaitable<http::response> deactivate(const session&);
  net::awaitable<http::response> complete(const session&);
  // nullopt → the answer to send instead (no or expired session).
  net::awaitable<std::optional<session>> find_session(const http::request&, std::string& why);
  bool basic_auth_ok(const http::request&) const;
  static std::string basic_user(const http::request&);  // the Basic auth user name, "" without one
  http::response answer(std::string body) const;
  // `bytes`: the body's size when it was streamed to disk (uploads); else the in-memory body's.
  net::awaitable<void> record(const http::request&, std::optional<std::int64_t> session_id,
                              const http::response&, std::int64_t started_ms,
                              std::optional<std::uint64_t> bytes = std::nullopt);
  void start_job(std::shared_ptr<job>);
  static net::awaitable<void> run_job(std::shared_ptr<exchange> self, std::shared_ptr<job> j);

  net::io_context& ioc_;
  config::onec_config cfg_;
  std::shared_ptr<const mapping::rules> rules_;
  std::string password_;
  std::filesystem::path spool_root_;
  worker_pool& db_;
  worker_pool& imports_;
  std::map<std::pair<std::int64_t, std::string>, std::shared_ptr<job>> jobs_;
  std::set<std::pair<std::int64_t, std::string>> uploads_in_flight_;
  std::set<std::int64_t> sale_new_protocol_;  // sale sessions whose init carried `version`
  // checkauth failures per "address\nuser" in the last login_window; more than
  // max_failed_logins refuse further attempts until the oldest leaves the window.
  static constexpr std::size_t max_failed_logins = 10;
  static constexpr std::chrono::seconds login_window{60};
  std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> failed_logins_;
};

}  // namespace obmen::onec
