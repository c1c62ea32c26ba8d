# ctest driver: install the just-built library into a scratch prefix, then
# build and run the consumer against it (MODE=find_package), or build the
# consumer with aiopoll as a subdirectory (MODE=add_subdirectory), or build and
# run the C++ consumer cxx/ against the installed package (MODE=cxx).
# -D: MODE, SOURCE_DIR, BUILD_DIR (aiopoll's build tree), WORK_DIR, GENERATOR
# Optional: C_COMPILER, the compiler aiopoll was built with, so that the
# consumer uses the same one (and so the same C library: musl-gcc); for
# MODE=cxx, CXX_COMPILER and C_LIBC ("glibc" or "non-glibc", see cxx/).
foreach(_var MODE SOURCE_DIR BUILD_DIR WORK_DIR GENERATOR)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "check-package: -D${_var}= is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "check-package: failed (${_rc}): ${ARGV}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
if(MODE STREQUAL "cxx")
  set(_consumer_args -S "${SOURCE_DIR}/tests/package/cxx" -B "${WORK_DIR}/consumer"
      -G "${GENERATOR}")
  if(CXX_COMPILER)
    list(APPEND _consumer_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
  endif()
  if(C_LIBC)
    list(APPEND _consumer_args "-DAIOPOLL_C_LIBC=${C_LIBC}")
  endif()
else()
  set(_consumer_args -S "${SOURCE_DIR}/tests/package/consumer" -B "${WORK_DIR}/consumer"
      -G "${GENERATOR}" -DAIOPOLL_CONSUMER_MODE=${MODE})
  if(C_COMPILER)
    list(APPEND _consumer_args "-DCMAKE_C_COMPILER=${C_COMPILER}")
  endif()
endif()
if(MODE STREQUAL "find_package" OR MODE STREQUAL "cxx")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
  if(NOT EXISTS "${WORK_DIR}/prefix/include/aiopoll/aio.h")
    message(FATAL_ERROR "check-package: the header was not installed")
  endif()
  list(APPEND _consumer_args "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
else()
  list(APPEND _consumer_args "-DAIOPOLL_SOURCE_DIR=${SOURCE_DIR}")
endif()
run(${CMAKE_COMMAND} ${_consumer_args})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer")
if(MODE STREQUAL "cxx")
  if(EXISTS "${WORK_DIR}/consumer/compile-only.txt")
    # A C++ compiler for another C library than aiopoll's: the header was
    # compiled as C++, but nothing was linked or run.
    file(READ "${WORK_DIR}/consumer/compile-only.txt" _why)
    string(STRIP "${_why}" _why)
    message(STATUS "check-package: cxx: header compiled as C++11 and C++17; not linked or run: ${_why}")
  else()
    run("${WORK_DIR}/consumer/cxx_consumer")
  endif()
else()
  run("${WORK_DIR}/consumer/consumer")
endif()
