#pragma once
// obmen.yaml: typed configuration with a strict schema (STYLE.md habit 3).
//
// Loading never throws for bad input: it returns every problem found, each with file:line:col
// and the key path, and a config only when there were none. Unknown keys are rejected with a
// "did you mean" suggestion. Secrets are never values in the YAML: a `secret` names an
// environment variable and/or a file (systemd LoadCredential= puts files under
// $CREDENTIALS_DIRECTORY; a relative `file` is resolved against it when that variable is set).
//
// Defaults live in one place: the member initialisers below, and docs/configuration.md lists them.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/problem.hpp"

namespace obmen::config {

inline constexpr const char* default_path = "/etc/obmen/obmen.yaml";

// A secret reference: `{ env: NAME }`, `{ file: PATH }` or both (env wins when set and non-empty).
struct secret {
  std::string env;
  std::string file;
  bool configured() const { return !env.empty() || !file.empty(); }
  // Resolves the value now. Throws std::runtime_error naming the variable or file when neither
  // yields a value. Trailing newlines of a file are stripped.
  std::string resolve() const;
};

struct database_config {
  std::string url;                     // libpq URI or key=value string, without a password
  secret password;                     // optional
  int pool_size = 4;                   // worker threads, one connection each (1..64)
  int connect_timeout_seconds = 5;
};

struct http_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;
  int read_timeout_seconds = 60;       // per read of a header or body piece
  int write_timeout_seconds = 60;
  int idle_timeout_seconds = 75;       // keep-alive connection without a request
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_body_bytes = 1024 * 1024;  // non-upload requests; uploads use the source's limits
  int max_connections = 256;
  // http.tls: obmend's own TLS listener (PEM files; relative paths against the config file, or
  // $CREDENTIALS_DIRECTORY for the key when set). Both empty: plain HTTP (nginx in front).
  // Addresses of reverse proxies (nginx) whose X-Forwarded-For obmend believes: for requests
  // from them, the client is the last address in that header (logs, the failed-login limit).
  std::vector<std::string> trusted_proxies;
  std::string tls_certificate;         // certificate chain, leaf first
  std::string tls_key;                 // private key (not encrypted)
};

struct spool_config {
  std::string dir = "/var/lib/obmen/spool";
  int keep_days = 7;                   // finished exchange sessions' files are removed after this
};

struct zip_limits {
  std::uint64_t max_entries = 100000;
  std::uint64_t max_entry_bytes = 2ull << 30;     // uncompressed, per entry
  std::uint64_t max_total_bytes = 8ull << 30;     // uncompressed, whole archive
  std::uint64_t max_ratio = 200;                  // uncompressed / compressed, per entry
};

// sources.<name> with `type: onec` — one 1C node exchanging over the site-exchange protocol.
struct onec_config {
  std::string name;                    // the map key; stored as `source` in portal rows
  std::string path = "/1c_exchange";   // HTTP path of the exchange endpoint
  std::string username;
  secret password;                     // required
  bool zip = true;                     // answer zip=yes on init
  std::uint64_t file_limit = 8ull << 20;          // file_limit= on init: max bytes per request body
  std::uint64_t max_file_bytes = 4ull << 30;      // one spooled file (sum of its chunks)
  std::uint64_t max_session_bytes = 16ull << 30;  // all files of one exchange session
  config::zip_limits zip_limits;       // qualified: an unqualified type name equal to the member name is ill-formed
  std::string mapping;                 // mapping YAML path (relative to the config file); empty = defaults
  std::string encoding = "utf-8";      // utf-8 | windows-1251, for answers with Cyrillic text / XML
  int session_ttl_seconds = 24 * 3600; // cookie lifetime
  // type=sale (orders): the CommerceML version of the `query` answer ("2.05", "2.08", "2.09",
  // "2.10": flat documents; "3.1": each Документ in a Контейнер), what to do with an order
  // from 1C the portal does not know (report | create), the time zone 1C's dates are in, and
  // the most orders one `query` answer carries.
  std::string orders_schema_version = "2.05";
  std::string unknown_orders = "report";
  std::string timezone = "Europe/Moscow";
  int orders_per_query = 500;
};

// sources.<name> with `type: moysklad` — one МойСклад account over JSON API 1.2
// (adapters/moysklad, docs/moysklad.md).
struct moysklad_config {
  std::string name;                    // the map key; stored as `source` in portal rows
  std::string base_url = "https://api.moysklad.ru/api/remap/1.2/";
  secret token;                        // a user or solution token (Bearer); or login + password
  std::string login;                   // "admin@account": only to obtain a token once (each new token revokes the old)
  secret password;
  std::string mapping;                 // mapping YAML path (relative to the config file); empty = defaults
  std::string organization;            // own legal entity for outbound orders: name or id; empty = the first
  std::string store;                   // store for outbound orders: name or id; empty = none
  bool export_orders = true;           // portal orders → customerorder
  int poll_interval_seconds = 300;     // incremental sync of everything; 0 = only webhooks and jobs
  int orders_poll_interval_seconds = 5;  // how often new portal orders are looked for
  std::string webhook_url;             // public URL МойСклад posts to; empty = no webhooks (polling only)
  std::string webhook_path;            // local route; empty = the path of webhook_url
  int request_timeout_seconds = 60;
  int max_parallel = 4;                // ≤ 5 per user (API limit)
  int auth_weight = 4;                 // rate-limit units per request: 4 for user tokens since 2026-12-01, 1 for solutions
};

// What a resync job may ask for (jobs/, docs/operations.md), in this order.
inline const std::vector<std::string>& resync_entities() {
  static const std::vector<std::string> all = {"catalog", "prices", "stock", "counterparties", "orders", "all"};
  return all;
}
inline const std::vector<std::string>& resync_modes() {
  static const std::vector<std::string> all = {"full", "incremental"};
  return all;
}

// schedules[i] — a resync job obmend enqueues every `every` (docs/operations.md). `source` must
// name a source of this file; one schedule per (source, entity, mode, dry_run).
struct schedule_config {
  std::string source;
  std::string entity;                  // one of resync_entities(); required
  std::string mode = "full";           // full | incremental
  bool dry_run = false;
  int every_seconds = 0;               // required, 1m .. 30d
  int line = 0;                        // 1-based line in the file, for messages
  // The slot several daemons share (obmen.bookmarks entity), e.g. "schedule:orders:full".
  std::string slot() const { return "schedule:" + entity + ":" + mode + (dry_run ? ":dry_run" : ""); }
};

struct config {
  std::filesystem::path file;          // where it was loaded from
  database_config database;
  http_config http;
  std::string log_level = "info";
  spool_config spool;
  int workers = 2;                     // worker pool threads for parsing and database work
  std::vector<onec_config> onec;       // every sources.* entry of type onec, in file order
  std::vector<moysklad_config> moysklad;  // every sources.* entry of type moysklad, in file order
  std::vector<schedule_config> schedules;  // in file order
};

struct load_result {
  std::optional<config> cfg;
  std::vector<problem> problems;
  bool ok() const { return cfg.has_value() && problems.empty(); }
};

// Reads and validates a file; relative paths inside are resolved against its directory.
load_result load(const std::filesystem::path& file);
// Validates YAML text; `file_name` is used in problem messages and to resolve relative paths.
load_result parse(std::string_view yaml, const std::filesystem::path& file_name);

// The database connection string actually used: OBMEN_DATABASE_URL when set, else database.url,
// with the password from database.password added when configured. Throws when the secret is missing.
std::string database_url(const config&);

// Human-readable effective configuration, one "key.path = value" line each, secrets shown as
// "<from env NAME>" / "<from file PATH>" and any password inside a URL replaced by "***".
std::string describe_masked(const config&);

// Replaces the password in a libpq URI or key=value string by "***".
std::string mask_url(std::string_view url);

}  // namespace obmen::config
