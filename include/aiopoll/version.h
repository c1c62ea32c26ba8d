/* SPDX-License-Identifier: MIT */
#ifndef AIOPOLL_VERSION_H
#define AIOPOLL_VERSION_H

/**
 * @file version.h
 * @brief The version of the headers (aiopoll_version() gives the library's).
 *
 * CMakeLists.txt reads the three AIOPOLL_VERSION_ lines to set the project
 * version, so the header is the single place a release bumps; the major is
 * the shared library's SONAME (docs/versioning.md).
 */
/** Incompatible API or ABI changes. */
#define AIOPOLL_VERSION_MAJOR 1
/** Compatible additions. */
#define AIOPOLL_VERSION_MINOR 0
/** Fixes only. */
#define AIOPOLL_VERSION_PATCH 0

/** The version as one integer constant, 0xMMmmpp. */
#define AIOPOLL_VERSION_HEX \
    ((AIOPOLL_VERSION_MAJOR << 16) | (AIOPOLL_VERSION_MINOR << 8) | AIOPOLL_VERSION_PATCH)

#endif
