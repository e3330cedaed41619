// api.hpp is header-only; this unit checks that it compiles on its own.
#include "adapters/moysklad/api.hpp"
