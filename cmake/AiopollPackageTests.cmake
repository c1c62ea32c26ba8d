# The package tests (label "package"): consumers of the installed package
# through CMake, pkg-config and Meson, shared and static, and the shared
# library's export list; tests/package/check-package.cmake says what each
# mode checks. Natively, and in a MinGW cross build (run under Wine) with the
# consumer using the same toolchain file, which is how the toolchain file's
# package search is tested.
#
# Not in sanitizer builds: the installed static library would need the
# sanitizer runtime that a consumer does not link. The consumers use the
# compiler that built aiopoll (musl-gcc, clang...). package/cxx is a C++
# consumer of the installed package, when there is a C++ compiler; only that
# test's own project enables C++.
if(NOT AIOPOLL_INSTALL OR AIOPOLL_SANITIZE)
  return()
endif()
if(CMAKE_CROSSCOMPILING AND NOT MINGW)
  message(STATUS "aiopoll: package tests run natively or with MinGW only")
  return()
endif()

set(_aiopoll_package_modes components)
if(AIOPOLL_BUILD_SHARED)
  list(APPEND _aiopoll_package_modes find_package exports)
endif()
if(AIOPOLL_BUILD_STATIC)
  list(APPEND _aiopoll_package_modes find_package_static)
endif()
if(NOT CMAKE_CROSSCOMPILING AND AIOPOLL_BUILD_SHARED)
  # bare: configures aiopoll afresh, natively only (its own default options).
  list(APPEND _aiopoll_package_modes add_subdirectory bare)
endif()

set(_aiopoll_c_libc "")
if(NOT CMAKE_CROSSCOMPILING)
  include(CheckLanguage)
  check_language(CXX)
  if(CMAKE_CXX_COMPILER AND AIOPOLL_BUILD_SHARED)
    list(APPEND _aiopoll_package_modes cxx)
    # Which C library aiopoll is built against, so that the C++ test can
    # tell a C++ compiler for another one (g++ next to musl-gcc).
    include(CheckSymbolExists)
    check_symbol_exists(__GLIBC__ "stdlib.h" AIOPOLL_C_HAVE_GLIBC)
    if(AIOPOLL_C_HAVE_GLIBC)
      set(_aiopoll_c_libc glibc)
    else()
      set(_aiopoll_c_libc non-glibc)
    endif()
  else()
    message(STATUS "aiopoll: no C++ compiler, so no package/cxx test")
  endif()
endif()

# pkg-config and Meson consumers: both kinds at once.
find_program(AIOPOLL_PKG_CONFIG NAMES pkgconf pkg-config)
find_program(AIOPOLL_MESON meson)
find_program(AIOPOLL_MAKE NAMES make gmake)
foreach(_tool PKG_CONFIG MESON MAKE)
  if(NOT AIOPOLL_${_tool} AND AIOPOLL_REQUIRE_TESTS)
    message(FATAL_ERROR "aiopoll: AIOPOLL_REQUIRE_TESTS is ON, but ${_tool} was not found "
                        "(tools/deps.sh installs it)")
  endif()
endforeach()
if(AIOPOLL_BUILD_SHARED AND AIOPOLL_BUILD_STATIC)
  if(AIOPOLL_PKG_CONFIG AND AIOPOLL_MAKE)
    list(APPEND _aiopoll_package_modes pkgconfig)
  else()
    message(STATUS "aiopoll: no pkg-config or make, so no package/pkgconfig test")
  endif()
  if(AIOPOLL_PKG_CONFIG AND AIOPOLL_MESON)
    list(APPEND _aiopoll_package_modes meson)
  else()
    message(STATUS "aiopoll: no pkg-config or meson, so no package/meson test")
  endif()
endif()

set(_aiopoll_cross_args "")
if(CMAKE_CROSSCOMPILING)
  list(JOIN CMAKE_CROSSCOMPILING_EMULATOR "|" _aiopoll_emulator)
  list(APPEND _aiopoll_cross_args
    "-DTOOLCHAIN_FILE=${CMAKE_TOOLCHAIN_FILE}"
    "-DMESON_CROSS_FILE=${PROJECT_SOURCE_DIR}/cmake/toolchains/mingw-w64-x86_64.meson"
    "-DEMULATOR=${_aiopoll_emulator}")
endif()

foreach(_mode IN LISTS _aiopoll_package_modes)
  add_test(NAME package/${_mode}
    COMMAND ${CMAKE_COMMAND} -DMODE=${_mode} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
            -DBUILD_DIR=${PROJECT_BINARY_DIR}
            -DWORK_DIR=${PROJECT_BINARY_DIR}/package-check/${_mode}
            -DGENERATOR=${CMAKE_GENERATOR}
            -DC_COMPILER=${CMAKE_C_COMPILER}
            -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
            -DC_LIBC=${_aiopoll_c_libc}
            -DOBJDUMP=${CMAKE_OBJDUMP}
            -DPKG_CONFIG=${AIOPOLL_PKG_CONFIG}
            -DMESON=${AIOPOLL_MESON}
            -DMAKE=${AIOPOLL_MAKE}
            ${_aiopoll_cross_args}
            -P ${PROJECT_SOURCE_DIR}/tests/package/check-package.cmake)
  set_tests_properties(package/${_mode} PROPERTIES TIMEOUT 300 LABELS package)
endforeach()
