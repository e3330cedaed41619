#pragma once
// The МойСклад JSON API 1.2 as the rest of the adapter sees it: a blocking, thread-safe JSON
// client. `client` (client.hpp) implements it over HTTPS with gzip, token auth, connection reuse
// and a rate limiter that keeps under the account's budget; tests may implement it in memory.
//
// Paths: "entity/product?limit=1000" is resolved against the configured base URL
// (https://api.moysklad.ru/api/remap/1.2/); an absolute URL (a returned meta.href or nextHref)
// is requested as it is — hrefs are followed verbatim, never rebuilt from a hard-coded host.
//
// Errors: api_error for any answer that is not 2xx after the client's own retries (429 is waited
// out and retried inside the client; 5xx and network errors are NOT retried inside: they are
// reported as transient so the caller's queue or poll loop retries with backoff).
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace obmen::moysklad {

class api_error : public std::runtime_error {
 public:
  // status: the HTTP status, 0 for a network error / time-out / undecodable answer.
  // code: МойСклад's error code from {"errors":[{"code":…}]} (1049, 1021 …), 0 when none.
  // transient: worth retrying later (network, time-out, 5xx, 429 after the retries ran out).
  // what(): one sentence naming the method, the URL (without credentials) and the reason, e.g.
  // "GET https://…/entity/product: HTTP 401 (1056 Ошибка аутентификации: …)".
  api_error(const std::string& what, int status, int code, bool transient)
      : std::runtime_error(what), status_(status), code_(code), transient_(transient) {}
  int status() const { return status_; }
  int code() const { return code_; }
  bool transient() const { return transient_; }

 private:
  int status_, code_;
  bool transient_;
};

// Request weight in rate-limit units: ordinary requests cost the auth scheme's weight (4 for a
// user token, 1 for a solution), the stock reports report/stock/all and report/stock/bystore cost
// 5 whatever the auth (the short …/current reports are ordinary).
enum class weight { normal, stock_report };

class api {
 public:
  virtual ~api() = default;
  // GET; returns the parsed body (an object or an array).
  virtual nlohmann::json get(const std::string& path_or_href, weight = weight::normal) = 0;
  // POST / PUT with a JSON body; returns the parsed answer. Every write carries
  // X-Lognex-WebHook-DisableByPrefix with our own webhook URL (when configured), so obmen's writes
  // do not come back as webhooks.
  virtual nlohmann::json post(const std::string& path_or_href, const nlohmann::json& body) = 0;
  virtual nlohmann::json put(const std::string& path_or_href, const nlohmann::json& body) = 0;
  virtual void del(const std::string& path_or_href) = 0;

  // Pages through a collection: GETs `path_or_href` (add limit=1000 yourself when wanted), calls
  // `rows` with each page's "rows" array, then follows meta.nextHref until there is none.
  // A `rows` callback returning false stops the paging.
  void for_each_page(const std::string& path_or_href, const std::function<bool(const nlohmann::json& rows)>& rows,
                     weight w = weight::normal) {
    std::string next = path_or_href;
    while (!next.empty()) {
      nlohmann::json page = get(next, w);
      const auto r = page.find("rows");
      if (r == page.end() || !r->is_array())
        throw api_error("GET " + next + ": the answer has no \"rows\" array", 200, 0, false);
      if (!rows(*r)) return;
      next.clear();
      if (auto m = page.find("meta"); m != page.end() && m->is_object())
        if (auto n = m->find("nextHref"); n != m->end() && n->is_string()) next = n->get<std::string>();
    }
  }
};

}  // namespace obmen::moysklad
