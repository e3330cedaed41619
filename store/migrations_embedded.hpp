#pragma once
// Internal: the migrations compiled in by store/embed_migrations.cmake (see store/CMakeLists.txt).
// Use store::migrations(), which also checks their numbering.
#include <vector>

#include "store/database.hpp"

namespace obmen::store::detail {

// In file-name order, unvalidated.
const std::vector<migration>& embedded_migrations();

}  // namespace obmen::store::detail
