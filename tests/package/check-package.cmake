# ctest driver of the package tests: install the just-built library into a
# scratch prefix and build, run and inspect a consumer of it, one way per MODE:
#   find_package         CMake consumer/, aiopoll::aiopoll = the shared library
#   find_package_static  the same with AIOPOLL_USE_STATIC=ON: the static one
#   add_subdirectory     consumer/ with aiopoll's source tree as a subdirectory
#   cxx                  the C++ consumer cxx/ against the installed package
#   components           find_package() with COMPONENTS that were not built
#   pkgconfig            pkgconfig/Makefile: `pkg-config --cflags --libs aiopoll`,
#                        shared and `--static`
#   meson                meson/: dependency('aiopoll'), shared and static: true
#   exports              the shared library exports exactly the AIOPOLL_API
#                        functions of the installed headers (no aio__ helper)
# Each consumer that links is run, and its executable is checked to depend on
# the shared library or not (objdump -p), as its mode promises.
#
# -D: MODE, SOURCE_DIR, BUILD_DIR (aiopoll's build tree), WORK_DIR, GENERATOR
# Optional: C_COMPILER, the compiler aiopoll was built with, so that the
# consumer uses the same one (and so the same C library: musl-gcc); for
# MODE=cxx, CXX_COMPILER and C_LIBC ("glibc" or "non-glibc", see cxx/);
# OBJDUMP; PKG_CONFIG, MESON, MAKE; for a cross build TOOLCHAIN_FILE (the
# consumer gets the same one), MESON_CROSS_FILE and EMULATOR (the command
# prefix that runs a host executable, its words separated by "|").
foreach(_var MODE SOURCE_DIR BUILD_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "check-package: -D${_var}= is required")
  endif()
endforeach()
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")
set(PREFIX "${WORK_DIR}/prefix")
if(TOOLCHAIN_FILE)
  set(_exe .exe)
else()
  set(_exe "")
endif()

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "check-package: failed (${_rc}): ${ARGV}")
  endif()
endfunction()

function(install_prefix)
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${PREFIX}")
  if(NOT EXISTS "${PREFIX}/include/aiopoll/aio.h")
    message(FATAL_ERROR "check-package: the header was not installed")
  endif()
endfunction()

# The installed shared library: the .so itself or the DLL.
function(shared_library out)
  if(TOOLCHAIN_FILE)
    file(GLOB _lib "${PREFIX}/bin/libaiopoll*.dll")
  else()
    file(GLOB _lib "${PREFIX}/lib*/libaiopoll.so.[0-9]*" "${PREFIX}/lib*/*/libaiopoll.so.[0-9]*"
         "${PREFIX}/lib*/libaiopoll.[0-9]*.dylib")
  endif()
  list(FILTER _lib EXCLUDE REGEX "\\.so\\.[0-9]+\\.")
  list(LENGTH _lib _n)
  if(NOT _n EQUAL 1)
    message(FATAL_ERROR "check-package: expected one installed shared library, found '${_lib}'")
  endif()
  set(${out} "${_lib}" PARENT_SCOPE)
endfunction()

# run_consumer(<exe> shared|static): runs exe (through the emulator when
# cross) with the installed shared library findable, then checks whether exe
# depends on it.
function(run_consumer exe kind)
  if(NOT EXISTS "${exe}")
    message(FATAL_ERROR "check-package: ${exe} was not built")
  endif()
  get_filename_component(_dir "${exe}" DIRECTORY)
  if(TOOLCHAIN_FILE AND kind STREQUAL "shared")
    # Windows finds a DLL beside the executable, as an application ships it.
    shared_library(_dll)
    file(COPY "${_dll}" DESTINATION "${_dir}")
  endif()
  file(GLOB _libdirs LIST_DIRECTORIES true "${PREFIX}/lib*")
  string(REPLACE ";" ":" _libdirs "${_libdirs}")
  run(${CMAKE_COMMAND} -E env "LD_LIBRARY_PATH=${_libdirs}" ${EMULATOR} "${exe}")
  if(OBJDUMP)
    execute_process(COMMAND "${OBJDUMP}" -p "${exe}" OUTPUT_VARIABLE _deps RESULT_VARIABLE _rc)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "check-package: ${OBJDUMP} -p ${exe} failed")
    endif()
    string(REGEX MATCH "(NEEDED|DLL Name:)[ \t]+libaiopoll[^\n]*" _needed "${_deps}")
    if(kind STREQUAL "shared" AND NOT _needed)
      message(FATAL_ERROR "check-package: ${exe} should use the shared library but does not")
    elseif(kind STREQUAL "static" AND _needed)
      message(FATAL_ERROR "check-package: ${exe} should be linked statically but has '${_needed}'")
    endif()
    message(STATUS "check-package: ${exe}: ${kind} (${_needed})")
  endif()
endfunction()

# cmake_consumer(<source dir> <build dir> [args...])
function(cmake_consumer src bin)
  set(_args -S "${src}" -B "${bin}" -G "${GENERATOR}" ${ARGN})
  if(TOOLCHAIN_FILE)
    list(APPEND _args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
  elseif(C_COMPILER)
    list(APPEND _args "-DCMAKE_C_COMPILER=${C_COMPILER}")
  endif()
  run(${CMAKE_COMMAND} ${_args})
  run(${CMAKE_COMMAND} --build "${bin}")
endfunction()

# The pkg-config search path: the scratch prefix only, so that nothing of the
# build machine (or, cross, nothing of another architecture) leaks in.
function(pkg_config_env out)
  file(GLOB _pcdirs LIST_DIRECTORIES true "${PREFIX}/lib*/pkgconfig" "${PREFIX}/lib/*/pkgconfig")
  string(REPLACE ";" ":" _pcdirs "${_pcdirs}")
  set(${out} "PKG_CONFIG_LIBDIR=${_pcdirs}" "PKG_CONFIG_PATH=" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_pkg "${SOURCE_DIR}/tests/package")

if(MODE STREQUAL "find_package" OR MODE STREQUAL "find_package_static")
  install_prefix()
  if(MODE STREQUAL "find_package")
    set(_kind shared)
    set(_use_static OFF)
  else()
    set(_kind static)
    set(_use_static ON)
  endif()
  cmake_consumer("${_pkg}/consumer" "${WORK_DIR}/consumer" -DAIOPOLL_CONSUMER_MODE=find_package
                 "-DCMAKE_PREFIX_PATH=${PREFIX}" -DAIOPOLL_USE_STATIC=${_use_static})
  run_consumer("${WORK_DIR}/consumer/consumer${_exe}" ${_kind})
elseif(MODE STREQUAL "add_subdirectory")
  cmake_consumer("${_pkg}/consumer" "${WORK_DIR}/consumer" -DAIOPOLL_CONSUMER_MODE=add_subdirectory
                 "-DAIOPOLL_SOURCE_DIR=${SOURCE_DIR}")
  run_consumer("${WORK_DIR}/consumer/consumer${_exe}" shared)
elseif(MODE STREQUAL "cxx")
  install_prefix()
  set(_args -S "${_pkg}/cxx" -B "${WORK_DIR}/consumer" -G "${GENERATOR}"
      "-DCMAKE_PREFIX_PATH=${PREFIX}")
  if(CXX_COMPILER)
    list(APPEND _args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  if(C_LIBC)
    list(APPEND _args "-DAIOPOLL_C_LIBC=${C_LIBC}")
  endif()
  run(${CMAKE_COMMAND} ${_args})
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer")
  if(EXISTS "${WORK_DIR}/consumer/compile-only.txt")
    # A C++ compiler for another C library than aiopoll's: the header was
    # compiled as C++, but nothing was linked or run.
    file(READ "${WORK_DIR}/consumer/compile-only.txt" _why)
    string(STRIP "${_why}" _why)
    message(STATUS "check-package: cxx: header compiled as C++11 and C++17; not linked or run: ${_why}")
  else()
    run_consumer("${WORK_DIR}/consumer/cxx_consumer" shared)
  endif()
elseif(MODE STREQUAL "components")
  # The components this build made: each found and usable by name.
  install_prefix()
  set(_built "")
  foreach(_c glib libevent libuv)
    file(GLOB _t "${PREFIX}/lib*/cmake/aiopoll/aiopoll-${_c}-targets.cmake"
                 "${PREFIX}/lib*/*/cmake/aiopoll/aiopoll-${_c}-targets.cmake")
    if(_t)
      list(APPEND _built ${_c})
    endif()
  endforeach()
  if(_built)
    list(JOIN _built "," _built_arg) # a ";" would split the argument
    cmake_consumer("${_pkg}/components" "${WORK_DIR}/built" "-DCMAKE_PREFIX_PATH=${PREFIX}"
                   "-DEXPECT_FOUND=${_built_arg}")
    message(STATUS "check-package: built components found: ${_built}")
  endif()
  # An installation without the adapters, for the components it lacks.
  set(_bare_args -S "${SOURCE_DIR}" -B "${WORK_DIR}/bare-build" -G "${GENERATOR}"
      -DAIOPOLL_WITH_GLIB=OFF -DAIOPOLL_WITH_LIBEVENT=OFF -DAIOPOLL_WITH_LIBUV=OFF
      -DAIOPOLL_BUILD_TESTS=OFF -DAIOPOLL_BUILD_EXAMPLES=OFF -DAIOPOLL_BUILD_STATIC=OFF)
  if(C_COMPILER)
    list(APPEND _bare_args "-DCMAKE_C_COMPILER=${C_COMPILER}")
  endif()
  if(TOOLCHAIN_FILE)
    list(APPEND _bare_args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
  endif()
  run(${CMAKE_COMMAND} ${_bare_args})
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/bare-build")
  set(PREFIX "${WORK_DIR}/bare-prefix")
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/bare-build" --prefix "${PREFIX}")
  # OPTIONAL_COMPONENTS that are not built: found, each reported missing.
  cmake_consumer("${_pkg}/components" "${WORK_DIR}/optional" "-DCMAKE_PREFIX_PATH=${PREFIX}")
  # A REQUIRED one: the configuration fails and says which component and why.
  foreach(_c glib no_such_adapter)
    set(_args -S "${_pkg}/components" -B "${WORK_DIR}/required-${_c}" -G "${GENERATOR}"
        "-DCMAKE_PREFIX_PATH=${PREFIX}" "-DREQUIRE=${_c}")
    if(TOOLCHAIN_FILE)
      list(APPEND _args "-DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN_FILE}")
    endif()
    execute_process(COMMAND ${CMAKE_COMMAND} ${_args} RESULT_VARIABLE _rc
                    OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
    if(_rc EQUAL 0)
      message(FATAL_ERROR "check-package: COMPONENTS ${_c} was found, but it was never built")
    endif()
    if(_c STREQUAL "glib")
      set(_why "not built into this installation")
    else()
      set(_why "unknown component")
    endif()
    # CMake wraps the reason across lines.
    string(REGEX REPLACE "[ \t\n]+" " " _err "${_err}")
    if(NOT _err MATCHES "component ${_c}: ${_why}")
      message(FATAL_ERROR "check-package: COMPONENTS ${_c}: no clear message:\n${_out}\n${_err}")
    endif()
    message(STATUS "check-package: COMPONENTS ${_c} reported as: ${CMAKE_MATCH_0}")
  endforeach()
elseif(MODE STREQUAL "pkgconfig")
  install_prefix()
  pkg_config_env(_env)
  if(TOOLCHAIN_FILE)
    set(_cc x86_64-w64-mingw32-gcc)
  elseif(C_COMPILER)
    set(_cc "${C_COMPILER}")
  else()
    set(_cc cc)
  endif()
  if(NOT PKG_CONFIG)
    set(PKG_CONFIG pkg-config)
  endif()
  if(NOT MAKE)
    set(MAKE make)
  endif()
  run(${CMAKE_COMMAND} -E env ${_env} "${MAKE}" -C "${WORK_DIR}" -f "${_pkg}/pkgconfig/Makefile"
      "CC=${_cc}" "PKG_CONFIG=${PKG_CONFIG}" "EXEEXT=${_exe}" "SRCDIR=${_pkg}/consumer")
  run_consumer("${WORK_DIR}/consumer-shared${_exe}" shared)
  run_consumer("${WORK_DIR}/consumer-static${_exe}" static)
elseif(MODE STREQUAL "meson")
  install_prefix()
  pkg_config_env(_env)
  # Meson keeps a project's sources inside its directory: copy them there.
  file(COPY "${_pkg}/meson/meson.build" "${_pkg}/consumer/consumer.c"
       DESTINATION "${WORK_DIR}/src")
  set(_setup setup "${WORK_DIR}/build" "${WORK_DIR}/src")
  if(MESON_CROSS_FILE)
    # A cross build reads pkg-config's search path from a cross file, not
    # from the environment.
    file(GLOB _pcdirs LIST_DIRECTORIES true "${PREFIX}/lib*/pkgconfig")
    list(GET _pcdirs 0 _pcdir)
    file(WRITE "${WORK_DIR}/paths.ini" "[properties]\npkg_config_libdir = ['${_pcdir}']\n")
    list(APPEND _setup --cross-file "${MESON_CROSS_FILE}" --cross-file "${WORK_DIR}/paths.ini")
  elseif(C_COMPILER)
    list(APPEND _env "CC=${C_COMPILER}")
  endif()
  if(NOT MESON)
    set(MESON meson)
  endif()
  run(${CMAKE_COMMAND} -E env ${_env} "${MESON}" ${_setup})
  run(${CMAKE_COMMAND} -E env ${_env} "${MESON}" compile -C "${WORK_DIR}/build")
  run_consumer("${WORK_DIR}/build/consumer-shared${_exe}" shared)
  run_consumer("${WORK_DIR}/build/consumer-static${_exe}" static)
elseif(MODE STREQUAL "bare")
  # A machine with a compiler, CMake and threads only: no Criterion (an empty
  # pkg-config path hides it). The README's install command must work and
  # say once why the suite is skipped; AIOPOLL_REQUIRE_TESTS=ON must fail.
  set(_env "PKG_CONFIG_LIBDIR=${WORK_DIR}/empty" "PKG_CONFIG_PATH=")
  set(_args -S "${SOURCE_DIR}" -G "${GENERATOR}")
  if(C_COMPILER)
    list(APPEND _args "-DCMAKE_C_COMPILER=${C_COMPILER}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E env ${_env} ${CMAKE_COMMAND} ${_args}
                          -B "${WORK_DIR}/build"
                  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
  string(REGEX MATCHALL "aiopoll: the test suite is not built[^\n]*" _said "${_out}${_err}")
  list(LENGTH _said _n)
  if(NOT _rc EQUAL 0 OR NOT _n EQUAL 1)
    message(FATAL_ERROR "check-package: bare configure: rc ${_rc}, ${_n} skip messages: ${_said}\n${_out}\n${_err}")
  endif()
  message(STATUS "check-package: bare configure said: ${_said}")
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/build" --prefix "${PREFIX}")
  cmake_consumer("${_pkg}/consumer" "${WORK_DIR}/consumer" -DAIOPOLL_CONSUMER_MODE=find_package
                 "-DCMAKE_PREFIX_PATH=${PREFIX}")
  run_consumer("${WORK_DIR}/consumer/consumer${_exe}" shared)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env ${_env} ${CMAKE_COMMAND} ${_args}
                          -B "${WORK_DIR}/required" -DAIOPOLL_REQUIRE_TESTS=ON
                  RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_VARIABLE _err)
  if(_rc EQUAL 0 OR NOT _err MATCHES "AIOPOLL_REQUIRE_TESTS is ON")
    message(FATAL_ERROR "check-package: AIOPOLL_REQUIRE_TESTS=ON without Criterion did not fail clearly\n${_err}")
  endif()
elseif(MODE STREQUAL "exports")
  install_prefix()
  shared_library(_lib)
  if(NOT OBJDUMP)
    message(FATAL_ERROR "check-package: exports needs OBJDUMP")
  endif()
  if(TOOLCHAIN_FILE)
    # The DLL's export table: "[ ordinal] name" lines after "Name Pointer".
    execute_process(COMMAND "${OBJDUMP}" -p "${_lib}" OUTPUT_VARIABLE _dump RESULT_VARIABLE _rc)
    # The table ends at the first blank line.
    string(REGEX MATCH "Name Pointer\\] Table\n([^\n]+\n)+" _dump "${_dump}")
    string(REGEX MATCHALL "\n[ \t]*\\[ *[0-9]+\\] [A-Za-z_][A-Za-z0-9_]*" _syms "${_dump}")
    list(TRANSFORM _syms REPLACE "^.*] " "")
  else()
    # Defined dynamic symbols: objdump -T lines without *UND*.
    execute_process(COMMAND "${OBJDUMP}" -T "${_lib}" OUTPUT_VARIABLE _dump RESULT_VARIABLE _rc)
    string(REGEX MATCHALL "[^\n]+" _lines "${_dump}")
    list(FILTER _lines INCLUDE REGEX "^[0-9a-f]+ .* (\\.text|\\.data|\\.bss|\\.rodata)")
    list(TRANSFORM _lines REPLACE ".*[ \t]" "")
    set(_syms ${_lines})
  endif()
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "check-package: ${OBJDUMP} failed on ${_lib}")
  endif()
  # What the installed headers declare with AIOPOLL_API.
  file(GLOB _headers "${PREFIX}/include/aiopoll/*.h")
  set(_api)
  foreach(_h IN LISTS _headers)
    file(READ "${_h}" _text)
    string(REGEX MATCHALL "AIOPOLL_API[^;(]*[ *][A-Za-z_][A-Za-z0-9_]*\\(" _decls "${_text}")
    list(TRANSFORM _decls REPLACE "^.*[ *]([A-Za-z_][A-Za-z0-9_]*)\\($" "\\1")
    # The #define AIOPOLL_API lines match too: drop __attribute__ and co.
    list(FILTER _decls EXCLUDE REGEX "^__")
    list(APPEND _api ${_decls})
  endforeach()
  list(SORT _api)
  list(SORT _syms)
  list(REMOVE_DUPLICATES _syms)
  list(LENGTH _api _napi)
  if(_napi LESS 10)
    message(FATAL_ERROR "check-package: found only ${_napi} AIOPOLL_API declarations: '${_api}'")
  endif()
  set(_extra ${_syms})
  list(REMOVE_ITEM _extra ${_api})
  set(_missing ${_api})
  list(REMOVE_ITEM _missing ${_syms})
  if(_extra OR _missing)
    message(FATAL_ERROR "check-package: ${_lib} exports are not the public API\n"
                        "  exported but not AIOPOLL_API: ${_extra}\n"
                        "  AIOPOLL_API but not exported: ${_missing}")
  endif()
  message(STATUS "check-package: ${_lib} exports exactly the ${_napi} AIOPOLL_API functions")
else()
  message(FATAL_ERROR "check-package: unknown MODE '${MODE}'")
endif()
