#include "jobs/resync.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>
#include <utility>
#include <vector>

#include "adapters/onec/catalog_import.hpp"
#include "store/portal_store.hpp"

namespace obmen::jobs {

namespace fs = std::filesystem;

namespace {

// Thrown from before_commit to roll a dry run's import back after its counts were taken.
struct dry_run_rollback {};

enum class file_kind { import, offers, prices, rests, other };

file_kind kind_of(const std::string& name) {
  std::string base = fs::path(name).filename().string();
  std::transform(base.begin(), base.end(), base.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!base.ends_with(".xml")) return file_kind::other;  // zips are recorded 'imported' once unpacked
  if (base.starts_with("import")) return file_kind::import;
  if (base.starts_with("offers")) return file_kind::offers;
  if (base.starts_with("prices")) return file_kind::prices;
  if (base.starts_with("rests")) return file_kind::rests;
  return file_kind::other;
}

struct entity_files {
  std::set<file_kind> kinds;
  const char* described;
};

entity_files files_of(const std::string& entity) {
  if (entity == "catalog") return {{file_kind::import, file_kind::offers}, "import*/offers*"};
  if (entity == "prices") return {{file_kind::offers, file_kind::prices}, "offers*/prices*"};
  return {{file_kind::offers, file_kind::rests}, "offers*/rests*"};
}

bool is_file_step(const std::string& entity) { return entity == "catalog" || entity == "prices" || entity == "stock"; }

struct step {
  std::string entity;
  std::int64_t session = 0;
  fs::path dir;
  std::vector<std::string> files;   // in import order
  std::vector<std::string> already; // applied by an earlier step of this job
  std::string skipped;              // why nothing is done (only for `all`)
};

// The newest catalog session with imported files of `kinds` whose folder and files are on this
// host. Older sessions are tried when a newer one's folder is gone. Throws with the reason.
step find_files(pqxx::connection& data, const std::string& entity, const onec_source& src) {
  const auto want = files_of(entity);
  pqxx::read_transaction tx(data);
  auto r = tx.exec_params(
      "SELECT s.id, coalesce(s.spool_dir, ''), f.filename FROM obmen.exchange_sessions s "
      "JOIN obmen.exchange_files f ON f.session_id = s.id "
      "WHERE s.id IN (SELECT s2.id FROM obmen.exchange_sessions s2 WHERE s2.source = $1 AND s2.type = 'catalog' "
      "               AND s2.spool_removed_at IS NULL "
      "               AND EXISTS (SELECT 1 FROM obmen.exchange_files f2 WHERE f2.session_id = s2.id AND f2.status = 'imported') "
      "               ORDER BY s2.id DESC LIMIT 100) "
      "  AND f.status = 'imported' ORDER BY s.id DESC, f.id",
      src.name);
  std::string missing;
  for (std::size_t i = 0; i < r.size();) {
    step s;
    s.entity = entity;
    s.session = r[i][0].as<std::int64_t>();
    const std::string recorded = r[i][1].as<std::string>();
    std::vector<std::string> names;
    for (; i < r.size() && r[i][0].as<std::int64_t>() == s.session; ++i) {
      const auto name = r[i][2].as<std::string>();
      if (want.kinds.count(kind_of(name))) names.push_back(name);
    }
    if (names.empty()) continue;
    // The folder this host would use; the recorded one when another configuration wrote it here.
    s.dir = src.spool_root / std::to_string(s.session);
    std::error_code ec;
    if (!fs::is_directory(s.dir, ec) && !recorded.empty() && fs::is_directory(recorded, ec)) s.dir = recorded;
    bool all_there = fs::is_directory(s.dir, ec);
    for (const auto& n : names) all_there = all_there && fs::is_regular_file(s.dir / n, ec);
    if (!all_there) {
      if (missing.empty()) missing = "; session " + std::to_string(s.session) + "'s files are no longer in " + s.dir.string();
      continue;
    }
    s.files = onec::order_for_import(std::move(names));
    return s;
  }
  throw std::runtime_error("nothing to resync for " + entity + ": no catalog exchange of source '" + src.name +
                           "' has imported " + want.described + " files whose spool folder is on this host" + missing +
                           " (spool.keep_days removes them; run an exchange from 1C)");
}

std::vector<std::string> entities_of(const std::string& entity) {
  if (entity == "all") return {"catalog", "prices", "stock", "orders", "counterparties"};
  return {entity};
}

class resync_run {
 public:
  resync_run(pqxx::connection& data, const job& j, const onec_source& src, const resync_hooks& hooks, nlohmann::json& result)
      : data_(data), job_(j), src_(src), hooks_(hooks), result_(result) {}

  void run() {
    if (!result_.is_object()) result_ = nlohmann::json::object();
    plan();
    for (std::size_t i = 0; i < steps_.size(); ++i) {
      if (hooks_.stopping && hooks_.stopping()) throw job_interrupted();
      step_index_ = i;
      auto& s = steps_[i];
      if (!s.skipped.empty()) {
        result_[s.entity] = {{"skipped", s.skipped}, {"summary", s.entity + ": skipped, " + s.skipped}};
        continue;
      }
      if (is_file_step(s.entity)) run_files(s);
      else run_orders(s.entity);
    }
    file_.clear();
    detail_.clear();
    report(true, 100);
  }

 private:
  void plan() {
    std::set<std::pair<std::int64_t, std::string>> planned;
    for (const auto& e : entities_of(job_.entity)) {
      if (!is_file_step(e)) {
        steps_.push_back({e});
        units_ += 1;
        continue;
      }
      step s;
      try {
        s = find_files(data_, e, src_);
      } catch (const std::runtime_error& ex) {
        if (job_.entity != "all") throw;
        s.entity = e;
        s.skipped = ex.what();
        steps_.push_back(std::move(s));
        continue;
      }
      std::vector<std::string> fresh;
      for (auto& f : s.files) {
        if (planned.insert({s.session, f}).second) fresh.push_back(f);
        else s.already.push_back(f);
      }
      s.files = std::move(fresh);
      units_ += std::max<std::size_t>(s.files.size(), 1);
      steps_.push_back(std::move(s));
    }
  }

  int percent() const {
    if (units_ == 0) return 100;
    return static_cast<int>(std::min<std::size_t>(100, done_ * 100 / units_));
  }

  // Writes progress (always when `force`, else at most every progress_interval); throws
  // job_cancelled when the job is no longer running.
  void report(bool force, int pct = -1) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_report_ < hooks_.progress_interval) return;
    last_report_ = now;
    const auto& s = steps_.empty() ? step{} : steps_[step_index_];
    std::string text = s.entity;
    nlohmann::json p;
    p["percent"] = pct >= 0 ? pct : percent();
    p["step"] = s.entity;
    p["step_index"] = step_index_ + 1;
    p["steps"] = steps_.size();
    if (!file_.empty()) {
      p["file"] = file_;
      p["file_index"] = file_index_ + 1;
      p["files"] = s.files.size();
      p["session"] = s.session;
      text += ": " + file_ + " (" + std::to_string(file_index_ + 1) + " of " + std::to_string(s.files.size()) + ")";
    }
    if (!detail_.empty()) {
      p["detail"] = detail_;
      text += ": " + detail_;
    }
    if (pct == 100) text = "finished " + std::to_string(steps_.size()) + " step(s)";
    p["text"] = text;
    if (hooks_.report && !hooks_.report(p)) throw job_cancelled();
  }

  void run_files(step& s) {
    store::import_counts total;
    nlohmann::json files = nlohmann::json::array();
    nlohmann::json& out = result_[s.entity];
    out = {{"session", s.session}, {"files", files}};
    if (!s.already.empty()) out["already_applied"] = s.already;
    if (s.files.empty()) {
      ++done_;
      out["counts"] = total.to_json();
      out["summary"] = s.entity + ": session " + std::to_string(s.session) + ": files applied by an earlier step";
      out["changed"] = false;
      return;
    }
    onec::import_chain chain;
    for (std::size_t i = 0; i < s.files.size(); ++i) {
      if (i > 0 && hooks_.stopping && hooks_.stopping()) throw job_interrupted();
      file_index_ = i;
      file_ = s.files[i];
      detail_.clear();
      report(true);
      onec::import_options o;
      o.source = src_.name;
      o.rules = src_.rules.get();
      o.files_root = s.dir;
      const fs::path next = i + 1 < s.files.size() ? s.dir / s.files[i + 1] : fs::path();
      chain.prepare(o, next.empty() ? nullptr : &next);
      o.progress = [this](const std::string& d) {
        detail_ = d;
        report(false);
      };
      store::import_counts counts;
      const std::int64_t id = job_.id;
      const bool dry = job_.dry_run;
      o.before_commit = [&counts, id, dry](pqxx::work& tx, const store::import_counts& c) {
        counts = c;
        if (!lock_if_running(tx, id)) throw job_cancelled();
        if (dry) throw dry_run_rollback{};
      };
      try {
        counts = onec::import_catalog_file(data_, s.dir / file_, o);
      } catch (const dry_run_rollback&) {
        // counts were taken in before_commit; the transaction is rolled back.
      } catch (const job_cancelled&) {
        throw;
      } catch (const std::exception& e) {
        out["files"].push_back({{"file", file_}, {"error", e.what()}});
        throw std::runtime_error(s.entity + ": " + file_ + " (session " + std::to_string(s.session) + "): " + e.what());
      }
      ++done_;
      total += counts;
      out["files"].push_back({{"file", file_}, {"summary", counts.summary()}, {"counts", counts.to_json()}});
      out["counts"] = total.to_json();
      out["summary"] = s.entity + ": " + total.summary();
      out["changed"] = total.changed();
    }
    file_.clear();
    detail_.clear();
  }

  // orders / counterparties: forget what this node acknowledged of the open portal orders (of
  // counterparties the ERP has not confirmed, for `counterparties`), so sale/query sends them again.
  void run_orders(const std::string& entity) {
    report(true);
    const bool by_counterparty = entity == "counterparties";
    const std::string scope =
        std::string("FROM portal.orders o ") +
        (by_counterparty ? "JOIN portal.counterparties cp ON cp.id = o.counterparty_id AND cp.source IS NULL " : "") +
        "LEFT JOIN obmen.order_exports e ON e.source = $1 AND e.order_id = o.id "
        "WHERE o.source IS NULL AND NOT o.cancelled AND o.status <> 'completed'";
    const std::string acknowledged = "e.acknowledged_changed_at IS NOT NULL AND o.changed_at <= e.acknowledged_changed_at";
    pqxx::work tx(data_);
    auto r = tx.exec_params1("SELECT count(*) FILTER (WHERE " + acknowledged + "), count(*), count(DISTINCT o.counterparty_id) " +
                                 scope,
                             src_.name);
    const auto requeued = r[0].as<std::int64_t>(), open = r[1].as<std::int64_t>(), parties = r[2].as<std::int64_t>();
    if (!job_.dry_run && requeued > 0) {
      tx.exec_params("UPDATE obmen.order_exports x SET acknowledged_changed_at = NULL WHERE x.source = $1 AND x.order_id IN "
                     "(SELECT o.id " + scope + " AND " + acknowledged + ")",
                     src_.name);
    }
    if (!lock_if_running(tx, job_.id)) throw job_cancelled();
    tx.commit();
    ++done_;
    nlohmann::json out = {{"requeued", requeued}, {"pending", open - requeued}};
    std::string summary = entity + ": " + std::to_string(requeued) + (job_.dry_run ? " would be" : "") +
                          " sent again on 1C's next query";
    if (by_counterparty) {
      out["counterparties"] = parties;
      summary = entity + ": " + std::to_string(parties) + " not yet confirmed by 1C, in " + std::to_string(open) +
                " open order(s); " + std::to_string(requeued) + " order(s)" + (job_.dry_run ? " would be" : "") +
                " sent again on 1C's next query";
    }
    if (open - requeued > 0) summary += ", " + std::to_string(open - requeued) + " already waiting";
    out["summary"] = summary;
    result_[entity] = out;
  }

  pqxx::connection& data_;
  const job& job_;
  const onec_source& src_;
  const resync_hooks& hooks_;
  nlohmann::json& result_;
  std::vector<step> steps_;
  std::size_t units_ = 0, done_ = 0, step_index_ = 0, file_index_ = 0;
  std::string file_, detail_;
  std::chrono::steady_clock::time_point last_report_{};
};

}  // namespace

void run_onec_resync(pqxx::connection& data, const job& j, const onec_source& src, const resync_hooks& hooks,
                     nlohmann::json& result) {
  resync_run(data, j, src, hooks, result).run();
}

}  // namespace obmen::jobs
