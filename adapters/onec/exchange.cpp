#include "adapters/onec/exchange.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <string_view>
#include <thread>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "adapters/onec/catalog_import.hpp"
#include "adapters/onec/documents_import.hpp"
#include "commerceml/order_writer.hpp"
#include "store/import_metrics.hpp"
#include "store/orders_store.hpp"
#include "adapters/onec/filename.hpp"
#include "adapters/onec/unzip.hpp"
#include "common/metrics.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/reader.hpp"
#include "store/portal_store.hpp"

namespace obmen::onec {

namespace fs = std::filesystem;

struct exchange::session {
  std::int64_t id = 0;
  fs::path dir;
  std::int64_t bytes_received = 0;
  std::string type;                    // catalog | sale
};

struct exchange::job {
  std::pair<std::int64_t, std::string> key;
  std::string what;                    // "import of offers0_1.xml", "unpacking v8_1.zip"
  std::function<std::string(pqxx::connection&, job&)> work;  // returns the final answer
  mutable std::mutex mutex;
  std::string progress;
  bool done = false;
  std::string answer;

  void set_progress(std::string p) {
    std::lock_guard lock(mutex);
    progress = std::move(p);
  }
};

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string hex(const unsigned char* p, std::size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", p[i]);
    out += b;
  }
  return out;
}

std::string sha256_hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

std::string random_token() {
  std::array<unsigned char, 24> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return hex(b.data(), b.size());
}

// Compares digests, not the strings: equal time whatever the lengths and contents.
bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
  unsigned la = 0, lb = 0;
  EVP_Digest(a.data(), a.size(), da, &la, EVP_sha256(), nullptr);
  EVP_Digest(b.data(), b.size(), db, &lb, EVP_sha256(), nullptr);
  return CRYPTO_memcmp(da, db, la) == 0;
}

std::string base64_decode(std::string_view in) {
  std::string out((in.size() / 4 + 1) * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n));
  // EVP_DecodeBlock counts padding as zero bytes.
  std::size_t pad = 0;
  while (pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  out.resize(out.size() - std::min(pad, out.size()));
  return out;
}

std::string cookie_value(const std::string& header, const std::string& name) {
  std::string_view rest = header;
  while (!rest.empty()) {
    const auto semi = rest.find(';');
    std::string_view part = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    const auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
  }
  return {};
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + p.string() + " to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("fsync of " + p.string() + " failed");
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// At most `max` bytes of s as valid UTF-8 for a text column: a cut never splits a character, and
// bytes that are not UTF-8 (a windows-1251 answer) become '?'. PostgreSQL refuses the whole row
// otherwise ("invalid byte sequence for encoding UTF8") and the request goes unrecorded.
std::string utf8_prefix(std::string_view s, std::size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && len > 1) {  // no overlong forms, surrogates or code points past U+10FFFF
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(len == 2 && c < 0xC2) && !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0) && !(c == 0xF0 && c1 < 0x90) &&
           !(c == 0xF4 && c1 >= 0x90) && c <= 0xF4;
    }
    const std::size_t take = ok ? len : 1;
    if (out.size() + take > max) break;
    if (ok) out.append(s.substr(i, len));
    else out.push_back('?');
    i += take;
  }
  return out;
}

// What 1C is told when a request's database work threw: a lost connection (PostgreSQL restarted,
// the pool's connection cut) as such — 1C runs the exchange again later —, anything else as thrown.
// Never an HTTP 500 or a dropped connection: 1C shows the protocol's failure reason to its user.
std::string failure_reason(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr)
    return std::string("the database is unavailable (") + e.what() + "); run the exchange again later";
  return std::string("database error: ") + e.what();
}

// True when the file's last non-blank bytes close КоммерческаяИнформация (UTF-8 or windows-1251).
bool ends_with_root_close(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(in.tellg());
  const std::streamoff n = std::min<std::streamoff>(size, 256);
  std::string tail(static_cast<std::size_t>(n), '\0');
  in.seekg(size - n);
  in.read(tail.data(), n);
  while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back()))) tail.pop_back();
  const std::string utf8 = "</КоммерческаяИнформация>";
  const std::string cp1251 = commerceml::utf8_to_cp1251(utf8);
  return tail.ends_with(utf8) || tail.ends_with(cp1251);
}

// Metrics (docs/metrics.md). Label values stay bounded: unknown types and modes count as "other".
void declare_metrics() {
  auto& r = metrics::default_registry();
  r.counter("obmen_onec_requests_total", "1C exchange requests answered, by source, type, mode and outcome (failure, progress or success).");
  r.counter("obmen_onec_sessions_total", "1C exchange sessions opened (successful checkauth), by source and type.");
  r.counter("obmen_imports_total", "Imports of exchange files finished (succeeded or failed), by source and file kind.");
  r.counter("obmen_import_failures_total", "Imports of exchange files that failed, by source and file kind.");
  r.histogram("obmen_import_duration_seconds", "Time an import of one exchange file took, by source and file kind.", metrics::duration_buckets());
  store::declare_import_metrics();
}

std::string bounded(const std::string& value, const std::set<std::string>& known) { return known.count(value) ? value : "other"; }

void count_request(const std::string& source, const http::request& req, const http::response& res) {
  static const std::set<std::string> types = {"catalog", "sale"};
  static const std::set<std::string> modes = {"checkauth", "init", "file", "import", "deactivate", "complete", "query", "success", "info"};
  // Anything but failure/progress is a success: "success", init's "zip=…", query's XML.
  const std::string outcome = res.body.rfind("failure", 0) == 0 ? "failure" : res.body.rfind("progress", 0) == 0 ? "progress" : "success";
  metrics::default_registry().add("obmen_onec_requests_total", {{"source", source}, {"type", bounded(req.param("type"), types)},
                                                               {"mode", bounded(req.param("mode"), modes)}, {"outcome", outcome}});
}

// import0_1.xml → "import"; offers, prices, rests likewise; documents of type=sale → "documents".
std::string file_kind(const std::string& rel, const std::string& type) {
  if (type == "sale") return "documents";
  std::string base = fs::path(rel).filename().string();
  std::transform(base.begin(), base.end(), base.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* k : {"import", "offers", "prices", "rests"})
    if (base.rfind(k, 0) == 0) return k;
  return "other";
}

}  // namespace

exchange::exchange(net::io_context& ioc, config::onec_config cfg, std::shared_ptr<const mapping::rules> rules,
                   fs::path spool_root, worker_pool& db, worker_pool& imports)
    : ioc_(ioc), spool_root_(std::move(spool_root)), db_(db), imports_(imports) {
  declare_metrics();
  reconfigure(std::move(cfg), std::move(rules));
}

void exchange::reconfigure(config::onec_config cfg, std::shared_ptr<const mapping::rules> rules) {
  std::string password = cfg.password.resolve();
  cfg_ = std::move(cfg);
  rules_ = std::move(rules);
  password_ = std::move(password);
}

std::size_t exchange::running_jobs() const {
  std::size_t n = 0;
  for (const auto& [k, j] : jobs_) {
    std::lock_guard lock(j->mutex);
    if (!j->done) ++n;
  }
  return n;
}

http::response exchange::answer(std::string body) const {
  http::response r;
  if (cfg_.encoding == "windows-1251") {
    r.body = commerceml::utf8_to_cp1251(body);
    r.content_type = "text/plain; charset=windows-1251";
  } else {
    r.body = std::move(body);
    r.content_type = "text/plain; charset=utf-8";
  }
  return r;
}

bool exchange::basic_auth_ok(const http::request& req) const {
  const std::string auth = req.header("authorization");
  if (auth.size() < 6 || strncasecmp(auth.c_str(), "Basic ", 6) != 0) return false;
  std::string_view b64 = std::string_view(auth).substr(6);
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  const std::string decoded = base64_decode(b64);
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  // Both halves are always compared, so the time does not tell which one was wrong.
  const bool user_ok = constant_time_equal(decoded.substr(0, colon), cfg_.username);
  const bool password_ok = constant_time_equal(decoded.substr(colon + 1), password_);
  return user_ok & password_ok;
}

std::string exchange::basic_user(const http::request& req) {
  const std::string auth = req.header("authorization");
  if (auth.size() < 6 || strncasecmp(auth.c_str(), "Basic ", 6) != 0) return {};
  std::string_view b64 = std::string_view(auth).substr(6);
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  const std::string decoded = base64_decode(b64);
  return decoded.substr(0, decoded.find(':'));
}

net::awaitable<std::optional<exchange::session>> exchange::find_session(const http::request& req, std::string& why) {
  const std::string cookie = cookie_value(req.header("cookie"), cookie_name);
  const std::string source = cfg_.name;
  const std::string type = req.param("type");
  const fs::path root = spool_root_;
  if (cookie.empty() && !basic_auth_ok(req)) {
    why = "no exchange session: send mode=checkauth first (the request has neither the session cookie nor valid credentials)";
    co_return std::nullopt;
  }
  const std::string sessid = req.param("sessid");
  if (!cookie.empty() && !sessid.empty() && sessid != sha256_hex(cookie).substr(0, 32)) {
    why = "sessid does not belong to this exchange session";
    co_return std::nullopt;
  }
  struct found {
    std::optional<session> s;
    std::string why;
  };
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_0 = [cookie, source, root, type](pqxx::connection& c) {
    pqxx::work tx(c);
    pqxx::result r = cookie.empty()
        ? tx.exec_params("select id, status, expires_at > now(), bytes_received, type from obmen.exchange_sessions "
                         "where source = $1 and status = 'open' and type = $2 order by id desc limit 1", source, type)
        : tx.exec_params("select id, status, expires_at > now(), bytes_received, type from obmen.exchange_sessions "
                         "where cookie_hash = $1 and source = $2", sha256_hex(cookie), source);
    found out;
    if (r.empty()) {
      out.why = cookie.empty() ? "no open exchange session: send mode=checkauth first"
                               : "unknown exchange session (cookie not recognised): send mode=checkauth again";
      return out;
    }
    const auto id = r[0][0].as<std::int64_t>();
    const auto status = r[0][1].as<std::string>();
    const auto session_type = r[0][4].as<std::string>();
    if (session_type != type) {
      out.why = "exchange session " + std::to_string(id) + " was opened for type=" + session_type +
                ": send type=" + type + "&mode=checkauth first";
      return out;
    }
    if (status != "open" && status != "complete") {
      out.why = "exchange session " + std::to_string(id) + " is " + status + ": send mode=checkauth again";
      return out;
    }
    if (!r[0][2].as<bool>()) {
      tx.exec_params("update obmen.exchange_sessions set status = 'expired' where id = $1 and status = 'open'", id);
      tx.commit();
      out.why = "exchange session " + std::to_string(id) + " expired: send mode=checkauth again";
      return out;
    }
    tx.exec_params("update obmen.exchange_sessions set last_request_at = now() where id = $1", id);
    tx.commit();
    out.s = session{id, root / std::to_string(id), r[0][3].as<std::int64_t>(), session_type};
    return out;
  };
  found f;
  try {
    f = co_await db_.run(work_0);
  } catch (const std::exception& e) {
    f.why = failure_reason(e);
    spdlog::error("1c[{}] {}: session lookup failed: {}", source, req.remote, e.what());
  }
  why = std::move(f.why);
  co_return f.s;
}

net::awaitable<void> exchange::record(const http::request& req, std::optional<std::int64_t> session_id,
                                      const http::response& res, std::int64_t started_ms,
                                      std::optional<std::uint64_t> body_bytes) {
  const std::string mode = req.param("mode"), filename = req.param("filename"), method = req.method;
  const auto nl = res.body.find('\n');
  const std::string line = utf8_prefix(first_line(res.body), 200) +
                           (nl != std::string::npos ? "\n" + utf8_prefix(std::string_view(res.body).substr(nl + 1), 800) : "");
  const auto duration = static_cast<int>(now_ms() - started_ms);
  const auto bytes = static_cast<std::int64_t>(body_bytes.value_or(req.body.size()));
  if (!session_id) co_return;
  try {
    // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
    auto work_1 = [=](pqxx::connection& c) {
      pqxx::work tx(c);
      tx.exec_params("insert into obmen.exchange_requests(session_id, method, mode, filename, bytes, answer, duration_ms) "
                     "values ($1, $2, $3, $4, $5, $6, $7)",
                     *session_id, method, mode, filename, bytes, line, duration);
      tx.commit();
    };
    co_await db_.run(work_1);
  } catch (const std::exception& e) {
    spdlog::warn("1c[{}] session {}: could not record the request: {}", cfg_.name, *session_id, e.what());
  }
}

bool exchange::is_upload(const http::request& req) const {
  const std::string type = req.param("type");
  return req.method == "POST" && req.param("mode") == "file" && (type == "catalog" || type == "sale");
}

net::awaitable<http::upload_decision> exchange::prepare_upload(http::request req) {
  auto self = shared_from_this();
  http::upload_decision d;
  std::string why;
  auto s = co_await find_session(req, why);
  if (!s) {
    d.answer = answer("failure\n" + why);
    count_request(cfg_.name, req, d.answer);
    co_return d;
  }
  const auto checked = check_filename(req.param("filename"));
  if (!checked.ok()) {
    spdlog::warn("1c[{}] session {}: upload refused: {}", cfg_.name, s->id, checked.error);
    d.answer = answer("failure\n" + checked.error);
    count_request(cfg_.name, req, d.answer);
    co_await record(req, s->id, d.answer, now_ms());
    co_return d;
  }
  const auto key = std::make_pair(s->id, checked.relative);
  if (uploads_in_flight_.count(key)) {
    d.answer = answer("failure\nanother upload of '" + checked.relative + "' is in progress in this session");
    count_request(cfg_.name, req, d.answer);
    co_return d;
  }
  const std::int64_t sid = s->id;
  const std::string rel = checked.relative;
  // The acknowledged length of the file: a chunk is appended after it. A file whose import
  // finished (or failed) is being sent anew: it starts from zero.
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_2 = [sid, rel](pqxx::connection& c) -> std::int64_t {
    pqxx::read_transaction tx(c);
    auto r = tx.exec_params("select bytes, status from obmen.exchange_files where session_id = $1 and filename = $2", sid, rel);
    if (r.empty()) return 0;
    const auto status = r[0][1].as<std::string>();
    return status == "uploading" ? r[0][0].as<std::int64_t>() : 0;
  };
  std::int64_t acked = 0;
  std::string lookup_failed;
  try {
    acked = co_await db_.run(work_2);
  } catch (const std::exception& e) {
    lookup_failed = failure_reason(e);
  }
  if (!lookup_failed.empty()) {
    spdlog::error("1c[{}] session {}: upload of '{}' refused: {}", cfg_.name, sid, rel, lookup_failed);
    d.answer = answer("failure\n" + lookup_failed);
    count_request(cfg_.name, req, d.answer);
    co_return d;
  }
  const std::uint64_t offset = static_cast<std::uint64_t>(acked);
  const std::uint64_t file_left = cfg_.max_file_bytes > offset ? cfg_.max_file_bytes - offset : 0;
  const std::uint64_t session_used = static_cast<std::uint64_t>(s->bytes_received);
  const std::uint64_t session_left = cfg_.max_session_bytes > session_used ? cfg_.max_session_bytes - session_used : 0;
  std::uint64_t limit = cfg_.file_limit;
  std::string too_large = "request body larger than file_limit=" + std::to_string(cfg_.file_limit) +
                          " bytes: split the file into chunks of at most file_limit";
  if (file_left < limit) {
    limit = file_left;
    too_large = "file '" + rel + "' would exceed max_file_size=" + std::to_string(cfg_.max_file_bytes) + " bytes";
  }
  if (session_left < limit) {
    limit = session_left;
    too_large = "exchange session would exceed max_session_size=" + std::to_string(cfg_.max_session_bytes) + " bytes";
  }
  const std::string length = req.header("content-length");
  if (!length.empty()) {
    std::uint64_t n = 0;
    try {
      n = std::stoull(length);
    } catch (...) {
      n = UINT64_MAX;
    }
    if (n > limit) {
      spdlog::warn("1c[{}] session {}: upload of '{}' refused: {}", cfg_.name, sid, rel, too_large);
      d.answer = answer("failure\n" + too_large);
      count_request(cfg_.name, req, d.answer);
      co_await record(req, sid, d.answer, now_ms());
      co_return d;
    }
  }
  http::upload_target t;
  t.file = s->dir / rel;
  t.offset = offset;
  t.limit = limit;
  t.too_large_answer = too_large;
  std::error_code ec;
  fs::create_directories(t.file.parent_path(), ec);
  if (ec) {
    d.answer = answer("failure\ncannot create the spool folder for '" + rel + "': " + ec.message());
    count_request(cfg_.name, req, d.answer);
    co_return d;
  }
  uploads_in_flight_.insert(key);
  t.release = [self, key] { self->uploads_in_flight_.erase(key); };
  d.target = std::move(t);
  co_return d;
}

net::awaitable<http::response> exchange::finish_upload(http::request req, http::upload_target target, std::string error,
                                                       std::uint64_t bytes) {
  auto self = shared_from_this();
  const auto started = now_ms();
  std::string why;
  auto s = co_await find_session(req, why);
  const std::string rel = check_filename(req.param("filename")).relative;
  if (!s) {
    auto res = answer("failure\n" + why);
    count_request(cfg_.name, req, res);
    co_return res;
  }
  if (!error.empty()) {
    spdlog::warn("1c[{}] session {}: upload of '{}' failed: {}", cfg_.name, s->id, rel, error);
    auto res = answer("failure\n" + error);
    count_request(cfg_.name, req, res);
    co_await record(req, s->id, res, started, bytes);
    co_return res;
  }
  const std::int64_t sid = s->id;
  const fs::path file = target.file, dir = s->dir;
  const auto n = static_cast<std::int64_t>(bytes);
  http::response res;
  try {
    // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
    auto work_3 = [=](pqxx::connection& c) {
      // Durable before acknowledged: the data, then every folder entry up to the session dir.
      fsync_path(file, false);
      for (fs::path p = file.parent_path(); ; p = p.parent_path()) {
        fsync_path(p, true);
        if (p == dir || p == p.parent_path()) break;
      }
      pqxx::work tx(c);
      tx.exec_params(
          "insert into obmen.exchange_files(session_id, filename, bytes, chunks, status) values ($1, $2, $3, 1, 'uploading') "
          "on conflict (session_id, filename) do update set "
          "  bytes = case when obmen.exchange_files.status = 'uploading' then obmen.exchange_files.bytes + excluded.bytes else excluded.bytes end, "
          "  chunks = case when obmen.exchange_files.status = 'uploading' then obmen.exchange_files.chunks + 1 else 1 end, "
          "  status = 'uploading', counts = null, error = null, progress = null, import_started_at = null, import_finished_at = null",
          sid, rel, n);
      tx.exec_params("update obmen.exchange_sessions set bytes_received = bytes_received + $2, last_request_at = now() where id = $1",
                     sid, n);
      tx.commit();
    };
    co_await db_.run(work_3);
    spdlog::info("1c[{}] session {}: received {} bytes of '{}'", cfg_.name, sid, bytes, rel);
    res = answer("success\n");
    // Old sale protocol: the import runs inside mode=file — once the file is whole. 1C splits
    // a file into pieces of file_limit bytes, so a piece of exactly file_limit bytes may have
    // more coming, unless the document already ends with its closing root element.
    if (s->type == "sale" && !sale_new_protocol_.count(sid) && !looks_like_zip(file) &&
        (bytes < cfg_.file_limit || ends_with_root_close(file)))
      res = co_await import_now(*s, rel);
  } catch (const std::exception& e) {
    spdlog::error("1c[{}] session {}: could not store '{}': {}", cfg_.name, sid, rel, e.what());
    std::error_code ec;
    fs::resize_file(file, target.offset, ec);
    res = answer("failure\ncould not store the chunk of '" + rel + "': " + e.what());
  }
  count_request(cfg_.name, req, res);
  co_await record(req, sid, res, started, bytes);
  co_return res;
}

net::awaitable<http::response> exchange::handle(http::request req) {
  auto self = shared_from_this();
  http::response res = co_await serve(req);
  count_request(cfg_.name, req, res);
  co_return res;
}

net::awaitable<http::response> exchange::serve(http::request req) {
  auto self = shared_from_this();
  const auto started = now_ms();
  const std::string type = req.param("type"), mode = req.param("mode");
  if (type != "catalog" && type != "sale") co_return answer("failure\nUnknown command type.");
  if (mode == "checkauth") co_return co_await checkauth(req);
  static const std::set<std::string> catalog_modes = {"init", "file", "import", "deactivate", "complete"};
  static const std::set<std::string> sale_modes = {"init", "file", "import", "query", "success", "info", "complete"};
  if (!(type == "catalog" ? catalog_modes : sale_modes).count(mode))
    co_return answer("failure\nUnknown mode '" + mode + "' for type=" + type);
  std::string why;
  auto s = co_await find_session(req, why);
  if (!s) {
    spdlog::warn("1c[{}] {} mode={} refused: {}", cfg_.name, req.remote, mode, why);
    co_return answer("failure\n" + why);
  }
  http::response res;
  try {
    if (mode == "init") res = co_await init(*s, req);
    else if (mode == "file") res = answer("failure\nmode=file needs a POST request with the file's bytes as its body");
    else if (mode == "import") res = co_await import(*s, req.param("filename"));
    else if (mode == "deactivate") res = co_await deactivate(*s);
    else if (mode == "query") res = co_await query(*s);
    else if (mode == "success") res = co_await acknowledge(*s);
    else if (mode == "info") res = info();
    else res = co_await complete(*s);
  } catch (const std::exception& e) {
    spdlog::error("1c[{}] session {}: mode={} failed: {}", cfg_.name, s->id, mode, e.what());
    res = answer(std::string("failure\n") + e.what());
  }
  co_await record(req, s->id, res, started);
  co_return res;
}

net::awaitable<http::response> exchange::checkauth(const http::request& req) {
  const auto started = now_ms();
  // Failed logins are limited per address and user name: a password cannot be guessed at
  // network speed, and one noisy client does not lock out the others.
  const std::string address = req.remote.substr(0, req.remote.rfind(':'));
  const std::string user = basic_user(req);
  const std::string key = address + "\n" + user;
  const auto now = std::chrono::steady_clock::now();
  auto& failures = failed_logins_[key];
  while (!failures.empty() && now - failures.front() > login_window) failures.pop_front();
  if (failures.size() >= max_failed_logins) {
    const auto wait = std::chrono::duration_cast<std::chrono::seconds>(login_window - (now - failures.front())).count() + 1;
    spdlog::warn("1c[{}] {}: checkauth refused: {} failed logins for user '{}' within {} s", cfg_.name, req.remote,
                 failures.size(), user, login_window.count());
    co_return answer("failure\ntoo many failed logins for user '" + user + "' from " + address + "; try again in " +
                     std::to_string(wait) + " s");
  }
  if (!basic_auth_ok(req)) {
    failures.push_back(now);
    if (failed_logins_.size() > 10000) failed_logins_.clear();  // bounded, whatever the traffic
    spdlog::warn("1c[{}] {}: checkauth refused: wrong user name or password", cfg_.name, req.remote);
    co_return answer("failure\nwrong user name or password");
  }
  failed_logins_.erase(key);
  const std::string cookie = random_token();
  const std::string source = cfg_.name, remote = req.remote, type = req.param("type");
  const int ttl = cfg_.session_ttl_seconds;
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_4 = [=](pqxx::connection& c) {
    pqxx::work tx(c);
    auto r = tx.exec_params(
        "insert into obmen.exchange_sessions(source, type, cookie_hash, remote_addr, last_request_at, expires_at) "
        "values ($1, $5, $2, $3, now(), now() + make_interval(secs => $4)) returning id",
        source, sha256_hex(cookie), remote, ttl, type);
    tx.commit();
    return r[0][0].as<std::int64_t>();
  };
  std::int64_t id = 0;
  std::string open_failed;
  try {
    id = co_await db_.run(work_4);
  } catch (const std::exception& e) {
    open_failed = failure_reason(e);
  }
  if (!open_failed.empty()) {
    spdlog::error("1c[{}] {}: checkauth could not open a session: {}", cfg_.name, remote, open_failed);
    co_return answer("failure\n" + open_failed);
  }
  spdlog::info("1c[{}] session {}: checkauth from {}", cfg_.name, id, remote);
  metrics::default_registry().add("obmen_onec_sessions_total", {{"source", source}, {"type", type == "sale" ? "sale" : "catalog"}});
  // Bitrix prints the timestamp line for the catalog only; old 1C reads the first three lines.
  auto res = answer("success\n" + std::string(cookie_name) + "\n" + cookie + "\nsessid=" + sha256_hex(cookie).substr(0, 32) +
                    "\n" + (type == "catalog" ? "timestamp=" + std::to_string(std::time(nullptr)) + "\n" : std::string()));
  res.headers.emplace_back("Set-Cookie", std::string(cookie_name) + "=" + cookie + "; Path=/; HttpOnly");
  co_await record(req, id, res, started);
  co_return res;
}

net::awaitable<http::response> exchange::init(const session& s, const http::request& req) {
  const std::int64_t sid = s.id;
  const fs::path dir = s.dir;
  // A fresh start: leftovers of an aborted attempt in this session would be appended to.
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_5 = [sid, dir](pqxx::connection& c) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    pqxx::work tx(c);
    tx.exec_params("delete from obmen.exchange_files where session_id = $1", sid);
    tx.exec_params("update obmen.exchange_sessions set spool_dir = $2 where id = $1", sid, dir.string());
    tx.commit();
  };
  co_await db_.run(work_5);
  std::string body = std::string("zip=") + (cfg_.zip ? "yes" : "no") + "\nfile_limit=" + std::to_string(cfg_.file_limit) + "\n";
  // type=sale with `version`: the "new" protocol (PROTOCOL.md §2 B′): uploaded documents are
  // imported by mode=import; without it, inside mode=file. Bitrix announces its version back.
  if (s.type == "sale") {
    if (req.has_param("version")) {
      sale_new_protocol_.insert(s.id);
      const std::string cookie = cookie_value(req.header("cookie"), cookie_name);
      body += "sessid=" + (cookie.empty() ? req.param("sessid") : sha256_hex(cookie).substr(0, 32)) +
              "\nversion=" + cfg_.orders_schema_version;
    } else {
      sale_new_protocol_.erase(s.id);
    }
  }
  co_return answer(body);
}

void exchange::start_job(std::shared_ptr<job> j) {
  jobs_[j->key] = j;
  net::co_spawn(ioc_, run_job(shared_from_this(), j), [](std::exception_ptr e) {
    if (e) spdlog::critical("1c: import job ended with an unexpected error");
  });
}

net::awaitable<void> exchange::run_job(std::shared_ptr<exchange> self, std::shared_ptr<job> j) {
  std::string result;
  try {
    // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
    auto work = [j](pqxx::connection& c) { return j->work(c, *j); };
    result = co_await self->imports_.run(work);
  } catch (const std::exception& e) {
    result = std::string("failure\n") + e.what();
  }
  std::lock_guard lock(j->mutex);
  j->answer = std::move(result);
  j->done = true;
}

net::awaitable<http::response> exchange::import(const session& s, const std::string& filename) {
  auto self = shared_from_this();
  const auto checked = check_filename(filename);
  if (!checked.ok()) co_return answer("failure\n" + checked.error);
  const std::string rel = checked.relative;
  const std::int64_t sid = s.id;

  // A job of this session still running or just finished: report it.
  auto report = [&](const std::pair<std::int64_t, std::string>& key, bool& finished_ok) -> std::optional<http::response> {
    finished_ok = false;
    auto it = jobs_.find(key);
    if (it == jobs_.end()) return std::nullopt;
    auto j = it->second;
    std::lock_guard lock(j->mutex);
    if (!j->done)
      return answer("progress\n" + j->what + (j->progress.empty() ? std::string(": started") : ": " + j->progress));
    std::string a = j->answer;
    jobs_.erase(it);
    if (a.rfind("success", 0) == 0 && key.second == "*unzip*") {
      finished_ok = true;
      return std::nullopt;
    }
    return answer(a);
  };
  bool unzip_ok = false;
  if (auto r = report({sid, "*unzip*"}, unzip_ok)) co_return *r;
  bool dummy = false;
  if (auto r = report({sid, rel}, dummy)) co_return *r;

  struct file_state {
    std::string status, progress, error;
    std::vector<std::string> zips;
  };
  const fs::path dir = s.dir;
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_7 = [sid, rel, dir](pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    file_state out;
    auto r = tx.exec_params("select status, coalesce(progress, ''), coalesce(error, '') from obmen.exchange_files "
                            "where session_id = $1 and filename = $2", sid, rel);
    if (!r.empty()) {
      out.status = r[0][0].as<std::string>();
      out.progress = r[0][1].as<std::string>();
      out.error = r[0][2].as<std::string>();
    }
    for (const auto& row : tx.exec_params("select filename from obmen.exchange_files where session_id = $1 and status = 'uploading' "
                                          "order by id", sid)) {
      const auto name = row[0].as<std::string>();
      if (looks_like_zip(dir / name)) out.zips.push_back(name);
    }
    return out;
  };
  const file_state st = co_await db_.run(work_7);

  if (!st.zips.empty()) {
    auto j = std::make_shared<job>();
    j->key = {sid, "*unzip*"};
    j->what = "unpacking " + st.zips.front() + (st.zips.size() > 1 ? " and " + std::to_string(st.zips.size() - 1) + " more" : "");
    const auto limits = cfg_.zip_limits;
    const auto zips = st.zips;
    const std::string source = cfg_.name;
    j->work = [sid, dir, zips, limits, source](pqxx::connection& c, job& self_job) -> std::string {
      std::size_t total = 0;
      for (const auto& zip : zips) {
        try {
          auto result = unzip_archive(dir / zip, dir, limits, [&](const std::string& name, std::size_t i, std::size_t n) {
            self_job.set_progress(std::to_string(i + 1) + " of " + std::to_string(n) + " (" + name + ")");
          });
          pqxx::work tx(c);
          for (const auto& f : result.files) {
            std::error_code ec;
            const auto size = fs::file_size(dir / f, ec);
            tx.exec_params("insert into obmen.exchange_files(session_id, filename, bytes, chunks, status) values ($1, $2, $3, 0, 'uploading') "
                           "on conflict (session_id, filename) do update set bytes = excluded.bytes, status = 'uploading', "
                           "counts = null, error = null, progress = null",
                           sid, f, static_cast<std::int64_t>(ec ? 0 : size));
          }
          tx.exec_params("update obmen.exchange_files set status = 'imported', import_finished_at = now(), progress = $3 "
                         "where session_id = $1 and filename = $2",
                         sid, zip, "unpacked " + std::to_string(result.files.size()) + " files");
          tx.commit();
          total += result.files.size();
          spdlog::info("1c[{}] session {}: unpacked {} files from '{}'", source, sid, result.files.size(), zip);
        } catch (const std::exception& e) {
          spdlog::warn("1c[{}] session {}: '{}' rejected: {}", source, sid, zip, e.what());
          pqxx::work tx(c);
          tx.exec_params("update obmen.exchange_files set status = 'failed', error = $3 where session_id = $1 and filename = $2",
                         sid, zip, std::string(e.what()));
          tx.commit();
          return std::string("failure\n") + e.what();
        }
      }
      return "success\nunpacked " + std::to_string(total) + " files";
    };
    start_job(j);
    co_return answer("progress\n" + j->what);
  }

  if (st.status == "imported") co_return answer("success\n" + st.progress);
  std::error_code ec;
  if (st.status.empty() || !fs::is_regular_file(dir / rel, ec))
    co_return answer("failure\nfile '" + rel + "' was not uploaded in this exchange session (send it with mode=file first)");

  auto j = std::make_shared<job>();
  j->key = {sid, rel};
  j->what = "import of " + rel;
  const std::string source = cfg_.name;
  auto rules = rules_;
  const std::string type = s.type;
  store::documents_apply_options dopts;
  dopts.source = cfg_.name;
  dopts.rules = rules_.get();
  dopts.unknown_orders = cfg_.unknown_orders == "create" ? store::unknown_order_policy::create : store::unknown_order_policy::report;
  dopts.erp_timezone = cfg_.timezone;
  const std::string kind = file_kind(rel, type);
  j->work = [sid, dir, rel, source, rules, type, dopts, kind](pqxx::connection& c, job& self_job) -> std::string {
    const auto import_started = std::chrono::steady_clock::now();
    auto& m = metrics::default_registry();
    const metrics::labels by_kind = {{"source", source}, {"kind", kind}};
    const auto finished = [&] {
      m.add("obmen_imports_total", by_kind);
      m.observe("obmen_import_duration_seconds", by_kind,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - import_started).count());
    };
    {
      pqxx::work tx(c);
      tx.exec_params("update obmen.exchange_files set status = 'importing', import_started_at = now(), error = null "
                     "where session_id = $1 and filename = $2", sid, rel);
      tx.commit();
    }
    import_options o;
    o.source = source;
    o.exchange_session_id = sid;
    o.rules = rules.get();
    o.files_root = dir;
    o.progress = [&self_job](const std::string& p) { self_job.set_progress(p); };
    std::string summary;
    o.before_commit = [&](pqxx::work& tx, const store::import_counts& counts) {
      summary = counts.summary();
      const std::string json = counts.to_json().dump();
      tx.exec_params("update obmen.exchange_files set status = 'imported', import_finished_at = now(), counts = $3::jsonb, "
                     "progress = $4 where session_id = $1 and filename = $2", sid, rel, json, summary);
      tx.exec_params("update obmen.exchange_sessions set counts = counts || jsonb_build_object($2::text, $3::jsonb) where id = $1",
                     sid, rel, json);
    };
    std::string failure;
    try {
      const auto counts = type == "sale" ? import_documents_file(c, dir / rel, dopts, o.before_commit)
                                         : import_catalog_file(c, dir / rel, o);
      spdlog::info("1c[{}] session {}: imported '{}': {}", source, sid, rel, summary);
      finished();
      store::count_import_rows(source, counts);
      store::mark_import_success(source, kind);
      for (const auto& w : counts.warnings) spdlog::warn("1c[{}] session {}: '{}': {}", source, sid, rel, w);
      std::string text = "success\n" + summary;
      for (std::size_t i = 0; i < counts.warnings.size() && i < 5; ++i) text += "\n" + counts.warnings[i];
      return text;
    } catch (const commerceml::parse_error& e) {
      // The name 1C sent, not the spool path: the server's folders are nobody's business.
      failure = rel + ":" + std::to_string(e.line()) + ":" + std::to_string(e.column()) + ": " + e.message();
    } catch (const std::exception& e) {
      failure = "import of '" + rel + "' failed: " + e.what();
    }
    spdlog::error("1c[{}] session {}: {}", source, sid, failure);
    finished();
    m.add("obmen_import_failures_total", by_kind);
    try {
      pqxx::work tx(c);
      tx.exec_params("update obmen.exchange_files set status = 'failed', import_finished_at = now(), error = $3 "
                     "where session_id = $1 and filename = $2", sid, rel, failure);
      tx.commit();
    } catch (const std::exception& e) {
      spdlog::error("1c[{}] session {}: could not record the failure: {}", source, sid, e.what());
    }
    return "failure\n" + failure;
  };
  start_job(j);
  co_return answer("progress\n" + j->what + ": started");
}

net::awaitable<http::response> exchange::deactivate(const session& s) {
  const std::int64_t sid = s.id;
  const std::string source = cfg_.name;
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_8 = [sid, source](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("select pg_advisory_xact_lock(hashtext('obmen.import'), hashtext($1))", source);
    const auto counts = store::deactivate_unseen(tx, source, sid);
    tx.exec_params("update obmen.exchange_sessions set counts = counts || jsonb_build_object('deactivate', $2::jsonb) where id = $1",
                   sid, counts.to_json().dump());
    tx.commit();
    store::count_import_rows(source, counts);
    return counts.summary();
  };
  const std::string summary = co_await imports_.run(work_8);
  spdlog::info("1c[{}] session {}: deactivate: {}", source, sid, summary);
  co_return answer("success\n" + summary);
}

net::awaitable<http::response> exchange::query(const session& s) {
  const std::int64_t sid = s.id;
  const std::string source = cfg_.name, tz = cfg_.timezone;
  const auto limit = static_cast<std::size_t>(cfg_.orders_per_query);
  commerceml::order_write_options o;
  o.schema_version = cfg_.orders_schema_version;
  o.layout = o.schema_version.rfind('3', 0) == 0 ? commerceml::order_layout::container : commerceml::order_layout::flat;
  o.encoding = cfg_.encoding;
  struct out_t {
    std::string xml;
    std::size_t orders = 0;
  };
  // One REPEATABLE READ snapshot: only committed orders, each complete; what was sent is
  // recorded with it, and counts as delivered only on this session's mode=success.
  auto snapshot = [sid, source, tz, limit, o](pqxx::connection& c) {
    pqxx::transaction<pqxx::isolation_level::repeatable_read> tx(c);
    auto batch = store::orders_to_export(tx, source, tz, limit);
    store::record_export(tx, source, sid, batch);
    // НомерВерсии carried the exported version to record_export; it is in no 2.x XSD, and 1C
    // reads the answer against the schema of its version, so it does not go on the wire.
    for (auto& order : batch.orders) order.version.clear();
    out_t out;
    auto opts = o;
    // ДатаФормирования in 1C's zone, from the database clock like the orders' dates.
    opts.generated_at = tx.exec_params("select to_char(now() at time zone $1, 'YYYY-MM-DD\"T\"HH24:MI:SS')", tz)[0][0].as<std::string>();
    out.xml = commerceml::write_orders(batch.orders, opts);
    out.orders = batch.orders.size();
    tx.commit();
    return out;
  };
  // Two nodes' (or one node's overlapping) queries record the same orders: the later snapshot
  // fails with a serialization error, which PostgreSQL means to be retried, not shown to 1C. The
  // jittered pause (on the worker thread) keeps several contenders from colliding again.
  auto work = [snapshot](pqxx::connection& c) {
    for (int attempt = 1;; ++attempt) {
      try {
        return snapshot(c);
      } catch (const pqxx::serialization_failure&) {
        if (attempt == 10) throw;
        thread_local std::minstd_rand jitter{std::random_device{}()};
        std::this_thread::sleep_for(std::chrono::milliseconds(jitter() % (5 * attempt + 1)));
      }
    }
  };
  const out_t out = co_await db_.run(work);
  spdlog::info("1c[{}] session {}: query: sent {} order(s)", source, sid, out.orders);
  http::response r;
  r.content_type = commerceml::content_type_for(o);
  r.body = out.xml;
  co_return r;
}

net::awaitable<http::response> exchange::acknowledge(const session& s) {
  const std::int64_t sid = s.id;
  const std::string source = cfg_.name;
  auto work = [sid, source](pqxx::connection& c) {
    pqxx::work tx(c);
    const auto n = store::acknowledge_export(tx, source, sid);
    tx.commit();
    return n;
  };
  const std::size_t n = co_await db_.run(work);
  spdlog::info("1c[{}] session {}: success: {} order(s) delivered", source, sid, n);
  co_return answer("success\n");
}

// The portal's order statuses, for the 1C-Bitrix module's status mapping (Bitrix's
// sale/info answer: Справочник/Статусы/Элемент{Ид, Название}).
http::response exchange::info() const {
  std::vector<std::string> statuses = {"new", "awaiting_payment", "paid", "partially_shipped", "shipped", "completed", "cancelled"};
  for (const auto& r : rules_->statuses)
    if (!r.target.empty() && std::find(statuses.begin(), statuses.end(), r.target) == statuses.end()) statuses.push_back(r.target);
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Справочник>\n<Статусы>\n";
  for (const auto& st : statuses) xml += "<Элемент><Ид>" + st + "</Ид><Название>" + st + "</Название></Элемент>\n";
  xml += "</Статусы>\n<ПлатежныеСистемы/>\n<СлужбыДоставки/>\n</Справочник>\n";
  http::response r;
  if (cfg_.encoding == "windows-1251") {
    std::string body = xml;
    body.replace(body.find("UTF-8"), 5, "windows-1251");
    r.body = commerceml::utf8_to_cp1251(body);
    r.content_type = "application/xml; charset=windows-1251";
  } else {
    r.body = std::move(xml);
    r.content_type = "application/xml; charset=utf-8";
  }
  return r;
}

net::awaitable<http::response> exchange::import_now(const session& s, const std::string& rel) {
  // The same job as mode=import, awaited here: 1C's old sale protocol expects the answer to
  // the upload to carry the import's outcome ("success" + remarks).
  for (int guard = 0; guard < 100000; ++guard) {
    auto r = co_await import(s, rel);
    if (r.body.rfind("progress", 0) != 0) co_return r;
    net::steady_timer t(ioc_, std::chrono::milliseconds(50));
    co_await t.async_wait(net::use_awaitable);
  }
  co_return answer("failure\nimport of '" + rel + "' did not finish");
}

net::awaitable<http::response> exchange::complete(const session& s) {
  const std::int64_t sid = s.id;
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_9 = [sid](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("update obmen.exchange_sessions set status = 'complete', finished_at = now() where id = $1", sid);
    tx.commit();
  };
  co_await db_.run(work_9);
  spdlog::info("1c[{}] session {}: complete", cfg_.name, sid);
  co_return answer("success\n");
}

net::awaitable<void> exchange::clean_spool(int keep_days) {
  const std::string source = cfg_.name;
  const fs::path root = spool_root_;
  // Named, not a temporary: GCC 12 destroys temporaries of a co_await expression twice.
  auto work_10 = [source, root, keep_days](pqxx::connection& c) {
    pqxx::work tx(c);
    tx.exec_params("update obmen.exchange_sessions set status = 'expired', finished_at = now() "
                   "where source = $1 and status = 'open' and expires_at < now()", source);
    auto r = tx.exec_params("select id from obmen.exchange_sessions where source = $1 and spool_removed_at is null "
                            "and status <> 'open' and coalesce(finished_at, last_request_at, started_at) < now() - make_interval(days => $2)",
                            source, keep_days);
    std::size_t n = 0;
    for (const auto& row : r) {
      const auto id = row[0].as<std::int64_t>();
      std::error_code ec;
      fs::remove_all(root / std::to_string(id), ec);
      if (ec) continue;
      tx.exec_params("update obmen.exchange_sessions set spool_removed_at = now() where id = $1", id);
      ++n;
    }
    tx.commit();
    return n;
  };
  const auto removed = co_await db_.run(work_10);
  if (removed > 0) spdlog::info("1c[{}] removed the spool folders of {} old exchange sessions", source, removed);
}

}  // namespace obmen::onec
