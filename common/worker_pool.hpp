#pragma once
// A pool of worker threads for blocking work: libpq calls and big-file parsing never run on
// the io_context (STYLE.md habit 8). Each thread owns one PostgreSQL connection, opened on
// first use and reopened after it breaks.
//
// From a coroutine on the io_context:
//   auto n = co_await pool.run([](pqxx::connection& c) { pqxx::work tx{c}; …; return 42; });
// The callable runs on a pool thread; its result (or exception) comes back to the awaiting
// coroutine, which resumes on its own executor.
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <variant>

#include <pqxx/pqxx>

#include "common/net.hpp"

namespace obmen {

// Whether an idle connection (no query in flight) is still worth using, without a round trip:
// the server sends nothing unasked to an idle session that does not LISTEN, so a readable socket
// means it sent a termination notice (pg_terminate_backend, shutdown) or closed it (restart).
// False → reconnect before the next task instead of failing that task.
bool idle_connection_alive(pqxx::connection&);

class worker_pool {
 public:
  worker_pool(std::size_t threads, std::string database_url);
  ~worker_pool();
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  // Runs f(connection) on a pool thread. Not a coroutine itself: the callable is moved into
  // the posted work before this returns, so nothing of the caller's temporaries is needed
  // across the suspension (GCC 12 destroys some co_await temporaries twice).
  template <typename F>
  auto run(F&& f) {
    using fn_type = std::decay_t<F>;
    using result = std::invoke_result_t<fn_type&, pqxx::connection&>;
    auto initiate = [this](auto handler, fn_type fn) {
      auto ex = net::get_associated_executor(handler);
      net::post(pool_, [this, handler = std::move(handler), fn = std::move(fn), ex]() mutable {
        std::exception_ptr error;
        if constexpr (std::is_void_v<result>) {
          try {
            fn(connection());
          } catch (...) {
            error = std::current_exception();
          }
          net::post(ex, [handler = std::move(handler), error]() mutable { handler(error); });
        } else {
          result value{};
          try {
            value = fn(connection());
          } catch (...) {
            error = std::current_exception();
          }
          net::post(ex, [handler = std::move(handler), error, value = std::move(value)]() mutable {
            handler(error, std::move(value));
          });
        }
      });
    };
    if constexpr (std::is_void_v<result>)
      return net::async_initiate<const net::use_awaitable_t<>&, void(std::exception_ptr)>(
          std::move(initiate), net::use_awaitable, fn_type(std::forward<F>(f)));
    else
      return net::async_initiate<const net::use_awaitable_t<>&, void(std::exception_ptr, result)>(
          std::move(initiate), net::use_awaitable, fn_type(std::forward<F>(f)));
  }

  // Changes the database for connections opened from now on (SIGHUP reload); open
  // connections are replaced before their next use.
  void set_database_url(std::string url);

  // Waits for queued work to finish, then joins the threads. Idempotent.
  void join();

  net::thread_pool::executor_type executor() { return pool_.get_executor(); }

 private:
  pqxx::connection& connection();

  net::thread_pool pool_;
  std::mutex url_mutex_;
  std::string url_;
  std::atomic<unsigned> url_generation_{0};
};

}  // namespace obmen
