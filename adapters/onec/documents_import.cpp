#include "adapters/onec/documents_import.hpp"

#include "commerceml/document_reader.hpp"

namespace obmen::onec {

store::import_counts import_documents_file(pqxx::connection& db, const std::filesystem::path& file,
                                           const store::documents_apply_options& options,
                                           const std::function<void(pqxx::work&, const store::import_counts&)>& before_commit) {
  // Parsed before the transaction opens: a malformed file never holds a lock.
  const auto parsed = commerceml::read_documents_file(file);
  pqxx::work tx(db);
  // Order documents of one source are applied one file at a time, like catalog packages.
  tx.exec_params("select pg_advisory_xact_lock(hashtext('obmen.documents'), hashtext($1))", options.source);
  auto counts = store::apply_documents(tx, parsed.documents, parsed.counterparties, options);
  if (before_commit) before_commit(tx, counts);
  tx.commit();
  return counts;
}

}  // namespace obmen::onec
