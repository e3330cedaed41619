#include "store/database.hpp"

#include <cstdint>

#include "store/migrations_embedded.hpp"

namespace obmen::store {

namespace {

// pg_advisory_lock key for `migrate`: "obmen:mi" as a big-endian int64, so it is recognisable in
// pg_locks and unlikely to collide with another application's key.
constexpr std::int64_t migrate_lock_key = 0x6f626d656e3a6d69;

// Releases the session-level advisory lock however migrate() leaves.
class advisory_lock {
 public:
  explicit advisory_lock(pqxx::connection& c) : c_(c) {
    pqxx::nontransaction tx(c_);
    tx.exec_params("SELECT pg_advisory_lock($1)", migrate_lock_key);
  }
  ~advisory_lock() {
    try {
      pqxx::nontransaction tx(c_);
      tx.exec_params("SELECT pg_advisory_unlock($1)", migrate_lock_key);
    } catch (...) {
      // A broken connection releases the lock itself when it closes.
    }
  }
  advisory_lock(const advisory_lock&) = delete;
  advisory_lock& operator=(const advisory_lock&) = delete;

 private:
  pqxx::connection& c_;
};

int version_in(pqxx::transaction_base& tx) {
  // The table is created by migration 1; before that the database is "version 0".
  if (tx.exec1("SELECT to_regclass('obmen.schema_migrations') IS NULL")[0].as<bool>()) return 0;
  return tx.exec1("SELECT coalesce(max(version), 0) FROM obmen.schema_migrations")[0].as<int>();
}

std::string newer_message(int have) {
  return "database schema is at version " + std::to_string(have) + ", newer than this obmen (" +
         std::to_string(latest_schema_version()) + "): upgrade obmen";
}

}  // namespace

std::unique_ptr<pqxx::connection> connect(const std::string& url) {
  return std::make_unique<pqxx::connection>(url);
}

const std::vector<migration>& migrations() {
  // The generator sorts by file name; a gap or a duplicate number is a packaging bug.
  static const std::vector<migration>& all = [] () -> const std::vector<migration>& {
    const auto& m = detail::embedded_migrations();
    for (std::size_t i = 0; i < m.size(); ++i)
      if (m[i].version != static_cast<int>(i) + 1)
        throw std::logic_error("store/migrations: expected version " + std::to_string(i + 1) +
                               ", found " + m[i].name);
    return m;
  }();
  return all;
}

int latest_schema_version() {
  const auto& m = migrations();
  return m.empty() ? 0 : m.back().version;
}

int schema_version(pqxx::connection& c) {
  pqxx::nontransaction tx(c);
  return version_in(tx);
}

migrate_report migrate(pqxx::connection& c) {
  advisory_lock lock(c);
  migrate_report report;
  report.from = report.to = schema_version(c);
  if (report.from > latest_schema_version()) throw schema_mismatch(newer_message(report.from));
  for (const auto& m : migrations()) {
    if (m.version <= report.from) continue;
    pqxx::work tx(c, "migrate " + m.name);
    tx.exec(m.sql);
    tx.exec_params("INSERT INTO obmen.schema_migrations (version, name) VALUES ($1, $2)", m.version,
                   m.name);
    tx.commit();
    report.to = m.version;
    report.applied.push_back(m.name);
  }
  return report;
}

void require_current_schema(pqxx::connection& c) {
  const int have = schema_version(c), need = latest_schema_version();
  if (have < need)
    throw schema_mismatch("database schema is at version " + std::to_string(have) + ", obmen needs " +
                          std::to_string(need) + ": run 'obmenctl migrate'");
  if (have > need) throw schema_mismatch(newer_message(have));
}

}  // namespace obmen::store
