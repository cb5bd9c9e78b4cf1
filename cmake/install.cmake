# Install and export rules: libituna (shared + static) with the CMake package
# `ituna` (imported targets ituna::ituna, ituna::ituna_static) and the
# pkg-config file ituna.pc, plus the install-prefix test of the embedding example.
include(CMakePackageConfigHelpers)

# ITUNA_INSTALL_CORE (root CMakeLists.txt): OFF installs the Lua module alone.
set(ITUNA_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ituna CACHE STRING
    "where the CMake package files are installed, relative to the prefix")

if(ITUNA_INSTALL_CORE)
install(TARGETS ituna ituna_static EXPORT ituna-targets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT ituna-targets NAMESPACE ituna:: FILE ituna-targets.cmake
  DESTINATION ${ITUNA_CMAKE_INSTALL_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/ituna-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/ituna-config.cmake
  INSTALL_DESTINATION ${ITUNA_CMAKE_INSTALL_DIR})
# 0.x: a minor version may break the API, so only the same minor is compatible
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/ituna-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ituna-config.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/ituna-config-version.cmake
  DESTINATION ${ITUNA_CMAKE_INSTALL_DIR})

# ituna.pc is relocatable: prefix is found from the file's own place (pcfiledir),
# so `cmake --install --prefix ANY` gives a working file.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(ITUNA_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(ITUNA_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH ITUNA_PC_UP "/root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/root")
  string(REGEX REPLACE "/$" "" ITUNA_PC_UP "${ITUNA_PC_UP}")
  set(ITUNA_PC_PREFIX "\${pcfiledir}/${ITUNA_PC_UP}")
  set(ITUNA_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(ITUNA_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(ITUNA_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/ituna.pc.in ${CMAKE_CURRENT_BINARY_DIR}/ituna.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/ituna.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()

if(BUILD_TESTING)
  # install into a temporary prefix, then build and run examples/ against it with
  # pkg-config and with find_package(ituna)
  add_test(NAME embed_install_prefix
    COMMAND sh ${PROJECT_SOURCE_DIR}/tests/embed/run.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(embed_install_prefix PROPERTIES TIMEOUT 300 LABELS embed)
endif()
