// bench/parse_baseline: the floor for reading a catalog — pugixml parses each file whole into a
// DOM (parse_default, as obmen's reader does per batch) and nothing else happens. Prints the
// element count so the work is observable; time and peak RSS are taken from outside.
//
//   parse_baseline FILE…
#include <cstdio>

#include <pugixml.hpp>

namespace {

std::size_t count_elements(pugi::xml_node root) {
  std::size_t n = 0;
  for (pugi::xml_node x = root.first_child(); x;) {
    if (x.type() == pugi::node_element) ++n;
    if (x.first_child()) {
      x = x.first_child();
      continue;
    }
    while (x && !x.next_sibling() && x != root) x = x.parent();
    if (!x || x == root) break;
    x = x.next_sibling();
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: parse_baseline FILE…\n");
    return 2;
  }
  for (int i = 1; i < argc; ++i) {
    pugi::xml_document doc;
    const auto r = doc.load_file(argv[i], pugi::parse_default, pugi::encoding_utf8);
    if (!r) {
      std::fprintf(stderr, "parse_baseline: %s: %s at offset %td\n", argv[i], r.description(), r.offset);
      return 1;
    }
    std::printf("%s: %zu elements\n", argv[i], count_elements(doc));
  }
  return 0;
}
