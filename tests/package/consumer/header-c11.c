/* SPDX-License-Identifier: MIT */
/* The public header alone, as C11 with -Wall -Wextra -Wpedantic -Werror. */
#include <stddef.h>

#include <aiopoll/aio.h>

_Static_assert(AIOPOLL_VERSION_HEX ==
                   ((AIOPOLL_VERSION_MAJOR << 16) | (AIOPOLL_VERSION_MINOR << 8) |
                    AIOPOLL_VERSION_PATCH),
               "version macros are integer constant expressions");

/* ISO C forbids an empty translation unit: give it one definition. */
int aiopoll_header_c11_check(void);
int aiopoll_header_c11_check(void)
{
    return aio_poll(NULL, false) == -EINVAL;
}
