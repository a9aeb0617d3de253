/* conn: TCP + TLS transport for one peer.
 *
 * Life: WAITING (accepted, not read until a handshake slot is free) -> HANDSHAKE -> [CHECKING]
 * -> OPEN -> CLOSING; the way to OPEN is conn_handshake.c. Every state has a deadline on the
 * connection's single timer. Idle connections give their TLS record buffers back. Reads go into one
 * conn__process-wide buffer (the loop is single-threaded and read callbacks do not nest), so an
 * idle connection holds no read memory. Writes: the TLS engine appends ciphertext to its output
 * buffer, which is handed to the kernel with uv_try_write and, for the rest, with uv_write that
 * takes over the buffer's storage (no copy). Never knows MQTT. */
#include "conn_internal.h"

#include "log.h"
#include "ws.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wreq {
    uv_write_t req;
    struct conn *c;
    uint8_t *mem;
    size_t len;
};

static void flush_list_run(uv_check_t *h);
static void park_sweep(uv_timer_t *t);
static void mark_active(struct conn *c);
static void unmark_active(struct conn *c);
static void finish_close(struct conn *c, bool graceful);
static void release(struct conn *c);
static void shutdown_cb(uv_shutdown_t *req, int status);

struct conn_env *conn_env_new(uv_loop_t *loop, const struct conn_env_opts *o)
{
    struct conn_env *e = xcalloc(1, sizeof(*e));
    e->loop = loop;
    e->o = *o;
    if (!e->o.max_handshakes)
        e->o.max_handshakes = 1;
    if (!e->o.max_backlog)
        e->o.max_backlog = 256 * 1024;
    uv_check_init(loop, &e->check);
    e->check.data = e;
    uv_unref((uv_handle_t *)&e->check);
    e->hs_budget_ns = (uint64_t)(e->o.handshake_budget_us ? e->o.handshake_budget_us : 5000) * 1000;
    uv_idle_init(loop, &e->defer_idle);
    e->defer_idle.data = e;
    uv_unref((uv_handle_t *)&e->defer_idle);
    uv_check_init(loop, &e->turn_end);
    e->turn_end.data = e;
    uv_check_start(&e->turn_end, conn__turn_end);
    uv_unref((uv_handle_t *)&e->turn_end);
    uint64_t park_ms = e->o.park_after_ms ? e->o.park_after_ms : 5000;
    uv_timer_init(loop, &e->park_timer);
    e->park_timer.data = e;
    uv_timer_start(&e->park_timer, park_sweep, park_ms, park_ms);
    uv_unref((uv_handle_t *)&e->park_timer);
    return e;
}

/* Four handles close; the last frees the env. */
static void env_check_closed(uv_handle_t *h)
{
    struct conn_env *e = h->data;
    if (++e->closed_handles == 4)
        free(e);
}

void conn_env_free(struct conn_env *e)
{
    if (!e)
        return;
    struct ip_count *ic, *tmp;
    HASH_ITER(hh, e->per_ip, ic, tmp)
    {
        HASH_DEL(e->per_ip, ic);
        free(ic);
    }
    uv_close((uv_handle_t *)&e->check, env_check_closed);
    uv_close((uv_handle_t *)&e->defer_idle, env_check_closed);
    uv_close((uv_handle_t *)&e->turn_end, env_check_closed);
    uv_close((uv_handle_t *)&e->park_timer, env_check_closed);
}

/* ---- idle connections give their record buffers back --------------------------------------- */

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
        if (c->io_gen != e->gen && (c->state == C_OPEN || c->state == C_WS_CLOSING) &&
            tls_conn_park(c->tls)) {
            unmark_active(c);
            e->stats.parked++;
        } else if (c->io_gen != e->gen && c->state != C_OPEN && c->state != C_WS_CLOSING)
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

void *conn_tag(const struct conn *c)
{
    return c->tag;
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
    return c->queued + buf_size(tls_conn_output(c->tls)) + (c->ws ? ws_conn_backlog(c->ws) : 0);
}

bool conn_output_full(const struct conn *c)
{
    return conn_backlog(c) >= c->env->o.max_backlog;
}

/* ---- the flush list: one write slot per connection per loop turn -------------------------- */

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

/* ---- reading ------------------------------------------------------------------------------ */

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
    /* The shared read buffer is decrypted in place of a copy; conn__process() runs synchronously.
     */
    tls_conn_input_borrow(c->tls, (const uint8_t *)b->base, (size_t)n);
    conn__process(c);
    tls_conn_input_release(c->tls);
}

void conn__update_reading(struct conn *c)
{
    bool want = (c->state == C_HANDSHAKE || c->state == C_OPEN || c->state == C_WS_CLOSING) &&
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
        conn__process(c);
}

/* ---- writing ------------------------------------------------------------------------------ */

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
    if (c->out_full && conn_backlog(c) < c->env->o.max_backlog / 2) {
        c->out_full = false;
        conn__update_reading(c);
        conn_want_write(c);
    }
}

/* Hand the TLS output to the kernel: as much as it takes now, the rest in one uv_write that
 * owns the buffer storage. */
void conn__flush_out(struct conn *c)
{
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
        if (!c->out_full && conn_backlog(c) >= c->env->o.max_backlog) {
            c->out_full = true;
            conn__update_reading(c);
        }
    } else {
        buf_shrink(o, 0);
    }
}

int conn_write(struct conn *c, const uint8_t *p, size_t n)
{
    if (c->state != C_OPEN)
        return -1;
    if (c->ws) {
        ws_conn_write(c->ws, p, n);
        if (!c->out_full && conn_backlog(c) >= c->env->o.max_backlog) {
            c->out_full = true;
            conn__update_reading(c);
        }
        return 0;
    }
    if (tls_conn_write(c->tls, p, n) < 0) {
        conn__start_close(c, false);
        return -1;
    }
    if (!c->in_flush)
        conn__flush_out(c); /* outside the write slot: send now */
    return 0;
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

/* ---- handshake admission and processing ----------------------------------------------------- */

void conn__timer_fire(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->state == C_CLOSING) {
        release(c); /* the peer never drained its output: stop waiting */
        return;
    }
    if (c->state == C_WS_CLOSING) {
        finish_close(c, true); /* the peer never answered the close frame */
        return;
    }
    if (c->state == C_OPEN && c->wsctx && !c->ws_ready) {
        c->env->stats.refused++;
        c->env->stats.refused_by[TLS_REJECT_HANDSHAKE]++;
        log_notice("refused %s: WebSocket upgrade not completed within %u ms", c->addr,
                   c->env->o.handshake_timeout_ms);
        finish_close(c, false);
        return;
    }
    if (c->state == C_CHECKING) {
        conn__check_finish(c, false, "certificate check not answered in time");
        return;
    }
    if (c->state == C_WAITING || c->state == C_HANDSHAKE) {
        c->env->stats.refused++;
        c->env->stats.refused_by[TLS_REJECT_HANDSHAKE]++;
        log_notice("refused %s: handshake failed: not completed within %u ms", c->addr,
                   c->env->o.handshake_timeout_ms);
        conn__start_close(c, false);
        return;
    }
    if (c->timer_cb)
        c->timer_cb(c->ud, c);
}

void conn_timer(struct conn *c, uint64_t ms, void (*cb)(void *ud, struct conn *c))
{
    if (c->state == C_CLOSING)
        return;
    c->timer_cb = cb;
    uv_timer_start(&c->timer, conn__timer_fire, ms, 0);
}

void conn__process(struct conn *c)
{
    if (c->state == C_HANDSHAKE)
        conn__handshake_step(c);
    while ((c->state == C_OPEN || c->state == C_WS_CLOSING) && !c->paused) {
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
        if (c->ws) {
            ws_conn_feed(c->ws, c->env->plain, (size_t)r);
            if (c->ws && !c->out_full && conn_backlog(c) >= c->env->o.max_backlog) {
                /* lws is not keeping up: stop reading the peer until it does. */
                c->out_full = true;
                conn__update_reading(c);
            }
        } else
            c->cbs->on_data(c->ud, c, c->env->plain, (size_t)r);
    }
    if (c->state != C_CLOSING)
        conn__flush_out(c);
}

/* ---- accept and close ----------------------------------------------------------------------- */

static void format_addr(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    strcpy(c->addr, "?");
    strcpy(c->ip, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, c->ip, sizeof(c->ip));
        port = ntohs(a->sin_port);
        snprintf(c->addr, sizeof(c->addr), "%s:%d", c->ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, c->ip, sizeof(c->ip));
        port = ntohs(a->sin6_port);
        /* Dual-stack listeners see IPv4 peers as ::ffff:a.b.c.d; operators know them as a.b.c.d. */
        if (!strncmp(c->ip, "::ffff:", 7) && strchr(c->ip, '.')) {
            memmove(c->ip, c->ip + 7, strlen(c->ip + 7) + 1);
            snprintf(c->addr, sizeof(c->addr), "%s:%d", c->ip, port);
        } else {
            snprintf(c->addr, sizeof(c->addr), "[%s]:%d", c->ip, port);
        }
    }
}

struct conn *conn_accept(struct conn_env *e, uv_stream_t *server, struct tls_ctx *const *ctx_slot,
                         struct ws_ctx *ws, const struct conn_cbs *cbs, void *ud, void *tag)
{
    struct tls_ctx *ctx = *ctx_slot;
    struct conn *c = xcalloc(1, sizeof(*c));
    c->env = e;
    c->wsctx = ws;
    c->ctx_slot = ctx_slot;
    c->tag = tag;
    c->cbs = cbs;
    c->ud = ud;
    uv_tcp_init(e->loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->state = C_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return NULL;
    }
    uv_timer_init(e->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(e->loop, &c->cert_timer);
    c->cert_timer.data = c;
    c->handles = 3;
    uv_tcp_nodelay(&c->tcp, 1);
    format_addr(c);
    if (e->o.max_per_ip) {
        struct ip_count *ic;
        HASH_FIND_STR(e->per_ip, c->ip, ic);
        if (!ic) {
            ic = xcalloc(1, sizeof(*ic));
            snprintf(ic->ip, sizeof(ic->ip), "%s", c->ip);
            HASH_ADD_STR(e->per_ip, ip, ic);
        }
        ic->n++;
        c->counted = ic;
    }
    c->ctx = tls_ctx_ref(ctx);
    c->tls = tls_conn_new(ctx);
    c->id = ++e->next_id;
    if (e->checker.check)
        tls_conn_keep_der(c->tls);
    uv_timer_start(&c->timer, conn__timer_fire, e->o.handshake_timeout_ms, 0);
    if (c->counted && c->counted->n > e->o.max_per_ip) {
        /* Refused before any TLS work: the address already holds its share. */
        e->stats.refused++;
        e->stats.refused_by[TLS_REJECT_HANDSHAKE]++;
        log_notice("refused %s: max_connections_per_ip (%u) reached", c->addr, e->o.max_per_ip);
        c->state = C_HANDSHAKE; /* so conn__start_close's bookkeeping is symmetric */
        e->stats.handshaking++;
        conn__start_close(c, false);
        return c;
    }
    if (e->stats.handshaking < e->o.max_handshakes) {
        conn__begin_handshake(c);
    } else {
        c->state = C_WAITING;
        e->stats.waiting++;
        if (e->wait_tail)
            e->wait_tail->wait_next = c;
        else
            e->wait_head = c;
        e->wait_tail = c;
    }
    return c;
}

static void handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles)
        return;
    if (c->counted && --c->counted->n == 0) {
        HASH_DEL(c->env->per_ip, c->counted);
        free(c->counted);
    }
    tls_conn_free(c->tls);
    tls_ctx_unref(c->ctx);
    free(c);
}

static void release(struct conn *c)
{
    if (c->released)
        return;
    c->released = true;
    unmark_active(c);
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->cert_timer, handle_closed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    release(req->data);
}

static void notify_user(struct conn *c)
{
    if (c->user_notified)
        return;
    c->user_notified = true;
    c->notify_close = true;
    flush_add(c);
}

static void finish_close(struct conn *c, bool graceful)
{
    if (c->state == C_CLOSING)
        return;
    bool was_open = c->state == C_OPEN || c->state == C_WS_CLOSING;
    if (c->state == C_OPEN)
        c->env->stats.open--;
    if (c->state == C_CHECKING) {
        void *token = c->check_token;
        conn__leave_checking(c);
        if (c->env->checker.cancel)
            c->env->checker.cancel(c->env->checker.ctx, token);
    }
    if (c->checked && c->env->checker.closed) {
        c->checked = false;
        c->env->checker.closed(c->env->checker.ctx, c);
    }
    conn__leave_handshake(c);
    c->state = C_CLOSING;
    uv_timer_stop(&c->cert_timer);
    if (c->ws) {
        ws_conn_release(c->ws);
        c->ws = NULL;
    }
    conn__update_reading(c);
    if (graceful && was_open)
        tls_conn_close_notify(c->tls);
    conn__flush_out(c);
    if (was_open && (!c->wsctx || c->ws_ready))
        notify_user(c);
    /* uv_shutdown waits for queued writes (close_notify, last packets); the timer bounds it. */
    uv_timer_start(&c->timer, conn__timer_fire, CLOSE_GRACE_MS, 0);
    c->shut.data = c;
    c->shutting = true;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) != 0)
        release(c);
}

void conn__start_close(struct conn *c, bool graceful)
{
    if (c->state == C_CLOSING)
        return;
    if (c->state == C_WS_CLOSING) {
        if (!graceful)
            finish_close(c, false);
        return;
    }
    if (c->state == C_OPEN && c->ws && c->ws_ready && graceful) {
        /* Send a close frame and let lws finish the WebSocket close before TLS ends. */
        c->state = C_WS_CLOSING;
        c->env->stats.open--;
        notify_user(c);
        ws_conn_close(c->ws, 1000, "");
        uv_timer_start(&c->timer, conn__timer_fire, CLOSE_GRACE_MS, 0);
        return;
    }
    finish_close(c, graceful);
}

/* ---- the WebSocket bridge's view of this connection ---------------------------------------- */

static void ws_established(void *ud)
{
    struct conn *c = ud;
    if (c->state != C_OPEN)
        return;
    c->ws_ready = true;
    uv_timer_stop(&c->timer);
    c->cbs->on_ready(c->ud, c);
}

static void ws_message(void *ud, const uint8_t *p, size_t n)
{
    struct conn *c = ud;
    if (c->state == C_OPEN && c->ws_ready)
        c->cbs->on_data(c->ud, c, p, n);
}

static void ws_send(void *ud, const uint8_t *p, size_t n)
{
    struct conn *c = ud;
    if (c->state != C_OPEN && c->state != C_WS_CLOSING)
        return;
    if (tls_conn_write(c->tls, p, n) < 0) {
        finish_close(c, false);
        return;
    }
    conn__flush_out(c);
}

static void ws_closed(void *ud)
{
    struct conn *c = ud;
    c->ws = NULL; /* the bridge released itself */
    finish_close(c, true);
}

static void ws_drained(void *ud)
{
    struct conn *c = ud;
    if (c->out_full && conn_backlog(c) < c->env->o.max_backlog / 2) {
        c->out_full = false;
        conn__update_reading(c);
        conn_want_write(c);
    }
}

const struct ws_io conn__ws_bridge = {
    .drained = ws_drained,
    .established = ws_established,
    .message = ws_message,
    .send = ws_send,
    .closed = ws_closed,
};

void conn_close(struct conn *c, bool graceful)
{
    conn__start_close(c, graceful);
}
