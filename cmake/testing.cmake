# Test tiers (STYLE.md habit 12), told apart by file suffix and CTest label:
#   *_test.cpp    pure code                         label "unit"
#   *_pgtest.cpp  on a real PostgreSQL ($OBMEN_TEST_DATABASE_URL)  label "pg"
#   tests/e2e/*   the real obmend over real HTTP    label "e2e"
enable_testing()

# obmen_add_test(<name> SOURCES <files…> LIBS <libs…>)
# The label follows from the name's suffix: *_pgtest → pg, otherwise unit.
function(obmen_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE obmen_test_main ${T_LIBS} obmen_warnings)
  if(name MATCHES "_pgtest$")
    set(label pg)
  else()
    set(label unit)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS ${label}
    ENVIRONMENT "OBMEN_SOURCE_DIR=${CMAKE_SOURCE_DIR};OBMEN_REFERENCE_DIR=${CMAKE_SOURCE_DIR}/../shared/reference")
endfunction()
