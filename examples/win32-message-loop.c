/* SPDX-License-Identifier: MIT */
/*
 * A Win32 GUI thread whose message loop also drives an aiopoll context
 * (docs/embedding.md, "Windows"). The context gives the loop one HANDLE;
 * the loop sleeps on it and on its message queue at once with
 * MsgWaitForMultipleObjectsEx, so neither window messages nor the context's
 * work wait for the other.
 *
 * A worker thread "computes" jobs and hands each result back twice, the two
 * ways a Windows program would: a bottom half on the GUI thread's context
 * and a window message to its (message-only) window. A timer of the
 * context ticks through the loop's timeout. The loop ends, with
 * PostQuitMessage, once every result arrived both ways and the timer ticked.
 */
#include <aiopoll/aio.h> /* first: it includes winsock2.h before windows.h */

#include <windows.h>

#include <stdatomic.h>
#include <stdio.h>

#define JOBS 5
#define TICKS 3
#define WM_RESULT (WM_APP + 1)

typedef struct App {
    AioContext *ctx; /* the GUI thread's, embedded in its message loop */
    HWND wnd;
    int by_bh, by_message, ticks;
    AioTimer *tick;
} App;

typedef struct Job {
    App *app;
    int n, result;
} Job;

static void maybe_quit(App *app)
{
    if (app->by_bh == JOBS && app->by_message == JOBS && app->ticks >= TICKS) {
        PostQuitMessage(0);
    }
}

static void result_bh(void *opaque) /* on the GUI thread, from aio_embed_dispatch */
{
    Job *job = opaque;
    printf("bh:      job %d -> %d\n", job->n, job->result);
    job->app->by_bh++;
    maybe_quit(job->app);
}

static LRESULT CALLBACK wnd_proc(HWND wnd, UINT msg, WPARAM wp, LPARAM lp)
{
    if (msg == WM_RESULT) {
        App *app = (App *)GetWindowLongPtrW(wnd, GWLP_USERDATA);
        printf("message: job %d -> %d\n", (int)wp, (int)lp);
        app->by_message++;
        maybe_quit(app);
        return 0;
    }
    return DefWindowProcW(wnd, msg, wp, lp);
}

static void on_tick(void *opaque)
{
    App *app = opaque;
    printf("tick %d\n", ++app->ticks);
    if (app->ticks < TICKS) {
        aio_timer_mod(app->tick, aio_clock_ns() + 20 * 1000 * 1000);
    }
    maybe_quit(app);
}

static DWORD WINAPI worker(LPVOID opaque)
{
    Job *jobs = opaque;
    for (int i = 0; i < JOBS; i++) {
        Sleep(10); /* the work */
        jobs[i].result = jobs[i].n * jobs[i].n;
        /* aio_bh_schedule_oneshot and PostMessage are both safe from any
         * thread, and both end the GUI thread's MsgWaitForMultipleObjectsEx. */
        aio_bh_schedule_oneshot(jobs[i].app->ctx, result_bh, &jobs[i]);
        PostMessageW(jobs[i].app->wnd, WM_RESULT, (WPARAM)jobs[i].n, (LPARAM)jobs[i].result);
    }
    return 0;
}

/* GetMessage, with the context's HANDLE in the same sleep. */
static int run_message_loop(App *app)
{
    for (;;) {
        int64_t ns;
        aio_embed_prepare(app->ctx, &ns); /* before every sleep */
        AioEmbedFd fd;
        aio_embed_query(app->ctx, &fd, 1); /* win32: always one HANDLE */
        /* Rounded up, so that a timer is never seen early. */
        DWORD ms = ns < 0 ? INFINITE : (DWORD)((ns + 999999) / 1000000);
        HANDLE h = fd.handle;
        MsgWaitForMultipleObjectsEx(1, &h, ms, QS_ALLINPUT, MWMO_INPUTAVAILABLE);
        MSG m;
        while (PeekMessageW(&m, NULL, 0, 0, PM_REMOVE)) {
            if (m.message == WM_QUIT) {
                aio_embed_check(app->ctx); /* every sleep gets its check */
                return (int)m.wParam;
            }
            TranslateMessage(&m);
            DispatchMessageW(&m);
        }
        if (aio_embed_check(app->ctx) > 0) { /* after every sleep */
            aio_embed_dispatch(app->ctx);
        }
    }
}

int main(void)
{
    App app = {0};
    app.ctx = aio_context_new(); /* this thread is its home */
    if (!app.ctx || aio_embed_attach(app.ctx, NULL) < 0) {
        fprintf(stderr, "cannot embed a context on this backend\n");
        return 1;
    }
    WNDCLASSW wc = {0};
    wc.lpfnWndProc = wnd_proc;
    wc.hInstance = GetModuleHandleW(NULL);
    wc.lpszClassName = L"aiopoll-example";
    RegisterClassW(&wc);
    app.wnd = CreateWindowExW(0, wc.lpszClassName, L"", 0, 0, 0, 0, 0, HWND_MESSAGE, NULL,
                              wc.hInstance, NULL);
    SetWindowLongPtrW(app.wnd, GWLP_USERDATA, (LONG_PTR)&app);

    app.tick = aio_timer_new(app.ctx, on_tick, &app);
    aio_timer_mod(app.tick, aio_clock_ns() + 20 * 1000 * 1000);
    Job jobs[JOBS];
    for (int i = 0; i < JOBS; i++) {
        jobs[i] = (Job){&app, i + 1, 0};
    }
    HANDLE t = CreateThread(NULL, 0, worker, jobs, 0, NULL);

    int ret = run_message_loop(&app);
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
    printf("%d results by BH, %d by window message, %d ticks\n", app.by_bh, app.by_message,
           app.ticks);
    aio_timer_free(app.tick);
    DestroyWindow(app.wnd);
    aio_embed_detach(app.ctx);
    aio_context_unref(app.ctx);
    return ret;
}
