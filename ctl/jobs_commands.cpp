#include <algorithm>
#include "ctl/jobs_commands.hpp"
#include "ctl/terminal.hpp"

#include "ctl/commands.hpp"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "jobs/jobs.hpp"
#include "mapping/settings.hpp"
#include "store/database.hpp"

namespace obmen::ctl {

struct jobs_cli {
  CLI::App* resync = nullptr;
  CLI::App* status = nullptr;
  CLI::App* jobs = nullptr;
  CLI::App* list = nullptr;
  CLI::App* show = nullptr;
  CLI::App* cancel = nullptr;
  // resync
  std::string source, entity;
  bool full = false, incremental = false, dry_run = false, wait = false;
  // status / jobs
  bool json = false;
  std::string state;
  int limit = 20;
  std::int64_t id = 0;
};

namespace {

using nlohmann::json;

std::shared_ptr<jobs_cli> make_cli(CLI::App& app) {
  auto c = std::make_shared<jobs_cli>();
  c->resync = app.add_subcommand("resync", "ask obmend to resync a source (a job in obmen.jobs)");
  c->resync->add_option("--source", c->source, "source name (default: the only 1C source in the configuration)");
  c->resync->add_option("--entity", c->entity, "what to resync")
      ->required()
      ->check(CLI::IsMember(config::resync_entities()));
  auto* full = c->resync->add_flag("--full", c->full, "full resync (the default)");
  auto* incr = c->resync->add_flag("--incremental", c->incremental, "incremental resync");
  full->excludes(incr);
  c->resync->add_flag("--dry-run", c->dry_run, "compute and report what would change, change nothing");
  c->resync->add_flag("--wait", c->wait, "follow the job until it ends; exit 0 when done, 1 when failed or cancelled");

  c->status = app.add_subcommand("status", "last exchanges, running jobs, queue depth and last errors per source");
  c->status->add_flag("--json", c->json, "print JSON");

  c->jobs = app.add_subcommand("jobs", "list, show or cancel resync jobs");
  c->jobs->require_subcommand(1);
  c->list = c->jobs->add_subcommand("list", "recent jobs, newest first");
  c->list->add_option("--state", c->state, "only jobs in this state")
      ->check(CLI::IsMember({"queued", "running", "done", "failed", "cancelled"}));
  c->list->add_option("--limit", c->limit, "at most this many")->check(CLI::Range(1, 10000))->capture_default_str();
  c->list->add_flag("--json", c->json, "print JSON");
  c->show = c->jobs->add_subcommand("show", "one job with its progress and result");
  c->show->add_option("id", c->id, "job id")->required()->check(CLI::PositiveNumber);
  c->show->add_flag("--json", c->json, "print JSON");
  c->cancel = c->jobs->add_subcommand("cancel", "cancel a queued or running job (a running one rolls back its step)");
  c->cancel->add_option("id", c->id, "job id")->required()->check(CLI::PositiveNumber);
  return c;
}

std::string user_name() {
  if (const char* s = std::getenv("SUDO_USER"); s && *s) return s;
  if (const passwd* pw = ::getpwuid(::getuid())) return pw->pw_name;
  if (const char* s = std::getenv("USER"); s && *s) return s;
  return "uid " + std::to_string(::getuid());
}

struct session {
  mapping::settings settings;
  std::unique_ptr<pqxx::connection> conn;
};

// Configuration (for the database URL and the sources) and a connection on a current schema.
std::optional<session> open(const global_options& g, const char* command) {
  auto s = load_or_report(g);
  if (!s) return std::nullopt;
  try {
    auto conn = store::connect(config::database_url(s->cfg));
    store::require_current_schema(*conn);
    return session{std::move(*s), std::move(conn)};
  } catch (const std::exception& e) {
    std::cerr << "obmenctl " << command << ": " << e.what() << "\n";
    return std::nullopt;
  }
}

std::string when(const std::string& iso) {
  if (iso.size() < 19) return iso;
  std::string s = iso.substr(0, 19);
  s[10] = ' ';
  return s;
}

std::string age(double seconds) {
  const auto s = static_cast<long long>(seconds);
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  if (s < 172800) return std::to_string(s / 3600) + " h ago";
  return std::to_string(s / 86400) + " d ago";
}

std::string seconds_text(const std::optional<double>& s) {
  if (!s) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", *s);
  return buf;
}

// One line per entity of a result: its summary.
std::vector<std::string> summaries(const json& result) {
  std::vector<std::string> out;
  if (!result.is_object()) return out;
  for (const auto& e : config::resync_entities()) {
    if (!result.contains(e)) continue;
    const auto& r = result[e];
    out.push_back(r.contains("summary") ? r["summary"].get<std::string>() : e + ": " + r.dump());
    if (r.contains("files"))
      for (const auto& f : r["files"])
        out.push_back("  " + f.value("file", std::string("?")) + ": " +
                      (f.contains("error") ? "failed: " + f["error"].get<std::string>() : f.value("summary", std::string())));
  }
  return out;
}

std::string progress_text(const jobs::job& j) {
  if (!j.progress.is_object()) return "";
  return j.progress.value("text", std::string());
}

int progress_percent(const jobs::job& j) {
  if (!j.progress.is_object() || !j.progress.contains("percent")) return 0;
  return j.progress["percent"].get<int>();
}

// ---------------------------------------------------------------------------------- resync

struct event_receiver final : pqxx::notification_receiver {
  std::string prefix;
  bool seen = false;
  event_receiver(pqxx::connection_base& c, std::int64_t id)
      : pqxx::notification_receiver(c, jobs::job_events_channel), prefix(std::to_string(id) + ":") {}
  void operator()(const std::string& payload, int) override {
    if (payload.rfind(prefix, 0) == 0) seen = true;
  }
};

// Follows job `id` until it ends: a progress bar on a terminal, a line per change otherwise.
int follow(pqxx::connection& c, std::int64_t id) {
  const bool tty = ::isatty(STDOUT_FILENO);
  event_receiver rx(c, id);  // LISTEN before the first read: no change slips between
  std::string last_line, last_state;
  bool warned_queued = false;
  const auto begun = std::chrono::steady_clock::now();
  while (true) {
    rx.seen = false;
    std::optional<jobs::job> j;
    {
      pqxx::read_transaction tx(c);
      j = jobs::get(tx, id);
    }
    if (!j) {
      std::cerr << "obmenctl: job " << id << " disappeared\n";
      return 1;
    }
    if (j->state != last_state && j->state == "running") {
      if (tty) std::printf("\r\033[K");
      std::printf("job %lld: running on %s\n", static_cast<long long>(id), j->worker.c_str());
    }
    last_state = j->state;
    const std::string text = progress_text(*j);
    if (!text.empty()) {
      const int pct = progress_percent(*j);
      if (tty) {
        std::string bar(30, '.');
        for (int i = 0; i < pct * 30 / 100; ++i) bar[static_cast<std::size_t>(i)] = '#';
        std::printf("\r[%s] %3d%% %s\033[K", bar.c_str(), pct, text.substr(0, 100).c_str());
      } else {
        const std::string line = std::to_string(pct) + "% " + text;
        if (line != last_line) std::printf("job %lld: %s\n", static_cast<long long>(id), line.c_str());
        last_line = line;
      }
      std::fflush(stdout);
    }
    if (j->finished()) {
      if (tty) std::printf("\r\033[K");
      const auto lines = summaries(j->result);
      if (j->state == "done") {
        std::printf("job %lld done in %s%s\n", static_cast<long long>(id), seconds_text(j->seconds).c_str(),
                    j->dry_run ? " (dry run: nothing was changed; this is what would change)" : "");
        for (const auto& l : lines) std::printf("  %s\n", l.c_str());
        return 0;
      }
      for (const auto& l : lines) std::printf("  %s\n", l.c_str());
      std::fflush(stdout);
      std::fprintf(stderr, "obmenctl: job %lld %s: %s\n", static_cast<long long>(id), j->state.c_str(), j->error.c_str());
      return 1;
    }
    if (!warned_queued && j->state == "queued" && std::chrono::steady_clock::now() - begun > std::chrono::seconds(10)) {
      warned_queued = true;
      std::fprintf(stderr, "obmenctl: job %lld is still queued: is an obmend serving source '%s' running?\n",
                   static_cast<long long>(id), j->source.c_str());
    }
    // A NOTIFY from the job's row wakes us at once; the time-out is only a safety net.
    while (!rx.seen)
      if (c.await_notification(2, 0) == 0) break;
  }
}

int resync(const jobs_cli& a, const global_options& g) {
  auto s = open(g, "resync");
  if (!s) return 1;
  std::string source = a.source;
  std::vector<std::string> names;
  for (const auto& o : s->settings.cfg.onec) names.push_back(o.name);
  for (const auto& o : s->settings.cfg.moysklad) names.push_back(o.name);
  if (source.empty()) {
    if (names.size() != 1) {
      std::cerr << "obmenctl resync: the configuration has " << names.size() << " sources; name one with --source\n";
      return 2;
    }
    source = names.front();
  }
  const bool known = std::find(names.begin(), names.end(), source) != names.end();
  if (!known) {
    std::cerr << "obmenctl resync: no source '" << source << "' in " << g.config_path.string() << "\n";
    return 2;
  }
  jobs::request r;
  r.source = source;
  r.entity = a.entity;
  r.mode = a.incremental ? "incremental" : "full";
  r.dry_run = a.dry_run;
  r.requested_by = user_name();
  std::int64_t id = 0;
  try {
    pqxx::work tx(*s->conn);
    id = jobs::enqueue(tx, r);
    tx.commit();
  } catch (const std::exception& e) {
    std::cerr << "obmenctl resync: " << e.what() << "\n";
    return 1;
  }
  std::printf("job %lld queued: resync of %s from %s (%s%s)\n", static_cast<long long>(id), r.entity.c_str(),
              r.source.c_str(), r.mode.c_str(), r.dry_run ? ", dry run" : "");
  std::fflush(stdout);
  if (!a.wait) return 0;
  try {
    return follow(*s->conn, id);
  } catch (const std::exception& e) {
    std::cerr << "obmenctl resync: " << e.what() << "\n";
    return 1;
  }
}

// ---------------------------------------------------------------------------------- status

json at_row(const pqxx::row& r, int from) {
  // from: iso, age seconds
  return {{"at", r[from].as<std::string>()}, {"age_seconds", r[from + 1].as<double>()}};
}

// What every source shows: running and queued jobs, its queue items (outbound, and inbound
// webhook deliveries for МойСклад: target "<source>/in"), the last failed files and jobs.
void common_status(pqxx::transaction_base& tx, const std::string& name, json& s) {
  json running = json::array();
  for (const auto& row : tx.exec_params("SELECT id FROM obmen.jobs WHERE source = $1 AND state = 'running' ORDER BY id",
                                        name)) {
    auto j = jobs::get(tx, row[0].as<std::int64_t>());
    if (!j) continue;
    running.push_back({{"id", j->id}, {"entity", j->entity}, {"dry_run", j->dry_run}, {"worker", j->worker},
                       {"started_at", j->started_at}, {"percent", progress_percent(*j)}, {"progress", progress_text(*j)}});
  }
  s["jobs"] = {{"running", running},
               {"queued", tx.exec_params1("SELECT count(*) FROM obmen.jobs WHERE source = $1 AND state = 'queued'", name)[0]
                              .as<std::int64_t>()}};

  // obmen.queue read directly (not through the queue library): depth by state.
  json by_state = json::object();
  for (const auto& row : tx.exec_params("SELECT state, count(*) FROM obmen.queue WHERE target IN ($1, $1 || '/in') "
                                        "GROUP BY state ORDER BY state",
                                        name))
    by_state[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  s["queue"] = {{"by_state", by_state}, {"dead", by_state.value("dead", 0)}};

  json file_errors = json::array();
  for (const auto& row : tx.exec_params(
           "SELECT f.session_id, f.filename, coalesce(f.error, ''), to_json(coalesce(f.import_finished_at, s.started_at)) #>> '{}', "
           "extract(epoch from now() - coalesce(f.import_finished_at, s.started_at))::float8 "
           "FROM obmen.exchange_files f JOIN obmen.exchange_sessions s ON s.id = f.session_id "
           "WHERE s.source = $1 AND f.status = 'failed' ORDER BY f.id DESC LIMIT 5",
           name)) {
    json o = at_row(row, 3);
    o["session"] = row[0].as<std::int64_t>();
    o["file"] = row[1].as<std::string>();
    o["error"] = row[2].as<std::string>();
    file_errors.push_back(o);
  }
  json job_errors = json::array();
  for (const auto& row : tx.exec_params(
           "SELECT id, coalesce(entity, 'all'), coalesce(error, ''), to_json(finished_at) #>> '{}', "
           "extract(epoch from now() - finished_at)::float8 FROM obmen.jobs "
           "WHERE source = $1 AND state = 'failed' AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 5",
           name)) {
    json o = at_row(row, 3);
    o["job"] = row[0].as<std::int64_t>();
    o["entity"] = row[1].as<std::string>();
    o["error"] = row[2].as<std::string>();
    job_errors.push_back(o);
  }
  s["errors"] = {{"files", file_errors}, {"jobs", job_errors}};
}

json source_status(pqxx::transaction_base& tx, const config::onec_config& src) {
  json s;
  s["type"] = "onec";
  s["path"] = src.path;
  json last = json::object();
  const std::string file_sql =
      "SELECT f.session_id, f.filename, to_json(f.import_finished_at) #>> '{}', "
      "extract(epoch from now() - f.import_finished_at)::float8 "
      "FROM obmen.exchange_files f JOIN obmen.exchange_sessions s ON s.id = f.session_id "
      "WHERE s.source = $1 AND s.type = $2 AND f.status = 'imported' AND f.import_finished_at IS NOT NULL "
      "AND lower(regexp_replace(f.filename, '^.*/', '')) ~ $3 ORDER BY f.import_finished_at DESC LIMIT 1";
  auto file = [&](const char* key, const char* type, const char* pattern) {
    auto r = tx.exec_params(file_sql, src.name, type, pattern);
    if (r.empty()) {
      last[key] = nullptr;
      return;
    }
    json o = at_row(r[0], 2);
    o["session"] = r[0][0].as<std::int64_t>();
    o["file"] = r[0][1].as<std::string>();
    last[key] = o;
  };
  file("catalog", "catalog", "^import.*\\.xml$");
  file("offers", "catalog", "^(offers|prices|rests).*\\.xml$");
  // The last sale/success 1C sent: it acknowledges the orders of that session's query.
  auto ack = tx.exec_params(
      "SELECT r.session_id, to_json(r.at) #>> '{}', extract(epoch from now() - r.at)::float8 "
      "FROM obmen.exchange_requests r JOIN obmen.exchange_sessions s ON s.id = r.session_id "
      "WHERE s.source = $1 AND s.type = 'sale' AND r.mode = 'success' AND r.answer LIKE 'success%' "
      "ORDER BY r.at DESC LIMIT 1",
      src.name);
  if (ack.empty()) {
    last["orders"] = nullptr;
  } else {
    json o = at_row(ack[0], 1);
    o["session"] = ack[0][0].as<std::int64_t>();
    o["acknowledged_orders"] =
        tx.exec_params1("SELECT count(*) FROM obmen.order_exports WHERE source = $1 AND acknowledged_session_id = $2",
                        src.name, ack[0][0].as<std::int64_t>())[0]
            .as<std::int64_t>();
    last["orders"] = o;
  }
  file("documents", "sale", "\\.xml$");
  s["last_exchange"] = last;

  common_status(tx, src.name, s);
  return s;
}

json source_status(pqxx::transaction_base& tx, const config::moysklad_config& src) {
  json s;
  s["type"] = "moysklad";
  s["base_url"] = src.base_url;
  json sync = json::object();
  for (const char* entity : {"catalog", "prices", "stock", "counterparties", "orders"}) {
    auto r = tx.exec_params("SELECT value, to_json(updated_at) #>> '{}', extract(epoch from now() - updated_at)::float8 "
                            "FROM obmen.bookmarks WHERE source = $1 AND entity = $2",
                            src.name, std::string(entity));
    if (r.empty()) {
      sync[entity] = nullptr;
      continue;
    }
    json o = at_row(r[0], 1);
    o["up_to_msk"] = r[0][0].as<std::string>();
    sync[entity] = o;
  }
  s["sync"] = sync;
  auto hooks = tx.exec_params1(
      "SELECT count(*) FILTER (WHERE received_at > now() - interval '24 hours'), to_json(max(received_at)) #>> '{}', "
      "extract(epoch from now() - max(received_at))::float8 FROM obmen.webhook_events WHERE source = $1",
      src.name);
  s["webhooks"] = {{"configured", !src.webhook_url.empty()}, {"last_24h", hooks[0].as<std::int64_t>()},
                   {"last", hooks[1].is_null() ? json(nullptr) : at_row(hooks, 1)}};
  auto orders = tx.exec_params1(
      "SELECT count(*), to_json(max(acknowledged_at)) #>> '{}', extract(epoch from now() - max(acknowledged_at))::float8 "
      "FROM obmen.order_exports WHERE source = $1 AND acknowledged_at IS NOT NULL",
      src.name);
  s["orders"] = {{"delivered", orders[0].as<std::int64_t>()},
                 {"last", orders[1].is_null() ? json(nullptr) : at_row(orders, 1)}};
  common_status(tx, src.name, s);
  return s;
}

// One aligned "  label      text" line of `obmenctl status`.
void line(const char* label, const std::string& text) { std::printf("  %-10s %s\n", label, text.c_str()); }
std::string stamp(const json& o) { return when(o["at"].get<std::string>()) + " (" + age(o["age_seconds"].get<double>()) + ")"; }

void print_common(const json& s) {
  std::string jobs_text;
  for (const auto& r : s["jobs"]["running"])
    jobs_text += (jobs_text.empty() ? "" : "; ") + std::string("#") + std::to_string(r["id"].get<std::int64_t>()) + " " +
                 r["entity"].get<std::string>() + " " + std::to_string(r["percent"].get<int>()) + "% " +
                 r["progress"].get<std::string>();
  line("jobs", std::to_string(s["jobs"]["running"].size()) + " running" + (jobs_text.empty() ? "" : " (" + jobs_text + ")") +
                   ", " + std::to_string(s["jobs"]["queued"].get<std::int64_t>()) + " queued");
  std::string q;
  for (const auto& [state, n] : s["queue"]["by_state"].items())
    q += (q.empty() ? "" : ", ") + state + " " + std::to_string(n.get<std::int64_t>());
  line("queue", q.empty() ? "empty" : q);
  bool first = true;
  for (const auto& e : s["errors"]["files"]) {
    line(first ? "errors" : "", paint("session " + std::to_string(e["session"].get<std::int64_t>()), tone::bad,
                                      colour_on(STDOUT_FILENO)) + " " +
                                    e["file"].get<std::string>() + ": " + e["error"].get<std::string>() + " (" +
                                    age(e["age_seconds"].get<double>()) + ")");
    first = false;
  }
  for (const auto& e : s["errors"]["jobs"]) {
    line(first ? "errors" : "", paint("job " + std::to_string(e["job"].get<std::int64_t>()), tone::bad, colour_on(STDOUT_FILENO)) +
                                    " " + e["entity"].get<std::string>() +
                                    ": " + e["error"].get<std::string>() + " (" + age(e["age_seconds"].get<double>()) + ")");
    first = false;
  }
  if (first) line("errors", paint("none", tone::good, colour_on(STDOUT_FILENO)));
}

void print_status(const std::string& name, const json& s) {
  std::printf("%s (1C, %s)\n", name.c_str(), s["path"].get<std::string>().c_str());
  const auto& last = s["last_exchange"];
  for (const char* key : {"catalog", "offers", "documents"}) {
    const auto& o = last[key];
    line(key, o.is_null() ? "never" : o["file"].get<std::string>() + ", session " + std::to_string(o["session"].get<std::int64_t>()) +
                                          ", " + stamp(o));
  }
  const auto& orders = last["orders"];
  line("orders", orders.is_null() ? "never acknowledged by 1C"
                                  : "acknowledged by 1C in session " + std::to_string(orders["session"].get<std::int64_t>()) +
                                        " (" + std::to_string(orders["acknowledged_orders"].get<std::int64_t>()) +
                                        " order(s)), " + stamp(orders));
  print_common(s);
}

void print_moysklad_status(const std::string& name, const json& s) {
  std::printf("%s (МойСклад, %s)\n", name.c_str(), s["base_url"].get<std::string>().c_str());
  for (const auto& [entity, o] : s["sync"].items())
    line(entity.c_str(), o.is_null() ? "never synced" : "synced up to " + o["up_to_msk"].get<std::string>() + " MSK, " + stamp(o));
  const auto& w = s["webhooks"];
  line("webhooks", !w["configured"].get<bool>() ? "off (polling only)"
                   : std::to_string(w["last_24h"].get<std::int64_t>()) + " in the last 24 h" +
                         (w["last"].is_null() ? "" : ", last " + stamp(w["last"])));
  const auto& o = s["orders"];
  line("orders", std::to_string(o["delivered"].get<std::int64_t>()) + " delivered" +
                     (o["last"].is_null() ? "" : ", last " + stamp(o["last"])));
  print_common(s);
}

int status(const jobs_cli& a, const global_options& g) {
  auto s = open(g, "status");
  if (!s) return 1;
  try {
    pqxx::read_transaction tx(*s->conn);
    json out = {{"sources", json::object()}};
    for (const auto& src : s->settings.cfg.onec) out["sources"][src.name] = source_status(tx, src);
    for (const auto& src : s->settings.cfg.moysklad) out["sources"][src.name] = source_status(tx, src);
    if (a.json) {
      std::cout << out.dump(2) << "\n";
    } else {
      bool first = true;
      for (const auto& src : s->settings.cfg.onec) {
        if (!first) std::printf("\n");
        first = false;
        print_status(src.name, out["sources"][src.name]);
      }
      for (const auto& src : s->settings.cfg.moysklad) {
        if (!first) std::printf("\n");
        first = false;
        print_moysklad_status(src.name, out["sources"][src.name]);
      }
      if (first) std::printf("no sources in %s\n", g.config_path.string().c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "obmenctl status: " << e.what() << "\n";
    return 1;
  }
}

// ---------------------------------------------------------------------------------- jobs

std::string first_line_of(const jobs::job& j) {
  if (!j.error.empty()) return j.error;
  if (j.state == "running") return progress_text(j);
  const auto lines = summaries(j.result);
  std::string out;
  for (const auto& l : lines)
    if (l.rfind("  ", 0) != 0) out += (out.empty() ? "" : " | ") + l;
  return out;
}

int list_jobs(const jobs_cli& a, const global_options& g) {
  auto s = open(g, "jobs list");
  if (!s) return 1;
  try {
    pqxx::read_transaction tx(*s->conn);
    const auto all = jobs::list(tx, a.state, a.limit);
    if (a.json) {
      json out = json::array();
      for (const auto& j : all) out.push_back(j.to_json());
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    if (all.empty()) {
      std::printf("no jobs%s\n", a.state.empty() ? "" : (" in state " + a.state).c_str());
      return 0;
    }
    std::printf("%6s  %-9s  %-10s  %-14s  %-11s  %-19s  %-9s  %s\n", "ID", "STATE", "SOURCE", "ENTITY", "MODE",
                "CREATED", "TIME", "OUTCOME");
    const bool colour = colour_on(STDOUT_FILENO);
    for (const auto& j : all) {
      std::string state = j.state;
      state.resize(std::max<std::size_t>(state.size(), 9), ' ');
      std::printf("%6lld  %s  %-10s  %-14s  %-11s  %-19s  %-9s  %s\n", static_cast<long long>(j.id),
                  paint(state, tone_of_state(j.state), colour).c_str(),
                  j.source.c_str(), j.entity.c_str(), (j.mode + (j.dry_run ? ",dry" : "")).c_str(),
                  when(j.created_at).c_str(), seconds_text(j.seconds).c_str(), first_line_of(j).substr(0, 120).c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "obmenctl jobs list: " << e.what() << "\n";
    return 1;
  }
}

int show_job(const jobs_cli& a, const global_options& g) {
  auto s = open(g, "jobs show");
  if (!s) return 1;
  try {
    pqxx::read_transaction tx(*s->conn);
    auto j = jobs::get(tx, a.id);
    if (!j) {
      std::cerr << "obmenctl jobs show: no job " << a.id << "\n";
      return 1;
    }
    if (a.json) {
      std::cout << j->to_json().dump(2) << "\n";
      return 0;
    }
    std::printf("job %lld: %s\n", static_cast<long long>(j->id), j->state.c_str());
    std::printf("  resync     %s from %s (%s%s)\n", j->entity.c_str(), j->source.c_str(), j->mode.c_str(),
                j->dry_run ? ", dry run" : "");
    std::printf("  requested  %s by %s%s\n", when(j->created_at).c_str(), j->requested_by.c_str(),
                j->schedule.empty() ? "" : (" (schedule " + j->schedule + ")").c_str());
    if (!j->started_at.empty())
      std::printf("  started    %s on %s\n", when(j->started_at).c_str(), j->worker.empty() ? "?" : j->worker.c_str());
    if (!j->finished_at.empty())
      std::printf("  finished   %s (%s)\n", when(j->finished_at).c_str(), seconds_text(j->seconds).c_str());
    if (!progress_text(*j).empty()) std::printf("  progress   %d%% %s\n", progress_percent(*j), progress_text(*j).c_str());
    if (!j->error.empty()) std::printf("  error      %s\n", j->error.c_str());
    const auto lines = summaries(j->result);
    if (!lines.empty()) std::printf("  result%s\n", j->dry_run ? " (what would change)" : "");
    for (const auto& l : lines) std::printf("    %s\n", l.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "obmenctl jobs show: " << e.what() << "\n";
    return 1;
  }
}

int cancel_job(const jobs_cli& a, const global_options& g) {
  auto s = open(g, "jobs cancel");
  if (!s) return 1;
  try {
    std::string state;
    switch (jobs::cancel(*s->conn, a.id, user_name(), state)) {
      case jobs::cancel_outcome::cancelled:
        std::printf("job %lld cancelled\n", static_cast<long long>(a.id));
        return 0;
      case jobs::cancel_outcome::already_finished:
        std::cerr << "obmenctl jobs cancel: job " << a.id << " has already ended (" << state << ")\n";
        return 1;
      case jobs::cancel_outcome::not_found:
        std::cerr << "obmenctl jobs cancel: no job " << a.id << "\n";
        return 1;
    }
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "obmenctl jobs cancel: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

std::shared_ptr<jobs_cli> add_jobs_commands(CLI::App& app) { return make_cli(app); }

std::optional<int> run_jobs_commands(const jobs_cli& a, const global_options& g) {
  if (*a.resync) return resync(a, g);
  if (*a.status) return status(a, g);
  if (*a.list) return list_jobs(a, g);
  if (*a.show) return show_job(a, g);
  if (*a.cancel) return cancel_job(a, g);
  return std::nullopt;
}

}  // namespace obmen::ctl
