/* conn: the open byte stream of one peer: socket, TLS records, flush, back-pressure, close.
 *
 * Life: HELLO (accepted, read until its ClientHello is complete; no TLS engine yet) -> WAITING
 * (not read until a handshake slot is free) -> HANDSHAKE -> [CHECKING] -> OPEN -> [ENDING] ->
 * CLOSING. The way to OPEN is conn_handshake.c, which drives this file;
 * from here it is reached only through env->admission. What runs on top of the TLS stream (plain
 * MQTT bytes or WebSocket frames) is the connection's conn_ops, so this file knows no transport
 * protocol. Every state has a deadline on the connection's single timer. Idle connections give
 * their TLS record buffers back. Reads go into one env-wide buffer (the loop is single-threaded
 * and read callbacks do not nest), so an idle connection holds no read memory. Writes: the TLS
 * engine appends ciphertext to its output buffer, which is handed to the kernel with
 * uv_try_write and, for the rest, with uv_write that takes over the buffer's storage (no copy).
 * Never knows MQTT. */
#include "conn_internal.h"

#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>

struct wreq {
    uv_write_t req;
    struct conn *c;
    uint8_t *mem;
    size_t len;
};

static void flush_list_run(uv_check_t *h);
static void park_sweep(uv_timer_t *t);
static void unmark_active(struct conn *c);
static void release(struct conn *c);
static void timer_fire(uv_timer_t *t);

/* The env's stream half: the flush check and the park sweep (conn_env_new, conn_handshake.c). */
void conn__stream_init(struct conn_env *e)
{
    uv_check_init(e->loop, &e->check);
    e->check.data = e;
    uv_unref((uv_handle_t *)&e->check);
    uint64_t park_ms = e->o.park_after_ms;
    uv_timer_init(e->loop, &e->park_timer);
    e->park_timer.data = e;
    uv_timer_start(&e->park_timer, park_sweep, park_ms, park_ms);
    uv_unref((uv_handle_t *)&e->park_timer);
}

void conn__env_drop(struct conn_env *e)
{
    if (--e->holds)
        return;
    struct ip_count *ic, *tmp;
    HASH_ITER(hh, e->per_ip, ic, tmp)
    {
        HASH_DEL(e->per_ip, ic);
        free(ic);
    }
    free(e);
}

void conn__stream_close(struct conn_env *e, uv_close_cb cb)
{
    uv_close((uv_handle_t *)&e->check, cb);
    uv_close((uv_handle_t *)&e->park_timer, cb);
}

/* ---- idle connections give their record buffers back ----------------------------------------- */

static void mark_active(struct conn *c)
{
    struct conn_env *e = c->env;
    c->io_gen = e->gen;
    if (c->active || c->released)
        return;
    c->active = true;
    c->active_prev = NULL;
    c->active_next = e->active;
    if (e->active)
        e->active->active_prev = c;
    e->active = c;
}

static void unmark_active(struct conn *c)
{
    if (!c->active)
        return;
    if (c->active_prev)
        c->active_prev->active_next = c->active_next;
    else
        c->env->active = c->active_next;
    if (c->active_next)
        c->active_next->active_prev = c->active_prev;
    c->active = false;
}

/* Visits only connections that had I/O lately: one without any since the previous sweep is
 * parked and leaves the list until its next I/O. */
static void park_sweep(uv_timer_t *t)
{
    struct conn_env *e = t->data;
    struct conn *c = e->active;
    while (c) {
        struct conn *next = c->active_next;
        bool streaming = c->state == C_OPEN || c->state == C_ENDING;
        if (c->io_gen != e->gen && streaming && tls_conn_park(c->tls)) {
            unmark_active(c);
            e->stats.parked++;
            if (c->user_ready && c->cbs->on_idle)
                c->cbs->on_idle(c->ud, c);
        } else if (c->io_gen != e->gen && !streaming)
            unmark_active(c);
        c = next;
    }
    e->gen++;
}

void conn_env_set_before_flush(struct conn_env *e, void (*cb)(void *ctx), void *ctx)
{
    e->before_flush = cb;
    e->before_flush_ctx = ctx;
}

const struct conn_stats *conn_env_stats(const struct conn_env *e)
{
    return &e->stats;
}

uint64_t conn_id(const struct conn *c)
{
    return c->id;
}

void conn_set_user(struct conn *c, void *ud)
{
    c->ud = ud;
}

const struct tls_peer *conn_peer(const struct conn *c)
{
    return tls_conn_peer(c->tls);
}

const char *conn_addr(const struct conn *c)
{
    return c->addr;
}

const char *conn_ip(const struct conn *c)
{
    return c->ip;
}

uv_loop_t *conn_loop(const struct conn *c)
{
    return c->env->loop;
}

bool conn_closing(const struct conn *c)
{
    return c->state == C_CLOSING;
}

size_t conn_backlog(const struct conn *c)
{
    return c->queued + (c->tls ? buf_size(tls_conn_output(c->tls)) : 0) +
           (c->ops->backlog ? c->ops->backlog(c) : 0);
}

void conn__check_backlog(struct conn *c)
{
    if (!c->out_full && conn_backlog(c) >= c->env->o.max_backlog) {
        c->out_full = true;
        conn__update_reading(c);
    }
}

/* Half the limit: hysteresis, so a peer at the limit is not paused and resumed per write. */
void conn__drained(struct conn *c)
{
    if (c->out_full && conn_backlog(c) < c->env->o.max_backlog / 2) {
        c->out_full = false;
        conn__update_reading(c);
        conn_want_write(c);
    }
}

bool conn_output_full(struct conn *c)
{
    /* A writer that stops here must be called again once there is room: marking the
     * connection full makes conn__drained (write callback or a complete write) resume it.
     * Without the mark, a backlog that filled up during one write slot and then went out
     * whole in one try_write left the session's queue stalled until its next PUBACK or
     * publish. */
    conn__check_backlog(c);
    return conn_backlog(c) >= c->env->o.max_backlog;
}

/* ---- the flush list: one write slot per connection per loop turn ----------------------------- */

static void flush_add(struct conn *c)
{
    if (c->in_flush)
        return;
    c->in_flush = true;
    c->flush_next = c->env->flush_head;
    c->env->flush_head = c;
    uv_check_start(&c->env->check, flush_list_run);
}

void conn_want_write(struct conn *c)
{
    if (c->state == C_CLOSING)
        return;
    c->want_write = true;
    flush_add(c);
}

/* ---- reading --------------------------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = h->data;
    b->base = (char *)c->env->rbuf;
    b->len = sizeof(c->env->rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        if (n != UV_EOF && n != UV_ECONNRESET)
            log_debug("read from %s: %s", c->addr, uv_strerror((int)n));
        conn__start_close(c, false);
        return;
    }
    c->env->stats.bytes_in += (uint64_t)n;
    mark_active(c);
    if (c->state == C_HELLO) {
        c->env->admission->hello(c, (const uint8_t *)b->base, (size_t)n);
        return;
    }
    /* The shared read buffer is decrypted in place of a copy: everything below runs
     * synchronously. */
    tls_conn_input_borrow(c->tls, (const uint8_t *)b->base, (size_t)n);
    if (c->state == C_HANDSHAKE)
        c->env->admission->input(c); /* may reach C_OPEN, then the rest is application data */
    conn__pump(c);
    tls_conn_input_release(c->tls);
}

void conn__update_reading(struct conn *c)
{
    bool want = (c->state == C_HELLO || c->state == C_HANDSHAKE || c->state == C_OPEN ||
                 c->state == C_ENDING) &&
                !c->paused && !c->out_full && !c->deferred;
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0)
            c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

void conn_pause(struct conn *c)
{
    c->paused = true;
    conn__update_reading(c);
}

void conn_resume(struct conn *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    conn__update_reading(c);
    /* Bytes already inside the TLS engine will not raise another read event. */
    if (c->state == C_OPEN)
        conn__pump(c);
}

/* ---- writing --------------------------------------------------------------------------------- */

static void write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;
    c->queued -= w->len;
    free(w->mem);
    free(w);
    if (status < 0) {
        conn__start_close(c, false);
        return;
    }
    conn__drained(c);
}

/* Hand the TLS output to the kernel: as much as it takes now, the rest in one uv_write that
 * owns the buffer storage. */
void conn__flush_out(struct conn *c)
{
    if (!c->tls)
        return; /* C_HELLO: nothing to say before the peer's ClientHello */
    struct buf *o = tls_conn_output(c->tls);
    size_t n = buf_size(o);
    if (!n)
        return;
    c->env->stats.bytes_out += n;
    mark_active(c);
    if (c->queued == 0) {
        uv_buf_t ub = uv_buf_init((char *)buf_head(o), (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
        if (w > 0) {
            buf_consume(o, (size_t)w);
            n -= (size_t)w;
        } else if (w != UV_EAGAIN && w != UV_ENOSYS) {
            buf_consume(o, n);
            conn__start_close(c, false);
            return;
        }
    }
    if (n) {
        struct wreq *w = xmalloc(sizeof(*w));
        w->c = c;
        w->len = n;
        if (o->off == 0) {
            w->mem = o->data; /* take the storage over */
            buf_init(o);
        } else {
            w->mem = xmemdup(buf_head(o), n);
            buf_consume(o, n);
        }
        uv_buf_t ub = uv_buf_init((char *)w->mem, (unsigned)n);
        c->queued += n;
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, write_cb) != 0) {
            c->queued -= n;
            free(w->mem);
            free(w);
            conn__start_close(c, false);
            return;
        }
        conn__check_backlog(c);
    } else {
        buf_shrink(o, 0);
        conn__drained(c);
    }
}

int conn_write(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->state != C_OPEN)
        return -1;
    return c->ops->write(c, p, n);
}

static void flush_list_run(uv_check_t *h)
{
    struct conn_env *e = h->data;
    if (e->before_flush)
        e->before_flush(e->before_flush_ctx);
    while (e->flush_head) {
        struct conn *list = e->flush_head;
        e->flush_head = NULL;
        while (list) {
            struct conn *c = list;
            list = c->flush_next;
            c->in_flush = false;
            if (c->notify_close) {
                c->notify_close = false;
                c->cbs->on_close(c->ud, c);
                c->ud = NULL;
                continue;
            }
            if (c->state == C_OPEN && c->want_write) {
                c->want_write = false;
                c->in_flush = true; /* conn_write only encrypts while we are in the slot */
                c->cbs->on_writable(c->ud, c);
                c->in_flush = false;
            }
            if (c->state != C_CLOSING || !c->shutting)
                conn__flush_out(c);
        }
    }
    uv_check_stop(&e->check);
}

/* ---- the timer and reading the stream -------------------------------------------------------- */

static void timer_arm(struct conn *c)
{
    uint64_t next = c->due;
    if (c->cert_due && (!next || c->cert_due < next))
        next = c->cert_due;
    if (!next) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->env->loop);
    uv_timer_start(&c->timer, timer_fire, next > now ? next - now : 0, 0);
}

static void timer_set(struct conn *c, uint64_t ms)
{
    c->due = uv_now(c->env->loop) + ms;
    if (!c->due)
        c->due = 1;
    timer_arm(c);
}

void conn__cert_timer(struct conn *c, uint64_t ms)
{
    c->cert_due = uv_now(c->env->loop) + ms;
    if (!c->cert_due)
        c->cert_due = 1;
    timer_arm(c);
}

static void timer_fire(uv_timer_t *t)
{
    struct conn *c = t->data;
    uint64_t now = uv_now(c->env->loop);
    if (c->cert_due && c->cert_due <= now) {
        c->cert_due = 0;
        conn__cert_due(c); /* may re-arm it, or close c (which sets c->due) */
    }
    if (!c->due || c->due > now) {
        if (!c->released)
            timer_arm(c);
        return;
    }
    c->due = 0;
    /* What runs below re-arms its own deadline; the certificate's stays in force. */
    if (c->cert_due)
        timer_arm(c);
    if (c->state == C_CLOSING) {
        release(c); /* the peer never drained its output: stop waiting */
        return;
    }
    if (c->state == C_ENDING) {
        conn__finish_close(c, true); /* the peer never finished the transport's close */
        return;
    }
    void (*fn)(struct conn *) = c->deadline;
    if (fn) {
        c->deadline = NULL;
        fn(c);
        return;
    }
    if (c->timer_cb)
        c->timer_cb(c->ud, c);
}

void conn__deadline(struct conn *c, uint64_t ms, void (*fn)(struct conn *c))
{
    c->deadline = fn;
    timer_set(c, ms);
}

void conn_timer(struct conn *c, uint64_t ms, void (*cb)(void *ud, struct conn *c))
{
    if (c->state == C_CLOSING)
        return;
    c->deadline = NULL;
    c->timer_cb = cb;
    timer_set(c, ms);
}

void conn__user_ready(struct conn *c)
{
    c->due = 0;
    timer_arm(c);
    c->deadline = NULL;
    c->user_ready = true;
    c->cbs->on_ready(c->ud, c);
}

void conn__pump(struct conn *c)
{
    while ((c->state == C_OPEN || c->state == C_ENDING) && !c->paused) {
        int r = tls_conn_read(c->tls, c->env->plain, sizeof(c->env->plain));
        if (r == TLS_AGAIN)
            break;
        if (r == TLS_EOF) {
            conn__start_close(c, true);
            break;
        }
        if (r < 0) {
            log_info("connection %s: TLS error: %s", c->addr, tls_conn_error(c->tls));
            conn__start_close(c, false);
            break;
        }
        c->ops->input(c, c->env->plain, (size_t)r);
    }
    if (c->state != C_CLOSING)
        conn__flush_out(c);
}

/* ---- close ----------------------------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles)
        return;
    struct conn_env *e = c->env;
    HASH_DEL(e->by_id, c);
    conn__cert_unindex(c);
    conn__addr_free(c);
    if (c->counted && --c->counted->n == 0) {
        HASH_DEL(e->per_ip, c->counted);
        free(c->counted);
    }
    tls_conn_free(c->tls);
    buf_free(&c->hello);
    tls_ctx_unref(c->ctx);
    free(c);
    conn__env_drop(e);
}

static void release(struct conn *c)
{
    if (c->released)
        return;
    c->released = true;
    unmark_active(c);
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    struct conn *c = req->data;
    free(req);
    release(c);
}

static void notify_user(struct conn *c)
{
    if (c->user_notified)
        return;
    c->user_notified = true;
    c->notify_close = true;
    flush_add(c);
}

void conn__finish_close(struct conn *c, bool graceful)
{
    if (c->state == C_CLOSING)
        return;
    bool was_open = c->state == C_OPEN || c->state == C_ENDING;
    if (c->state == C_OPEN)
        c->env->stats.open--;
    c->env->admission->closing(c);
    c->state = C_CLOSING;
    c->cert_due = 0;
    if (c->ops->release)
        c->ops->release(c);
    conn__update_reading(c);
    if (graceful && was_open)
        tls_conn_close_notify(c->tls);
    conn__flush_out(c);
    if (was_open && c->user_ready)
        notify_user(c);
    /* uv_shutdown waits for queued writes (close_notify, last packets); the timer bounds it. */
    c->deadline = NULL;
    timer_set(c, CLOSE_GRACE_MS);
    /* Allocated here, not in struct conn: only a closing connection needs one. */
    uv_shutdown_t *shut = xmalloc(sizeof(*shut));
    shut->data = c;
    c->shutting = true;
    if (uv_shutdown(shut, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
        free(shut);
        release(c);
    }
}

void conn__begin_ending(struct conn *c)
{
    c->state = C_ENDING;
    c->env->stats.open--;
    notify_user(c);
    c->deadline = NULL;
    timer_set(c, CLOSE_GRACE_MS);
}

void conn__start_close(struct conn *c, bool graceful)
{
    if (c->state == C_CLOSING)
        return;
    if (c->state == C_ENDING) {
        if (!graceful)
            conn__finish_close(c, false);
        return;
    }
    if (c->state == C_OPEN && graceful && c->ops->close && c->ops->close(c))
        return;
    conn__finish_close(c, graceful);
}

void conn_close(struct conn *c, bool graceful)
{
    conn__start_close(c, graceful);
}

/* ---- plain MQTT over TLS: the stream is the user's ------------------------------------------- */

static void tls_open(struct conn *c)
{
    conn__user_ready(c);
}

static void tls_input(struct conn *c, const uint8_t *p, size_t n)
{
    c->cbs->on_data(c->ud, c, p, n);
}

static int tls_write(struct conn *c, const uint8_t *p, size_t n)
{
    if (tls_conn_write(c->tls, p, n) < 0) {
        conn__start_close(c, false);
        return -1;
    }
    if (!c->in_flush)
        conn__flush_out(c); /* outside the write slot: send now */
    return 0;
}

const struct conn_ops conn__tls_ops = {
    .open = tls_open,
    .input = tls_input,
    .write = tls_write,
};
