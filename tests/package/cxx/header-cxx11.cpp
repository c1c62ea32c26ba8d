// SPDX-License-Identifier: MIT
// The public header, alone, as C++11 with -Wall -Wextra -Wpedantic -Werror.
#include <aiopoll/aio.h>

static_assert(AIOPOLL_VERSION_HEX ==
                  ((AIOPOLL_VERSION_MAJOR << 16) | (AIOPOLL_VERSION_MINOR << 8) |
                   AIOPOLL_VERSION_PATCH),
              "version macros are integer constant expressions");

// The callback typedefs are usable as C++ function pointer types.
static void on_bh(void *) {}
static bool on_poll(void *) { return false; }
bool aiopoll_cxx11_check();
bool aiopoll_cxx11_check()
{
    AioHandler *h = on_bh;
    AioPollHandler *p = on_poll;
    return h != nullptr && p != nullptr && aio_poll(nullptr, false) == -EINVAL;
}
