// bench/read_catalog: obmen's CommerceML reader alone — read_catalog_file (the bounded-memory
// sliced reader, both of its passes) into a sink that only counts. The part of an import that
// the parse baseline compares with; time and peak RSS are taken from outside.
//
//   read_catalog FILE…
#include <cstdio>
#include <exception>

#include "commerceml/reader.hpp"

namespace {

class counting_sink : public obmen::commerceml::catalog_sink {
 public:
  std::size_t items = 0;
  void on_categories(std::vector<obmen::model::category> v) override { items += v.size(); }
  void on_products(std::vector<obmen::model::product> v) override { items += v.size(); }
  void on_offers(std::vector<obmen::model::offer> v) override {
    for (const auto& o : v) items += 1 + (o.prices ? o.prices->size() : 0) + (o.stock ? o.stock->size() : 0);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: read_catalog FILE…\n");
    return 2;
  }
  try {
    for (int i = 1; i < argc; ++i) {
      counting_sink sink;
      obmen::commerceml::read_catalog_file(argv[i], sink);
      std::printf("%s: %zu items\n", argv[i], sink.items);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "read_catalog: %s\n", e.what());
    return 1;
  }
  return 0;
}
