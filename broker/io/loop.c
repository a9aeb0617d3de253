/* loop: signals, debounced directory watches and the tick (see loop.h). Every handle lives in
 * memory owned here and is freed only after its close callback ran. */
#include "loop.h"

#include "log.h"
#include "xmalloc.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One callback's debounce timer, shared by every registration with the same (cb, ctx). */
struct debounce {
    uv_timer_t t;
    struct loop *l;
    void (*cb)(void *ctx);
    void *ctx;
    uint64_t ms;
    uint64_t first; /* loop time of the burst's first change; valid while pending */
    bool pending;
    struct debounce *next;
};

/* One file (or any file) of a watched directory. */
struct watch_file {
    char *name; /* NULL = any file */
    struct debounce *d;
    struct watch_file *next;
};

/* One watched directory. */
struct watch_dir {
    uv_fs_event_t ev;
    struct loop *l;
    char *dir;
    struct watch_file *files;
    struct watch_dir *next;
};

/* SIGHUP, SIGTERM, SIGINT */
#define LOOP__NSIG 3

struct loop {
    uv_loop_t *uv;
    uv_signal_t sig[LOOP__NSIG];
    bool signals_on;
    void (*reload)(void *ctx);
    void (*stop)(void *ctx);
    void *sig_ctx;
    uv_timer_t tick;
    bool tick_on;
    void (*tick_cb)(void *ctx, uint64_t now);
    void *tick_ctx;
    struct watch_dir *dirs;
    struct debounce *debounces;
    unsigned open; /* handles whose close callback has not run yet */
    bool stopping, freeing;
};

static const int signums[LOOP__NSIG] = {SIGHUP, SIGTERM, SIGINT};

struct loop *loop_new(uv_loop_t *uv)
{
    struct loop *l = xcalloc(1, sizeof(*l));
    l->uv = uv;
    return l;
}

static void release(struct loop *l)
{
    for (struct watch_dir *w = l->dirs, *wn; w; w = wn) {
        wn = w->next;
        for (struct watch_file *f = w->files, *fn; f; f = fn) {
            fn = f->next;
            free(f->name);
            free(f);
        }
        free(w->dir);
        free(w);
    }
    for (struct debounce *d = l->debounces, *dn; d; d = dn) {
        dn = d->next;
        free(d);
    }
    free(l);
}

static void closed(uv_handle_t *h)
{
    struct loop *l = h->data;
    if (--l->open == 0 && l->freeing)
        release(l);
}

/* Every handle's data is the loop; a watch or debounce is found from its handle, its first
 * member. */
static void close_handle(struct loop *l, uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h))
        uv_close(h, closed);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct loop *l = h->data;
    if (l->stopping) {
        log_notice("signal %d: already stopping", signum);
        return;
    }
    if (signum == SIGHUP) {
        l->reload(l->sig_ctx);
        return;
    }
    log_notice("%s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    l->stop(l->sig_ctx);
}

void loop_on_signals(struct loop *l, void (*reload)(void *ctx), void (*stop)(void *ctx), void *ctx)
{
    l->reload = reload;
    l->stop = stop;
    l->sig_ctx = ctx;
    for (int i = 0; i < LOOP__NSIG; i++) {
        uv_signal_init(l->uv, &l->sig[i]);
        l->sig[i].data = l;
        l->open++;
        uv_signal_start(&l->sig[i], on_signal, signums[i]);
    }
    l->signals_on = true;
}

static void on_tick(uv_timer_t *t)
{
    struct loop *l = t->data;
    l->tick_cb(l->tick_ctx, uv_now(l->uv));
}

void loop_every(struct loop *l, uint64_t period_ms, void (*cb)(void *ctx, uint64_t now), void *ctx)
{
    l->tick_cb = cb;
    l->tick_ctx = ctx;
    uv_timer_init(l->uv, &l->tick);
    l->tick.data = l;
    l->open++;
    l->tick_on = true;
    uv_timer_start(&l->tick, on_tick, period_ms, period_ms);
}

static void debounced(uv_timer_t *t)
{
    struct debounce *d = (struct debounce *)t;
    d->pending = false;
    d->cb(d->ctx);
}

/* A change: the callback runs after d->ms of quiet, but never later than LOOP_DEBOUNCE_MAX_MS
 * after the burst's first change (see loop.h). */
static void debounce_arm(struct debounce *d)
{
    uint64_t now = uv_now(d->l->uv);
    if (!d->pending) {
        d->pending = true;
        d->first = now;
    }
    uint64_t due = now + d->ms, limit = d->first + LOOP_DEBOUNCE_MAX_MS;
    if (due > limit)
        due = limit > now ? limit : now;
    uv_timer_start(&d->t, debounced, due - now, 0);
}

static struct debounce *debounce_for(struct loop *l, uint64_t ms, void (*cb)(void *), void *ctx)
{
    for (struct debounce *d = l->debounces; d; d = d->next)
        if (d->cb == cb && d->ctx == ctx)
            return d;
    struct debounce *d = xcalloc(1, sizeof(*d));
    d->l = l;
    d->cb = cb;
    d->ctx = ctx;
    d->ms = ms;
    uv_timer_init(l->uv, &d->t);
    d->t.data = l;
    l->open++;
    d->next = l->debounces;
    l->debounces = d;
    return d;
}

static void dir_changed(uv_fs_event_t *h, const char *name, int events, int status)
{
    struct watch_dir *w = (struct watch_dir *)h;
    if (status < 0 || !name || w->l->stopping)
        return;
    for (struct watch_file *f = w->files; f; f = f->next)
        if (!f->name || !strcmp(f->name, name))
            debounce_arm(f->d);
}

static struct watch_dir *dir_for(struct loop *l, const char *dir)
{
    for (struct watch_dir *w = l->dirs; w; w = w->next)
        if (!strcmp(w->dir, dir))
            return w;
    struct watch_dir *w = xcalloc(1, sizeof(*w));
    w->l = l;
    w->dir = xstrdup(dir);
    w->next = l->dirs;
    l->dirs = w;
    uv_fs_event_init(l->uv, &w->ev);
    w->ev.data = l;
    l->open++;
    int r = uv_fs_event_start(&w->ev, dir_changed, w->dir, 0);
    if (r != 0)
        log_warn("cannot watch %s (%s); reload with SIGHUP", w->dir, uv_strerror(r));
    return w;
}

void loop_watch(struct loop *l, const char *dir, const char *name, uint64_t debounce_ms,
                void (*cb)(void *ctx), void *ctx)
{
    struct watch_dir *w = dir_for(l, dir);
    struct watch_file *f = xcalloc(1, sizeof(*f));
    f->name = name ? xstrdup(name) : NULL;
    f->d = debounce_for(l, debounce_ms, cb, ctx);
    f->next = w->files;
    w->files = f;
}

void loop_again(struct loop *l, uint64_t debounce_ms, void (*cb)(void *ctx), void *ctx)
{
    if (!l->stopping)
        debounce_arm(debounce_for(l, debounce_ms, cb, ctx));
}

void loop_stop(struct loop *l)
{
    l->stopping = true;
    for (int i = 0; l->signals_on && i < LOOP__NSIG; i++)
        uv_unref((uv_handle_t *)&l->sig[i]);
    if (l->tick_on)
        close_handle(l, (uv_handle_t *)&l->tick);
    for (struct debounce *d = l->debounces; d; d = d->next)
        close_handle(l, (uv_handle_t *)&d->t);
    for (struct watch_dir *w = l->dirs; w; w = w->next)
        close_handle(l, (uv_handle_t *)&w->ev);
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    loop_stop(l);
    for (int i = 0; l->signals_on && i < LOOP__NSIG; i++)
        close_handle(l, (uv_handle_t *)&l->sig[i]);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    l->freeing = true;
    if (l->open == 0)
        release(l);
}
