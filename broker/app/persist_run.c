/* persist_run: the persist module on the running server: restore at start, commit once per loop
 * turn before acknowledgements go out, commit and vacuum on the tick, detach at the end. */
#include "persist.h"

#include "log.h"

/* SQLite incremental vacuum: often enough to give pages back, rare enough to cost nothing. */
#define PERSIST_VACUUM_INTERVAL_MS 60000

static void commit_turn(void *ctx)
{
    persist_commit(ctx);
}

struct persist *persist_start(const char *dir, struct broker *b, struct conn_env *cenv,
                              int64_t now_ms, int64_t wall_now)
{
    struct diag d;
    diag_init(&d);
    struct persist *p = persist_open(dir, &d);
    if (p && persist_load(p, b, now_ms, wall_now, &d) != 0) {
        persist_close(p);
        p = NULL;
    }
    for (size_t i = 0; i < d.count; i++)
        log_err("%s", d.msgs[i]);
    diag_free(&d);
    if (!p)
        return NULL;
    broker_set_store(b, persist_store(p));
    conn_env_set_before_flush(cenv, commit_turn, p);
    return p;
}

void persist_tick(struct persist *p, uint64_t now_ms, uint64_t *next_vacuum_ms)
{
    persist_commit(p); /* what the tick changed (expired sessions, wills) */
    if (now_ms >= *next_vacuum_ms) {
        persist_vacuum(p);
        *next_vacuum_ms = now_ms + PERSIST_VACUUM_INTERVAL_MS;
    }
}

void persist_stop(struct persist *p, struct broker *b)
{
    if (!p)
        return;
    /* Durable state is complete; detach it before the broker frees its memory. */
    broker_set_store(b, NULL);
    persist_close(p);
}
