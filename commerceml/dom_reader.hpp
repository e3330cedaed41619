#pragma once
// Internal: the whole-document reader. Loads the entire document into one pugixml tree, so
// memory grows with the file (roughly 3–4× its size). The public entry points use the sliced
// reader instead; this one is the reference it is tested against, and it reports every
// malformation before the sink sees anything.
#include <string_view>

#include "commerceml/reader.hpp"

namespace obmen::commerceml::detail {

void read_whole_document(std::string_view data, std::string_view file_name, catalog_sink& sink,
                         const read_options& options);

}  // namespace obmen::commerceml::detail
