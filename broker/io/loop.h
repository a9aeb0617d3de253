/* loop: the process-wide event sources that are not connections: signals, debounced file
 * watches and the periodic tick, on the caller's libuv loop.
 *
 * It knows nothing of what a reload means (ACL, CRLs, plugins) nor of MQTT: callers register a
 * callback per event. Signals: SIGHUP asks for a reload, SIGTERM and SIGINT for a stop; once
 * loop_stop() ran, further signals are only logged (a second SIGTERM must not kill a clean
 * shutdown). File watches watch directories, not files, so a file replaced by rename keeps being
 * seen; events are debounced because editors and tools write in several steps. */
#ifndef CERTMQ_LOOP_H
#define CERTMQ_LOOP_H

#include <stdint.h>
#include <uv.h>

/* Quiet time after the last change in a watched directory before its callback runs. */
#define LOOP_DEBOUNCE_MS 200
/* Longest a callback waits after the first change of a burst, even if changes never stop: the
 * quiet time restarts on every change, so without this bound a steady stream of writes (a tool
 * rewriting a file in a loop, an attacker touching the directory) would postpone a CRL or ACL
 * reload, and with it a revocation, for as long as it lasts. One second keeps a revocation
 * prompt while a normal burst (an editor's save, a `mv`) still runs the callback once. */
#define LOOP_DEBOUNCE_MAX_MS 1000

struct loop;

struct loop *loop_new(uv_loop_t *uv);
/* Handle SIGHUP (reload) and SIGTERM/SIGINT (stop) from now on. */
void loop_on_signals(struct loop *l, void (*reload)(void *ctx), void (*stop)(void *ctx), void *ctx);
/* cb(ctx, now) every period_ms, the first time one period from now. One tick per loop. */
void loop_every(struct loop *l, uint64_t period_ms, void (*cb)(void *ctx, uint64_t now), void *ctx);
/* Run cb(ctx) debounce_ms after the last change to the file `name` in directory dir (name
 * NULL: any file there), but no later than LOOP_DEBOUNCE_MAX_MS after the first change of the
 * burst. Registrations with the same (cb, ctx) share one debounce, so one burst of changes runs
 * cb once even when several of its files changed. A directory that cannot be watched is logged
 * once (a reload then needs SIGHUP). */
void loop_watch(struct loop *l, const char *dir, const char *name, uint64_t debounce_ms,
                void (*cb)(void *ctx), void *ctx);
/* Run cb(ctx) again as if one of its files had just changed: for a callback that found its
 * files still being written and wants the next debounce tick. Creates the debounce (with
 * debounce_ms) when cb has no watch. Ignored once the loop is stopping. */
void loop_again(struct loop *l, uint64_t debounce_ms, void (*cb)(void *ctx), void *ctx);
/* Shutdown begins: the tick and every watch are closed; signals stay handled (only logged)
 * but no longer keep the loop alive. */
void loop_stop(struct loop *l);
/* Close everything; the memory goes when the last close callback has run (the caller runs the
 * loop). SIGTERM and SIGINT are left ignored: closing the last signal handle restores the
 * default action, and a late SIGTERM must not turn a finished clean shutdown into a kill. */
void loop_free(struct loop *l);

#endif
