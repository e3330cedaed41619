#pragma once
// Connections and schema migrations. Blocking (libpq): call only on a worker thread or in the CLI.
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace obmen::store {

// Opens a connection; throws pqxx::broken_connection with libpq's message on failure.
std::unique_ptr<pqxx::connection> connect(const std::string& url);

struct migration {
  int version;                         // 1, 2, … (file store/migrations/NNNN_name.sql)
  std::string name;                    // "0001_initial"
  std::string sql;
};

// Every migration compiled into the binary, in version order.
const std::vector<migration>& migrations();
int latest_schema_version();

// The applied version recorded in obmen.schema_migrations; 0 on an empty database.
int schema_version(pqxx::connection&);

struct migrate_report {
  int from = 0, to = 0;
  std::vector<std::string> applied;    // names, in order
};

// Applies the missing migrations, each in its own transaction, under an advisory lock so two
// concurrent `obmenctl migrate` runs do not collide. Re-running is a no-op. Throws
// schema_mismatch when the database is newer than this binary. No transaction may be open on
// the connection.
migrate_report migrate(pqxx::connection&);

class schema_mismatch : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws schema_mismatch when the database is older than this binary ("database schema is at
// version 0, obmen needs 1: run 'obmenctl migrate'") or newer ("database schema is at version 3,
// newer than this obmen (1): upgrade obmen"). obmend calls it at start-up.
void require_current_schema(pqxx::connection&);

}  // namespace obmen::store
