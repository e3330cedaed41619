// CommerceML document files from 1C (sale/file: orders, payments, shipments, counterparties):
// read_documents_buffer on the bytes, only commerceml::parse_error expected. What it reads must
// survive the way back: the orders written as the sale/query answer (order_writer) read again
// without an error — the site never sends 1C a file it cannot read itself.
#include <string>
#include <utility>

#include "commerceml/document_reader.hpp"
#include "commerceml/order_writer.hpp"
#include "fuzz/fuzz_target.hpp"

OBMEN_FUZZ_TARGET(documents) {
  using namespace obmen::commerceml;
  documents_file file;
  try {
    file = read_documents_buffer(bytes(data, size), "documents.xml");
  } catch (const parse_error&) {
    return;
  }
  const std::pair<const char*, const char*> forms[] = {{"2.05", "utf-8"}, {"2.10", "windows-1251"}, {"3.1", "utf-8"}};
  for (const auto& [version, encoding] : forms) {
    order_write_options options;
    options.schema_version = version;
    options.encoding = encoding;
    options.generated_at = "2024-01-01T00:00:00";
    const std::string written = write_orders(file.documents, options);
    try {
      read_documents_buffer(written, "query.xml");
    } catch (const parse_error& e) {
      throw finding(std::string("orders read from a file, written back as ") + version + " " +
                    encoding + ", do not read again: " + e.what());
    }
  }
}
