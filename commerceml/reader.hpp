#pragma once
// CommerceML 2.03–2.10 and 3.1 catalog reader: import*.xml (classifier + catalog) and
// offers*/prices*/rests*.xml (ПакетПредложений, ИзмененияПакетаПредложений) as 1C writes them.
// Pure: reads a file or a buffer, calls the sink, never touches the network or a database.
//
// Elements are matched by local name, whatever the namespace (none, urn:1C.ru:commerceml_2,
// commerceml_210, commerceml_3). UTF-8 with or without BOM and windows-1251 (by the XML
// declaration) are accepted; text reaches the sink as UTF-8. Anything else fails with a
// parse_error naming file, line and column.
//
// Sink call order: on_document first; then, for each section in document order, the
// classifier declarations (categories parents-first, attribute defs, price types, warehouses),
// then products / offers in batches of at most read_options::batch_size. Declarations that
// follow a section's Товары / Предложения list come after its items. Each on_* call gets only
// non-empty vectors. Документ / Контейнер content is not parsed (kind documents).
// Runs on the calling thread; blocks on file I/O.
//
// Filling the model: text is trimmed; single-valued fields take the first non-empty occurrence.
// A ЗначенияСвойства keeps its Ид with an empty values list when all its Значение are empty
// (= "unset"). An offer with Ид "p" and ИдХарактеристики "v" (ИзмененияПакетаПредложений) gets
// external_id "p#v". Prices, coefficients and quantities go through model::normalize_decimal;
// a value that is present but not a number is a parse_error at its element. offer::prices is
// set when a Цены element is present; offer::stock when a Склад@ИдСклада/@КоличествоНаСкладе,
// Склады/Склад or Остатки/Остаток/Склад is; Остатки/Остаток/Количество alone sets quantity.
// Elements nested deeper than 256 levels are rejected. Columns count characters, not bytes.
//
// Memory is bounded and independent of the file size (a 550 MB catalog reads in ~25 MB RSS):
// the input is read twice in chunks of read_options::chunk_size, and only one batch of
// Товар / Предложение elements (plus one section's classifier) is parsed at a time. The first
// pass checks the encoding of the whole file, and the tag structure, the root and the classifier
// outside the Товары / Предложения lists, whose end it only looks for; so a truncated file, or
// one mis-nested outside the items, fails before on_document. Anything malformed inside the
// items (a mis-nested tag included) is found when its batch is parsed, after the earlier batches
// were delivered: callers apply a file in one transaction.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/catalog.hpp"

namespace obmen::commerceml {

enum class document_kind { import, offers, documents, unknown };

struct document_info {
  std::string file_name;               // as given to the reader (for messages)
  std::string schema_version;          // КоммерческаяИнформация/@ВерсияСхемы
  std::string xmlns;                   // root namespace URI, empty when none
  std::string encoding;                // "utf-8" or "windows-1251"
  bool bom = false;
  // import: has Каталог, or a Классификатор and no offers; offers: ПакетПредложений /
  // ИзмененияПакетаПредложений and no Каталог (UT 11 offers files carry a header-only
  // Классификатор too); documents: Документ / Контейнер and none of those; unknown: anything else.
  document_kind kind = document_kind::unknown;
  // СодержитТолькоИзменения per top-level section (attribute or child element form); nullopt
  // when the section is absent. A present section without the flag counts as full (false);
  // ИзмененияПакетаПредложений is always a delta (true). With two sections of a kind, the first
  // one's flag is reported.
  std::optional<bool> classifier_changes_only;
  std::optional<bool> catalog_changes_only;
  std::optional<bool> offers_changes_only;
  bool has_classifier = false, has_catalog = false, has_offers = false;
};

class catalog_sink {
 public:
  virtual ~catalog_sink() = default;
  virtual void on_document(const document_info&) {}
  virtual void on_categories(std::vector<model::category>) {}
  virtual void on_attribute_defs(std::vector<model::attribute_def>) {}
  virtual void on_price_types(std::vector<model::price_type>) {}
  virtual void on_warehouses(std::vector<model::warehouse>) {}
  virtual void on_products(std::vector<model::product>) {}
  virtual void on_offers(std::vector<model::offer>) {}
};

struct read_options {
  std::size_t batch_size = 1000;         // most items per on_products / on_offers call (0 counts as 1)
  std::size_t chunk_size = 1 << 20;      // bytes read from the file at a time (0 counts as 1)
  // What check_catalog_file returned for this very file, unchanged since: the first pass is
  // skipped and this goes to on_document (nullptr: the reader makes its first pass).
  const document_info* checked = nullptr;
  // The first pass calls this when it reaches a catalog's Товары or an offer package's
  // Предложения, before reading them: offers (else products), and whether the section holds
  // changes only, as on_document will say. A hint for work that can start early — the file may
  // still turn out malformed, and the first pass may call it twice. Not called when `checked`
  // skips the first pass.
  std::function<void(bool offers, bool changes_only)> on_items_ahead;
};

// Thrown for malformed XML, an unsupported encoding, invalid UTF-8, a root that is not
// КоммерческаяИнформация, or a value that cannot be read (e.g. a price that is not a number).
class parse_error : public std::runtime_error {
 public:
  parse_error(std::string file, int line, int column, std::string message);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }
  const std::string& message() const { return message_; }
  // what() = "<file>:<line>:<column>: <message>"
 private:
  std::string file_;
  int line_, column_;
  std::string message_;
};

// Reads one CommerceML file. Exceptions thrown by the sink propagate unchanged; a file that
// cannot be opened or read throws std::filesystem::filesystem_error.
void read_catalog_file(const std::filesystem::path& file, catalog_sink& sink, const read_options& = {});
// The first pass alone: everything read_catalog_file checks before on_document, and what it
// would pass to it; throws as read_catalog_file would. For checking a file ahead of reading it
// (read_options::checked), while something else keeps the reading thread busy.
document_info check_catalog_file(const std::filesystem::path& file, const read_options& = {});
// Same for a document already in memory; `file_name` is used in messages.
void read_catalog_buffer(std::string_view data, std::string_view file_name, catalog_sink& sink,
                         const read_options& = {});

}  // namespace obmen::commerceml
