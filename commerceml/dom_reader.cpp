#include "commerceml/dom_reader.hpp"

#include <cstdio>
#include <string>

#include <pugixml.hpp>

#include "commerceml/elements.hpp"
#include "commerceml/encoding.hpp"
#include "commerceml/prolog.hpp"

namespace obmen::commerceml::detail {
namespace {

// The first element nested deeper than max_element_depth, in document order.
struct depth_probe : pugi::xml_tree_walker {
  pugi::xml_node too_deep;
  bool for_each(pugi::xml_node& n) override {
    if (n.type() == pugi::node_element && static_cast<std::size_t>(depth()) + 1 > max_element_depth) {
      too_deep = n;
      return false;
    }
    return true;
  }
};

}  // namespace

void read_whole_document(std::string_view data, std::string_view file_name, catalog_sink& sink,
                         const read_options& options) {
  const prolog pro = detect_prolog(data.substr(0, prolog_head_size), file_name);
  std::string_view body = data.substr(pro.bom ? 3 : 0);

  std::string text = utf8_document(body, pro, file_name);

  const position_map map = [&text](std::size_t offset) {
    return advance({}, std::string_view(text).substr(0, offset));
  };
  pugi::xml_document doc;
  const pugi::xml_parse_result result =
      doc.load_buffer(text.data(), text.size(), pugi::parse_default, pugi::encoding_utf8);
  pugi::xml_node root = doc.document_element();
  // A web page or another XML document: say what it is rather than where its HTML breaks XML —
  // once its root start tag is complete (a file cut inside that tag is just malformed).
  const auto root_tag_complete = [&] {
    if (result) return true;
    const std::size_t from = static_cast<std::size_t>(root.offset_debug());
    const std::size_t to = static_cast<std::size_t>(result.offset);
    return to > from && text.find('>', from) < to;
  };
  if (root && local_name(root) != "КоммерческаяИнформация" && root_tag_complete())
    fail(file_name, node_position(root, map),
         "not a CommerceML document: root element is '" + std::string(local_name(root)) + "'");
  if (!result)
    fail(file_name, map(static_cast<std::size_t>(result.offset)),
         std::string("malformed XML: ") + result.description());
  depth_probe probe;
  doc.traverse(probe);
  if (probe.too_deep)
    fail(file_name, node_position(probe.too_deep, map),
         "elements nested deeper than " + std::to_string(max_element_depth) + " levels");

  document_info info;
  info.file_name = file_name;
  info.encoding = pro.encoding;
  info.bom = pro.bom;
  note_root(info, root);
  for (pugi::xml_node s = root.first_child(); s; s = s.next_sibling()) {
    if (s.type() != pugi::node_element) continue;
    const section_kind kind = section_of(local_name(s));
    note_section(info, kind, changes_flag(s));
  }
  finish_info(info);
  sink.on_document(info);

  section_processor proc(sink, options.batch_size, file_name);
  for (pugi::xml_node s = root.first_child(); s; s = s.next_sibling()) {
    if (s.type() != pugi::node_element) continue;
    const section_kind kind = section_of(local_name(s));
    if (kind == section_kind::documents || kind == section_kind::other) continue;
    proc.begin(kind);
    for (pugi::xml_node c = s.first_child(); c; c = c.next_sibling()) {
      if (c.type() != pugi::node_element) continue;
      if (has_items(kind) && local_name(c) == list_name(kind)) {
        proc.flush_declarations();
        for (pugi::xml_node item = c.first_child(); item; item = item.next_sibling())
          if (item.type() == pugi::node_element && local_name(item) == item_name(kind)) proc.item(item, map);
        proc.flush_items();
      } else {
        proc.declaration(c, map);
      }
    }
    proc.flush_declarations();
  }
}

}  // namespace obmen::commerceml::detail
