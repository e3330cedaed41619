#pragma once
// Internal: CommerceML elements (pugixml nodes) → model structs, and the per-section logic
// that decides what reaches the sink and in which order. Shared by the whole-document reader
// and the sliced reader, so both produce exactly the same calls.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pugixml.hpp>

#include "commerceml/reader.hpp"
#include "commerceml/text_pos.hpp"

namespace obmen::commerceml::detail {

// Deeper element nesting is rejected: CommerceML needs a few dozen levels at most, and a cap
// keeps hostile input from growing the element stack without bound.
inline constexpr std::size_t max_element_depth = 256;

// Maps an offset in the buffer pugixml parsed to a position in the file.
using position_map = std::function<text_pos(std::size_t)>;

[[noreturn]] void fail(std::string_view file_name, text_pos at, std::string message);
// The file position of node's '<'.
text_pos node_position(pugi::xml_node node, const position_map& map);

std::string_view local_name(std::string_view qualified);
inline std::string_view local_name(pugi::xml_node n) { return local_name(n.name()); }
// Trimmed text of the element (its PCDATA and CDATA children, concatenated).
std::string text_of(pugi::xml_node n);

// Matching by local name, whatever the namespace prefix (FORMAT.md §1).
bool is(pugi::xml_node n, std::string_view local);
pugi::xml_node child(pugi::xml_node n, std::string_view local);           // first such child element
std::string child_text(pugi::xml_node n, std::string_view local);         // its trimmed text, "" if none
pugi::xml_attribute attribute(pugi::xml_node n, std::string_view local);  // attribute by local name

enum class section_kind { classifier, catalog, offers, offers_changes, documents, other };
section_kind section_of(std::string_view local);
// Товары for a catalog, Предложения for an offer package; empty otherwise.
std::string_view list_name(section_kind);
// Товар / Предложение.
std::string_view item_name(section_kind);
inline bool has_items(section_kind k) { return !list_name(k).empty(); }

// ВерсияСхемы and the root's namespace.
void note_root(document_info& info, pugi::xml_node root);
// СодержитТолькоИзменения of a section: attribute first, else child element, else nullopt.
std::optional<bool> changes_flag(pugi::xml_node section);
// Records a top-level section (first one of a kind wins for the flag).
void note_section(document_info& info, section_kind kind, std::optional<bool> flag);
void finish_info(document_info& info);

// Receives one section's content in document order and calls the sink: declarations are
// collected and handed over at flush_declarations() (categories, attribute defs, price types,
// warehouses); items are converted one by one and handed over in batches of batch_size.
class section_processor {
 public:
  section_processor(catalog_sink& sink, std::size_t batch_size, std::string_view file_name);
  void begin(section_kind kind);
  void declaration(pugi::xml_node child, const position_map& map);  // a child of the section
  void flush_declarations();
  void item(pugi::xml_node item, const position_map& map);          // a Товар / Предложение
  void flush_items();

 private:
  catalog_sink& sink_;
  std::size_t batch_size_;
  std::string file_name_;
  section_kind kind_ = section_kind::other;
  std::vector<model::category> categories_;
  std::vector<model::attribute_def> attribute_defs_;
  std::vector<model::price_type> price_types_;
  std::vector<model::warehouse> warehouses_;
  std::vector<model::product> products_;
  std::vector<model::offer> offers_;
};

}  // namespace obmen::commerceml::detail
