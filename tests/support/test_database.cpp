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

void create_database(const std::string& admin_url, const std::string& name, const std::string& from) {
  pqxx::connection admin(admin_url);
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE DATABASE " + tx.quote_name(name) + " TEMPLATE " + tx.quote_name(from) + " ENCODING 'UTF8'");
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

// A migrated database made once per test process; each migrated test_database is a copy of it
// (CREATE DATABASE … TEMPLATE), which is several times faster than migrating every time.
class migrated_template {
 public:
  static const std::string& name(const std::string& admin_url) {
    static migrated_template t(admin_url);
    return t.name_;
  }
  ~migrated_template() { drop_database(admin_url_, name_); }
  migrated_template(const migrated_template&) = delete;
  migrated_template& operator=(const migrated_template&) = delete;

 private:
  explicit migrated_template(const std::string& admin_url) : admin_url_(admin_url), name_(unique_name() + "_tpl") {
    create_database(admin_url_, name_, "template0");
    try {
      pqxx::connection c(test_database::with_dbname(admin_url_, name_));
      store::migrate(c);
    } catch (...) {
      drop_database(admin_url_, name_);
      throw;
    }
  }

  std::string admin_url_, name_;
};

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
  create_database(admin_url_, name_, s == schema::migrated ? migrated_template::name(admin_url_) : "template0");
}

test_database::~test_database() { drop_database(admin_url_, name_); }

std::unique_ptr<pqxx::connection> test_database::connect() const {
  return std::make_unique<pqxx::connection>(url_);
}

}  // namespace obmen::test
