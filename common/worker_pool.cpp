#include "common/worker_pool.hpp"

namespace obmen {

namespace {
struct thread_connection {
  std::unique_ptr<pqxx::connection> conn;
  unsigned generation = 0;
  const worker_pool* owner = nullptr;
};
thread_local thread_connection current;
}  // namespace

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
  if (!current.conn || current.owner != this || current.generation != generation || !current.conn->is_open()) {
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
