# Whether the Criterion test suite can be built: sets AIOPOLL_TEST_DEPS_FOUND.
# A library user without libcriterion-dev gets the library, the package
# tests and one line saying why the suite is skipped; with
# AIOPOLL_REQUIRE_TESTS=ON (tools/run-tests.sh, .ci/run) a miss is an error,
# so that CI never passes on a suite it did not build.
set(AIOPOLL_TEST_DEPS_FOUND TRUE)
# tests/CMakeLists.txt switches to the bundled stand-in (criterion-lite/)
# under TSan or when asked; it needs nothing from outside.
if(AIOPOLL_TEST_CRITERION_SHIM OR AIOPOLL_SANITIZE MATCHES "thread")
  return()
endif()
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(_AIOPOLL_TESTDEP_CRITERION QUIET criterion)
endif()
if(_AIOPOLL_TESTDEP_CRITERION_FOUND)
  return()
endif()
set(AIOPOLL_TEST_DEPS_FOUND FALSE)
if(NOT PKG_CONFIG_FOUND)
  set(_aiopoll_why "pkg-config was not found, so neither was Criterion")
elseif(CMAKE_CROSSCOMPILING)
  set(_aiopoll_why "no cross-built Criterion in the pkg-config path (tools/build-mingw-criterion.sh <prefix>, then -DAIOPOLL_MINGW_DEPS=<prefix>)")
else()
  set(_aiopoll_why "Criterion was not found by pkg-config (Debian: apt-get install libcriterion-dev)")
endif()
if(AIOPOLL_REQUIRE_TESTS)
  message(FATAL_ERROR "aiopoll: AIOPOLL_REQUIRE_TESTS is ON, but ${_aiopoll_why}")
endif()
message(NOTICE "aiopoll: the test suite is not built: ${_aiopoll_why}. "
               "The library builds and installs as usual, and -DAIOPOLL_BUILD_TESTS=OFF silences this.")
unset(_aiopoll_why)
