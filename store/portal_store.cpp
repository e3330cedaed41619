#include "store/portal_store.hpp"
