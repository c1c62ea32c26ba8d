/* SPDX-License-Identifier: MIT */
/* fd handler tests on connected stream sockets: socketpair(AF_UNIX) on POSIX,
 * a loopback TCP pair on Windows (see fd-cases.inc). */
#define FD_SUITE fd_socket
#define FD_PAIR tsup_socketpair
#include "fd-cases.inc"
