// catalog_writer on a real PostgreSQL ($OBMEN_TEST_DATABASE_URL).
#include <doctest/doctest.h>

#include "store/portal_store.hpp"
#include "tests/support/test_database.hpp"
