/* SPDX-License-Identifier: MIT */
/* fd handler tests on POSIX pipes (POSIX only; see fd-cases.inc). */
#include "test-support.h"

#if !TSUP_HAVE_PIPE
#error "test_fd_pipe.c is POSIX-only; test_fd_socket.c covers this platform"
#endif

#define FD_SUITE fd_pipe
#define FD_PAIR tsup_pipe
#include "fd-cases.inc"
