#include "config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "config/yaml_schema.hpp"

namespace obmen::config {

namespace fs = std::filesystem;
namespace ys = yaml_schema;

namespace {

// The one table of limits; defaults are the member initialisers in config.hpp.
constexpr std::uint64_t KiB = 1ull << 10, MiB = 1ull << 20, GiB = 1ull << 30, TiB = 1ull << 40;
constexpr std::int64_t minute = 60, hour = 3600, day = 86400;

const std::vector<std::string> log_levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
const std::vector<std::string> encodings = {"utf-8", "windows-1251"};
const std::vector<std::string> order_schema_versions = {"2.05", "2.08", "2.09", "2.10", "3.1"};
const std::vector<std::string> unknown_order_policies = {"report", "create"};
const std::vector<std::string> available_source_types = {"onec", "moysklad"};
// Known to the project but not built yet: named so the message says "not yet", not "unknown".
const std::vector<std::string> planned_source_types = {};

const std::string inline_secret = "secrets are not allowed inline; use { env: NAME } or { file: PATH }";

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool is_env_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool is_source_name(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

// Where relative paths in the file point: the file's own directory.
fs::path base_dir(const fs::path& file) {
  std::error_code ec;
  fs::path abs = fs::absolute(file, ec);
  return (ec ? file : abs).parent_path();
}

std::string resolve_against(const fs::path& base, const std::string& p) {
  fs::path path(p);
  if (path.is_absolute()) return path.lexically_normal().string();
  return (base / path).lexically_normal().string();
}

struct reader_context {
  ys::reporter& out;
  fs::path base;
  bool credentials_directory_set;
};

// `password: { env: NAME }`, `{ file: PATH }` or both. A relative file is resolved against the
// config directory now, unless $CREDENTIALS_DIRECTORY is set: then resolve() joins it later,
// because systemd's credentials directory is the place LoadCredential= files live.
void read_secret(reader_context& ctx, const ys::map_reader& parent, std::string_view key, secret& out) {
  if (!parent.has(key)) return;
  const YAML::Node node = parent.get(key);
  const std::string path = parent.path(key);
  if (node.IsScalar()) {
    ctx.out.report(node, path, inline_secret);
    return;
  }
  if (!node.IsMap()) {
    ctx.out.report(node.IsNull() ? parent.key_mark(key) : node.Mark(), path, "expected { env: NAME } or { file: PATH }");
    return;
  }
  ys::map_reader m(ctx.out, node, path, {"env", "file"});
  if (!m.has("env") && !m.has("file")) {
    // A map of only unknown keys has been reported key by key already.
    if (node.size() == 0) ctx.out.report(node, path, "expected { env: NAME } or { file: PATH }");
    return;
  }
  secret s;
  if (m.has("env")) {
    m.string("env", s.env);
    if (m.has("env") && m.get("env").IsScalar() && !is_env_name(s.env)) {
      ctx.out.report(m.get("env"), m.path("env"), "'" + s.env + "' is not an environment variable name");
      s.env.clear();
    }
  }
  if (m.has("file")) {
    m.string("file", s.file);
    if (m.get("file").IsScalar() && blank(s.file)) {
      ctx.out.report(m.get("file"), m.path("file"), "must not be empty");
      s.file.clear();
    } else if (!s.file.empty() && fs::path(s.file).is_relative() && !ctx.credentials_directory_set) {
      s.file = resolve_against(ctx.base, s.file);
    }
  }
  out = std::move(s);
}

// A non-empty string (after trimming blanks).
void read_non_empty(ys::reporter& out, const ys::map_reader& m, std::string_view key, std::string& value) {
  if (!m.has(key)) return;
  const YAML::Node node = m.get(key);
  if (auto s = ys::read_string(out, node, m.path(key), m.key_mark(key))) {
    if (blank(*s)) out.report(node, m.path(key), "must not be empty");
    else value = *s;
  }
}

void read_database(reader_context& ctx, const ys::map_reader& root, database_config& db) {
  const bool url_from_env = !env_or_empty("OBMEN_DATABASE_URL").empty();
  if (!root.has("database")) {
    if (!url_from_env) root.require("database");
    return;
  }
  ys::map_reader m(ctx.out, root.get("database"), "database", {"url", "password", "pool_size", "connect_timeout"},
                   root.key_mark("database"));
  if (url_from_env || m.require("url")) {
    read_non_empty(ctx.out, m, "url", db.url);
    if (!db.url.empty() && mask_url(db.url) != db.url) {
      ctx.out.report(m.get("url"), m.path("url"),
                     "the URL must not contain a password; use database.password: { env: NAME } or { file: PATH }");
      db.url.clear();
    }
  }
  read_secret(ctx, m, "password", db.password);
  m.integer("pool_size", db.pool_size, 1, 64);
  m.seconds("connect_timeout", db.connect_timeout_seconds, 1, hour);
}

void read_http(reader_context& ctx, const ys::map_reader& root, http_config& http) {
  if (!root.has("http")) return;
  ys::map_reader m(ctx.out, root.get("http"), "http",
                   {"address", "port", "read_timeout", "write_timeout", "idle_timeout", "max_header_size",
                    "max_body_size", "max_connections", "trusted_proxies", "tls"},
                   root.key_mark("http"));
  read_non_empty(ctx.out, m, "address", http.address);
  m.integer("port", http.port, 0, 65535);
  m.seconds("read_timeout", http.read_timeout_seconds, 1, day);
  m.seconds("write_timeout", http.write_timeout_seconds, 1, day);
  m.seconds("idle_timeout", http.idle_timeout_seconds, 1, day);
  m.size("max_header_size", http.max_header_bytes, 1 * KiB, 1 * MiB);
  m.size("max_body_size", http.max_body_bytes, 1 * KiB, 1 * GiB);
  m.integer("max_connections", http.max_connections, 1, 100000);
  if (m.has("trusted_proxies")) {
    const YAML::Node list = m.get("trusted_proxies");
    if (!list.IsSequence()) {
      ctx.out.report(list, m.path("trusted_proxies"), "expected a list of IP addresses");
    } else {
      for (std::size_t i = 0; i < list.size(); ++i) {
        const auto v = ys::read_string(ctx.out, list[i], ys::index(m.path("trusted_proxies"), i));
        if (!v) continue;
        // Canonical text (as the listener prints peers), so "::ffff:…" or "0::1" compare equal.
        unsigned char bin[sizeof(in6_addr)];
        char text[INET6_ADDRSTRLEN];
        const int family = v->find(':') == std::string::npos ? AF_INET : AF_INET6;
        if (::inet_pton(family, v->c_str(), bin) != 1 || !::inet_ntop(family, bin, text, sizeof text))
          ctx.out.report(list[i], ys::index(m.path("trusted_proxies"), i), "'" + *v + "' is not an IP address");
        else
          http.trusted_proxies.emplace_back(text);
      }
    }
  }
  if (m.has("tls")) {
    ys::map_reader t(ctx.out, m.get("tls"), m.path("tls"), {"certificate", "key"}, m.key_mark("tls"));
    if (t.require("certificate")) read_non_empty(ctx.out, t, "certificate", http.tls_certificate);
    if (t.require("key")) read_non_empty(ctx.out, t, "key", http.tls_key);
    if (!http.tls_certificate.empty()) http.tls_certificate = resolve_against(ctx.base, http.tls_certificate);
    if (!http.tls_key.empty()) {
      const std::string creds = env_or_empty("CREDENTIALS_DIRECTORY");
      http.tls_key = fs::path(http.tls_key).is_relative() && !creds.empty() ? (fs::path(creds) / http.tls_key).string()
                                                                            : resolve_against(ctx.base, http.tls_key);
    }
  }
}

void read_log(reader_context& ctx, const ys::map_reader& root, std::string& level) {
  if (!root.has("log")) return;
  ys::map_reader m(ctx.out, root.get("log"), "log", {"level"}, root.key_mark("log"));
  m.choice("level", level, log_levels);
}

void read_spool(reader_context& ctx, const ys::map_reader& root, spool_config& spool) {
  if (root.has("spool")) {
    ys::map_reader m(ctx.out, root.get("spool"), "spool", {"dir", "keep_days"}, root.key_mark("spool"));
    read_non_empty(ctx.out, m, "dir", spool.dir);
    m.integer("keep_days", spool.keep_days, 0, 3650);
  }
  spool.dir = resolve_against(ctx.base, spool.dir);
}

void read_onec(reader_context& ctx, const ys::map_reader& m, onec_config& s) {
  if (m.has("path")) {
    std::string p;
    read_non_empty(ctx.out, m, "path", p);
    if (!p.empty() && p.front() != '/')
      ctx.out.report(m.get("path"), m.path("path"), "must start with '/', got '" + p + "'");
    else if (!p.empty())
      s.path = p;
  }
  if (m.require("username")) read_non_empty(ctx.out, m, "username", s.username);
  if (m.require("password")) read_secret(ctx, m, "password", s.password);
  m.boolean("zip", s.zip);
  m.size("file_limit", s.file_limit, 1 * KiB, 1 * GiB);
  m.size("max_file_size", s.max_file_bytes, 1 * KiB, 1 * TiB);
  m.size("max_session_size", s.max_session_bytes, 1 * KiB, 16 * TiB);
  if (s.max_file_bytes > s.max_session_bytes)
    ctx.out.report(m.has("max_file_size") ? m.get("max_file_size").Mark() : m.mark(), m.path("max_file_size"),
                   "must not be larger than max_session_size (" + ys::format_size(s.max_session_bytes) + ")");
  if (m.has("zip_limits")) {
    ys::map_reader z(ctx.out, m.get("zip_limits"), m.path("zip_limits"),
                     {"max_entries", "max_entry_size", "max_total_size", "max_ratio"}, m.key_mark("zip_limits"));
    z.integer("max_entries", s.zip_limits.max_entries, 1, 10'000'000);
    z.size("max_entry_size", s.zip_limits.max_entry_bytes, 1 * KiB, 1 * TiB);
    z.size("max_total_size", s.zip_limits.max_total_bytes, 1 * KiB, 16 * TiB);
    z.integer("max_ratio", s.zip_limits.max_ratio, 1, 100000);
  }
  if (m.has("mapping")) {
    std::string p;
    read_non_empty(ctx.out, m, "mapping", p);
    if (!p.empty()) s.mapping = resolve_against(ctx.base, p);
  }
  m.choice("encoding", s.encoding, encodings);
  m.seconds("session_ttl", s.session_ttl_seconds, minute, 30 * day);
  m.choice("orders_schema_version", s.orders_schema_version, order_schema_versions);
  m.choice("unknown_orders", s.unknown_orders, unknown_order_policies);
  m.string("timezone", s.timezone);
  m.integer("orders_per_query", s.orders_per_query, 1, 100000);
}

bool is_http_url(std::string_view u) { return u.starts_with("https://") || u.starts_with("http://"); }

void read_moysklad(reader_context& ctx, const ys::map_reader& m, moysklad_config& s) {
  if (m.has("base_url")) {
    read_non_empty(ctx.out, m, "base_url", s.base_url);
    if (!is_http_url(s.base_url))
      ctx.out.report(m.get("base_url"), m.path("base_url"), "must start with https:// (or http:// for a test server)");
    if (!s.base_url.empty() && s.base_url.back() != '/') s.base_url += '/';
  }
  read_secret(ctx, m, "token", s.token);
  if (m.has("login")) read_non_empty(ctx.out, m, "login", s.login);
  read_secret(ctx, m, "password", s.password);
  if (m.has("login") != m.has("password"))
    ctx.out.report(m.mark(), m.path(s.login.empty() ? "login" : "password"),
                   "login and password go together (they are used only to obtain a token)");
  if (!m.has("token") && !m.has("login") && !m.has("password"))
    ctx.out.report(m.mark(), m.path("token"), "missing required key 'token' (or login + password)");
  if (m.has("mapping")) {
    std::string p;
    read_non_empty(ctx.out, m, "mapping", p);
    if (!p.empty()) s.mapping = resolve_against(ctx.base, p);
  }
  m.string("organization", s.organization);
  m.string("store", s.store);
  m.boolean("export_orders", s.export_orders);
  m.seconds("poll_interval", s.poll_interval_seconds, 0, 30 * day);
  if (s.poll_interval_seconds > 0 && s.poll_interval_seconds < 10)
    ctx.out.report(m.get("poll_interval"), m.path("poll_interval"), "must be 0 (off) or at least 10s");
  m.seconds("orders_poll_interval", s.orders_poll_interval_seconds, 1, hour);
  if (m.has("webhooks")) {
    ys::map_reader w(ctx.out, m.get("webhooks"), m.path("webhooks"), {"url", "path"}, m.key_mark("webhooks"));
    if (w.require("url")) {
      read_non_empty(ctx.out, w, "url", s.webhook_url);
      if (!s.webhook_url.empty() && !is_http_url(s.webhook_url))
        ctx.out.report(w.get("url"), w.path("url"), "must be an https:// URL МойСклад can reach");
      else if (s.webhook_url.size() > 255)
        ctx.out.report(w.get("url"), w.path("url"), "is longer than the 255 characters МойСклад accepts");
    }
    if (w.has("path")) {
      read_non_empty(ctx.out, w, "path", s.webhook_path);
      if (!s.webhook_path.empty() && s.webhook_path.front() != '/')
        ctx.out.report(w.get("path"), w.path("path"), "must start with '/', got '" + s.webhook_path + "'");
    }
    if (s.webhook_path.empty() && is_http_url(s.webhook_url)) {
      const auto host = s.webhook_url.find('/', s.webhook_url.find("//") + 2);
      s.webhook_path = host == std::string::npos ? "/" : s.webhook_url.substr(host);
      if (auto q = s.webhook_path.find('?'); q != std::string::npos) s.webhook_path.resize(q);
    }
  }
  m.seconds("request_timeout", s.request_timeout_seconds, 1, hour);
  m.integer("max_parallel", s.max_parallel, 1, 5);
  m.integer("auth_weight", s.auth_weight, 1, 45);
}

void read_sources(reader_context& ctx, const ys::map_reader& root, std::vector<onec_config>& onec,
                  std::vector<moysklad_config>& moysklad) {
  if (!root.has("sources")) return;
  const YAML::Node sources = root.get("sources");
  if (sources.IsNull()) return;
  if (!sources.IsMap()) {
    ctx.out.report(sources, "sources", "expected a map");
    return;
  }
  struct used_path { std::string path, source; int line; };
  std::vector<used_path> paths;
  std::vector<std::pair<std::string, int>> names;  // name, 1-based line
  for (auto it = sources.begin(); it != sources.end(); ++it) {
    // By value: yaml-cpp's iterator proxy dies with the full expression.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar() || !is_source_name(key.Scalar())) {
      ctx.out.report(key, "sources",
                     "invalid source name " + ys::describe(key) + ": use 1 to 32 of a-z, 0-9, '_' and '-'");
      continue;
    }
    const std::string& name = key.Scalar();
    const std::string path = ys::join("sources", name);
    auto first = std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.first == name; });
    if (first != names.end()) {
      ctx.out.report(key, "sources",
                     "duplicate key '" + name + "'; first given at line " + std::to_string(first->second));
      continue;
    }
    names.emplace_back(name, key.Mark().line + 1);
    if (!value.IsMap()) {
      if (value.IsNull()) ctx.out.report(key.Mark(), path, "missing required key 'type'");
      else ctx.out.report(value, path, "expected a map");
      continue;
    }
    // The type decides the schema, so it is read before the other keys are judged.
    const YAML::Node type = value["type"];
    if (!type.IsDefined()) {
      ctx.out.report(value, path, "missing required key 'type'");
      continue;
    }
    const auto type_name = ys::read_string(ctx.out, type, ys::join(path, "type"));
    if (!type_name) continue;
    if (std::find(planned_source_types.begin(), planned_source_types.end(), *type_name) != planned_source_types.end()) {
      ctx.out.report(type, ys::join(path, "type"), "source type '" + *type_name + "' is not available in this build yet");
      continue;
    }
    if (std::find(available_source_types.begin(), available_source_types.end(), *type_name) ==
        available_source_types.end()) {
      std::vector<std::string> all = available_source_types;
      all.insert(all.end(), planned_source_types.begin(), planned_source_types.end());
      ctx.out.report(type, ys::join(path, "type"),
                     "unknown source type '" + *type_name + "'" + ys::did_you_mean(*type_name, all));
      continue;
    }
    if (*type_name == "moysklad") {
      ys::map_reader m(ctx.out, value, path,
                       {"type", "base_url", "token", "login", "password", "mapping", "organization", "store",
                        "export_orders", "poll_interval", "orders_poll_interval", "webhooks", "request_timeout",
                        "max_parallel", "auth_weight"},
                       key.Mark());
      moysklad_config s;
      s.name = name;
      read_moysklad(ctx, m, s);
      if (!s.webhook_path.empty()) {
        auto clash = std::find_if(paths.begin(), paths.end(), [&](const used_path& u) { return u.path == s.webhook_path; });
        if (clash != paths.end())
          ctx.out.report(m.get("webhooks").Mark(), ys::join(path, "webhooks.path"),
                         "path '" + s.webhook_path + "' is already used by source '" + clash->source + "' (line " +
                             std::to_string(clash->line) + ")");
        else
          paths.push_back({s.webhook_path, name, m.get("webhooks").Mark().line + 1});
      }
      moysklad.push_back(std::move(s));
      continue;
    }
    ys::map_reader m(ctx.out, value, path,
                     {"type", "path", "username", "password", "zip", "file_limit", "max_file_size",
                      "max_session_size", "zip_limits", "mapping", "encoding", "session_ttl",
                      "orders_schema_version", "unknown_orders", "timezone", "orders_per_query"},
                     key.Mark());
    onec_config s;
    s.name = name;
    read_onec(ctx, m, s);
    // An invalid path was reported already; comparing the default in its place would mislead.
    const bool path_valid = !m.has("path") || (m.get("path").IsScalar() && m.get("path").Scalar() == s.path);
    const YAML::Mark path_mark = m.has("path") ? m.get("path").Mark() : m.mark();
    if (path_valid) {
      auto clash = std::find_if(paths.begin(), paths.end(), [&](const used_path& u) { return u.path == s.path; });
      if (clash != paths.end())
        ctx.out.report(path_mark, ys::join(path, "path"),
                       "path '" + s.path + "' is already used by source '" + clash->source + "' (line " +
                           std::to_string(clash->line) + ")");
      else
        paths.push_back({s.path, name, (m.has("path") ? path_mark : key.Mark()).line + 1});
    }
    onec.push_back(std::move(s));
  }
}

// schedules: [{ source, entity, mode, dry_run, every }]. Read after sources: a schedule names one.
void read_schedules(reader_context& ctx, const ys::map_reader& root, const std::vector<onec_config>& onec,
                    const std::vector<moysklad_config>& moysklad, std::vector<schedule_config>& schedules) {
  if (!root.has("schedules")) return;
  const YAML::Node list = root.get("schedules");
  if (list.IsNull()) return;
  if (!list.IsSequence()) {
    ctx.out.report(list, "schedules", "expected a list");
    return;
  }
  std::vector<std::string> source_names;
  for (const auto& s : onec) source_names.push_back(s.name);
  for (const auto& s : moysklad) source_names.push_back(s.name);
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node item = list[i];
    const std::string path = ys::index("schedules", i);
    if (!item.IsMap()) {
      ctx.out.report(item, path, "expected a map");
      continue;
    }
    ys::map_reader m(ctx.out, item, path, {"source", "entity", "mode", "dry_run", "every"});
    schedule_config s;
    s.line = m.mark().line + 1;
    const std::size_t before = ctx.out.count();
    if (m.require("source")) {
      read_non_empty(ctx.out, m, "source", s.source);
      if (!s.source.empty() && std::find(source_names.begin(), source_names.end(), s.source) == source_names.end())
        ctx.out.report(m.get("source"), m.path("source"),
                       "no source '" + s.source + "' in sources" + ys::did_you_mean(s.source, source_names));
    }
    if (m.require("entity")) m.choice("entity", s.entity, resync_entities());
    m.choice("mode", s.mode, resync_modes());
    m.boolean("dry_run", s.dry_run);
    if (m.require("every")) m.seconds("every", s.every_seconds, minute, 30 * day);
    if (ctx.out.count() != before) continue;
    auto same = std::find_if(schedules.begin(), schedules.end(), [&](const schedule_config& o) {
      return o.source == s.source && o.slot() == s.slot();
    });
    if (same != schedules.end()) {
      ctx.out.report(item, path,
                     "duplicate schedule for source '" + s.source + "', entity '" + s.entity + "', mode '" + s.mode +
                         "'; first given at line " + std::to_string(same->line));
      continue;
    }
    schedules.push_back(std::move(s));
  }
}

}  // namespace

std::string secret::resolve() const {
  if (!env.empty()) {
    const std::string v = env_or_empty(env.c_str());
    if (!v.empty()) return v;
    if (file.empty()) throw std::runtime_error("environment variable " + env + " is not set or empty");
  }
  if (file.empty()) throw std::runtime_error("no secret configured");
  fs::path p(file);
  if (p.is_relative()) {
    const std::string dir = env_or_empty("CREDENTIALS_DIRECTORY");
    if (!dir.empty()) p = fs::path(dir) / p;
  }
  const std::string prefix = env.empty() ? "" : "environment variable " + env + " is not set or empty, and ";
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error(prefix + "cannot read secret file " + p.string() + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string value = std::move(text).str();
  // `echo secret > file` and editors add a final newline that is never part of the secret.
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  if (value.empty()) throw std::runtime_error(prefix + "secret file " + p.string() + " is empty");
  return value;
}

load_result parse(std::string_view yaml, const fs::path& file_name) {
  ys::reporter out(file_name.string());
  load_result result;
  auto root_node = ys::load_text(out, yaml);
  if (!root_node) {
    result.problems = out.take();
    return result;
  }
  reader_context ctx{out, base_dir(file_name), !env_or_empty("CREDENTIALS_DIRECTORY").empty()};
  ys::map_reader root(out, *root_node, "", {"database", "http", "log", "spool", "workers", "sources", "schedules"});
  config cfg;
  cfg.file = file_name;
  if (root.is_map()) {
    read_database(ctx, root, cfg.database);
    read_http(ctx, root, cfg.http);
    read_log(ctx, root, cfg.log_level);
    read_spool(ctx, root, cfg.spool);
    root.integer("workers", cfg.workers, 1, 64);
    read_sources(ctx, root, cfg.onec, cfg.moysklad);
    read_schedules(ctx, root, cfg.onec, cfg.moysklad, cfg.schedules);
  }
  if (out.empty()) result.cfg = std::move(cfg);
  result.problems = out.take();
  return result;
}

load_result load(const fs::path& file) {
  ys::reporter out(file.string());
  auto text = ys::read_file(out, file);
  if (!text) {
    load_result result;
    result.problems = out.take();
    return result;
  }
  return parse(*text, file);
}

namespace {

bool is_uri(std::string_view url) { return url.starts_with("postgresql://") || url.starts_with("postgres://"); }

std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string r;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      r += static_cast<char>(c);
    } else {
      r += '%';
      r += hex[c >> 4];
      r += hex[c & 15];
    }
  }
  return r;
}

// Authority of a URI: [begin, end) after "://" up to the first '/', '?' or '#'.
std::pair<std::size_t, std::size_t> authority(std::string_view url) {
  const std::size_t begin = url.find("://") + 3;
  std::size_t end = url.find_first_of("/?#", begin);
  if (end == std::string_view::npos) end = url.size();
  return {begin, end};
}

std::string mask_uri(std::string_view url) {
  std::string s(url);
  auto [begin, end] = authority(s);
  // userinfo ends at the last '@' of the authority; its password starts after the first ':'.
  const std::size_t at = s.rfind('@', end == 0 ? 0 : end - 1);
  if (at != std::string::npos && at >= begin) {
    const std::size_t colon = s.find(':', begin);
    if (colon < at) {
      s.replace(colon + 1, at - colon - 1, "***");
      end = end - (at - colon - 1) + 3;
    }
  }
  // ...?password=xyz&... query parameters (libpq accepts every keyword there).
  std::size_t q = s.find('?', end);
  while (q != std::string::npos && q < s.size()) {
    const std::size_t key = q + 1;
    std::size_t next = s.find_first_of("&#", key);
    if (next == std::string::npos) next = s.size();
    if (s.compare(key, 9, "password=") == 0 && key + 9 <= next) {
      s.replace(key + 9, next - key - 9, "***");
      next = key + 9 + 3;
    }
    if (next >= s.size() || s[next] == '#') break;
    q = next;
  }
  return s;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string mask_key_value(std::string_view s) {
  // libpq conninfo: keyword = value, value either bare (up to whitespace) or '…' with \' and \\.
  std::string r;
  std::size_t i = 0;
  while (i < s.size()) {
    if (is_space(s[i])) {
      r += s[i++];
      continue;
    }
    const std::size_t key_begin = i;
    while (i < s.size() && !is_space(s[i]) && s[i] != '=') ++i;
    const std::string_view key = s.substr(key_begin, i - key_begin);
    std::size_t j = i;
    while (j < s.size() && is_space(s[j])) ++j;
    if (j >= s.size() || s[j] != '=') {  // not a keyword=value pair: copy the word as it is
      r += key;
      continue;
    }
    ++j;
    while (j < s.size() && is_space(s[j])) ++j;
    r.append(s.substr(key_begin, j - key_begin));  // "keyword =  "
    std::size_t value_end = j;
    if (value_end < s.size() && s[value_end] == '\'') {
      ++value_end;
      while (value_end < s.size() && s[value_end] != '\'') value_end += s[value_end] == '\\' ? 2 : 1;
      value_end = std::min(value_end + 1, s.size());
    } else {
      while (value_end < s.size() && !is_space(s[value_end])) ++value_end;
    }
    if (key == "password") r += "***";
    else r.append(s.substr(j, value_end - j));
    i = value_end;
  }
  return r;
}

std::string describe_secret(const secret& s) {
  if (!s.env.empty() && !s.file.empty()) return "<from env " + s.env + ", else file " + s.file + ">";
  if (!s.env.empty()) return "<from env " + s.env + ">";
  if (!s.file.empty()) return "<from file " + s.file + ">";
  return "<none>";
}

}  // namespace

std::string mask_url(std::string_view url) { return is_uri(url) ? mask_uri(url) : mask_key_value(url); }

std::string database_url(const config& cfg) {
  const std::string from_env = env_or_empty("OBMEN_DATABASE_URL");
  if (!from_env.empty()) return from_env;
  std::string url = cfg.database.url;
  if (!cfg.database.password.configured()) return url;
  const std::string password = cfg.database.password.resolve();
  if (is_uri(url)) {
    auto [begin, end] = authority(url);
    const std::size_t at = url.rfind('@', end == 0 ? 0 : end - 1);
    if (at != std::string::npos && at >= begin) {
      std::size_t user_end = url.find(':', begin);
      if (user_end > at) user_end = at;
      url.replace(user_end, at - user_end, ":" + percent_encode(password));
    } else {
      // No userinfo to put it in ("postgresql://host/db"): libpq takes it as a query parameter.
      const std::size_t fragment = url.find('#');
      const std::size_t insert_at = fragment == std::string::npos ? url.size() : fragment;
      const bool has_query = url.find('?') < insert_at;
      url.insert(insert_at, (has_query ? "&password=" : "?password=") + percent_encode(password));
    }
    return url;
  }
  std::string quoted;
  for (char c : password) {
    if (c == '\\' || c == '\'') quoted += '\\';
    quoted += c;
  }
  if (!url.empty()) url += ' ';
  return url + "password='" + quoted + "'";
}

std::string describe_masked(const config& cfg) {
  std::string r;
  auto line = [&r](const std::string& key, const std::string& value) { r += key + " = " + value + "\n"; };
  auto yes_no = [](bool b) { return std::string(b ? "true" : "false"); };
  using ys::format_duration;
  using ys::format_size;

  const std::string from_env = env_or_empty("OBMEN_DATABASE_URL");
  if (!from_env.empty()) line("database.url", mask_url(from_env) + " (from env OBMEN_DATABASE_URL)");
  else line("database.url", mask_url(cfg.database.url));
  line("database.password", describe_secret(cfg.database.password));
  line("database.pool_size", std::to_string(cfg.database.pool_size));
  line("database.connect_timeout", format_duration(cfg.database.connect_timeout_seconds));
  line("http.address", cfg.http.address);
  line("http.port", std::to_string(cfg.http.port));
  line("http.read_timeout", format_duration(cfg.http.read_timeout_seconds));
  line("http.write_timeout", format_duration(cfg.http.write_timeout_seconds));
  line("http.idle_timeout", format_duration(cfg.http.idle_timeout_seconds));
  line("http.max_header_size", format_size(cfg.http.max_header_bytes));
  line("http.max_body_size", format_size(cfg.http.max_body_bytes));
  line("http.max_connections", std::to_string(cfg.http.max_connections));
  {
    std::string proxies;
    for (const auto& a : cfg.http.trusted_proxies) proxies += (proxies.empty() ? "" : ", ") + a;
    line("http.trusted_proxies", proxies.empty() ? "none (X-Forwarded-For ignored)" : proxies);
  }
  line("http.tls", cfg.http.tls_certificate.empty() ? "off (plain HTTP)"
                                                    : "certificate " + cfg.http.tls_certificate + ", key " + cfg.http.tls_key);
  line("log.level", cfg.log_level);
  line("spool.dir", cfg.spool.dir);
  line("spool.keep_days", std::to_string(cfg.spool.keep_days));
  line("workers", std::to_string(cfg.workers));
  for (const auto& s : cfg.onec) {
    const std::string p = "sources." + s.name + ".";
    line(p + "type", "onec");
    line(p + "path", s.path);
    line(p + "username", s.username);
    line(p + "password", describe_secret(s.password));
    line(p + "zip", yes_no(s.zip));
    line(p + "file_limit", format_size(s.file_limit));
    line(p + "max_file_size", format_size(s.max_file_bytes));
    line(p + "max_session_size", format_size(s.max_session_bytes));
    line(p + "zip_limits.max_entries", std::to_string(s.zip_limits.max_entries));
    line(p + "zip_limits.max_entry_size", format_size(s.zip_limits.max_entry_bytes));
    line(p + "zip_limits.max_total_size", format_size(s.zip_limits.max_total_bytes));
    line(p + "zip_limits.max_ratio", std::to_string(s.zip_limits.max_ratio));
    line(p + "mapping", s.mapping.empty() ? "<built-in defaults>" : s.mapping);
    line(p + "encoding", s.encoding);
    line(p + "session_ttl", format_duration(s.session_ttl_seconds));
    line(p + "orders_schema_version", s.orders_schema_version);
    line(p + "unknown_orders", s.unknown_orders);
    line(p + "timezone", s.timezone);
    line(p + "orders_per_query", std::to_string(s.orders_per_query));
  }
  for (const auto& s : cfg.moysklad) {
    const std::string p = "sources." + s.name + ".";
    line(p + "type", "moysklad");
    line(p + "base_url", s.base_url);
    line(p + "token", s.token.configured() ? describe_secret(s.token) : "<obtained with login>");
    line(p + "login", s.login.empty() ? "<none>" : s.login);
    line(p + "password", s.password.configured() ? describe_secret(s.password) : "<none>");
    line(p + "mapping", s.mapping.empty() ? "<built-in defaults>" : s.mapping);
    line(p + "organization", s.organization.empty() ? "<the first>" : s.organization);
    line(p + "store", s.store.empty() ? "<none>" : s.store);
    line(p + "export_orders", yes_no(s.export_orders));
    line(p + "poll_interval", s.poll_interval_seconds ? format_duration(s.poll_interval_seconds) : "off");
    line(p + "orders_poll_interval", format_duration(s.orders_poll_interval_seconds));
    line(p + "webhooks.url", s.webhook_url.empty() ? "<none: polling only>" : s.webhook_url);
    if (!s.webhook_url.empty()) line(p + "webhooks.path", s.webhook_path);
    line(p + "request_timeout", format_duration(s.request_timeout_seconds));
    line(p + "max_parallel", std::to_string(s.max_parallel));
    line(p + "auth_weight", std::to_string(s.auth_weight));
  }
  for (std::size_t i = 0; i < cfg.schedules.size(); ++i) {
    const auto& s = cfg.schedules[i];
    line("schedules[" + std::to_string(i) + "]", "source " + s.source + ", entity " + s.entity + ", mode " + s.mode +
                                                     (s.dry_run ? ", dry_run" : "") + ", every " +
                                                     format_duration(s.every_seconds));
  }
  return r;
}

}  // namespace obmen::config
