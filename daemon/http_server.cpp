#include "daemon/http_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <type_traits>
#include <filesystem>
#include <fstream>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

namespace obmen::daemon {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

struct http_server::session_state {
  beast::tcp_stream* stream = nullptr;
  bool idle = true;                    // waiting for the next request's first byte
};

namespace {

http::request to_request(const bhttp::request_header<>& h, const std::string& remote) {
  http::request r;
  r.method = std::string(h.method_string());
  r.target = std::string(h.target());
  const auto q = r.target.find('?');
  r.path = http::percent_decode(std::string_view(r.target).substr(0, q), false);
  if (q != std::string::npos) {
    std::string_view rest = std::string_view(r.target).substr(q + 1);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
      if (pair.empty()) continue;
      const auto eq = pair.find('=');
      r.query.emplace(http::percent_decode(pair.substr(0, eq), true),
                      eq == std::string_view::npos ? std::string{} : http::percent_decode(pair.substr(eq + 1), true));
    }
  }
  for (const auto& f : h) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, inserted] = r.headers.emplace(name, std::string(f.value()));
    if (!inserted) it->second += (name == "cookie" ? "; " : ", ") + std::string(f.value());
  }
  r.remote = remote;
  return r;
}

bhttp::response<bhttp::string_body> to_beast(const http::response& r, unsigned version, bool keep_alive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
  res.set(bhttp::field::server, "obmend");
  res.set(bhttp::field::content_type, r.content_type);
  for (const auto& [k, v] : r.headers) res.insert(k, v);
  res.body() = r.body;
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

http::response plain(int status, std::string body) {
  http::response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace

http_server::http_server(net::io_context& ioc) : ioc_(ioc), acceptor_(ioc) {}
http_server::~http_server() = default;

std::string http_server::listen(const std::string& address, std::uint16_t port) {
  boost::system::error_code ec;
  const auto addr = net::ip::make_address(address, ec);
  if (ec) throw boost::system::system_error(ec, "http.address '" + address + "'");
  const tcp::endpoint ep{addr, port};
  acceptor_.open(ep.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  acceptor_.bind(ep, ec);
  if (ec) throw boost::system::system_error(ec, "cannot listen on " + address + ":" + std::to_string(port));
  acceptor_.listen(net::socket_base::max_listen_connections);
  const auto bound = acceptor_.local_endpoint();
  return bound.address().to_string() + ":" + std::to_string(bound.port());
}

std::shared_ptr<net::ssl::context> http_server::make_tls(const std::string& certificate_file, const std::string& key_file) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 | net::ssl::context::no_sslv3 |
                   net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(certificate_file, ec);
  if (ec) throw std::runtime_error("http.tls.certificate '" + certificate_file + "': " + ec.message());
  ctx->use_private_key_file(key_file, net::ssl::context::pem, ec);
  if (ec && ec.message().find("mismatch") != std::string::npos)
    throw std::runtime_error("http.tls.key '" + key_file + "' does not match the certificate '" + certificate_file + "' (" +
                             ec.message() + ")");
  if (ec) throw std::runtime_error("http.tls.key '" + key_file + "': " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    throw std::runtime_error("http.tls.key '" + key_file + "' does not match the certificate '" + certificate_file + "'");
  return ctx;
}

void http_server::start() {
  net::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::critical("http: accept loop failed: {}", ex.what());
      throw;  // a broken invariant: let the daemon die and systemd restart it
    }
  });
}

void http_server::stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  // Idle keep-alive connections have nothing in flight: close them now. Busy ones finish
  // their request and close after the answer.
  for (auto& s : sessions_)
    if (s.idle && s.stream) s.stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  if (sessions_.empty() && on_drained_) net::post(ioc_, std::exchange(on_drained_, nullptr));
}

net::awaitable<void> http_server::accept_loop() {
  while (!stopping_) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(net::redirect_error(net::use_awaitable, ec));
    if (ec) {
      if (stopping_ || ec == net::error::operation_aborted) break;
      spdlog::warn("http: accept failed: {}", ec.message());
      continue;
    }
    if (static_cast<int>(sessions_.size()) >= limits_.max_connections) {
      spdlog::warn("http: refusing a connection from {}: {} connections open (http.max_connections)",
                   socket.remote_endpoint(ec).address().to_string(), sessions_.size());
      socket.close(ec);
      continue;
    }
    net::co_spawn(ioc_, session(std::move(socket)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("http: connection ended by an error: {}", ex.what());
      }
    });
  }
}

void http_server::session_done(std::list<session_state>::iterator it) {
  sessions_.erase(it);
  if (stopping_ && sessions_.empty() && on_drained_) net::post(ioc_, std::exchange(on_drained_, nullptr));
}

net::awaitable<void> http_server::session(tcp::socket socket) {
  boost::system::error_code ec;
  const auto rep = socket.remote_endpoint(ec);
  const std::string remote = ec ? std::string("?") : rep.address().to_string() + ":" + std::to_string(rep.port());
  auto me = sessions_.insert(sessions_.end(), session_state{nullptr, true});
  struct guard {
    http_server* self;
    std::list<session_state>::iterator it;
    ~guard() { self->session_done(it); }
  } g{this, me};
  if (!tls_) {
    beast::tcp_stream stream(std::move(socket));
    me->stream = &stream;
    co_await serve(stream, me, remote);
    stream.close();
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls_);
  me->stream = &beast::get_lowest_layer(stream);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(limits_.read_timeout_seconds));
  co_await stream.async_handshake(net::ssl::stream_base::server, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    spdlog::debug("http: {}: TLS handshake: {}", remote, ec.message());
    beast::get_lowest_layer(stream).close();
    co_return;
  }
  co_await serve(stream, me, remote);
  beast::get_lowest_layer(stream).expires_after(5s);
  co_await stream.async_shutdown(net::redirect_error(net::use_awaitable, ec));
  beast::get_lowest_layer(stream).close();
}

template <typename Stream>
net::awaitable<void> http_server::serve(Stream& stream, std::list<session_state>::iterator me, const std::string& remote) {
  boost::system::error_code ec;
  auto& tcp_layer = beast::get_lowest_layer(stream);
  beast::flat_buffer buffer;
  bool unread_body = false;            // we answered without reading the whole request body
  while (!stopping_) {
    me->idle = true;
    bhttp::request_parser<bhttp::empty_body> header_parser;
    header_parser.header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    // Beast checks Content-Length against the body limit while parsing the header; the real
    // limits are set per route below, once we know whether the body is an upload.
    header_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    tcp_layer.expires_after(std::chrono::seconds(limits_.idle_timeout_seconds));
    co_await bhttp::async_read_header(stream, buffer, header_parser, net::redirect_error(net::use_awaitable, ec));
    me->idle = false;
    if (ec) {
      if (ec == bhttp::error::header_limit) {
        auto res = to_beast(plain(431, "request header too large\n"), 11, false);
        tcp_layer.expires_after(std::chrono::seconds(limits_.write_timeout_seconds));
        co_await bhttp::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      } else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                 ec != net::error::operation_aborted && ec != net::error::connection_reset &&
                 ec != net::error::eof && ec != net::error::not_connected) {
        spdlog::debug("http: {}: reading request header: {}", remote, ec.message());
      }
      break;
    }

    const auto& header = header_parser.get();
    const unsigned version = header.version();
    bool keep_alive = header.keep_alive();
    http::request req = to_request(header, remote);
    // Behind a trusted proxy the client is the last X-Forwarded-For address (the one the proxy
    // itself appended); anything before it came from the client and proves nothing.
    if (!limits_.trusted_proxies.empty()) {
      const std::string peer = remote.substr(0, remote.rfind(':'));
      const std::string xff = req.header("x-forwarded-for");
      if (!xff.empty() && std::find(limits_.trusted_proxies.begin(), limits_.trusted_proxies.end(), peer) !=
                              limits_.trusted_proxies.end()) {
        std::string last = xff.substr(xff.rfind(',') == std::string::npos ? 0 : xff.rfind(',') + 1);
        last.erase(0, last.find_first_not_of(" \t"));
        last.erase(last.find_last_not_of(" \t") + 1);
        if (!last.empty()) req.remote = last + ":0";
      }
    }
    http::response res;
    const auto started = std::chrono::steady_clock::now();

    std::shared_ptr<http::route> route;
    if (auto it = routes_.find(req.path); it != routes_.end()) route = it->second;

    if (route && route->is_upload(req)) {
      http::upload_decision decision = co_await route->prepare_upload(req);
      if (!decision.target) {
        res = std::move(decision.answer);
        keep_alive = false;
        unread_body = true;
      } else {
        http::upload_target target = std::move(*decision.target);
        std::string error;
        std::uint64_t bytes = 0;
        {
          namespace fs = std::filesystem;
          std::error_code fec;
          // Anything past the acknowledged offset is a chunk that was never answered
          // "success" (an earlier crash or failed upload): cut it before appending.
          if (fs::exists(target.file, fec) && fs::file_size(target.file, fec) > target.offset)
            fs::resize_file(target.file, target.offset, fec);
          bhttp::request_parser<bhttp::file_body> body_parser{std::move(header_parser)};
          body_parser.body_limit(target.limit);
          const auto declared = body_parser.content_length();
          if (declared && *declared > target.limit) {
            // Content-Length is checked against a limit only while the header is parsed, so
            // a declared size over this upload's limit is refused here, unread.
            error = target.too_large_answer;
            keep_alive = false;
            unread_body = true;
          } else {
            // Beast 1.74's file_mode::append truncates and append_existing writes from the
            // start: create the file, open it as existing and seek to the acknowledged end.
            if (!fs::exists(target.file, fec)) std::ofstream(target.file, std::ios::binary);
            body_parser.get().body().open(target.file.c_str(), beast::file_mode::append_existing, ec);
            if (!ec) body_parser.get().body().file().seek(target.offset, ec);
          }
          if (error.empty() && ec) {
            error = "cannot open spool file: " + ec.message();
            keep_alive = false;
          } else if (error.empty()) {
            tcp_layer.expires_after(std::chrono::seconds(limits_.read_timeout_seconds));
            co_await bhttp::async_read(stream, buffer, body_parser, net::redirect_error(net::use_awaitable, ec));
            body_parser.get().body().close();
            if (ec == bhttp::error::body_limit) {
              error = target.too_large_answer;
              unread_body = true;
            }
            else if (ec == beast::error::timeout)
              error = "upload timed out after " + std::to_string(limits_.read_timeout_seconds) + " s (http.read_timeout)";
            else if (ec)
              error = "upload interrupted: " + ec.message();
            if (ec) keep_alive = false;
            const auto size = fs::file_size(target.file, fec);
            bytes = (!fec && size > target.offset) ? size - target.offset : 0;
            if (!error.empty()) {
              fs::resize_file(target.file, target.offset, fec);
              bytes = 0;
            }
          }
        }
        const bool peer_gone = ec && ec != bhttp::error::body_limit;
        res = co_await route->finish_upload(req, target, error, bytes);
        if (target.release) target.release();
        if (peer_gone) break;  // nobody to answer
      }
    } else {
      bhttp::request_parser<bhttp::string_body> body_parser{std::move(header_parser)};
      body_parser.body_limit(limits_.max_body_bytes);
      const auto declared = body_parser.content_length();
      if (declared && *declared > limits_.max_body_bytes) {
        ec = bhttp::error::body_limit;  // refused unread (see the upload branch)
      } else {
        tcp_layer.expires_after(std::chrono::seconds(limits_.read_timeout_seconds));
        co_await bhttp::async_read(stream, buffer, body_parser, net::redirect_error(net::use_awaitable, ec));
      }
      if (ec == bhttp::error::body_limit) {
        res = plain(413, "request body larger than " + std::to_string(limits_.max_body_bytes) + " bytes (http.max_body_size)\n");
        keep_alive = false;
        unread_body = true;
      } else if (ec) {
        break;
      } else {
        req.body = std::move(body_parser.get().body());
        if (!route) {
          res = plain(404, "not found: " + req.path + "\n");
        } else {
          try {
            res = co_await route->handle(req);
          } catch (const std::exception& e) {
            spdlog::error("http: {} {}: {}", req.method, req.path, e.what());
            res = plain(500, "internal error\n");
          }
        }
      }
    }

    if (stopping_ || res.close) keep_alive = false;
    auto out = to_beast(res, version, keep_alive);
    tcp_layer.expires_after(std::chrono::seconds(limits_.write_timeout_seconds));
    co_await bhttp::async_write(stream, out, net::redirect_error(net::use_awaitable, ec));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    spdlog::debug("http: {} {} {} → {} in {} ms", remote, req.method, req.target, res.status, ms);
    if (ec || !keep_alive) break;
  }
  // Plain HTTP: FIN now. TLS: the caller sends close_notify first (session()).
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) tcp_layer.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (unread_body) {
    // Closing with unread bytes in the receive buffer makes the kernel send RST, which can
    // destroy our answer before the client reads it. Read and drop the rest of the body
    // (bounded in bytes and time) so the client sees the "failure" line.
    std::array<char, 64 * 1024> sink{};
    std::uint64_t drained = 0;
    tcp_layer.expires_after(std::chrono::seconds(5));
    while (drained < (64ull << 20)) {
      const std::size_t n = co_await stream.async_read_some(net::buffer(sink), net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
      drained += n;
    }
  }
}

}  // namespace obmen::daemon
