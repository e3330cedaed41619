#include "ctl/queue_commands.hpp"

#include "ctl/commands.hpp"
#include "ctl/terminal.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "mapping/settings.hpp"
#include "queue/queue.hpp"
#include "store/database.hpp"

namespace obmen::ctl {

struct queue_cli {
  CLI::App* queue = nullptr;
  CLI::App* list = nullptr;
  CLI::App* show = nullptr;
  CLI::App* retry = nullptr;
  CLI::App* drop = nullptr;

  std::vector<std::string> states;
  std::string target;
  int limit = 100;
  bool json = false;
  std::int64_t id = 0;
  bool all_dead = false;
};

namespace {

namespace fs = std::filesystem;

// Display width of UTF-8 text, in code points (Cyrillic error messages are two bytes a letter).
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

// At most `max` code points, "…" marking a cut.
std::string truncate(const std::string& s, std::size_t max) {
  if (width(s) <= max) return s;
  std::size_t points = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++points == max) break;
  }
  return s.substr(0, i) + "…";
}

// Tabs and line breaks would break the one-item-per-line, tab-separated output.
std::string one_line(std::string s) {
  for (auto& ch : s)
    if (ch == '\t' || ch == '\n' || ch == '\r') ch = ' ';
  return s;
}

std::string last_error(const queue::item& it) {
  if (!it.last_error) return "-";
  return one_line(it.last_error_class.value_or("?") + ": " + *it.last_error);
}

std::vector<std::string> columns(const queue::item& it) {
  return {std::to_string(it.id),
          std::string(queue::to_string(it.state)),
          it.target,
          it.kind,
          std::to_string(it.attempts),
          it.state == queue::state::pending ? it.next_attempt_at : "-",
          it.idempotency_key.value_or("-"),
          last_error(it)};
}

// Aligned columns; `state_column` (when set) is painted by tone_of_state after padding.
void print_table(const std::vector<std::vector<std::string>>& rows, int state_column = -1) {
  const bool colour = colour_on(STDOUT_FILENO);
  std::vector<std::size_t> widths;
  for (const auto& r : rows) {
    widths.resize(std::max(widths.size(), r.size()), 0);
    for (std::size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], width(r[i]));
  }
  for (const auto& r : rows) {
    std::string line;
    const bool header = &r == &rows.front();
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += !header && static_cast<int>(i) == state_column ? paint(r[i], tone_of_state(r[i]), colour) : r[i];
      if (i + 1 < r.size()) line += std::string(widths[i] - width(r[i]) + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

std::string opt(const std::optional<std::string>& v) { return v.value_or("-"); }

// Runs `body` on a connection to a database at the current schema; database errors become
// "obmenctl queue <cmd>: <message>" and exit code 1.
template <typename Body>
int with_database(const global_options& g, const char* cmd, Body&& body) {
  const auto url = database_url(g);
  if (!url) return 1;
  try {
    auto conn = store::connect(*url);
    store::require_current_schema(*conn);
    return body(*conn);
  } catch (const std::exception& e) {
    std::cerr << "obmenctl queue " << cmd << ": " << e.what() << "\n";
    return 1;
  }
}

int run_list(const queue_cli& q, const global_options& g) {
  queue::list_filter f;
  f.limit = q.limit;
  if (!q.target.empty()) f.target = q.target;
  bool all = false;
  for (const auto& s : q.states) {
    if (s == "all") all = true;
    else if (auto st = queue::parse_state(s)) f.states.push_back(*st);
  }
  if (all) f.states.clear();
  else if (q.states.empty()) f.states = {queue::state::pending, queue::state::in_flight, queue::state::dead};

  return with_database(g, "list", [&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto items = queue::list(tx, f);
    if (q.json) {
      auto out = nlohmann::json::array();
      for (const auto& it : items) out.push_back(it.to_json());
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    if (!::isatty(STDOUT_FILENO)) {
      for (const auto& it : items) {
        const auto c = columns(it);
        std::string line;
        for (std::size_t i = 0; i < c.size(); ++i) line += (i ? "\t" : "") + c[i];
        std::cout << line << "\n";
      }
      return 0;
    }
    std::vector<std::vector<std::string>> rows{
        {"ID", "STATE", "TARGET", "KIND", "ATTEMPTS", "NEXT ATTEMPT", "KEY", "LAST ERROR"}};
    for (const auto& it : items) {
      auto c = columns(it);
      c.back() = truncate(c.back(), 60);
      rows.push_back(std::move(c));
    }
    if (items.empty())
      std::cout << "no items\n";
    else
      print_table(rows, 1);
    const auto depth = queue::depth_by_state(tx, f.target);
    std::string summary;
    for (auto st : queue::all_states)
      summary += (summary.empty() ? "" : ", ") + std::string(queue::to_string(st)) + " " + std::to_string(depth.at(st));
    std::cout << "\n" << (f.target ? "queue for " + *f.target : std::string("queue")) << ": " << summary;
    if (static_cast<int>(items.size()) == f.limit) std::cout << " (listed the first " << f.limit << "; --limit N for more)";
    std::cout << "\n";
    return 0;
  });
}

int run_show(const queue_cli& q, const global_options& g) {
  return with_database(g, "show", [&](pqxx::connection& conn) {
    pqxx::read_transaction tx(conn);
    const auto it = queue::show(tx, q.id);
    if (!it) {
      std::cerr << "obmenctl queue show: no queue item " << q.id << "\n";
      return 1;
    }
    if (q.json) {
      std::cout << it->to_json().dump(2) << "\n";
      return 0;
    }
    const std::vector<std::vector<std::string>> rows{
        {"id:", std::to_string(it->id)},
        {"state:", std::string(queue::to_string(it->state))},
        {"target:", it->target},
        {"kind:", it->kind},
        {"idempotency key:", opt(it->idempotency_key)},
        {"attempts:", std::to_string(it->attempts)},
        {"next attempt at:", it->next_attempt_at},
        {"lease until:", opt(it->lease_until)},
        {"claimed by:", opt(it->claimed_by)},
        {"last error:", last_error(*it)},
        {"created at:", it->created_at},
        {"updated at:", it->updated_at},
    };
    print_table(rows);
    std::cout << "payload:\n" << it->payload.dump(2) << "\n";
    return 0;
  });
}

// One line per retried item; false when the item could not be retried (printed on stderr).
bool report(const queue::retry_result& r) {
  using kind = queue::retry_result::kind;
  switch (r.result) {
    case kind::retried:
      std::cout << "item " << r.id << ": pending, due now\n";
      return true;
    case kind::superseded:
      std::cout << "item " << r.id << ": superseded by newer item " << *r.superseded_by
                << " of the same idempotency key; removed, item " << *r.superseded_by
                << " is retried instead when waiting or dead\n";
      return true;
    case kind::not_found:
      std::cerr << "obmenctl queue retry: no queue item " << r.id << "\n";
      return false;
    case kind::not_dead:
      std::cerr << "obmenctl queue retry: item " << r.id << " is "
                << queue::to_string(r.current_state.value_or(queue::state::pending))
                << "; only dead items are retried\n";
      return false;
  }
  return false;
}

int run_retry(const queue_cli& q, const global_options& g) {
  if (q.all_dead == (q.retry->count("id") > 0)) {
    std::cerr << "obmenctl queue retry: give an item ID or --all-dead\nRun with --help for more information.\n";
    return 2;
  }
  return with_database(g, "retry", [&](pqxx::connection& conn) {
    if (!q.all_dead) return report(queue::retry(conn, q.id)) ? 0 : 1;
    const auto results =
        queue::retry_all_dead(conn, q.target.empty() ? std::nullopt : std::optional<std::string>(q.target));
    bool ok = true;
    for (const auto& r : results) ok = report(r) && ok;
    std::cout << (results.empty() ? "no dead items" : "retried " + std::to_string(results.size()) + " dead item(s)")
              << (q.target.empty() ? "" : " of target " + q.target) << "\n";
    return ok ? 0 : 1;
  });
}

int run_drop(const queue_cli& q, const global_options& g) {
  return with_database(g, "drop", [&](pqxx::connection& conn) {
    const auto r = queue::drop(conn, q.id);
    using kind = queue::drop_result::kind;
    switch (r.result) {
      case kind::dropped:
        std::cout << "dropped item " << r.id << "\n";
        return 0;
      case kind::not_found:
        std::cerr << "obmenctl queue drop: no queue item " << r.id << "\n";
        return 1;
      case kind::wrong_state:
        std::cerr << "obmenctl queue drop: item " << r.id << " is "
                  << queue::to_string(r.current_state.value_or(queue::state::in_flight))
                  << "; only pending or dead items are dropped\n";
        return 1;
    }
    return 1;
  });
}

}  // namespace

std::shared_ptr<queue_cli> add_queue_commands(CLI::App& app) {
  auto q = std::make_shared<queue_cli>();
  q->queue = app.add_subcommand("queue", "list, show, retry and drop items of the outbound retry queue");
  q->queue->require_subcommand(1);

  q->list = q->queue->add_subcommand("list", "list queue items (default: pending, in_flight and dead)");
  q->list->add_option("--state", q->states, "pending, in_flight, done, dead or all; repeat or separate with commas")
      ->delimiter(',')
      ->check(CLI::IsMember({"pending", "in_flight", "done", "dead", "all"}));
  q->list->add_option("--target", q->target, "only items for this target (source name)");
  q->list->add_option("--limit", q->limit, "list at most N items, oldest first")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  q->list->add_flag("--json", q->json, "print a JSON array of the items");

  q->show = q->queue->add_subcommand("show", "show one queue item with its payload");
  q->show->add_option("id", q->id, "item id")->required();
  q->show->add_flag("--json", q->json, "print the item as JSON");

  q->retry = q->queue->add_subcommand("retry", "put dead items back: pending, due now, attempts reset");
  auto* id = q->retry->add_option("id", q->id, "item id");
  auto* all = q->retry->add_flag("--all-dead", q->all_dead, "retry every dead item");
  auto* target = q->retry->add_option("--target", q->target, "with --all-dead: only items for this target");
  id->excludes(all);
  target->needs(all);

  q->drop = q->queue->add_subcommand("drop", "delete a pending or dead item: it will never be delivered");
  q->drop->add_option("id", q->id, "item id")->required();
  return q;
}

std::optional<int> run_queue_commands(const queue_cli& q, const global_options& g) {
  if (!q.queue->parsed()) return std::nullopt;
  if (q.list->parsed()) return run_list(q, g);
  if (q.show->parsed()) return run_show(q, g);
  if (q.retry->parsed()) return run_retry(q, g);
  if (q.drop->parsed()) return run_drop(q, g);
  return 2;
}

}  // namespace obmen::ctl
