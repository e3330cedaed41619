#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/yaml_schema.hpp"
#include "tests/support/temp_dir.hpp"

using obmen::test::temp_dir;

namespace cfg = obmen::config;
namespace ys = obmen::config::yaml_schema;
namespace fs = std::filesystem;

namespace {

// Sets (or unsets, with nullptr) an environment variable for one scope and restores it after.
class env_var {
 public:
  env_var(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~env_var() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  env_var(const env_var&) = delete;
  env_var& operator=(const env_var&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// The variables that change how a config loads, cleared for a test.
struct clean_env {
  env_var url{"OBMEN_DATABASE_URL", nullptr};
  env_var credentials{"CREDENTIALS_DIRECTORY", nullptr};
};


std::vector<std::string> problems_of(const cfg::load_result& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems) out.push_back(p.to_string());
  return out;
}

// The smallest valid config with one source, for tests that add one line at a time.
const std::string minimal = R"(database:
  url: postgresql://obmen@localhost/obmen
sources:
  onec:
    type: onec
    username: site
    password: { env: OBMEN_ONEC_PASSWORD }
)";

// One problem expected from `yaml`: returns its to_string().
std::string only_problem(const std::string& yaml) {
  auto r = cfg::parse(yaml, "obmen.yaml");
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.cfg.has_value());
  REQUIRE(r.problems.size() == 1);
  return r.problems.front().to_string();
}

}  // namespace

TEST_CASE("problem::to_string: with and without position and path") {
  cfg::problem p{"obmen.yaml", 12, 5, "sources.onec.zip", "expected a boolean (true or false), got 'maybe'"};
  CHECK(p.to_string() == "obmen.yaml:12:5: sources.onec.zip: expected a boolean (true or false), got 'maybe'");
  p.path.clear();
  CHECK(p.to_string() == "obmen.yaml:12:5: expected a boolean (true or false), got 'maybe'");
  cfg::problem q{"obmen.yaml", 0, 0, "", "cannot read: No such file or directory"};
  CHECK(q.to_string() == "obmen.yaml: cannot read: No such file or directory");
}

TEST_CASE("a minimal config gets every default") {
  clean_env env;
  auto r = cfg::parse(minimal, "/etc/obmen/obmen.yaml");
  REQUIRE(problems_of(r) == std::vector<std::string>{});
  REQUIRE(r.ok());
  const cfg::config& c = *r.cfg;
  CHECK(c.file == "/etc/obmen/obmen.yaml");
  CHECK(c.database.url == "postgresql://obmen@localhost/obmen");
  CHECK_FALSE(c.database.password.configured());
  CHECK(c.database.pool_size == 4);
  CHECK(c.database.connect_timeout_seconds == 5);
  CHECK(c.http.address == "127.0.0.1");
  CHECK(c.http.port == 8080);
  CHECK(c.http.read_timeout_seconds == 60);
  CHECK(c.http.write_timeout_seconds == 60);
  CHECK(c.http.idle_timeout_seconds == 75);
  CHECK(c.http.max_header_bytes == 16 * 1024);
  CHECK(c.http.max_body_bytes == 1024 * 1024);
  CHECK(c.http.max_connections == 256);
  CHECK(c.log_level == "info");
  CHECK(c.spool.dir == "/var/lib/obmen/spool");
  CHECK(c.spool.keep_days == 7);
  CHECK(c.workers == 2);
  REQUIRE(c.onec.size() == 1);
  const cfg::onec_config& s = c.onec[0];
  CHECK(s.name == "onec");
  CHECK(s.path == "/1c_exchange");
  CHECK(s.username == "site");
  CHECK(s.password.env == "OBMEN_ONEC_PASSWORD");
  CHECK(s.password.file.empty());
  CHECK(s.zip);
  CHECK(s.file_limit == 8ull << 20);
  CHECK(s.max_file_bytes == 4ull << 30);
  CHECK(s.max_session_bytes == 16ull << 30);
  CHECK(s.zip_limits.max_entries == 100000);
  CHECK(s.zip_limits.max_entry_bytes == 2ull << 30);
  CHECK(s.zip_limits.max_total_bytes == 8ull << 30);
  CHECK(s.zip_limits.max_ratio == 200);
  CHECK(s.mapping.empty());
  CHECK(s.encoding == "utf-8");
  CHECK(s.session_ttl_seconds == 86400);
}

TEST_CASE("every key is read") {
  clean_env env;
  const std::string yaml = R"(database:
  url: host=db dbname=obmen user=obmen
  password: { env: DB_PW, file: /run/secrets/db }
  pool_size: 8
  connect_timeout: 2m
http:
  address: 0.0.0.0
  port: 0
  read_timeout: 1500ms
  write_timeout: 45
  idle_timeout: 1h
  max_header_size: 32KiB
  max_body_size: 2MB
  max_connections: 10
log:
  level: debug
spool:
  dir: spool
  keep_days: 0
workers: 64
sources:
  shop-1:
    type: onec
    path: /exchange/shop1
    username: site
    password: { file: /run/secrets/onec }
    zip: false
    file_limit: 100KB
    max_file_size: 1GiB
    max_session_size: 2GiB
    zip_limits: { max_entries: 10, max_entry_size: 1MiB, max_total_size: 3MiB, max_ratio: 50 }
    mapping: maps/shop1.yaml
    encoding: windows-1251
    session_ttl: 1d
  shop_2:
    type: onec
    path: /exchange/shop2
    username: other
    password: { file: /run/secrets/onec2 }
)";
  auto r = cfg::parse(yaml, "/etc/obmen/obmen.yaml");
  REQUIRE(problems_of(r) == std::vector<std::string>{});
  const cfg::config& c = *r.cfg;
  CHECK(c.database.url == "host=db dbname=obmen user=obmen");
  CHECK(c.database.password.env == "DB_PW");
  CHECK(c.database.password.file == "/run/secrets/db");
  CHECK(c.database.pool_size == 8);
  CHECK(c.database.connect_timeout_seconds == 120);
  CHECK(c.http.address == "0.0.0.0");
  CHECK(c.http.port == 0);
  CHECK(c.http.read_timeout_seconds == 2);  // 1500ms rounded up
  CHECK(c.http.write_timeout_seconds == 45);
  CHECK(c.http.idle_timeout_seconds == 3600);
  CHECK(c.http.max_header_bytes == 32 * 1024);
  CHECK(c.http.max_body_bytes == 2'000'000);
  CHECK(c.http.max_connections == 10);
  CHECK(c.log_level == "debug");
  CHECK(c.spool.dir == "/etc/obmen/spool");
  CHECK(c.spool.keep_days == 0);
  CHECK(c.workers == 64);
  REQUIRE(c.onec.size() == 2);
  const cfg::onec_config& s = c.onec[0];
  CHECK(s.name == "shop-1");
  CHECK(s.path == "/exchange/shop1");
  CHECK(s.password.file == "/run/secrets/onec");
  CHECK_FALSE(s.zip);
  CHECK(s.file_limit == 100'000);
  CHECK(s.max_file_bytes == 1ull << 30);
  CHECK(s.max_session_bytes == 2ull << 30);
  CHECK(s.zip_limits.max_entries == 10);
  CHECK(s.zip_limits.max_entry_bytes == 1ull << 20);
  CHECK(s.zip_limits.max_total_bytes == 3ull << 20);
  CHECK(s.zip_limits.max_ratio == 50);
  CHECK(s.mapping == "/etc/obmen/maps/shop1.yaml");
  CHECK(s.encoding == "windows-1251");
  CHECK(s.session_ttl_seconds == 86400);
  CHECK(c.onec[1].name == "shop_2");
  CHECK(c.onec[1].username == "other");
}

TEST_CASE("three mistakes are reported together, in file order, with line and key path") {
  clean_env env;
  const std::string yaml = R"(database:
  url: postgresql://obmen@localhost/obmen
http:
  prot: 8080
  max_connections: abc
sources:
  onec:
    type: onec
    username: site
)";
  auto r = cfg::parse(yaml, "obmen.yaml");
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.cfg.has_value());
  CHECK(problems_of(r) == std::vector<std::string>{
                              "obmen.yaml:4:3: http: unknown key 'prot'; did you mean 'port'?",
                              "obmen.yaml:5:20: http.max_connections: expected an integer, got 'abc'",
                              "obmen.yaml:8:5: sources.onec: missing required key 'password'",
                          });
}

TEST_CASE("unknown keys: a suggestion only when something is close") {
  clean_env env;
  CHECK(only_problem(minimal + "databse: {}\n") == "obmen.yaml:8:1: unknown key 'databse'; did you mean 'database'?");
  CHECK(only_problem(minimal + "colour: red\n") == "obmen.yaml:8:1: unknown key 'colour'");
  CHECK(only_problem(minimal + "    max_sesion_size: 1GiB\n") ==
        "obmen.yaml:8:5: sources.onec: unknown key 'max_sesion_size'; did you mean 'max_session_size'?");
  CHECK(only_problem(minimal + "    zip_limits: { max_ratoi: 5 }\n") ==
        "obmen.yaml:8:19: sources.onec.zip_limits: unknown key 'max_ratoi'; did you mean 'max_ratio'?");
}

TEST_CASE("duplicate keys are reported, not silently dropped") {
  clean_env env;
  CHECK(only_problem(minimal + "workers: 2\nworkers: 3\n") == "obmen.yaml:9:1: duplicate key 'workers'; first given at line 8");
  CHECK(only_problem(minimal + "  onec:\n    type: onec\n") ==
        "obmen.yaml:8:3: sources: duplicate key 'onec'; first given at line 4");
}

TEST_CASE("wrong types") {
  clean_env env;
  CHECK(only_problem(minimal + "    zip: maybe\n") ==
        "obmen.yaml:8:10: sources.onec.zip: expected a boolean (true or false), got 'maybe'");
  CHECK(only_problem(minimal + "http: 8080\n") == "obmen.yaml:8:7: http: expected a map");
  auto r = cfg::parse(minimal + "    path: [a]\n", "obmen.yaml");
  CHECK(problems_of(r) == std::vector<std::string>{"obmen.yaml:8:11: sources.onec.path: expected a string"});
  CHECK(only_problem(minimal + "workers: many\n") == "obmen.yaml:8:10: workers: expected an integer, got 'many'");
  CHECK(only_problem(minimal + "workers:\n") == "obmen.yaml:8:1: workers: expected an integer, got nothing");
  CHECK(only_problem(minimal + "workers: 1.5\n") == "obmen.yaml:8:10: workers: expected an integer, got '1.5'");
}

TEST_CASE("integer ranges") {
  clean_env env;
  CHECK(only_problem(minimal + "workers: 0\n") == "obmen.yaml:8:10: workers: must be between 1 and 64, got 0");
  CHECK(only_problem(minimal + "workers: -3\n") == "obmen.yaml:8:10: workers: must be between 1 and 64, got -3");
  CHECK(only_problem(minimal + "workers: 99999999999999999999999\n") ==
        "obmen.yaml:8:10: workers: must be between 1 and 64, got 99999999999999999999999");
  CHECK(only_problem("database:\n  url: x\n  pool_size: 65\n") ==
        "obmen.yaml:3:14: database.pool_size: must be between 1 and 64, got 65");
  CHECK(only_problem("database:\n  url: x\nhttp:\n  port: 65536\n") ==
        "obmen.yaml:4:9: http.port: must be between 0 and 65535, got 65536");
}

TEST_CASE("durations") {
  CHECK(ys::parse_duration_ms("250ms") == 250);
  CHECK(ys::parse_duration_ms("30s") == 30'000);
  CHECK(ys::parse_duration_ms("30") == 30'000);
  CHECK(ys::parse_duration_ms("5m") == 300'000);
  CHECK(ys::parse_duration_ms("2h") == 7'200'000);
  CHECK(ys::parse_duration_ms("1d") == 86'400'000);
  CHECK(ys::parse_duration_ms("10 s") == 10'000);
  CHECK_FALSE(ys::parse_duration_ms("soon"));
  CHECK_FALSE(ys::parse_duration_ms("-5s"));
  CHECK_FALSE(ys::parse_duration_ms("1.5h"));
  CHECK_FALSE(ys::parse_duration_ms("5S"));
  CHECK_FALSE(ys::parse_duration_ms("1h30m"));
  CHECK_FALSE(ys::parse_duration_ms("99999999999999999999d"));
  CHECK_FALSE(ys::parse_duration_ms("999999999999999999d"));  // fits u64 as a number, not in ms
  CHECK(ys::format_duration(90) == "90s");
  CHECK(ys::format_duration(3600) == "1h");
  CHECK(ys::format_duration(86400) == "1d");

  clean_env env;
  const std::string base = "database:\n  url: x\n";
  auto seconds = [&](const std::string& value) {
    auto r = cfg::parse(base + "  connect_timeout: " + value + "\n", "obmen.yaml");
    REQUIRE(problems_of(r) == std::vector<std::string>{});
    return r.cfg->database.connect_timeout_seconds;
  };
  CHECK(seconds("250ms") == 1);
  CHECK(seconds("1001ms") == 2);
  CHECK(seconds("1000ms") == 1);
  CHECK(seconds("30s") == 30);
  CHECK(seconds("5m") == 300);
  CHECK(seconds("1h") == 3600);
  CHECK(seconds("17") == 17);
  CHECK(only_problem(base + "  connect_timeout: soon\n") ==
        "obmen.yaml:3:20: database.connect_timeout: expected a duration like 30s, 5m or 2h, got 'soon'");
  CHECK(only_problem(base + "  connect_timeout: -5s\n") ==
        "obmen.yaml:3:20: database.connect_timeout: expected a duration like 30s, 5m or 2h, got '-5s'");
  CHECK(only_problem(base + "  connect_timeout: 99999999999999999999d\n") ==
        "obmen.yaml:3:20: database.connect_timeout: expected a duration like 30s, 5m or 2h, got '99999999999999999999d'");
  CHECK(only_problem(base + "  connect_timeout: 0s\n") ==
        "obmen.yaml:3:20: database.connect_timeout: must be between 1s and 1h, got 0s");
  CHECK(only_problem(base + "  connect_timeout: 2h\n") ==
        "obmen.yaml:3:20: database.connect_timeout: must be between 1s and 1h, got 2h");
}

TEST_CASE("sizes") {
  CHECK(ys::parse_size("0") == 0u);
  CHECK(ys::parse_size("1024") == 1024u);
  CHECK(ys::parse_size("10B") == 10u);
  CHECK(ys::parse_size("512KiB") == 512u * 1024);
  CHECK(ys::parse_size("8MiB") == 8u << 20);
  CHECK(ys::parse_size("1GiB") == 1u << 30);
  CHECK(ys::parse_size("2TiB") == 2ull << 40);
  CHECK(ys::parse_size("1kB") == 1000u);
  CHECK(ys::parse_size("1KB") == 1000u);
  CHECK(ys::parse_size("8MB") == 8'000'000u);
  CHECK(ys::parse_size("1GB") == 1'000'000'000u);
  CHECK(ys::parse_size("8 MiB") == 8u << 20);
  CHECK_FALSE(ys::parse_size("big"));
  CHECK_FALSE(ys::parse_size("-1"));
  CHECK_FALSE(ys::parse_size("1.5MiB"));
  CHECK_FALSE(ys::parse_size("8mib"));
  CHECK_FALSE(ys::parse_size("8M"));
  CHECK_FALSE(ys::parse_size("99999999999999999999"));
  CHECK_FALSE(ys::parse_size("99999999TiB"));
  CHECK(ys::format_size(8u << 20) == "8MiB");
  CHECK(ys::format_size(1500) == "1500B");
  CHECK(ys::format_size(0) == "0B");

  clean_env env;
  CHECK(only_problem(minimal + "    file_limit: big\n") ==
        "obmen.yaml:8:17: sources.onec.file_limit: expected a size like 512KiB, 8MiB or 1GiB, got 'big'");
  CHECK(only_problem(minimal + "    file_limit: -1\n") ==
        "obmen.yaml:8:17: sources.onec.file_limit: expected a size like 512KiB, 8MiB or 1GiB, got '-1'");
  CHECK(only_problem(minimal + "    file_limit: 99999999TiB\n") ==
        "obmen.yaml:8:17: sources.onec.file_limit: expected a size like 512KiB, 8MiB or 1GiB, got '99999999TiB'");
  CHECK(only_problem(minimal + "    file_limit: 0\n") ==
        "obmen.yaml:8:17: sources.onec.file_limit: must be between 1KiB and 1GiB, got 0");
  CHECK(only_problem(minimal + "    max_file_size: 32GiB\n") ==
        "obmen.yaml:8:20: sources.onec.max_file_size: must not be larger than max_session_size (16GiB)");
}

TEST_CASE("choices suggest the nearest word") {
  clean_env env;
  CHECK(only_problem(minimal + "log: { level: inof }\n") ==
        "obmen.yaml:8:15: log.level: expected one of trace, debug, info, warn, error, critical, off, got 'inof'; "
        "did you mean 'info'?");
  CHECK(only_problem(minimal + "    encoding: cp1251\n") ==
        "obmen.yaml:8:15: sources.onec.encoding: expected one of utf-8, windows-1251, got 'cp1251'");
}

TEST_CASE("http.tls") {
  clean_env env;
  const auto ok = obmen::config::parse(minimal + "http:\n  tls: { certificate: tls/cert.pem, key: /etc/k.pem }\n",
                                       "/etc/obmen/obmen.yaml");
  REQUIRE(ok.ok());
  CHECK(ok.cfg->http.tls_certificate == "/etc/obmen/tls/cert.pem");
  CHECK(ok.cfg->http.tls_key == "/etc/k.pem");
  CHECK(only_problem(minimal + "http:\n  trusted_proxies: [127.0.0.1, nginx]\n") ==
        "obmen.yaml:9:32: http.trusted_proxies[1]: 'nginx' is not an IP address");
  const auto proxies = obmen::config::parse(minimal + "http:\n  trusted_proxies: ['::1', 10.0.0.5]\n", "/etc/obmen/obmen.yaml");
  REQUIRE(proxies.ok());
  CHECK(proxies.cfg->http.trusted_proxies == std::vector<std::string>{"::1", "10.0.0.5"});
  CHECK(only_problem(minimal + "http:\n  tls: { certificate: c.pem }\n") ==
        "obmen.yaml:9:8: http.tls: missing required key 'key'");
}

TEST_CASE("sources: moysklad") {
  clean_env env;
  const std::string db = "database:\n  url: x\n";
  const auto ok = obmen::config::parse(db + "sources:\n  ms:\n    type: moysklad\n    token: { env: T }\n"
                                     "    webhooks: { url: 'https://portal.example/hooks/ms-3f9a?x=1' }\n"
                                     "    poll_interval: 10m\n",
                                "/etc/obmen/obmen.yaml");
  REQUIRE(ok.ok());
  REQUIRE(ok.cfg->moysklad.size() == 1);
  const auto& ms = ok.cfg->moysklad[0];
  CHECK(ms.name == "ms");
  CHECK(ms.base_url == "https://api.moysklad.ru/api/remap/1.2/");
  CHECK(ms.token.env == "T");
  CHECK(ms.webhook_path == "/hooks/ms-3f9a");
  CHECK(ms.poll_interval_seconds == 600);
  CHECK(ms.auth_weight == 4);
  CHECK(obmen::config::describe_masked(*ok.cfg).find("sources.ms.token = <from env T>") != std::string::npos);

  CHECK(only_problem(db + "sources:\n  ms:\n    type: moysklad\n") ==
        "obmen.yaml:5:5: sources.ms.token: missing required key 'token' (or login + password)");
  CHECK(only_problem(db + "sources:\n  ms:\n    type: moysklad\n    login: admin@a\n") ==
        "obmen.yaml:5:5: sources.ms.password: login and password go together (they are used only to obtain a token)");
  CHECK(only_problem(db + "sources:\n  ms:\n    type: moysklad\n    token: { env: T }\n    max_parallel: 6\n") ==
        "obmen.yaml:7:19: sources.ms.max_parallel: must be between 1 and 5, got 6");
  CHECK(only_problem(db + "sources:\n  ms:\n    type: moysklad\n    token: { env: T }\n    base_url: ftp://x/\n") ==
        "obmen.yaml:7:15: sources.ms.base_url: must start with https:// (or http:// for a test server)");
  CHECK(only_problem(db + "sources:\n  ms:\n    type: moysklad\n    token: abc\n").find("secrets are not allowed inline") !=
        std::string::npos);
}

TEST_CASE("sources: types, names, paths") {
  clean_env env;
  const std::string db = "database:\n  url: x\n";
  CHECK(only_problem(db + "sources:\n  x:\n    type: onek\n") ==
        "obmen.yaml:5:11: sources.x.type: unknown source type 'onek'; did you mean 'onec'?");
  CHECK(only_problem(db + "sources:\n  x:\n    type: ftp\n") == "obmen.yaml:5:11: sources.x.type: unknown source type 'ftp'");
  CHECK(only_problem(db + "sources:\n  x:\n    username: u\n") == "obmen.yaml:5:5: sources.x: missing required key 'type'");
  CHECK(only_problem(db + "sources:\n  Main 1C:\n    type: onec\n    username: u\n    password: { env: P }\n") ==
        "obmen.yaml:4:3: sources: invalid source name 'Main 1C': use 1 to 32 of a-z, 0-9, '_' and '-'");
  CHECK(only_problem(minimal + "    path: 1c_exchange\n") ==
        "obmen.yaml:8:11: sources.onec.path: must start with '/', got '1c_exchange'");
  CHECK(only_problem(db + "sources:\n  x:\n    type: onec\n    username: ' '\n    password: { env: P }\n") ==
        "obmen.yaml:6:15: sources.x.username: must not be empty");

  // Two sources on the same endpoint: named both ways, the default path counts too.
  const std::string two = minimal + "  second:\n    type: onec\n    username: b\n    password: { env: B }\n";
  CHECK(only_problem(two) ==
        "obmen.yaml:9:5: sources.second.path: path '/1c_exchange' is already used by source 'onec' (line 4)");
  CHECK(only_problem(minimal + "    path: /x\n  second:\n    type: onec\n    path: /x\n    username: b\n    password: { env: B }\n") ==
        "obmen.yaml:11:11: sources.second.path: path '/x' is already used by source 'onec' (line 8)");
  CHECK(cfg::parse(two + "    path: /other\n", "obmen.yaml").ok());
}

TEST_CASE("database.url is required unless OBMEN_DATABASE_URL is set") {
  {
    clean_env env;
    CHECK(only_problem("workers: 2\n") == "obmen.yaml:1:1: missing required key 'database'");
    CHECK(only_problem("database:\n  pool_size: 2\n") == "obmen.yaml:2:3: database: missing required key 'url'");
    CHECK(only_problem("database:\n") == "obmen.yaml:1:1: database: missing required key 'url'");
    CHECK(only_problem("") == "obmen.yaml:1:1: missing required key 'database'");
    CHECK(only_problem("database:\n  url: postgresql://obmen:hunter2@db/obmen\n") ==
          "obmen.yaml:2:8: database.url: the URL must not contain a password; use database.password: { env: NAME } "
          "or { file: PATH }");
  }
  {
    clean_env env;
    env_var url("OBMEN_DATABASE_URL", "postgresql://a:secret@db/x");
    CHECK(cfg::parse("workers: 2\n", "obmen.yaml").ok());
    auto r = cfg::parse("database:\n  pool_size: 2\n", "obmen.yaml");
    REQUIRE(r.ok());
    CHECK(cfg::database_url(*r.cfg) == "postgresql://a:secret@db/x");
  }
}

TEST_CASE("YAML syntax errors and unreadable files") {
  clean_env env;
  CHECK(only_problem("database:\n  url: [x\n") == "obmen.yaml:3:1: invalid YAML: end of sequence flow not found");
  CHECK(only_problem("a: b\n  c: d\n") == "obmen.yaml:2:4: invalid YAML: illegal map value");
  CHECK(only_problem("- a\n- b\n") == "obmen.yaml:1:1: expected a map");

  auto r = cfg::load("/nonexistent/obmen.yaml");
  CHECK_FALSE(r.ok());
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].line == 0);
  CHECK(r.problems[0].to_string() == "/nonexistent/obmen.yaml: cannot read: No such file or directory");

  temp_dir dir;
  auto file = dir.write("obmen.yaml", minimal + "workers: 0\n");
  auto loaded = cfg::load(file);
  REQUIRE(loaded.problems.size() == 1);
  CHECK(loaded.problems[0].to_string() == file.string() + ":8:10: workers: must be between 1 and 64, got 0");
}

TEST_CASE("secrets: inline values are rejected") {
  clean_env env;
  CHECK(only_problem("database:\n  url: x\n  password: hunter2\n") ==
        "obmen.yaml:3:13: database.password: secrets are not allowed inline; use { env: NAME } or { file: PATH }");
  CHECK(only_problem("database:\n  url: x\n  password: {}\n") ==
        "obmen.yaml:3:13: database.password: expected { env: NAME } or { file: PATH }");
  CHECK(only_problem("database:\n  url: x\n  password: { env: 'A B' }\n") ==
        "obmen.yaml:3:20: database.password.env: 'A B' is not an environment variable name");
  CHECK(only_problem("database:\n  url: x\n  password: { value: x }\n") ==
        "obmen.yaml:3:15: database.password: unknown key 'value'");
  CHECK(only_problem(minimal.substr(0, minimal.find("    password")) + "    password: s3cret\n") ==
        "obmen.yaml:7:15: sources.onec.password: secrets are not allowed inline; use { env: NAME } or { file: PATH }");
}

TEST_CASE("secrets: env, file, CREDENTIALS_DIRECTORY") {
  clean_env env;
  temp_dir dir;
  dir.write("db-password", "from-file\n");
  const std::string yaml = "database:\n  url: x\n  password: { env: OBMEN_TEST_PW, file: db-password }\n";
  const fs::path config_file = dir.path() / "obmen.yaml";

  SUBCASE("relative file is resolved against the config directory at load time") {
    auto r = cfg::parse(yaml, config_file);
    REQUIRE(r.ok());
    CHECK(r.cfg->database.password.file == (dir.path() / "db-password").string());
    env_var pw("OBMEN_TEST_PW", nullptr);
    CHECK(r.cfg->database.password.resolve() == "from-file");  // trailing newline stripped
    env_var empty("OBMEN_TEST_PW", "");
    CHECK(r.cfg->database.password.resolve() == "from-file");  // empty env falls back to the file
  }
  SUBCASE("env wins when set and non-empty") {
    auto r = cfg::parse(yaml, config_file);
    REQUIRE(r.ok());
    env_var pw("OBMEN_TEST_PW", "from-env");
    CHECK(r.cfg->database.password.resolve() == "from-env");
  }
  SUBCASE("with CREDENTIALS_DIRECTORY the relative name stays and is joined at resolve time") {
    temp_dir creds;
    creds.write("db-password", "from-credentials\r\n");
    env_var cd("CREDENTIALS_DIRECTORY", creds.path().c_str());
    env_var pw("OBMEN_TEST_PW", nullptr);
    auto r = cfg::parse(yaml, config_file);
    REQUIRE(r.ok());
    CHECK(r.cfg->database.password.file == "db-password");
    CHECK(r.cfg->database.password.resolve() == "from-credentials");
  }
  SUBCASE("missing values throw naming the variable and the file") {
    env_var pw("OBMEN_TEST_PW", nullptr);
    cfg::secret only_env{"OBMEN_TEST_PW", ""};
    CHECK_THROWS_WITH_AS(only_env.resolve(), "environment variable OBMEN_TEST_PW is not set or empty",
                         std::runtime_error);
    cfg::secret both{"OBMEN_TEST_PW", (dir.path() / "nope").string()};
    CHECK_THROWS_WITH_AS(both.resolve(),
                         ("environment variable OBMEN_TEST_PW is not set or empty, and cannot read secret file " +
                          (dir.path() / "nope").string() + ": No such file or directory")
                             .c_str(),
                         std::runtime_error);
    dir.write("empty", "\n");
    cfg::secret empty_file{"", (dir.path() / "empty").string()};
    CHECK_THROWS_WITH_AS(empty_file.resolve(), ("secret file " + (dir.path() / "empty").string() + " is empty").c_str(),
                         std::runtime_error);
  }
}

TEST_CASE("database_url adds the password") {
  clean_env env;
  env_var pw("OBMEN_TEST_PW", "p@ss w:rd/'\\");
  auto url_for = [](const std::string& url) {
    auto r = cfg::parse("database:\n  url: \"" + url + "\"\n  password: { env: OBMEN_TEST_PW }\n", "obmen.yaml");
    REQUIRE(problems_of(r) == std::vector<std::string>{});
    return cfg::database_url(*r.cfg);
  };
  CHECK(url_for("postgresql://obmen@db:5432/obmen") == "postgresql://obmen:p%40ss%20w%3Ard%2F%27%5C@db:5432/obmen");
  CHECK(url_for("postgres://obmen@db/obmen?sslmode=require") ==
        "postgres://obmen:p%40ss%20w%3Ard%2F%27%5C@db/obmen?sslmode=require");
  CHECK(url_for("postgresql://db/obmen") == "postgresql://db/obmen?password=p%40ss%20w%3Ard%2F%27%5C");
  CHECK(url_for("postgresql://db/obmen?sslmode=require") ==
        "postgresql://db/obmen?sslmode=require&password=p%40ss%20w%3Ard%2F%27%5C");
  CHECK(url_for("host=db dbname=obmen user=obmen") == "host=db dbname=obmen user=obmen password='p@ss w:rd/\\'\\\\'");

  auto r = cfg::parse("database:\n  url: postgresql://obmen@db/obmen\n", "obmen.yaml");
  REQUIRE(r.ok());
  CHECK(cfg::database_url(*r.cfg) == "postgresql://obmen@db/obmen");  // no password configured

  auto missing = cfg::parse("database:\n  url: postgresql://obmen@db/obmen\n  password: { env: OBMEN_UNSET_PW }\n",
                            "obmen.yaml");
  REQUIRE(missing.ok());
  CHECK_THROWS_AS(cfg::database_url(*missing.cfg), std::runtime_error);

  env_var url("OBMEN_DATABASE_URL", "postgresql://env@elsewhere/db");
  CHECK(cfg::database_url(*missing.cfg) == "postgresql://env@elsewhere/db");  // wins, used verbatim
}

TEST_CASE("mask_url") {
  CHECK(cfg::mask_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db");
  CHECK(cfg::mask_url("postgres://u:p%40w@h1:5432,h2/db?sslmode=require") ==
        "postgres://u:***@h1:5432,h2/db?sslmode=require");
  CHECK(cfg::mask_url("postgresql://u@h/db") == "postgresql://u@h/db");
  CHECK(cfg::mask_url("postgresql://h/db") == "postgresql://h/db");
  CHECK(cfg::mask_url("postgresql://h/db?password=xyz&sslmode=require") ==
        "postgresql://h/db?password=***&sslmode=require");
  CHECK(cfg::mask_url("postgresql://h/db?sslmode=require&password=xyz") ==
        "postgresql://h/db?sslmode=require&password=***");
  CHECK(cfg::mask_url("host=h password=xyz dbname=d") == "host=h password=*** dbname=d");
  CHECK(cfg::mask_url("host=h password = 'a b\\' c' dbname=d") == "host=h password = *** dbname=d");
  CHECK(cfg::mask_url("password=xyz") == "password=***");
  CHECK(cfg::mask_url("host=h dbname=d") == "host=h dbname=d");
  CHECK(cfg::mask_url("host=h passfile=/x") == "host=h passfile=/x");
}

TEST_CASE("describe_masked shows every setting and never a secret") {
  clean_env env;
  env_var pw("OBMEN_TEST_PW", "TopSecret1");
  temp_dir dir;
  dir.write("onec-password", "TopSecret2\n");
  auto r = cfg::parse(minimal.substr(0, minimal.find("    password")) +
                          "    password: { file: onec-password }\n    mapping: mapping.yaml\n"
                          "  second:\n    type: onec\n    path: /second\n    username: b\n"
                          "    password: { env: OBMEN_TEST_PW }\n",
                      dir.path() / "obmen.yaml");
  REQUIRE(problems_of(r) == std::vector<std::string>{});
  const std::string d = cfg::describe_masked(*r.cfg);
  CHECK(d.find("TopSecret") == std::string::npos);
  CHECK(d.find("database.url = postgresql://obmen@localhost/obmen\n") != std::string::npos);
  CHECK(d.find("database.password = <none>\n") != std::string::npos);
  CHECK(d.find("http.max_header_size = 16KiB\n") != std::string::npos);
  CHECK(d.find("http.idle_timeout = 75s\n") != std::string::npos);
  CHECK(d.find("sources.onec.password = <from file " + (dir.path() / "onec-password").string() + ">\n") !=
        std::string::npos);
  CHECK(d.find("sources.onec.mapping = " + (dir.path() / "mapping.yaml").string() + "\n") != std::string::npos);
  CHECK(d.find("sources.onec.session_ttl = 1d\n") != std::string::npos);
  CHECK(d.find("sources.second.password = <from env OBMEN_TEST_PW>\n") != std::string::npos);
  CHECK(d.find("sources.second.path = /second\n") != std::string::npos);
  CHECK(d.find("sources.onec.orders_schema_version = 2.05\n") != std::string::npos);
  CHECK(d.find("sources.onec.timezone = Europe/Moscow\n") != std::string::npos);
  // One line per setting: 18 general + 19 per source.
  CHECK(std::count(d.begin(), d.end(), '\n') == 18 + 2 * 19);

  env_var url("OBMEN_DATABASE_URL", "postgresql://obmen:TopSecret3@db/obmen");
  const std::string e = cfg::describe_masked(*r.cfg);
  CHECK(e.find("TopSecret") == std::string::npos);
  CHECK(e.find("database.url = postgresql://obmen:***@db/obmen (from env OBMEN_DATABASE_URL)\n") != std::string::npos);
}

TEST_CASE("the МойСклад example config loads clean") {
  clean_env env;
  const char* source_dir = std::getenv("OBMEN_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  const auto r = obmen::config::load(fs::path(source_dir) / "config/examples/obmen-moysklad.yaml");
  for (const auto& p : r.problems) INFO(p.to_string());
  REQUIRE(r.ok());
  REQUIRE(r.cfg->moysklad.size() == 1);
  const auto& ms = r.cfg->moysklad[0];
  const obmen::config::moysklad_config defaults;
  CHECK(ms.base_url == defaults.base_url);
  CHECK(ms.poll_interval_seconds == defaults.poll_interval_seconds);
  CHECK(ms.orders_poll_interval_seconds == defaults.orders_poll_interval_seconds);
  CHECK(ms.request_timeout_seconds == defaults.request_timeout_seconds);
  CHECK(ms.max_parallel == defaults.max_parallel);
  CHECK(ms.auth_weight == defaults.auth_weight);
  CHECK(ms.export_orders == defaults.export_orders);
}

TEST_CASE("the example config loads clean") {
  clean_env env;
  const char* source_dir = std::getenv("OBMEN_SOURCE_DIR");
  REQUIRE(source_dir != nullptr);
  const fs::path file = fs::path(source_dir) / "config/examples/obmen.yaml";
  auto r = cfg::load(file);
  REQUIRE(problems_of(r) == std::vector<std::string>{});
  REQUIRE(r.ok());
  // The example shows the defaults: it must agree with the member initialisers.
  cfg::config defaults;
  CHECK(r.cfg->database.pool_size == defaults.database.pool_size);
  CHECK(r.cfg->http.port == defaults.http.port);
  CHECK(r.cfg->http.max_body_bytes == defaults.http.max_body_bytes);
  CHECK(r.cfg->workers == defaults.workers);
  CHECK(r.cfg->spool.dir == defaults.spool.dir);
  REQUIRE(r.cfg->onec.size() == 1);
  cfg::onec_config s;
  CHECK(r.cfg->onec[0].file_limit == s.file_limit);
  CHECK(r.cfg->onec[0].max_session_bytes == s.max_session_bytes);
  CHECK(r.cfg->onec[0].zip_limits.max_total_bytes == s.zip_limits.max_total_bytes);
  CHECK(r.cfg->onec[0].session_ttl_seconds == s.session_ttl_seconds);
  CHECK(r.cfg->onec[0].mapping == (file.parent_path() / "mapping.yaml").lexically_normal().string());
}

TEST_CASE("edit distance and suggestions") {
  CHECK(ys::edit_distance("prot", "port") == 1);
  CHECK(ys::edit_distance("", "abc") == 3);
  CHECK(ys::edit_distance("kitten", "sitting") == 3);
  const std::vector<std::string> keys{"address", "port", "read_timeout"};
  CHECK(ys::closest("prot", keys) == "port");
  CHECK(ys::closest("adress", keys) == "address");
  CHECK(ys::closest("read_timout", keys) == "read_timeout");
  CHECK_FALSE(ys::closest("colour", keys));
  CHECK_FALSE(ys::closest("xy", {"ab"}));
}

TEST_CASE("type=sale settings of a 1C source are validated") {
  clean_env env;
  const std::string yaml = R"(database:
  url: postgresql://obmen@localhost/obmen
sources:
  onec:
    type: onec
    username: site
    password: { env: OBMEN_TEST_PW }
    orders_schema_version: "2.11"
    unknown_orders: ignore
    orders_per_query: 0
)";
  auto r = cfg::parse(yaml, "obmen.yaml");
  CHECK(problems_of(r) == std::vector<std::string>{
                              "obmen.yaml:8:28: sources.onec.orders_schema_version: expected one of 2.05, 2.08, 2.09, 2.10, 3.1, got '2.11'; did you mean '2.10'?",
                              "obmen.yaml:9:21: sources.onec.unknown_orders: expected one of report, create, got 'ignore'",
                              "obmen.yaml:10:23: sources.onec.orders_per_query: must be between 1 and 100000, got 0",
                          });
}

TEST_CASE("schedules: every key, defaults, order") {
  clean_env env;
  auto r = cfg::parse(minimal + R"(schedules:
  - { source: onec, entity: orders, every: 1h }
  - source: onec
    entity: catalog
    mode: incremental
    dry_run: true
    every: 90m
)",
                      "obmen.yaml");
  REQUIRE(problems_of(r) == std::vector<std::string>{});
  const auto& s = r.cfg->schedules;
  REQUIRE(s.size() == 2);
  CHECK(s[0].source == "onec");
  CHECK(s[0].entity == "orders");
  CHECK(s[0].mode == "full");
  CHECK_FALSE(s[0].dry_run);
  CHECK(s[0].every_seconds == 3600);
  CHECK(s[0].line == 9);
  CHECK(s[0].slot() == "schedule:orders:full");
  CHECK(s[1].entity == "catalog");
  CHECK(s[1].mode == "incremental");
  CHECK(s[1].dry_run);
  CHECK(s[1].every_seconds == 5400);
  CHECK(s[1].slot() == "schedule:catalog:incremental:dry_run");
  const std::string d = cfg::describe_masked(*r.cfg);
  CHECK(d.find("schedules[0] = source onec, entity orders, mode full, every 1h\n") != std::string::npos);
  CHECK(d.find("schedules[1] = source onec, entity catalog, mode incremental, dry_run, every 90m\n") != std::string::npos);

  auto none = cfg::parse(minimal + "schedules:\n", "obmen.yaml");
  REQUIRE(none.ok());
  CHECK(none.cfg->schedules.empty());
}

TEST_CASE("schedules: every mistake is reported with its path") {
  clean_env env;
  CHECK(only_problem(minimal + "schedules:\n  - { source: onex, entity: orders, every: 1h }\n") ==
        "obmen.yaml:9:15: schedules[0].source: no source 'onex' in sources; did you mean 'onec'?");
  CHECK(only_problem(minimal + "schedules:\n  - { source: onec, entity: order, every: 1h }\n") ==
        "obmen.yaml:9:29: schedules[0].entity: expected one of catalog, prices, stock, counterparties, orders, all, "
        "got 'order'; did you mean 'orders'?");
  CHECK(only_problem(minimal + "schedules:\n  - { source: onec, entity: orders }\n") ==
        "obmen.yaml:9:5: schedules[0]: missing required key 'every'");
  CHECK(only_problem(minimal + "schedules:\n  - { source: onec, entity: orders, every: 10s }\n") ==
        "obmen.yaml:9:44: schedules[0].every: must be between 1m and 30d, got 10s");
  CHECK(only_problem(minimal + "schedules:\n  - { source: onec, entity: orders, every: soon }\n") ==
        "obmen.yaml:9:44: schedules[0].every: expected a duration like 30s, 5m or 2h, got 'soon'");
  CHECK(only_problem(minimal + "schedules:\n  - { source: onec, entity: all, mode: partial, every: 1h }\n") ==
        "obmen.yaml:9:40: schedules[0].mode: expected one of full, incremental, got 'partial'");
  auto typo = cfg::parse(minimal + "schedules:\n  - { source: onec, entity: all, evry: 1h }\n", "obmen.yaml");
  CHECK(problems_of(typo) == std::vector<std::string>{
                                 "obmen.yaml:9:5: schedules[0]: missing required key 'every'",
                                 "obmen.yaml:9:34: schedules[0]: unknown key 'evry'; did you mean 'every'?"});
  CHECK(only_problem(minimal + "schedules: { source: onec }\n") == "obmen.yaml:8:12: schedules: expected a list");
  CHECK(only_problem(minimal + "schedules:\n  - orders\n") == "obmen.yaml:9:5: schedules[0]: expected a map");
  CHECK(only_problem(minimal + "schedules:\n  - { source: onec, entity: orders, every: 1h }\n"
                               "  - { source: onec, entity: orders, every: 2h }\n") ==
        "obmen.yaml:10:5: schedules[1]: duplicate schedule for source 'onec', entity 'orders', mode 'full'; "
        "first given at line 9");

  // Several problems at once, in file order.
  auto r = cfg::parse(minimal + "schedules:\n  - { source: x, entity: y, every: z }\n", "obmen.yaml");
  CHECK(r.problems.size() == 3);
}
