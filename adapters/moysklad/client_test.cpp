// The client against a tiny in-process HTTP server (one Asio thread, Beast parsing) that plays
// МойСклад: each test scripts its answers and then checks what the server saw.
#include "adapters/moysklad/client.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>

#include "common/net.hpp"  // first: Asio needs <utility> before it with GCC 12

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "adapters/moysklad/gzip.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using obmen::moysklad::api_error;
using obmen::moysklad::client;
using obmen::moysklad::client_options;
using obmen::moysklad::rate_limiter;
using json = nlohmann::json;

struct seen {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // lower-case names
  int connection = 0;                          // 1, 2, … in accept order
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct reply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool gzip = true;   // compress the body as МойСклад does
  bool hang = false;  // read the request, never answer
  bool drop = false;  // close the connection after answering, without saying so (an idle time-out)
};

class test_server {
 public:
  using handler = std::function<reply(const seen&)>;

  explicit test_server(handler h) : handler_(std::move(h)) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~test_server() {
    ioc_.stop();
    thread_.join();
  }

  unsigned short port() const { return port_; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/remap/1.2/"; }
  std::vector<seen> requests() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  int connections() const { return connections_; }

 private:
  struct session {
    explicit session(tcp::socket s, int n) : socket(std::move(s)), number(n) {}
    tcp::socket socket;
    int number;
    beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> req;
    bhttp::response<bhttp::string_body> res;
  };

  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      read(std::make_shared<session>(std::move(s), ++connections_));
      accept();
    });
  }

  void read(std::shared_ptr<session> s) {
    s->req = {};
    bhttp::async_read(s->socket, s->buffer, s->req, [this, s](beast::error_code ec, std::size_t) {
      if (ec) return;
      seen v{std::string(s->req.method_string()), std::string(s->req.target()), s->req.body(), {}, s->number};
      for (const auto& f : s->req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        v.headers[name] = std::string(f.value());
      }
      const reply r = handler_(v);
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(v);
      }
      if (r.hang) {
        hung_.push_back(s);  // keeps the socket open, unanswered
        return;
      }
      s->res = {static_cast<bhttp::status>(r.status), 11};
      s->res.set(bhttp::field::content_type, "application/json;charset=utf-8");
      for (const auto& [k, val] : r.headers) s->res.insert(k, val);
      if (r.gzip && !r.body.empty()) {
        s->res.set(bhttp::field::content_encoding, "gzip");
        s->res.body() = obmen::moysklad::gzip(r.body);
      } else {
        s->res.body() = r.body;
      }
      s->res.keep_alive(s->req.keep_alive());
      s->res.prepare_payload();
      bhttp::async_write(s->socket, s->res, [this, s, drop = r.drop](beast::error_code e, std::size_t) {
        if (drop) s->socket.close();
        else if (!e && s->res.keep_alive()) read(s);
      });
    });
  }

  handler handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  unsigned short port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<seen> seen_;
  std::vector<std::shared_ptr<session>> hung_;
  std::atomic<int> connections_ = 0;
};

reply ok(const json& body) { return {200, body.dump(), {}}; }

reply errors(int status, int code, const std::string& text) {
  return {status, json{{"errors", {{{"error", text}, {"code", code}}}}}.dump(), {}};
}

client_options options_for(const test_server& server) {
  client_options o;
  o.base_url = server.base();
  o.token = "tok-secret-1";
  o.request_timeout = 5000ms;
  o.connect_timeout = 5000ms;
  return o;
}

// A limiter on a fake clock: waits are recorded, not slept.
struct fake_time {
  std::mutex mutex;
  rate_limiter::clock::time_point t{std::chrono::hours(1)};
  std::vector<std::chrono::milliseconds> sleeps;
  std::shared_ptr<rate_limiter> limiter(int max_parallel = 4) {
    return std::make_shared<rate_limiter>(
        obmen::moysklad::rate_limit_options{45, 3000ms, max_parallel},
        [this] {
          std::lock_guard lock(mutex);
          return t;
        },
        [this](rate_limiter::clock::duration d) {
          std::lock_guard lock(mutex);
          sleeps.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(d));
          t += d;
        });
  }
};

template <class F>
api_error thrown(F&& f) {
  try {
    f();
  } catch (const api_error& e) {
    return e;
  }
  FAIL("no api_error");
  return api_error("", -1, -1, false);
}

}  // namespace

TEST_CASE("client: headers, gzip answers, JSON bodies, keep-alive on one connection") {
  test_server server([](const seen& r) {
    if (r.method == "GET") return ok({{"name", "Товар"}, {"target", r.target}});
    if (r.method == "DELETE") return reply{200, "", {}};
    return ok({{"echo", json::parse(r.body)}});
  });
  auto o = options_for(server);
  o.webhook_disable_prefix = "https://portal.example.ru/hooks";
  o.user_agent = "obmen-test/1";
  client c(o);

  const json product = c.get("entity/product/1");
  CHECK(product["name"] == "Товар");
  CHECK(product["target"] == "/api/remap/1.2/entity/product/1");
  CHECK(c.post("entity/product", json{{"name", "Новый"}})["echo"]["name"] == "Новый");
  CHECK(c.put("entity/product/1", json{{"code", "A1"}})["echo"]["code"] == "A1");
  c.del("entity/product/1");

  const auto seen = server.requests();
  REQUIRE(seen.size() == 4);
  for (const auto& r : seen) {
    CHECK(r.header("accept-encoding") == "gzip");
    CHECK(r.header("accept") == "application/json;charset=utf-8");
    CHECK(r.header("authorization") == "Bearer tok-secret-1");
    CHECK(r.header("user-agent") == "obmen-test/1");
    CHECK(r.header("host") == "127.0.0.1:" + std::to_string(server.port()));
    CHECK(r.connection == 1);  // all four over one kept-alive connection
  }
  CHECK(seen[0].header("x-lognex-webhook-disablebyprefix").empty());
  CHECK(seen[0].header("content-type").empty());
  for (int i = 1; i < 4; ++i)
    CHECK(seen[static_cast<std::size_t>(i)].header("x-lognex-webhook-disablebyprefix") == "https://portal.example.ru/hooks");
  CHECK(seen[1].header("content-type") == "application/json");
  CHECK(json::parse(seen[1].body) == json{{"name", "Новый"}});
  CHECK(server.connections() == 1);

  const auto s = c.stats();
  CHECK(s.connections_opened == 1);
  CHECK(s.responses == std::map<int, std::uint64_t>{{200, 4}});
}

TEST_CASE("client: a connection serves at most max_requests_per_connection requests and max_idle") {
  test_server server([](const seen&) { return ok(json::object()); });
  auto o = options_for(server);
  o.max_requests_per_connection = 2;
  client c(o);
  for (int i = 0; i < 5; ++i) c.get("entity/store");
  CHECK(server.connections() == 3);
  CHECK(c.stats().connections_opened == 3);

  auto o2 = options_for(server);
  o2.max_idle = 0ms;  // any idle time is too long
  client c2(o2);
  c2.get("entity/store");
  c2.get("entity/store");
  CHECK(server.connections() == 5);
}

TEST_CASE("client: a kept-alive connection the server closed is replaced for GET/PUT/DELETE, not for POST") {
  test_server server([](const seen&) { return reply{200, R"({"ok":1})", {}, true, false, true}; });
  client c(options_for(server));
  CHECK(c.get("entity/store") == json{{"ok", 1}});
  CHECK(c.get("entity/store") == json{{"ok", 1}});  // the pooled connection fails: a new one
  CHECK(c.put("entity/store/1", json::object()) == json{{"ok", 1}});
  CHECK(server.connections() == 3);
  CHECK(server.requests().size() == 3);
  const api_error e = thrown([&] { c.post("entity/store", json::object()); });  // may have been processed
  CHECK(e.status() == 0);
  CHECK(e.transient());
  CHECK(std::string(e.what()).starts_with("POST " + server.base() + "entity/store: "));
  CHECK(c.stats().connections_opened == 3);
}

TEST_CASE("client: an empty answer is null; a plain (uncompressed) answer is read too") {
  test_server server([](const seen& r) {
    if (r.target.ends_with("/empty")) return reply{200, "", {}};
    return reply{200, R"({"plain":true})", {}, false};
  });
  client c(options_for(server));
  CHECK(c.get("x/empty").is_null());
  CHECK(c.get("x/plain") == json{{"plain", true}});
}

TEST_CASE("client: hrefs verbatim, relative paths on the base, raw spaces and Cyrillic encoded once") {
  test_server server([](const seen& r) { return ok({{"target", r.target}}); });
  client c(options_for(server));
  const std::string base = server.base();
  // The stock webhook's reportUrl carries a raw space.
  CHECK(c.get(base + "report/stock/all/current?changedSince=2022-09-24 19:14:32")["target"] ==
        "/api/remap/1.2/report/stock/all/current?changedSince=2022-09-24%2019:14:32");
  CHECK(c.get("entity/product?filter=name=Чай;code=a%20b&limit=1000")["target"] ==
        "/api/remap/1.2/entity/product?filter=name=%D0%A7%D0%B0%D0%B9;code=a%20b&limit=1000");
  CHECK(c.get("/other/root")["target"] == "/other/root");
  CHECK(c.get("entity/x?q=100%")["target"] == "/api/remap/1.2/entity/x?q=100%25");
  CHECK(obmen::moysklad::encode_url("a b\"<>{}|\\^`#[]%zz%2F") == "a%20b%22%3C%3E%7B%7D%7C%5C%5E%60%23%5B%5D%25zz%2F");
}

TEST_CASE("client: for_each_page follows nextHref until the last page") {
  test_server server([](const seen& r) {
    const std::string self = "http://127.0.0.1:" + r.header("host").substr(r.header("host").find(':') + 1);
    const std::string coll = self + "/api/remap/1.2/entity/product";
    if (r.target == "/api/remap/1.2/entity/product?limit=2")
      return ok({{"meta", {{"size", 5}, {"nextHref", coll + "?limit=2&offset=2"}}}, {"rows", {{{"id", 1}}, {{"id", 2}}}}});
    if (r.target == "/api/remap/1.2/entity/product?limit=2&offset=2")
      return ok({{"meta", {{"size", 5}, {"nextHref", coll + "?limit=2&offset=4"}}}, {"rows", {{{"id", 3}}, {{"id", 4}}}}});
    if (r.target == "/api/remap/1.2/entity/product?limit=2&offset=4") return ok({{"meta", {{"size", 5}}}, {"rows", {{{"id", 5}}}}});
    return errors(404, 1021, "unexpected " + r.target);
  });
  client c(options_for(server));
  std::vector<int> ids;
  c.for_each_page("entity/product?limit=2", [&](const json& rows) {
    for (const auto& row : rows) ids.push_back(row["id"].get<int>());
    return true;
  });
  CHECK(ids == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(server.requests().size() == 3);
  CHECK(server.connections() == 1);

  ids.clear();
  c.for_each_page("entity/product?limit=2", [&](const json& rows) {
    ids.push_back(static_cast<int>(rows.size()));
    return false;  // stop after the first page
  });
  CHECK(ids == std::vector<int>{2});
  CHECK(server.requests().size() == 4);
}

TEST_CASE("client: 415 says gzip was refused") {
  test_server server([](const seen&) { return reply{415, "", {}}; });
  client c(options_for(server));
  const api_error e = thrown([&] { c.get("entity/product"); });
  CHECK(e.status() == 415);
  CHECK_FALSE(e.transient());
  CHECK(std::string(e.what()) == "GET " + server.base() +
                                     "entity/product: HTTP 415 Unsupported Media Type (the server refused the request's "
                                     "encoding: МойСклад answers 415 when Accept-Encoding: gzip is missing (it was sent; "
                                     "a proxy may strip it) or the Content-Type is not JSON)");
}

TEST_CASE("client: 404 with an errors body is permanent, with МойСклад's code and text") {
  test_server server([](const seen&) { return errors(404, 1021, "Объект не найден"); });
  client c(options_for(server));
  const api_error e = thrown([&] { c.get("entity/product/x"); });
  CHECK(e.status() == 404);
  CHECK(e.code() == 1021);
  CHECK_FALSE(e.transient());
  CHECK(std::string(e.what()) == "GET " + server.base() + "entity/product/x: HTTP 404 Not Found (1021 Объект не найден)");
}

TEST_CASE("client: 5xx and codes 1074/1095 are transient and not retried here") {
  int calls = 0;
  test_server server([&](const seen& r) {
    ++calls;
    if (r.target.ends_with("/maintenance")) return errors(503, 1074, "Сервис временно недоступен");
    if (r.target.ends_with("/later")) return errors(400, 1095, "Повторите попытку через некоторое время");
    return reply{500, "<html>oops</html>", {}, false};
  });
  client c(options_for(server));
  const api_error e = thrown([&] { c.get("entity/product"); });
  CHECK(e.status() == 500);
  CHECK(e.transient());
  CHECK(std::string(e.what()) == "GET " + server.base() + "entity/product: HTTP 500 Internal Server Error");
  CHECK(calls == 1);

  const api_error m = thrown([&] { c.get("x/maintenance"); });
  CHECK((m.status() == 503 && m.code() == 1074 && m.transient()));
  const api_error l = thrown([&] { c.get("x/later"); });
  CHECK((l.status() == 400 && l.code() == 1095 && l.transient()));
  CHECK(calls == 3);
}

TEST_CASE("client: 429 is waited out for X-Lognex-Retry-After and retried; the bucket window when absent") {
  int calls = 0;
  test_server server([&](const seen&) {
    ++calls;
    if (calls == 1)
      return reply{429, json{{"errors", {{{"error", "rate"}, {"code", 1049}}}}}.dump(),
                   {{"X-Lognex-Retry-After", "1500"}, {"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Limit", "45"}}};
    if (calls == 2)
      return reply{429, json{{"errors", {{{"error", "parallel"}, {"code", 1073}}}}}.dump(), {{"X-Lognex-Auth", "429005"}}};
    return reply{200, R"({"ok":1})", {{"X-RateLimit-Remaining", "40"}, {"X-Lognex-Retry-TimeInterval", "3000"}}};
  });
  fake_time ft;
  auto o = options_for(server);
  o.limiter = ft.limiter();
  client c(o);
  CHECK(c.get("entity/product") == json{{"ok", 1}});
  CHECK(calls == 3);
  // 1500 ms after the first 429, then 3000 ms (the window) after the 1073 without Retry-After.
  CHECK(ft.sleeps == std::vector<std::chrono::milliseconds>{1500ms, 3000ms});
  const auto s = c.stats();
  CHECK(s.too_many_requests == 2);
  CHECK(s.responses == std::map<int, std::uint64_t>{{200, 1}, {429, 2}});
  CHECK(s.rate_limit_waits == 2);
  CHECK(s.rate_limit_waited == 4500ms);
}

TEST_CASE("client: 429 after max_429_tries tries is a transient error") {
  int calls = 0;
  test_server server([&](const seen&) {
    ++calls;
    return reply{429, json{{"errors", {{{"error", "Превышено ограничение"}, {"code", 1049}}}}}.dump(),
                 {{"X-Lognex-Retry-After", "100"}}};
  });
  fake_time ft;
  auto o = options_for(server);
  o.limiter = ft.limiter();
  client c(o);
  const api_error e = thrown([&] { c.get("entity/product"); });
  CHECK(calls == 8);
  CHECK(e.status() == 429);
  CHECK(e.code() == 1049);
  CHECK(e.transient());
  CHECK(std::string(e.what()) ==
        "GET " + server.base() + "entity/product: HTTP 429 Too Many Requests (1049 Превышено ограничение), 8 tries");
  CHECK(ft.sleeps.size() == 7);
  CHECK(c.stats().too_many_requests == 8);
}

TEST_CASE("client: a server that never answers times out as a transient error") {
  test_server server([](const seen&) { return reply{.hang = true}; });
  auto o = options_for(server);
  o.request_timeout = 300ms;
  client c(o);
  const auto started = std::chrono::steady_clock::now();
  const api_error e = thrown([&] { c.get("entity/product"); });
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(e.status() == 0);
  CHECK(e.transient());
  CHECK(std::string(e.what()) == "GET " + server.base() + "entity/product: read timed out after 300 ms");
  CHECK(took >= 300ms);
  CHECK(took < 3000ms);
  CHECK(c.stats().responses == std::map<int, std::uint64_t>{{0, 1}});
}

TEST_CASE("client: a refused connection is a transient error") {
  unsigned short port = 0;
  {
    net::io_context ioc;
    tcp::acceptor a(ioc, {net::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed: nothing listens there now
  client_options o;
  o.base_url = "http://127.0.0.1:" + std::to_string(port) + "/api/remap/1.2";  // no trailing '/': added
  o.token = "t";
  client c(o);
  const api_error e = thrown([&] { c.get("entity/product"); });
  CHECK(e.status() == 0);
  CHECK(e.transient());
  CHECK(std::string(e.what()) == "GET http://127.0.0.1:" + std::to_string(port) +
                                     "/api/remap/1.2/entity/product: connect: Connection refused");
}

TEST_CASE("client: the token is obtained once from login+password, saved, reused, renewed once after a 401") {
  std::string valid;  // the one token the server accepts
  int issued = 0;
  test_server server([&](const seen& r) {
    if (r.target == "/api/remap/1.2/security/token") {
      // "admin@test:pa:ss" in Basic.
      if (r.method != "POST" || r.header("authorization") != "Basic YWRtaW5AdGVzdDpwYTpzcw==")
        return errors(401, 1056, "Ошибка аутентификации");
      valid = "token-" + std::to_string(++issued);  // a new token revokes the older ones
      return ok({{"access_token", valid}});
    }
    if (r.header("authorization") != "Bearer " + valid) return errors(401, 1056, "Ошибка аутентификации: токен отозван");
    return ok({{"ok", true}});
  });
  std::vector<std::string> saved;
  auto o = options_for(server);
  o.token.clear();
  o.login = "admin@test";
  o.password = "pa:ss";
  o.save_token = [&](const std::string& t) { saved.push_back(t); };
  client c(o);
  for (int i = 0; i < 3; ++i) CHECK(c.get("entity/product") == json{{"ok", true}});
  CHECK(issued == 1);
  CHECK(saved == std::vector<std::string>{"token-1"});
  const auto seen = server.requests();
  REQUIRE(seen.size() == 4);
  CHECK(seen[0].header("accept-encoding") == "gzip");  // the token request needs it too
  CHECK(seen[1].header("authorization") == "Bearer token-1");

  valid = "someone-else-issued-a-token";  // ours is revoked
  CHECK(c.get("entity/product") == json{{"ok", true}});
  CHECK(issued == 2);
  CHECK(saved == std::vector<std::string>{"token-1", "token-2"});
  CHECK(c.stats().tokens_obtained == 2);
}

TEST_CASE("client: a second 401 is a permanent error without credentials in it; a given token is not renewed") {
  int token_requests = 0;
  test_server server([&](const seen& r) {
    if (r.target.ends_with("/security/token")) {
      ++token_requests;
      return ok({{"access_token", "fresh-secret-token"}});
    }
    return reply{401, "", {{"X-Lognex-Auth", "1056"}, {"X-Lognex-Auth-Message", "Invalid credentials"}}};
  });
  auto o = options_for(server);
  o.login = "admin@test";
  o.password = "pa55word";
  client c(o);
  const api_error e = thrown([&] { c.get("entity/product"); });
  CHECK(e.status() == 401);
  CHECK_FALSE(e.transient());
  CHECK(token_requests == 1);
  const std::string what = e.what();
  CHECK(what == "GET " + server.base() + "entity/product: HTTP 401 Unauthorized (Invalid credentials)");
  for (const char* secret : {"pa55word", "tok-secret-1", "fresh-secret-token", "Basic", "Bearer"})
    CHECK(what.find(secret) == std::string::npos);

  client only_token(options_for(server));
  CHECK(thrown([&] { only_token.get("entity/product"); }).status() == 401);
  CHECK(token_requests == 1);
}

TEST_CASE("client: a wrong password fails when obtaining the token") {
  test_server server([](const seen&) { return errors(401, 1056, "Ошибка аутентификации: Неправильный пароль"); });
  auto o = options_for(server);
  o.token.clear();
  o.login = "admin@test";
  o.password = "wrong";
  client c(o);
  const api_error e = thrown([&] { c.get("entity/product"); });
  CHECK(e.code() == 1056);
  CHECK(std::string(e.what()) == "POST " + server.base() +
                                     "security/token (obtaining an access token): HTTP 401 Unauthorized (1056 Ошибка "
                                     "аутентификации: Неправильный пароль)");
}

TEST_CASE("client: redirects are followed, credentials stay on the API host, loops stop") {
  test_server server([](const seen& r) {
    const std::string port = r.header("host").substr(r.header("host").find(':') + 1);
    if (r.target == "/api/remap/1.2/entity/product/ui-id")
      return reply{308, "", {{"Location", "/api/remap/1.2/entity/product/api-id"}}};
    if (r.target == "/api/remap/1.2/entity/product/api-id") return ok({{"id", "api-id"}, {"auth", r.header("authorization")}});
    if (r.target == "/api/remap/1.2/download/1")
      return reply{302, "", {{"Location", "http://localhost:" + port + "/files/1"}}};
    if (r.target == "/files/1") return ok({{"file", 1}, {"auth", r.header("authorization")}});
    if (r.target == "/api/remap/1.2/loop") return reply{302, "", {{"Location", "loop"}}};
    return errors(404, 1002, "unexpected");
  });
  client c(options_for(server));
  CHECK(c.get("entity/product/ui-id") == json{{"id", "api-id"}, {"auth", "Bearer tok-secret-1"}});
  CHECK(c.get("download/1") == json{{"file", 1}, {"auth", ""}});
  const api_error e = thrown([&] { c.get("loop"); });
  CHECK(std::string(e.what()) == "GET " + server.base() + "loop: more than 5 redirects");
  CHECK_FALSE(e.transient());
}

TEST_CASE("client: answers over max_response_bytes are refused") {
  test_server server([](const seen& r) {
    return reply{200, json{{"big", std::string(10000, 'x')}}.dump(), {}, !r.target.ends_with("plain")};
  });
  auto o = options_for(server);
  o.max_response_bytes = 5000;
  client c(o);
  const api_error e = thrown([&] { c.get("gz"); });
  CHECK(std::string(e.what()) ==
        "GET " + server.base() + "gz: HTTP 200 with an undecodable body: gzip data inflates to more than 5000 bytes");
  CHECK_FALSE(e.transient());
  const api_error p = thrown([&] { c.get("plain"); });
  CHECK(std::string(p.what()) == "GET " + server.base() + "plain: the answer is larger than the limit");
}

TEST_CASE("client: options are checked") {
  client_options o;
  o.token = "t";
  o.base_url = "ftp://x/";
  CHECK_THROWS_WITH_AS(client{o}, "moysklad: base_url \"ftp://x/\" is not an http(s) URL", std::invalid_argument);
  client_options none;
  CHECK_THROWS_WITH_AS(client{none}, "moysklad: neither a token nor a login and password are set", std::invalid_argument);
}

TEST_CASE("client: parallel callers share the connections and the limiter") {
  test_server server([](const seen&) { return ok({{"ok", true}}); });
  auto o = options_for(server);
  o.max_parallel = 2;
  o.auth_weight = 1;  // 20 units: no waiting for the budget
  client c(o);
  std::vector<std::thread> threads;
  std::atomic<int> good = 0;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) good += c.get("entity/product") == json{{"ok", true}};
    });
  for (auto& t : threads) t.join();
  CHECK(good == 20);
  CHECK(server.connections() <= 2);
}

// ---------------------------------------------------------------------------------------------
// HTTPS: a throw-away self-signed certificate for "localhost", one connection served by a
// blocking TLS server on its own thread.

namespace {

namespace ssl = boost::asio::ssl;

struct self_signed {
  std::string cert_pem, key_pem;
  self_signed() {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    X509* x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    cert_pem = to_pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
    key_pem = to_pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
    X509_free(x);
    EVP_PKEY_free(key);
  }
  template <class F>
  static std::string to_pem(F&& write) {
    BIO* b = BIO_new(BIO_s_mem());
    write(b);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
  }
};

class tls_server {
 public:
  explicit tls_server(const self_signed& cert) {
    ctx_.use_certificate_chain(net::buffer(cert.cert_pem));
    ctx_.use_private_key(net::buffer(cert.key_pem), ssl::context::pem);
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    thread_ = std::thread([this] { serve(); });
  }
  ~tls_server() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  std::string sni;  // what the client sent, read after the join

 private:
  void serve() {
    beast::error_code ec;
    tcp::socket socket(ioc_);
    acceptor_.accept(socket, ec);
    if (ec) return;
    beast::ssl_stream<tcp::socket> stream(std::move(socket), ctx_);
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) return;  // the client refused our certificate
    if (const char* n = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name)) sni = n;
    beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> req;
    bhttp::read(stream, buffer, req, ec);
    if (ec) return;
    bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
    res.set(bhttp::field::content_encoding, "gzip");
    res.body() = obmen::moysklad::gzip(json{{"tls", true}, {"target", std::string(req.target())}}.dump());
    res.keep_alive(false);
    res.prepare_payload();
    bhttp::write(stream, res, ec);
    stream.shutdown(ec);
  }

  net::io_context ioc_;
  ssl::context ctx_{ssl::context::tls_server};
  tcp::acceptor acceptor_{ioc_};
  std::thread thread_;
};

}  // namespace

TEST_CASE("client: HTTPS with SNI, verified against a CA file; an unknown certificate is refused") {
  const self_signed cert;
  obmen::test::temp_dir dir("obmen-client-test");
  const auto ca = dir / "ca.pem";
  std::ofstream(ca) << cert.cert_pem;

  tls_server good(cert);
  client_options o;
  o.base_url = "https://localhost:" + std::to_string(good.port()) + "/api/remap/1.2/";
  o.token = "t";
  o.ca_file = ca.string();
  client c(o);
  CHECK(c.get("entity/product") == json{{"tls", true}, {"target", "/api/remap/1.2/entity/product"}});
  good.join();
  CHECK(good.sni == "localhost");

  tls_server unknown(cert);
  o.base_url = "https://localhost:" + std::to_string(unknown.port()) + "/api/remap/1.2/";
  o.ca_file.clear();  // the system's CAs do not know our certificate
  client strict(o);
  const api_error e = thrown([&] { strict.get("entity/product"); });
  CHECK(e.status() == 0);
  CHECK(e.transient());
  CHECK(std::string(e.what()).starts_with("GET https://localhost:" + std::to_string(unknown.port()) +
                                          "/api/remap/1.2/entity/product: TLS handshake: certificate verify failed"));
}
