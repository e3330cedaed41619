# The Debian package "obmen" (cpack -G DEB in the build tree; packaging/test_deb.sh checks it).
#
# The package is built from its own install component, "deb", so its layout does not depend on
# the CMAKE_INSTALL_PREFIX of the build tree (scripts/test builds with the default /usr/local):
#   /usr/bin/obmend, /usr/bin/obmenctl
#   /etc/obmen/obmen.yaml, /etc/obmen/mapping.yaml                    (conffiles)
#   /lib/systemd/system/obmend.service                                 (Debian 12 unit directory)
#   /usr/lib/sysusers.d/obmen.conf, /usr/lib/tmpfiles.d/obmen.conf
#   /usr/share/man/man8/obmend.8.gz, /usr/share/man/man1/obmenctl.1.gz
#   /usr/share/bash-completion/completions/obmenctl
#   /usr/share/doc/obmen/{README.md,install.md,configuration.md,operations.md,security.md,mapping.md,
#                         onec.md,moysklad.md,metrics.md,orders.md}   (the admin's book)
# The component is EXCLUDE_FROM_ALL: `cmake --install` keeps installing what the other folders'
# install() rules say, and the package gets only what is listed here.

set(OBMEN_DEB_COMPONENT deb)

install(TARGETS obmend obmenctl RUNTIME DESTINATION bin
        COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)
install(FILES ${CMAKE_SOURCE_DIR}/config/examples/obmen.yaml ${CMAKE_SOURCE_DIR}/config/examples/mapping.yaml
        DESTINATION /etc/obmen COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)
install(FILES ${CMAKE_SOURCE_DIR}/systemd/obmend.service DESTINATION /lib/systemd/system
        COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)
install(FILES ${CMAKE_SOURCE_DIR}/systemd/obmen.sysusers DESTINATION lib/sysusers.d RENAME obmen.conf
        COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)
install(FILES ${CMAKE_SOURCE_DIR}/systemd/obmen.tmpfiles DESTINATION lib/tmpfiles.d RENAME obmen.conf
        COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)
install(FILES ${CMAKE_SOURCE_DIR}/ctl/completion/obmenctl.bash DESTINATION share/bash-completion/completions
        RENAME obmenctl COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)

# Man pages, gzipped -9n (reproducible: no name, no time stamp) at build time.
find_program(GZIP_EXECUTABLE gzip)
set(obmen_man_gz)
foreach(page obmend.8 obmenctl.1)
  set(src ${CMAKE_CURRENT_LIST_DIR}/man/${page})
  set(gz ${CMAKE_BINARY_DIR}/packaging/man/${page}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/packaging/man
    COMMAND ${GZIP_EXECUTABLE} -9nc ${src} > ${gz}
    DEPENDS ${src} VERBATIM)
  list(APPEND obmen_man_gz ${gz})
  string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" section ${page})
  install(FILES ${gz} DESTINATION share/man/man${section}
          COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)
endforeach()
add_custom_target(obmen_man ALL DEPENDS ${obmen_man_gz})

install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/install.md
              ${CMAKE_SOURCE_DIR}/docs/configuration.md ${CMAKE_SOURCE_DIR}/docs/operations.md
              ${CMAKE_SOURCE_DIR}/docs/security.md ${CMAKE_SOURCE_DIR}/docs/mapping.md
              ${CMAKE_SOURCE_DIR}/docs/onec.md ${CMAKE_SOURCE_DIR}/docs/moysklad.md
              ${CMAKE_SOURCE_DIR}/docs/metrics.md ${CMAKE_SOURCE_DIR}/docs/orders.md
        DESTINATION share/doc/obmen COMPONENT ${OBMEN_DEB_COMPONENT} EXCLUDE_FROM_ALL)

# ─── CPack ─────────────────────────────────────────────────────────────────────────────────
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME obmen)
set(CPACK_PACKAGE_VENDOR "obmen")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "obmen maintainers <obmen@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "1C / MoySklad to B2B portal exchange daemon")
set(CPACK_PACKAGE_DESCRIPTION
"obmend speaks the 1C:Enterprise site exchange (CommerceML 2.03-2.10 and 3.1) as a
1C-Bitrix site would and applies catalogs, prices, stock and orders to a B2B portal's
PostgreSQL database. obmenctl migrates the schema, checks the configuration, imports
files by hand and queues resync jobs. The systemd unit is installed but neither
enabled nor started: edit /etc/obmen/obmen.yaml first.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# One package with only the "deb" component: build dir; project; component; subdirectory.
set(CPACK_INSTALL_CMAKE_PROJECTS "${CMAKE_BINARY_DIR};${PROJECT_NAME};${OBMEN_DEB_COMPONENT};/")
set(CPACK_PACKAGE_FILE_NAME obmen_${PROJECT_VERSION}_amd64)

set(CPACK_DEBIAN_PACKAGE_NAME obmen)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE amd64)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)         # Depends from dpkg-shlibdeps (package dpkg-dev)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
# systemd-sysusers/-tmpfiles are used when present (adduser is the fallback in postinst).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql, nginx")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# conffiles (every file under /etc/obmen) and the maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/debian/conffiles
  ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
  ${CMAKE_CURRENT_LIST_DIR}/debian/prerm
  ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)

include(CPack)

# package_deb (label package): builds the .deb into a temporary directory and checks it.
if(OBMEN_TESTS)
  add_test(NAME package_deb
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/test_deb.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(package_deb PROPERTIES LABELS package TIMEOUT 600)
endif()
