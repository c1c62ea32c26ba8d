/* SPDX-License-Identifier: MIT */
#ifndef AIOPOLL_VERSION_H
#define AIOPOLL_VERSION_H

/* CMakeLists.txt reads these three lines to set the project version, so the
 * header is the single place a release bumps. */
#define AIOPOLL_VERSION_MAJOR 1
#define AIOPOLL_VERSION_MINOR 0
#define AIOPOLL_VERSION_PATCH 0

#define AIOPOLL_VERSION_HEX \
    ((AIOPOLL_VERSION_MAJOR << 16) | (AIOPOLL_VERSION_MINOR << 8) | AIOPOLL_VERSION_PATCH)

#endif
