#include "common/worker_pool.hpp"

#include <poll.h>

namespace obmen {

namespace {
struct thread_connection {
  std::unique_ptr<pqxx::connection> conn;
  unsigned generation = 0;
  const worker_pool* owner = nullptr;
};
thread_local thread_connection current;
}  // namespace

bool idle_connection_alive(pqxx::connection& c) {
  if (!c.is_open()) return false;
  const int fd = c.sock();
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  const int n = ::poll(&p, 1, 0);
  return n == 0;  // nothing to read, no hang-up: alive as far as we can tell
}

worker_pool::worker_pool(std::size_t threads, std::string database_url)
    : pool_(threads), url_(std::move(database_url)) {}

worker_pool::~worker_pool() { join(); }

void worker_pool::set_database_url(std::string url) {
  std::lock_guard lock(url_mutex_);
  if (url == url_) return;
  url_ = std::move(url);
  ++url_generation_;
}

void worker_pool::join() { pool_.join(); }

pqxx::connection& worker_pool::connection() {
  const unsigned generation = url_generation_.load();
  // A connection that broke (server restart, network) is replaced on the next task, so one
  // failed task does not poison the thread.
  if (!current.conn || current.owner != this || current.generation != generation ||
      !idle_connection_alive(*current.conn)) {
    std::string url;
    {
      std::lock_guard lock(url_mutex_);
      url = url_;
    }
    current.conn.reset();
    current.conn = std::make_unique<pqxx::connection>(url);
    current.generation = generation;
    current.owner = this;
  }
  return *current.conn;
}

}  // namespace obmen
