/* loadgen.h: what loadgen.c (scenarios, connections, MQTT) and loadgen_ws.c (the WebSocket
 * client framing of --ws) share. A benchmark tool: one process, one loop. */
#ifndef LOADGEN_H
#define LOADGEN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha1.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_internal.h>
#include <mbedtls/x509_crt.h>

enum scen { SC_STORM, SC_FANIN, SC_FANOUT, SC_LATENCY, SC_IDLE, SC_STORMLAT };
struct lg_opts {
    enum scen scen;
    const char *host, *cafile, *certdir, *prefix, *sub_cert, *sub_filter, *servername, *ws_path;
    const char *lat_dump;
    int port, qos, size, conns, pubs, subs, parallel, window, src_ips, keepalive, resume, lean;
    int ws, storm, storm_parallel;
    double duration, rate, timeout, hold, settle, storm_delay, storm_post;
    uint64_t count;
    int broker_pid, verbose;
};
extern struct lg_opts opt;
extern const char *const scen_names[];
#define NSCEN ((int)SC_STORMLAT + 1)
/* Options given explicitly (their defaults depend on the scenario). */
struct lg_set {
    int conns, rate, parallel;
};
void lg_options(int argc, char **argv, struct lg_set *set); /* exits on bad input */
extern mbedtls_ctr_drbg_context drbg;
extern int n_failed;
extern int phase; /* 0 setup, 1 measuring, 2 draining, 3 done, 4 idle settling, 5 storm reconnect */
extern uint64_t ws_rng;

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------------------------------ */
/* growable byte buffer */

typedef struct {
    uint8_t *p;
    size_t off, len, cap; /* live bytes are p[off .. off+len) */
} buf_t;

static inline void buf_reserve(buf_t *b, size_t extra)
{
    if (b->off && b->off + b->len + extra > b->cap) {
        memmove(b->p, b->p + b->off, b->len);
        b->off = 0;
    }
    if (b->off + b->len + extra > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->off + b->len + extra)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np)
            die("out of memory");
        b->p = np;
        b->cap = nc;
    }
}
static inline void buf_put(buf_t *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->off + b->len, d, n);
    b->len += n;
}
static inline void buf_consume(buf_t *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (!b->len)
        b->off = 0;
}
static inline void buf_free(buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

enum role { R_STORM, R_PUB, R_SUB, R_IDLE };
enum st { S_FREE, S_TCP, S_TLS, S_MQTT, S_READY, S_CLOSING };

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    int idx, role, cert, st, writing, resumed, lean, failed, subacked, want_pump;
    mbedtls_ssl_context ssl;
    int ssl_live;
    int ws_state; /* --ws: 0 before the upgrade, 1 upgrade sent, 2 open, 3 close sent */
    buf_t cin, cout, pout, min;
    buf_t wout, win; /* --ws: framed plaintext to encrypt; unparsed WebSocket/HTTP input */
    char ws_key[28];
    uint64_t t_start, t_ready;
    uint16_t pid;
    mbedtls_ssl_session *sess; /* session to resume with (storm --resume) */
    char topic[256];
    /* publisher */
    uint64_t sent, acked, delivered, lost_adj;
} conn_t;

typedef struct {
    uv_write_t req;
    conn_t *c;
    uint8_t *data;
} wreq_t;

void conn_fail(conn_t *c, const char *why, int code);
void conn_flush(conn_t *c);
void conn_close(conn_t *c);
void mqtt_connect(conn_t *c);
/* decrypted MQTT bytes of c */
void on_plain(conn_t *c, const uint8_t *p, size_t n);

/* loadgen_ws.c */
void ws_frame(conn_t *c, uint8_t op, const uint8_t *d, size_t n);
void ws_send_upgrade(conn_t *c);
void ws_input(conn_t *c, const uint8_t *p, size_t n);

#endif
