#pragma once
// A throw-away PostgreSQL database for *_pgtest tests.
//
// The constructor creates a fresh, uniquely named database through the admin DSN in
// $OBMEN_TEST_DATABASE_URL (else $OBMEN_DATABASE_URL), migrated to the latest schema unless asked
// for an empty one (a copy of a template database migrated once per test process); the destructor
// drops it, and the template is dropped at exit. With neither variable set the constructor throws, so
// a pg test fails loudly instead of passing without a database. Blocking (libpq).
#include <memory>
#include <string>

#include <pqxx/pqxx>

namespace obmen::test {

class test_database {
 public:
  enum class schema { migrated, empty };

  explicit test_database(schema = schema::migrated);
  ~test_database();
  test_database(const test_database&) = delete;
  test_database& operator=(const test_database&) = delete;

  const std::string& name() const { return name_; }
  const std::string& url() const { return url_; }      // DSN of the fresh database
  std::unique_ptr<pqxx::connection> connect() const;

  // The admin DSN from the environment; throws std::runtime_error naming the variables when unset.
  static std::string admin_url();
  // `url` with its database name replaced by `dbname` (URI or key=value form).
  static std::string with_dbname(const std::string& url, const std::string& dbname);

 private:
  std::string admin_url_, name_, url_;
};

}  // namespace obmen::test
