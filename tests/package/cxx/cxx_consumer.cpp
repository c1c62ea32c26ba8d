// SPDX-License-Identifier: MIT
// A C++17 program using aiopoll only through the installed header and the
// aiopoll::aiopoll target: bottom halves, a timer, an event notifier and the
// error conventions, called from C++.
#include <aiopoll/aio.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace {

struct Counts {
    int bh = 0;
    int timer = 0;
    int notifier = 0;
    AioEventNotifier *n = nullptr;
};

int check(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "cxx_consumer: %s\n", what);
    }
    return ok ? 0 : 1;
}

} // namespace

int main()
{
    const std::string expect = std::to_string(AIOPOLL_VERSION_MAJOR) + "." +
                               std::to_string(AIOPOLL_VERSION_MINOR) + "." +
                               std::to_string(AIOPOLL_VERSION_PATCH);
    int bad = check(expect == aiopoll_version(), "header and library versions differ");
    bad += check(aio_poll(nullptr, false) == -EINVAL, "aio_poll(NULL) is not -EINVAL");
    bad += check(std::string_view(aio_strerror(-EPERM)).find("EPERM") != std::string_view::npos,
                 "aio_strerror(-EPERM) does not name EPERM");

    AioContext *ctx = aio_context_new();
    if (!ctx) {
        std::fprintf(stderr, "cxx_consumer: aio_context_new failed\n");
        return 1;
    }
    Counts c;

    // Captureless lambdas convert to the callback pointer types.
    bad += check(aio_bh_schedule_oneshot(ctx, [](void *p) { ++static_cast<Counts *>(p)->bh; },
                                         &c) == 0,
                 "aio_bh_schedule_oneshot failed");

    AioTimer *t = aio_timer_new(ctx, [](void *p) { ++static_cast<Counts *>(p)->timer; }, &c);
    bad += check(t != nullptr, "aio_timer_new failed");
    aio_timer_mod(t, aio_clock_ns() + 1000000); // 1 ms

    c.n = aio_event_notifier_new(true);
    bad += check(c.n != nullptr, "aio_event_notifier_new failed");
    AioHandler *on_set = [](void *p) {
        auto *cc = static_cast<Counts *>(p);
        if (aio_event_notifier_test_and_clear(cc->n)) {
            ++cc->notifier;
        }
    };
    bad += check(aio_set_event_notifier(ctx, c.n, false, on_set, nullptr, &c) == 0,
                 "aio_set_event_notifier failed");

    for (int i = 0; i < 1000 && (c.bh < 1 || c.timer < 1 || c.notifier < 1); i++) {
        if (aio_poll(ctx, true) < 0) {
            bad++;
            break;
        }
    }
    bad += check(c.bh == 1 && c.timer == 1 && c.notifier == 1, "not every callback ran once");
    std::printf("cxx_consumer: aiopoll %s (C++%ld), backend %s, bh %d, timer %d, notifier %d\n",
                aiopoll_version(), static_cast<long>(__cplusplus / 100 % 100),
                aio_context_backend(ctx), c.bh, c.timer, c.notifier);

    aio_set_event_notifier(ctx, c.n, false, nullptr, nullptr, nullptr);
    aio_event_notifier_free(c.n);
    aio_timer_free(t);
    aio_context_unref(ctx);
    return bad == 0 ? 0 : 1;
}
