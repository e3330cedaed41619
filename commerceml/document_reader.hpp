#pragma once
// CommerceML document files 1C → site (sale/file: orders with status requisites, payments,
// shipments) and the site's own query answers read back; also counterparty files
// (КоммерческаяИнформация/Контрагенты, Bitrix module contragents___*.xml).
// Pure: reads the given file or buffer only. Whole-document parse (these files are small).
// Runs on the calling thread; blocks on file I/O.
//
// Elements are matched by local name, whatever the namespace. UTF-8 with or without BOM and
// windows-1251 (by the XML declaration) are accepted; strings in the model are UTF-8, trimmed.
// Money and quantities go through model::normalize_decimal; a value that is present but not a
// number is a parse_error at its element. Malformed XML, invalid UTF-8, an unsupported
// encoding or a root other than КоммерческаяИнформация throw parse_error with file:line:col.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "commerceml/reader.hpp"
#include "model/order.hpp"

namespace obmen::commerceml {

struct documents_file {
  std::string schema_version, encoding;
  std::vector<model::document> documents;        // every Документ (under root, or under Контейнер; a Контейнер's 2nd+ documents become subordinates of its first when the first is an order)
  std::vector<model::counterparty> counterparties; // root-level Контрагенты/Контрагент
};

documents_file read_documents_file(const std::filesystem::path&);   // throws commerceml::parse_error (reader.hpp) with file:line:col
documents_file read_documents_buffer(std::string_view data, std::string_view file_name);

}  // namespace obmen::commerceml
