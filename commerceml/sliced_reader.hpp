#pragma once
// Internal: the bounded-memory reader behind read_catalog_file / read_catalog_buffer.
//
// A scanner walks the byte stream chunk by chunk, tracking tags, comments, CDATA, processing
// instructions and the DOCTYPE, and cuts the document into pieces that pugixml parses one at a
// time: the non-list children of each section (classifier declarations, catalog header), and
// the Каталог/Товары/Товар and ПакетПредложений/Предложения/Предложение elements, in batches.
// Each piece is wrapped in copies of its ancestors' start tags (root, section, list), so it
// parses exactly as it would in place, namespace declarations included, and every offset maps
// back to its file line and column.
//
// Two passes over the input: the first validates the structure (encoding, tag balance, root,
// nesting depth, classifier content) and collects document_info; the second converts and calls
// the sink. The first pass jumps over each Товары / Предложения list to its end tag, looking
// only at each '<' (the second pass scans and parses every item); anything that could mislead
// the jump — a comment, CDATA, a start tag named like the list, the end of the input — makes it
// start over without jumping, for the exact verdict and message. A truncated file therefore
// fails before on_document; malformed content inside the items (mis-nested tags included) is
// found when its batch is parsed, after earlier batches went out.
//
// Memory: one read chunk, the text of the current batch (≤ batch_size items, and flushed early
// past 8 MiB) and its pugixml tree, plus one section's declarations — independent of the number
// of products and offers.
#include <cstddef>
#include <string_view>

#include "commerceml/reader.hpp"

namespace obmen::commerceml::detail {

class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual std::size_t read(char* out, std::size_t n) = 0;  // 0 at the end
  virtual void rewind() = 0;
};

void read_sliced(byte_source& source, std::string_view file_name, catalog_sink& sink, const read_options& options);
document_info check_sliced(byte_source& source, std::string_view file_name, const read_options& options);

}  // namespace obmen::commerceml::detail
