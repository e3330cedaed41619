#include "tests/support/test_database.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "store/database.hpp"

namespace obmen::test {

namespace {

std::string unique_name() {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  return "obmen_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
         std::to_string((static_cast<unsigned long long>(now) ^ rd()) % 1000000007ULL);
}

void drop_database(const std::string& admin_url, const std::string& name) noexcept {
  try {
    pqxx::connection admin(admin_url);
    pqxx::nontransaction tx(admin);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name) + " WITH (FORCE)");
  } catch (...) {
    // Leave the database behind rather than throw from a destructor; its name says who made it.
  }
}

}  // namespace

std::string test_database::admin_url() {
  for (const char* var : {"OBMEN_TEST_DATABASE_URL", "OBMEN_DATABASE_URL"})
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') return v;
  throw std::runtime_error(
      "pg tests need a PostgreSQL admin DSN that may CREATE DATABASE: set OBMEN_TEST_DATABASE_URL "
      "(or OBMEN_DATABASE_URL), e.g. postgresql://obmen@127.0.0.1:55432/obmen");
}

std::string test_database::with_dbname(const std::string& url, const std::string& dbname) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url + " dbname=" + dbname;  // key=value: last one wins
  const auto slash = url.find('/', scheme + 3);
  const auto query = url.find('?', scheme + 3);
  if (slash == std::string::npos || (query != std::string::npos && slash > query)) {
    const auto host_end = query == std::string::npos ? url.size() : query;
    return url.substr(0, host_end) + "/" + dbname + url.substr(host_end);
  }
  const auto db_end = query == std::string::npos ? url.size() : query;
  return url.substr(0, slash + 1) + dbname + url.substr(db_end);
}

test_database::test_database(schema s)
    : admin_url_(admin_url()), name_(unique_name()), url_(with_dbname(admin_url_, name_)) {
  {
    pqxx::connection admin(admin_url_);
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE DATABASE " + tx.quote_name(name_) + " TEMPLATE template0 ENCODING 'UTF8'");
  }
  if (s == schema::migrated) {
    try {
      auto c = connect();
      store::migrate(*c);
    } catch (...) {
      drop_database(admin_url_, name_);
      throw;
    }
  }
}

test_database::~test_database() { drop_database(admin_url_, name_); }

std::unique_ptr<pqxx::connection> test_database::connect() const {
  return std::make_unique<pqxx::connection>(url_);
}

}  // namespace obmen::test
