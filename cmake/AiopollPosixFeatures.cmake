# Which Linux-only system calls this POSIX system has. Each result becomes a
# private AIOPOLL_HAVE_* definition of the library, seen only by src/posix/.
include(CheckSymbolExists)

set(CMAKE_REQUIRED_DEFINITIONS -D_GNU_SOURCE)
check_symbol_exists(eventfd "sys/eventfd.h" AIOPOLL_HAVE_EVENTFD)
check_symbol_exists(ppoll "poll.h" AIOPOLL_HAVE_PPOLL)
check_symbol_exists(epoll_create1 "sys/epoll.h" AIOPOLL_HAVE_EPOLL)
check_symbol_exists(epoll_pwait2 "sys/epoll.h" AIOPOLL_HAVE_EPOLL_PWAIT2)
# The eventfd backends' futex word (src/posix/kick.h): Linux's futex(2).
check_symbol_exists(SYS_futex "sys/syscall.h" AIOPOLL_HAVE_FUTEX)
if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
  set(AIOPOLL_HAVE_FUTEX 0)
endif()
unset(CMAKE_REQUIRED_DEFINITIONS)
if(NOT EXISTS "${PROJECT_SOURCE_DIR}/src/posix/backend-epoll.c")
  set(AIOPOLL_HAVE_EPOLL 0)
endif()

# The io_uring backend, when liburing (Debian: liburing-dev) is there. OFF
# builds without it; ON makes a missing liburing a configure error.
set(AIOPOLL_WITH_IO_URING AUTO CACHE STRING "Build the io_uring backend: AUTO, ON or OFF")
set(AIOPOLL_HAVE_IO_URING 0)
if(NOT AIOPOLL_WITH_IO_URING STREQUAL "OFF" AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
  find_path(AIOPOLL_LIBURING_INCLUDE_DIR liburing.h)
  find_library(AIOPOLL_LIBURING_LIBRARY uring)
  if(AIOPOLL_LIBURING_INCLUDE_DIR AND AIOPOLL_LIBURING_LIBRARY)
    include(CheckCSourceCompiles)
    set(CMAKE_REQUIRED_INCLUDES ${AIOPOLL_LIBURING_INCLUDE_DIR})
    set(CMAKE_REQUIRED_LIBRARIES ${AIOPOLL_LIBURING_LIBRARY})
    # submit_and_wait_timeout and the 64-bit user data helpers: liburing 2.2+.
    check_c_source_compiles([=[
      #include <liburing.h>
      int main(void) {
        struct io_uring r; struct io_uring_cqe *c; struct __kernel_timespec ts = {0, 1};
        io_uring_queue_init(4, &r, 0);
        io_uring_sqe_set_data64(io_uring_get_sqe(&r), 1);
        return io_uring_submit_and_wait_timeout(&r, &c, 1, &ts, 0);
      }]=] AIOPOLL_LIBURING_USABLE)
    unset(CMAKE_REQUIRED_INCLUDES)
    unset(CMAKE_REQUIRED_LIBRARIES)
    if(AIOPOLL_LIBURING_USABLE)
      set(AIOPOLL_HAVE_IO_URING 1)
    endif()
  endif()
endif()
if(AIOPOLL_WITH_IO_URING STREQUAL "ON" AND NOT AIOPOLL_HAVE_IO_URING)
  message(FATAL_ERROR "aiopoll: AIOPOLL_WITH_IO_URING=ON but no usable liburing (2.2+) was found")
endif()
if(AIOPOLL_HAVE_IO_URING)
  # By name, not path: the exported static target and aiopoll.pc's
  # Libs.private then say -luring, which resolves on the consumer's system.
  set(_aiopoll_platform_libraries uring)
  set(_aiopoll_platform_include_dirs ${AIOPOLL_LIBURING_INCLUDE_DIR})
endif()

set(_aiopoll_platform_definitions _GNU_SOURCE)
if(APPLE)
  list(APPEND _aiopoll_platform_definitions _DARWIN_C_SOURCE)
endif()
foreach(_feature EVENTFD PPOLL EPOLL EPOLL_PWAIT2 FUTEX IO_URING)
  if(AIOPOLL_HAVE_${_feature})
    list(APPEND _aiopoll_platform_definitions AIOPOLL_HAVE_${_feature}=1)
  else()
    list(APPEND _aiopoll_platform_definitions AIOPOLL_HAVE_${_feature}=0)
  endif()
endforeach()
