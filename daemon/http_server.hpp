#pragma once
// The HTTP listener (Beast), plain or TLS (OpenSSL). Runs entirely on one io_context thread; every read and write has a
// timeout and every body an explicit limit (uploads stream to disk through http::route).
// Routes are matched by exact path; the table can be replaced at any time from the io thread
// (SIGHUP reload). stop() closes the acceptor and idle keep-alive connections, lets requests in
// flight finish, and reports through `drained()` when the last connection is gone.
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/http.hpp"
#include "common/net.hpp"

namespace boost::asio::ssl {
class context;
}

namespace obmen::daemon {

struct http_limits {
  int read_timeout_seconds = 60;
  int write_timeout_seconds = 60;
  int idle_timeout_seconds = 75;
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_body_bytes = 1024 * 1024;
  int max_connections = 256;
  std::vector<std::string> trusted_proxies;  // peers whose X-Forwarded-For names the client
};

class http_server {
 public:
  using route_table = std::map<std::string, std::shared_ptr<http::route>>;

  explicit http_server(net::io_context& ioc);
  ~http_server();

  // Binds and listens; throws boost::system::system_error naming the address on failure.
  // Returns "address:port" actually bound (port 0 picks a free one).
  std::string listen(const std::string& address, std::uint16_t port);
  void start();
  void set_routes(route_table routes) { routes_ = std::move(routes); }
  void set_limits(const http_limits& l) { limits_ = l; }
  // TLS for connections accepted from now on (nullptr: plain HTTP). The TLS handshake has the
  // read timeout; a client speaking plain HTTP to a TLS listener is dropped after it.
  void set_tls(std::shared_ptr<net::ssl::context> tls) { tls_ = std::move(tls); }
  // A server context from PEM files (TLS 1.2 and 1.3 only). Throws std::runtime_error naming the
  // file and OpenSSL's reason when a file cannot be read or the key does not match.
  static std::shared_ptr<net::ssl::context> make_tls(const std::string& certificate_file, const std::string& key_file);

  void stop();
  std::size_t connections() const { return sessions_.size(); }
  // Called once after stop() when no connection is left.
  void on_drained(std::function<void()> f) { on_drained_ = std::move(f); }

 private:
  struct session_state;
  net::awaitable<void> accept_loop();
  net::awaitable<void> session(net::ip::tcp::socket socket);
  template <typename Stream>
  net::awaitable<void> serve(Stream& stream, std::list<session_state>::iterator me, const std::string& remote);
  void session_done(std::list<session_state>::iterator);

  net::io_context& ioc_;
  net::ip::tcp::acceptor acceptor_;
  route_table routes_;
  http_limits limits_;
  std::shared_ptr<net::ssl::context> tls_;
  std::list<session_state> sessions_;
  bool stopping_ = false;
  std::function<void()> on_drained_;
};

}  // namespace obmen::daemon
