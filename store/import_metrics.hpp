#pragma once
// Metrics every adapter reports for what it applied to the portal (docs/metrics.md), declared
// and written in one place so 1C and МойСклад share the families, their HELP texts and labels.
#include <string>

#include "store/portal_store.hpp"

namespace obmen::store {

// Declares obmen_import_rows_total and obmen_last_successful_import_timestamp_seconds
// (idempotent); the functions below call it too.
void declare_import_metrics();

// obmen_import_rows_total{source, entity, change}: rows inserted, updated and deactivated
// (unchanged and skipped rows are not counted; a series appears at its first non-zero count).
void count_import_rows(const std::string& source, const import_counts&);

// obmen_last_successful_import_timestamp_seconds{source, kind} = now (Unix seconds).
void mark_import_success(const std::string& source, const std::string& kind);

}  // namespace obmen::store
