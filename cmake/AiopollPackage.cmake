# Install rules of the aiopoll package: the libraries, the headers, the CMake
# package (aiopollConfig.cmake, its targets and version files) and the
# pkg-config files. Included by the top-level CMakeLists.txt when
# AIOPOLL_INSTALL is on.
#
# Optional components (the adapters in integrations/) install themselves with
# aiopoll_add_component(); cmake/aiopollConfig.cmake.in says what a
# component's files are and how find_package() reports them.

include(CMakePackageConfigHelpers)

set(AIOPOLL_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/aiopoll)
set(AIOPOLL_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# Every component name aiopollConfig.cmake knows; one that is listed here but
# was not installed is reported "not built" rather than "unknown".
set(AIOPOLL_KNOWN_COMPONENTS glib libevent libuv)

# The .pc files locate the prefix from their own place (${pcfiledir}), so an
# installation stays usable after `cmake --install --prefix` elsewhere or a
# move (package tests install into scratch prefixes).
function(_aiopoll_pc_prefix out)
  if(IS_ABSOLUTE "${AIOPOLL_INSTALL_PKGCONFIGDIR}")
    set(${out} "${CMAKE_INSTALL_PREFIX}" PARENT_SCOPE)
    return()
  endif()
  file(RELATIVE_PATH _up "/prefix/${AIOPOLL_INSTALL_PKGCONFIGDIR}" "/prefix")
  string(REGEX REPLACE "/$" "" _up "${_up}")
  set(${out} "\${pcfiledir}/${_up}" PARENT_SCOPE)
endfunction()

function(_aiopoll_pc_dir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

# aiopoll_write_pkgconfig(<name> DESCRIPTION <text> LIBS <flags...>
#     [REQUIRES <modules...>] [REQUIRES_PRIVATE <modules...>]
#     [LIBS_PRIVATE <flags...>])
# Writes and installs <name>.pc. Requires/Libs: what every consumer needs;
# the .private fields: what only a static link (pkg-config --static, Meson's
# static: true) adds, i.e. the dependencies of the static archive.
function(aiopoll_write_pkgconfig name)
  cmake_parse_arguments(PC "" "DESCRIPTION" "LIBS;REQUIRES;REQUIRES_PRIVATE;LIBS_PRIVATE" ${ARGN})
  _aiopoll_pc_prefix(_prefix)
  _aiopoll_pc_dir(_libdir "${CMAKE_INSTALL_LIBDIR}")
  _aiopoll_pc_dir(_includedir "${CMAKE_INSTALL_INCLUDEDIR}")
  list(JOIN PC_LIBS " " _libs)
  list(JOIN PC_REQUIRES ", " _requires)
  list(JOIN PC_REQUIRES_PRIVATE ", " _requires_private)
  list(JOIN PC_LIBS_PRIVATE " " _libs_private)
  set(_text "prefix=${_prefix}\nexec_prefix=\${prefix}\nlibdir=${_libdir}\nincludedir=${_includedir}\n\n")
  string(APPEND _text "Name: ${name}\nDescription: ${PC_DESCRIPTION}\nVersion: ${PROJECT_VERSION}\n")
  if(_requires)
    string(APPEND _text "Requires: ${_requires}\n")
  endif()
  if(_requires_private)
    string(APPEND _text "Requires.private: ${_requires_private}\n")
  endif()
  string(APPEND _text "Cflags: -I\${includedir}\nLibs: -L\${libdir} ${_libs}\n")
  if(_libs_private)
    string(APPEND _text "Libs.private: ${_libs_private}\n")
  endif()
  file(WRITE "${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc" "${_text}")
  install(FILES "${PROJECT_BINARY_DIR}/pkgconfig/${name}.pc"
          DESTINATION ${AIOPOLL_INSTALL_PKGCONFIGDIR})
endfunction()

# The link flags of a static archive's private dependencies: the thread
# library and the platform libraries (ws2_32 on Windows).
function(aiopoll_static_link_flags out)
  set(_flags ${CMAKE_THREAD_LIBS_INIT})
  foreach(_lib IN LISTS ARGN)
    if(_lib MATCHES "^-")
      list(APPEND _flags "${_lib}")
    else()
      list(APPEND _flags "-l${_lib}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _flags)
  set(${out} "${_flags}" PARENT_SCOPE)
endfunction()

# aiopoll_add_component(<component> TARGETS <targets...>
#     [DEPENDENCIES <file>] [DESCRIPTION <text>]
#     [PC_REQUIRES <modules...>] [PC_REQUIRES_PRIVATE <modules...>]
#     [PC_LIBS_PRIVATE <flags...>])
# For integrations/: installs <targets> (give them EXPORT_NAME <component>,
# so that consumers get aiopoll::<component>), their export set as
# aiopoll-<component>-targets.cmake, the optional DEPENDENCIES file as
# aiopoll-<component>-dependencies.cmake, and aiopoll-<component>.pc, whose
# Requires start with aiopoll. <component> must be in
# AIOPOLL_KNOWN_COMPONENTS.
function(aiopoll_add_component component)
  cmake_parse_arguments(C "" "DEPENDENCIES;DESCRIPTION"
                        "TARGETS;PC_REQUIRES;PC_REQUIRES_PRIVATE;PC_LIBS_PRIVATE" ${ARGN})
  if(NOT component IN_LIST AIOPOLL_KNOWN_COMPONENTS)
    message(FATAL_ERROR "aiopoll_add_component: add '${component}' to AIOPOLL_KNOWN_COMPONENTS")
  endif()
  if(NOT AIOPOLL_INSTALL)
    return()
  endif()
  install(TARGETS ${C_TARGETS} EXPORT aiopoll-${component}-targets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT aiopoll-${component}-targets NAMESPACE aiopoll::
          FILE aiopoll-${component}-targets.cmake DESTINATION ${AIOPOLL_INSTALL_CMAKEDIR})
  if(C_DEPENDENCIES)
    install(FILES "${C_DEPENDENCIES}" RENAME aiopoll-${component}-dependencies.cmake
            DESTINATION ${AIOPOLL_INSTALL_CMAKEDIR})
  endif()
  set(_libs)
  foreach(_t IN LISTS C_TARGETS)
    get_target_property(_type ${_t} TYPE)
    if(_type MATCHES "LIBRARY$" AND NOT _type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(_name ${_t} OUTPUT_NAME)
      if(NOT _name)
        set(_name ${_t})
      endif()
      list(APPEND _libs -l${_name})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _libs)
  if(NOT C_DESCRIPTION)
    set(C_DESCRIPTION "aiopoll ${component} adapter")
  endif()
  aiopoll_write_pkgconfig(aiopoll-${component}
    DESCRIPTION "${C_DESCRIPTION}"
    LIBS ${_libs}
    REQUIRES aiopoll ${C_PC_REQUIRES}
    REQUIRES_PRIVATE ${C_PC_REQUIRES_PRIVATE}
    LIBS_PRIVATE ${C_PC_LIBS_PRIVATE})
endfunction()

# The core package.
function(aiopoll_install_package)
  install(TARGETS aiopoll ${_aiopoll_kinds} EXPORT aiopollTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(DIRECTORY include/aiopoll DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT aiopollTargets NAMESPACE aiopoll:: DESTINATION ${AIOPOLL_INSTALL_CMAKEDIR})
  configure_package_config_file(cmake/aiopollConfig.cmake.in
    ${PROJECT_BINARY_DIR}/aiopollConfig.cmake
    INSTALL_DESTINATION ${AIOPOLL_INSTALL_CMAKEDIR})
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/aiopollConfigVersion.cmake
    COMPATIBILITY SameMajorVersion)
  install(FILES
    ${PROJECT_BINARY_DIR}/aiopollConfig.cmake
    ${PROJECT_BINARY_DIR}/aiopollConfigVersion.cmake
    DESTINATION ${AIOPOLL_INSTALL_CMAKEDIR})
  # One aiopoll.pc for both kinds: -laiopoll picks the shared library when
  # it is there; a static link (-static, or Meson's static: true, which
  # resolves -laiopoll to libaiopoll.a) adds Libs.private. The core has no
  # pkg-config dependency, so no Requires.private.
  aiopoll_static_link_flags(_private ${_aiopoll_platform_libraries})
  aiopoll_write_pkgconfig(aiopoll
    DESCRIPTION "${PROJECT_DESCRIPTION}"
    LIBS -laiopoll
    LIBS_PRIVATE ${_private})
endfunction()
