#pragma once
// Imports one CommerceML documents file from 1C (type=sale: order changes, payments, shipments,
// invoices, counterparties) into the portal in ONE transaction: reader → store::apply_documents.
// Blocking: runs on a worker thread with that thread's connection.
#include <filesystem>
#include <functional>
#include <string>

#include <pqxx/pqxx>

#include "store/orders_store.hpp"
#include "store/portal_store.hpp"

namespace obmen::onec {

// Throws commerceml::parse_error (file:line:col) or a database error; the transaction is then
// rolled back and the portal is unchanged.
store::import_counts import_documents_file(
    pqxx::connection& db, const std::filesystem::path& file, const store::documents_apply_options& options,
    const std::function<void(pqxx::work&, const store::import_counts&)>& before_commit = {});

}  // namespace obmen::onec
