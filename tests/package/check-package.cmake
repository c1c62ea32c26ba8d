# ctest driver: install the just-built library into a scratch prefix, then
# build and run the consumer against it (MODE=find_package), or build the
# consumer with aiopoll as a subdirectory (MODE=add_subdirectory).
# -D: MODE, SOURCE_DIR, BUILD_DIR (aiopoll's build tree), WORK_DIR, GENERATOR
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
set(_consumer_args -S "${SOURCE_DIR}/tests/package/consumer" -B "${WORK_DIR}/consumer"
    -G "${GENERATOR}" -DAIOPOLL_CONSUMER_MODE=${MODE})
if(MODE STREQUAL "find_package")
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
run("${WORK_DIR}/consumer/consumer")
