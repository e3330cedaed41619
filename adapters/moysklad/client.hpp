#pragma once
// The МойСклад JSON API 1.2 over HTTP(S): `api` (api.hpp) implemented with Boost.Beast, kept
// entirely inside client.cpp so this header stays light.
//
// What every request gets (API.md §2–§3, §8–§9):
// - headers Accept-Encoding: gzip (without it the server answers 415), Accept:
//   application/json;charset=utf-8, User-Agent, Content-Type: application/json on bodies, and
//   X-Lognex-WebHook-DisableByPrefix on POST/PUT/DELETE when `webhook_disable_prefix` is set;
// - the rate limiter (rate_limiter.hpp): `auth_weight` units, `stock_report_weight` for
//   weight::stock_report (5 whatever the auth), at most `max_parallel` in flight;
// - a pooled keep-alive connection per scheme+host+port, dropped after
//   `max_requests_per_connection` requests or `max_idle` unused (the server turns long-lived
//   connections into 500s);
// - a time-out on every step: resolve, connect and TLS handshake (`connect_timeout` each),
//   writing the request and reading the answer (`request_timeout` each);
// - redirects 301/302/303/307/308 followed up to `max_redirects` times (303 turns into a GET);
// - a gzip body decoded (at most `max_response_bytes`), JSON parsed; an empty body is null.
//
// URLs: "entity/product?limit=1000" is appended to base_url; "/api/…" is a path on base_url's
// host; "http(s)://…" (a returned href) is requested as it is. Characters not allowed in a URL
// (the stock webhook's reportUrl has a raw space, filters may hold Cyrillic) are percent-encoded;
// existing %xx escapes are kept. Credentials go only to base_url's scheme+host+port, never to
// another host an href or a redirect points at.
//
// Authentication: `token` (Bearer) when given. Otherwise `login`+`password` are used once, for
// POST security/token, and the token obtained is handed to `save_token` to be stored and passed
// as `token` next run — every new token revokes the user's older ones, so never obtain one per
// run. A 401 while login+password are known obtains a new token once and repeats the request;
// a second 401 is an error. Credentials and tokens never appear in errors or logs.
//
// Errors (api_error): 429 is waited out (X-Lognex-Retry-After, or one bucket window when absent,
// e.g. 1073 too many parallel requests) and retried up to `max_429_tries` tries in all, then
// reported transient. 5xx, network errors, time-outs, undecodable answers and error codes
// 1074/1095 are transient and NOT retried here. Other 4xx are permanent, with МойСклад's
// "code error" texts from the {"errors":[…]} body in what().
//
// Thread-safe: any number of threads may call get/post/put/del at once; each call blocks its
// thread (run it on a worker pool, never on an io_context thread).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "adapters/moysklad/api.hpp"
#include "adapters/moysklad/rate_limiter.hpp"

namespace obmen::moysklad {

struct client_options {
  std::string name = "moysklad";                // the source's name, in every log line: moysklad[<name>]
  std::string base_url = "https://api.moysklad.ru/api/remap/1.2/";  // http:// is allowed (tests)
  std::string token;                            // Bearer token; secret
  std::string login;                            // user@account, only to obtain a token
  std::string password;                         // secret
  std::function<void(const std::string& token)> save_token;  // called with each token obtained

  int auth_weight = 4;                          // units per request: 4 for a user token from 1 Dec 2026, 1 for a solution token
  int stock_report_weight = 5;                  // units of weight::stock_report (report/stock/all, bystore)
  int max_parallel = 4;                         // requests in flight (the server allows 5 per user)
  int budget = 45;                              // units per budget_window
  std::chrono::milliseconds budget_window{3000};
  std::chrono::milliseconds budget_margin{250};  // units come back after window + margin (rate_limiter.hpp)
  // A limiter shared with other clients of the same user (the budget is per user); when set,
  // max_parallel/budget/budget_window above are not used.
  std::shared_ptr<rate_limiter> limiter;

  std::chrono::milliseconds connect_timeout{10'000};   // resolve, connect, TLS handshake, each
  std::chrono::milliseconds request_timeout{300'000};  // write, read the answer, each (answers may take 300 s)
  int max_429_tries = 8;
  int max_redirects = 5;
  int max_requests_per_connection = 100;
  std::chrono::milliseconds max_idle{25'000};   // a pooled connection unused longer is closed
  std::size_t max_response_bytes = 256u << 20;  // decoded (and compressed) body limit

  std::string user_agent = "obmen";
  std::string webhook_disable_prefix;           // e.g. "https://portal.example.ru/obmen/moysklad"
  std::string ca_file;                          // PEM bundle; empty: the system's
  bool verify_tls = true;
};

// Counters for /metrics; a snapshot.
struct client_stats {
  std::map<int, std::uint64_t> responses;       // answers by HTTP status; 0: network error or time-out
  std::uint64_t too_many_requests = 0;          // 429s seen (each retried or, the last one, reported)
  std::uint64_t rate_limit_waits = 0;           // times the limiter made a request wait (units or a 429 penalty)
  std::chrono::milliseconds rate_limit_waited{0};  // their total
  std::uint64_t connections_opened = 0;
  std::uint64_t tokens_obtained = 0;            // POST security/token that succeeded
};

class client : public api {
 public:
  // Throws std::invalid_argument when base_url is not an http(s) URL or there is neither a
  // token nor a login+password.
  explicit client(client_options);
  ~client() override;
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  nlohmann::json get(const std::string& path_or_href, weight = weight::normal) override;
  nlohmann::json post(const std::string& path_or_href, const nlohmann::json& body) override;
  nlohmann::json put(const std::string& path_or_href, const nlohmann::json& body) override;
  void del(const std::string& path_or_href) override;

  client_stats stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Percent-encodes what may not stand raw in a URL's path and query (space, controls, non-ASCII,
// "\"<>\\^`{|}#[]" and a '%' not starting a %xx escape); keeps everything else as it is.
std::string encode_url(std::string_view);

}  // namespace obmen::moysklad
