/* SPDX-License-Identifier: MIT */
/* The Windows backends: just one. */
#include "backend.h"

extern const AioBackendOps aio__backend_win32;

const AioBackendOps *const aio__backends[] = {
    &aio__backend_win32,
    NULL,
};
