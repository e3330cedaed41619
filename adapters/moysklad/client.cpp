#include "adapters/moysklad/client.hpp"

#include "common/http.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <vector>

#include "common/net.hpp"  // first: Asio needs <utility> before it with GCC 12

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "adapters/moysklad/gzip.hpp"

namespace obmen::moysklad {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------------------------
// URLs

struct url {
  bool tls = false;
  std::string host;    // without brackets for an IPv6 literal
  std::string port;
  std::string target;  // path + query, encoded; starts with '/'

  bool default_port() const { return port == (tls ? "443" : "80"); }
  std::string host_header() const {
    const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return default_port() ? h : h + ":" + port;
  }
  std::string origin() const { return std::string(tls ? "https://" : "http://") + host_header(); }
  std::string str() const { return origin() + target; }
};

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

bool is_absolute(std::string_view s) { return starts_with_ci(s, "http://") || starts_with_ci(s, "https://"); }

// "http(s)://[userinfo@]host[:port][/path][?query]"; userinfo is dropped (never used, never shown).
std::optional<url> parse_absolute(std::string_view s) {
  url u;
  if (starts_with_ci(s, "https://")) {
    u.tls = true;
    s.remove_prefix(8);
  } else if (starts_with_ci(s, "http://")) {
    s.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  const auto path_at = s.find_first_of("/?");
  std::string_view authority = s.substr(0, path_at);
  std::string_view rest = path_at == std::string_view::npos ? std::string_view{} : s.substr(path_at);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return std::nullopt;
  if (!port.empty() && !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  u.host = std::string(host);
  u.port = port.empty() ? (u.tls ? "443" : "80") : std::string(port);
  u.target = encode_url(rest);
  if (u.target.empty() || u.target.front() != '/') u.target.insert(0, "/");
  return u;
}

// A path, an href or a redirect's Location, against `base` (a directory URL ending in '/').
url resolve(const url& base, const std::string& ref) {
  if (is_absolute(ref)) {
    if (auto u = parse_absolute(ref)) return *u;
    throw api_error("bad URL \"" + ref + "\"", 0, 0, false);
  }
  url u = base;
  if (!ref.empty() && ref.front() == '/') {
    u.target = encode_url(ref);
  } else {
    // Relative: against the base's directory (the base URL ends in '/', a Location may not).
    const std::string_view path = std::string_view(base.target).substr(0, base.target.find('?'));
    u.target = std::string(path.substr(0, path.rfind('/') + 1)) + encode_url(ref);
  }
  return u;
}

// ---------------------------------------------------------------------------------------------
// One kept-alive connection. Every step is an async operation with a deadline run to completion
// on the connection's own io_context: Beast's synchronous calls have no time-outs.

struct transport_error {
  std::string what;        // "read timed out after 300 ms", "connect: Connection refused"
  bool stale = false;      // a reused connection failed before any answer byte: safe to repeat on a new one
};

struct answer {
  int status = 0;
  std::string reason;
  std::map<std::string, std::string> headers;  // lower-case names; repeated ones joined with ", "
  std::string body;                            // as received (maybe gzip)

  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string{} : it->second;
  }
};

std::string millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

class connection {
 public:
  connection(const url& origin, ssl::context& tls_context, bool verify) : origin_(origin.origin()) {
    if (origin.tls) {
      tls_.emplace(ioc_, tls_context);
      // SNI, and the certificate must name the host.
      if (!SSL_set_tlsext_host_name(tls_->native_handle(), origin.host.c_str()))
        throw transport_error{"TLS: cannot set the server name"};
      if (verify) tls_->set_verify_callback(ssl::host_name_verification(origin.host));
    } else {
      tcp_.emplace(ioc_);
    }
  }

  const std::string& origin() const { return origin_; }
  int requests = 0;
  steady::time_point last_used = steady::now();

  void open(const url& u, std::chrono::milliseconds timeout) {
    // The resolver has no deadline of its own: a timer cancels it.
    tcp::resolver resolver(ioc_);
    net::steady_timer timer(ioc_, timeout);
    beast::error_code ec;
    bool timed_out = false;
    tcp::resolver::results_type endpoints;
    resolver.async_resolve(u.host, u.port, [&](beast::error_code e, tcp::resolver::results_type r) {
      ec = e;
      endpoints = std::move(r);
      timer.cancel();
    });
    timer.async_wait([&](beast::error_code e) {
      if (!e) {
        timed_out = true;
        resolver.cancel();
      }
    });
    run();
    if (timed_out) throw transport_error{"resolving " + u.host + " timed out after " + millis(timeout)};
    if (ec) throw transport_error{"resolving " + u.host + ": " + ec.message()};

    lowest().expires_after(timeout);
    step("connect", timeout, [&](auto handler) { lowest().async_connect(endpoints, handler); });
    if (tls_) {
      lowest().expires_after(timeout);
      step("TLS handshake", timeout, [&](auto handler) { tls_->async_handshake(ssl::stream_base::client, handler); });
    }
  }

  answer exchange(bhttp::request<bhttp::string_body>& req, std::chrono::milliseconds timeout, std::size_t max_body,
                  bool& keep_alive) {
    const bool reused = requests > 0;
    ++requests;
    try {
      lowest().expires_after(timeout);
      step("write", timeout, [&](auto handler) { with_stream([&](auto& s) { bhttp::async_write(s, req, handler); }); });
    } catch (transport_error& e) {
      e.stale = reused;
      throw;
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(64 * 1024);
    parser.body_limit(max_body);
    try {
      // Header first: Beast 1.74 drops the body_limit error of a too large Content-Length when
      // the header and body are parsed in one eager read, so the length is checked here.
      lowest().expires_after(timeout);
      step("read", timeout, [&](auto handler) { with_stream([&](auto& s) { bhttp::async_read_header(s, buffer_, parser, handler); }); });
      if (const auto length = parser.content_length(); length && *length > max_body)
        throw transport_error{"the answer is larger than the limit"};
      step("read", timeout, [&](auto handler) { with_stream([&](auto& s) { bhttp::async_read(s, buffer_, parser, handler); }); });
    } catch (transport_error& e) {
      e.stale = reused && !parser.got_some();
      throw;
    }
    last_used = steady::now();
    auto& res = parser.get();
    answer a;
    a.status = static_cast<int>(res.result_int());
    a.reason = std::string(res.reason());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto [it, inserted] = a.headers.emplace(name, std::string(f.value()));
      if (!inserted) it->second += ", " + std::string(f.value());
    }
    a.body = std::move(res.body());
    keep_alive = res.keep_alive() && !parser.need_eof();
    return a;
  }

 private:
  beast::tcp_stream& lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *tcp_; }

  template <class F>
  void with_stream(F&& f) {
    if (tls_) f(*tls_); else f(*tcp_);
  }

  void run() {
    ioc_.restart();
    ioc_.run();
  }

  // Starts one operation, runs it to completion, turns its error into a transport_error.
  template <class Start>
  void step(const char* what, std::chrono::milliseconds timeout, Start&& start) {
    beast::error_code ec = net::error::would_block;
    start([&ec](beast::error_code e, auto&&...) { ec = e; });
    run();
    if (!ec) return;
    if (ec == beast::error::timeout) throw transport_error{std::string(what) + " timed out after " + millis(timeout)};
    if (ec == bhttp::error::body_limit) throw transport_error{"the answer is larger than the limit"};
    throw transport_error{std::string(what) + ": " + ec.message()};
  }

  std::string origin_;
  net::io_context ioc_{1};
  std::optional<beast::tcp_stream> tcp_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
};

// ---------------------------------------------------------------------------------------------
// Error texts

std::string base64(std::string_view s) {
  std::string out(4 * ((s.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::optional<long long> number(const answer& a, const std::string& name) {
  const std::string v = a.header(name);
  if (v.empty()) return std::nullopt;
  try {
    std::size_t used = 0;
    const long long n = std::stoll(v, &used);
    if (used != v.size()) return std::nullopt;
    return n;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

rate_limit_headers rate_headers(const answer& a) {
  return {number(a, "x-ratelimit-limit"), number(a, "x-ratelimit-remaining"), number(a, "x-lognex-retry-timeinterval"),
          number(a, "x-lognex-reset"), number(a, "x-lognex-retry-after")};
}

bool is_transient_code(int code) { return code == 1074 || code == 1095; }

// "1021 Объект не найден; 3000 …" and the first code, from an {"errors":[…]} body.
std::pair<std::string, int> error_details(const nlohmann::json& body) {
  std::string text;
  int first_code = 0;
  const auto errors = body.is_object() ? body.find("errors") : body.end();
  if (body.is_object() && errors != body.end() && errors->is_array()) {
    for (const auto& e : *errors) {
      if (!e.is_object()) continue;
      std::string one;
      if (auto c = e.find("code"); c != e.end() && c->is_number_integer()) {
        if (first_code == 0) first_code = c->get<int>();
        one = std::to_string(c->get<int>());
      }
      if (auto m = e.find("error"); m != e.end() && m->is_string()) one += (one.empty() ? "" : " ") + m->get<std::string>();
      if (auto p = e.find("parameter"); p != e.end() && p->is_string()) one += " (parameter " + p->get<std::string>() + ")";
      if (!one.empty()) text += (text.empty() ? "" : "; ") + one;
    }
  }
  return {text, first_code};
}

bool is_redirect(int status) { return status == 301 || status == 302 || status == 303 || status == 307 || status == 308; }

}  // namespace

std::string encode_url(std::string_view s) { return http::percent_encode(s, "!$&'()*+,;=:@/?", true); }

// ---------------------------------------------------------------------------------------------

struct client::impl {
  client_options options;
  url base;
  std::shared_ptr<rate_limiter> limiter;
  ssl::context tls_context{ssl::context::tls_client};

  std::mutex pool_mutex;
  std::vector<std::unique_ptr<connection>> idle;  // all hosts; few, so a linear search

  std::mutex auth_mutex;        // held while a token is obtained, so only one thread does it
  std::string token;            // guarded by auth_mutex
  std::uint64_t token_generation = 0;

  mutable std::mutex stats_mutex;
  client_stats counters;

  explicit impl(client_options o) : options(std::move(o)) {
    std::string b = options.base_url;
    if (!b.empty() && b.back() != '/') b += '/';
    auto parsed = parse_absolute(b);
    if (!parsed) throw std::invalid_argument("moysklad: base_url \"" + options.base_url + "\" is not an http(s) URL");
    base = *parsed;
    if (options.token.empty() && (options.login.empty() || options.password.empty()))
      throw std::invalid_argument("moysklad: neither a token nor a login and password are set");
    token = options.token;
    limiter = options.limiter ? options.limiter
                              : std::make_shared<rate_limiter>(rate_limit_options{options.budget, options.budget_window,
                                                                                  options.max_parallel, options.budget_margin});
    tls_context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (options.verify_tls) {
      tls_context.set_verify_mode(ssl::verify_peer);
      if (!options.ca_file.empty()) tls_context.load_verify_file(options.ca_file);
      else tls_context.set_default_verify_paths();
    } else {
      tls_context.set_verify_mode(ssl::verify_none);
    }
  }

  bool can_login() const { return !options.login.empty() && !options.password.empty(); }

  void count(int status) {
    std::lock_guard lock(stats_mutex);
    ++counters.responses[status];
  }

  // --- connection pool ---

  // A pooled connection to u's host still fit for use, else a new one (`fresh_only`: always new).
  std::unique_ptr<connection> take(const url& u, bool fresh_only) {
    std::vector<std::unique_ptr<connection>> expired;  // closed outside the lock
    std::unique_ptr<connection> found;
    {
      std::lock_guard lock(pool_mutex);
      const auto now = steady::now();
      const std::string origin = u.origin();
      for (auto it = idle.begin(); it != idle.end();) {
        auto& c = *it;
        if (now - c->last_used > options.max_idle || c->requests >= options.max_requests_per_connection) {
          expired.push_back(std::move(c));
          it = idle.erase(it);
        } else if (!found && !fresh_only && c->origin() == origin) {
          found = std::move(c);
          it = idle.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (found) return found;
    auto c = std::make_unique<connection>(u, tls_context, options.verify_tls);
    c->open(u, options.connect_timeout);
    std::lock_guard lock(stats_mutex);
    ++counters.connections_opened;
    return c;
  }

  void give_back(std::unique_ptr<connection> c) {
    if (c->requests >= options.max_requests_per_connection) return;
    std::lock_guard lock(pool_mutex);
    // A few per host at most: as many as may be in flight.
    const auto same = std::count_if(idle.begin(), idle.end(), [&](const auto& x) { return x->origin() == c->origin(); });
    if (same < std::max(1, options.max_parallel)) idle.push_back(std::move(c));
  }

  // --- one HTTP exchange, with the rate limiter, the pool, 429 retries and redirects ---

  answer transfer(bhttp::verb method, url u, std::string body, const std::string& authorization, int units,
                  std::string& final_url) {
    int too_many = 0;
    int redirects = 0;
    for (;;) {
      final_url = u.str();
      bhttp::request<bhttp::string_body> req{method, u.target, 11};
      req.set(bhttp::field::host, u.host_header());
      req.set(bhttp::field::user_agent, options.user_agent);
      req.set(bhttp::field::accept, "application/json;charset=utf-8");
      req.set(bhttp::field::accept_encoding, "gzip");
      // Credentials only for the configured API host: an href or a redirect may point elsewhere
      // (file downloads go to temporary URLs that need none).
      if (!authorization.empty() && u.origin() == base.origin()) req.set(bhttp::field::authorization, authorization);
      if (!body.empty()) {
        req.set(bhttp::field::content_type, "application/json");
        req.body() = body;
      }
      if (method != bhttp::verb::get && !options.webhook_disable_prefix.empty())
        req.set("X-Lognex-WebHook-DisableByPrefix", options.webhook_disable_prefix);
      req.keep_alive(true);
      req.prepare_payload();

      answer a = send(req, u, units);
      limiter->observe(rate_headers(a));

      if (a.status == 429) {
        ++too_many;
        {
          std::lock_guard lock(stats_mutex);
          ++counters.too_many_requests;
        }
        // Without Retry-After (1073: too many parallel requests) wait one bucket window.
        const auto retry_after = number(a, "x-lognex-retry-after");
        const auto wait = retry_after && *retry_after > 0 ? std::chrono::milliseconds(std::min(*retry_after, 60'000LL))
                                                          : limiter->window();
        limiter->penalize(wait);
        if (too_many >= options.max_429_tries) return a;
        spdlog::warn("moysklad[{}]: {} {}: HTTP 429, retrying after {} ms (try {} of {})", options.name, std::string(req.method_string()),
                     final_url, wait.count(), too_many + 1, options.max_429_tries);
        continue;
      }
      if (is_redirect(a.status) && !a.header("location").empty()) {
        if (++redirects > options.max_redirects)
          throw api_error(std::string(req.method_string()) + " " + final_url + ": more than " +
                              std::to_string(options.max_redirects) + " redirects",
                          a.status, 0, false);
        u = resolve(u, a.header("location"));
        if (a.status == 303) {
          method = bhttp::verb::get;
          body.clear();
        }
        continue;
      }
      return a;
    }
  }

  // One request on a pooled connection; a reused connection the server had closed is replaced
  // once for idempotent methods.
  answer send(bhttp::request<bhttp::string_body>& req, const url& u, int units) {
    auto permit = limiter->acquire(units);
    const bool idempotent = req.method() != bhttp::verb::post;
    for (int attempt = 0;; ++attempt) {
      std::unique_ptr<connection> c;
      try {
        c = take(u, attempt > 0);
        bool keep_alive = false;
        const auto started = steady::now();
        answer a = c->exchange(req, options.request_timeout, options.max_response_bytes, keep_alive);
        spdlog::debug("moysklad[{}]: {} {} -> {} ({} ms)", options.name, std::string(req.method_string()), u.str(), a.status,
                      std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count());
        count(a.status);
        if (keep_alive) give_back(std::move(c));
        return a;
      } catch (const transport_error& e) {
        if (e.stale && idempotent && attempt == 0) continue;
        count(0);
        throw api_error(std::string(req.method_string()) + " " + u.str() + ": " + e.what, 0, 0, true);
      } catch (const boost::system::system_error& e) {
        count(0);
        throw api_error(std::string(req.method_string()) + " " + u.str() + ": " + e.code().message(), 0, 0, true);
      }
    }
  }

  // --- authentication ---

  // The Authorization value to use, and its generation (to tell whether a 401 is already dealt with).
  std::pair<std::string, std::uint64_t> authorization() {
    std::lock_guard lock(auth_mutex);
    if (token.empty()) obtain_token_locked();
    return {"Bearer " + token, token_generation};
  }

  // After a 401 with the token of `generation`: a new token, unless another thread got one already.
  void renew_token(std::uint64_t generation) {
    std::lock_guard lock(auth_mutex);
    if (generation == token_generation) obtain_token_locked();
  }

  void obtain_token_locked() {
    url u = resolve(base, "security/token");
    std::string final_url;
    const answer a = transfer(bhttp::verb::post, u, std::string{}, "Basic " + base64(options.login + ":" + options.password),
                              options.auth_weight, final_url);
    if (a.status < 200 || a.status >= 300)
      throw error("POST", final_url, a, error_body("POST", final_url, a), " (obtaining an access token)");
    const nlohmann::json body = decode("POST", final_url, a);
    const auto t = body.is_object() ? body.find("access_token") : body.end();
    if (!body.is_object() || t == body.end() || !t->is_string() || t->get<std::string>().empty())
      throw api_error("POST " + final_url + ": the answer has no access_token", a.status, 0, false);
    token = t->get<std::string>();
    ++token_generation;
    {
      std::lock_guard lock(stats_mutex);
      ++counters.tokens_obtained;
    }
    spdlog::info("moysklad[{}]: obtained a new access token for {} (older tokens of this user are revoked)", options.name,
                 options.login);
    // The token stays in use for this run even when it cannot be stored; the next run would
    // then obtain another one (revoking this).
    if (!options.save_token) return;
    try {
      options.save_token(token);
    } catch (const std::exception& e) {
      spdlog::error("moysklad[{}]: the new access token could not be saved: {}", options.name, e.what());
    }
  }

  // --- answers ---

  nlohmann::json decode(const std::string& method, const std::string& where, const answer& a) {
    std::string text;
    const std::string encoding = a.header("content-encoding");
    try {
      if (starts_with_ci(encoding, "gzip")) text = gunzip(a.body, options.max_response_bytes);
      else if (encoding.empty() || starts_with_ci(encoding, "identity")) text = a.body;
      else throw std::runtime_error("unsupported Content-Encoding \"" + encoding + "\"");
    } catch (const std::runtime_error& e) {
      const bool too_large = std::string_view(e.what()).find("more than") != std::string_view::npos;
      throw api_error(method + " " + where + ": HTTP " + std::to_string(a.status) + " with an undecodable body: " + e.what(),
                      0, 0, !too_large);
    }
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) return nullptr;
    try {
      return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
      // An error page of a proxy is not JSON; the status says enough for those.
      if (a.status >= 300) return nullptr;
      throw api_error(method + " " + where + ": HTTP " + std::to_string(a.status) + " with a body that is not JSON", 0, 0,
                      true);
    }
  }

  // The {"errors":[…]} of an error answer, or null when it has none that can be read.
  nlohmann::json error_body(const std::string& method, const std::string& where, const answer& a) {
    try {
      return decode(method, where, a);
    } catch (const api_error&) {
      return nullptr;
    }
  }

  api_error error(const std::string& method, const std::string& where, const answer& a, const nlohmann::json& body,
                  const std::string& context = {}) {
    auto [details, code] = error_details(body);
    if (a.status == 415 && details.empty())
      details = "the server refused the request's encoding: МойСклад answers 415 when Accept-Encoding: gzip is "
                "missing (it was sent; a proxy may strip it) or the Content-Type is not JSON";
    if (details.empty()) details = a.header("x-lognex-auth-message");
    std::string what = method + " " + where + context + ": HTTP " + std::to_string(a.status);
    if (!a.reason.empty()) what += " " + a.reason;
    if (!details.empty()) what += " (" + details + ")";
    if (a.status == 429) what += ", " + std::to_string(options.max_429_tries) + " tries";
    const bool transient = a.status >= 500 || a.status == 429 || is_transient_code(code);
    return api_error(what, a.status, code, transient);
  }

  nlohmann::json request(bhttp::verb method, const std::string& path, const nlohmann::json* json, int units) {
    const url u = resolve(base, path);
    const std::string method_name(bhttp::to_string(method));
    std::string body;
    if (json) {
      try {
        body = json->dump();
      } catch (const nlohmann::json::exception& e) {
        throw api_error(method_name + " " + u.str() + ": the request body cannot be sent: " + e.what(), 0, 0, false);
      }
    }
    for (int attempt = 0;; ++attempt) {
      auto [auth, generation] = authorization();
      std::string final_url;
      const answer a = transfer(method, u, body, auth, units, final_url);
      if (a.status == 401 && can_login() && attempt == 0) {
        spdlog::warn("moysklad[{}]: {} {}: HTTP 401 with the current token, obtaining a new one", options.name, method_name, final_url);
        renew_token(generation);
        continue;
      }
      if (a.status >= 200 && a.status < 300) return decode(method_name, final_url, a);
      throw error(method_name, final_url, a, error_body(method_name, final_url, a));
    }
  }
};

client::client(client_options options) : impl_(std::make_unique<impl>(std::move(options))) {}
client::~client() = default;

nlohmann::json client::get(const std::string& path_or_href, weight w) {
  // The stock reports cost their own weight whatever the auth scheme (API.md §8).
  const int units = w == weight::stock_report ? impl_->options.stock_report_weight : impl_->options.auth_weight;
  return impl_->request(bhttp::verb::get, path_or_href, nullptr, units);
}

nlohmann::json client::post(const std::string& path_or_href, const nlohmann::json& body) {
  return impl_->request(bhttp::verb::post, path_or_href, &body, impl_->options.auth_weight);
}

nlohmann::json client::put(const std::string& path_or_href, const nlohmann::json& body) {
  return impl_->request(bhttp::verb::put, path_or_href, &body, impl_->options.auth_weight);
}

void client::del(const std::string& path_or_href) {
  impl_->request(bhttp::verb::delete_, path_or_href, nullptr, impl_->options.auth_weight);
}

client_stats client::stats() const {
  const auto limits = impl_->limiter->snapshot();
  std::lock_guard lock(impl_->stats_mutex);
  client_stats s = impl_->counters;
  s.rate_limit_waits = limits.waits;
  s.rate_limit_waited = limits.waited;
  return s;
}

}  // namespace obmen::moysklad
