#include "store/import_metrics.hpp"

#include <ctime>
#include <utility>

#include "common/metrics.hpp"

namespace obmen::store {

void declare_import_metrics() {
  auto& r = metrics::default_registry();
  r.counter("obmen_import_rows_total", "Portal rows changed by imports and deactivate, by source, entity and change (inserted, updated, deactivated).");
  r.gauge("obmen_last_successful_import_timestamp_seconds", "Unix time of the last successful import, by source and file kind.");
}

void count_import_rows(const std::string& source, const import_counts& counts) {
  declare_import_metrics();
  auto& r = metrics::default_registry();
  for (const auto& [entity, c] : counts.by_entity)
    for (const auto& [change, n] : {std::pair{"inserted", c.inserted}, {"updated", c.updated}, {"deactivated", c.deactivated}})
      if (n > 0) r.add("obmen_import_rows_total", {{"source", source}, {"entity", entity}, {"change", change}}, static_cast<double>(n));
}

void mark_import_success(const std::string& source, const std::string& kind) {
  declare_import_metrics();
  metrics::default_registry().set("obmen_last_successful_import_timestamp_seconds", {{"source", source}, {"kind", kind}},
                                  static_cast<double>(std::time(nullptr)));
}

}  // namespace obmen::store
