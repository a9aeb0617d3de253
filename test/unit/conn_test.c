/* conn: the verdict path without a TLS client. The reason table rows of the trust verdicts; the
 * env's index by id (conn_env_find); conn_env_untrust_cert finds no connection before it opens;
 * conn_untrust on a connection that is not open yet (refused, counted per reason, never an
 * untrusted count, never a user callback); conn_env_recheck over connections that have not finished
 * their handshake (they are not checked: the handshake's own end re-checks them). Loopback TCP
 * peers that send a ClientHello (captured from openssl s_client) and then nothing hold the
 * connections in their handshake or on the wait list; one that sends nothing holds no handshake
 * slot at all. The server's certificate is made at start with the openssl CLI. */
#include "check.h"
#include "pki_script.h"
#include "conn.h"
#include "reason.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/certmq-conn-test-XXXXXX";
static char path[3][256];

static const char pki_script[] =
    "set -e\n"
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
    "-subj '/CN=conn test root' -days 30 -out ca.crt\n"
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key "
    "-subj /CN=localhost -days 30 -out server.crt\n";

/* openssl s_client -tls1_2: a complete ClientHello in one record. */
static const uint8_t client_hello[] = {
    0x16, 0x03, 0x01, 0x00, 0xb7, 0x01, 0x00, 0x00, 0xb3, 0x03, 0x03, 0x09, 0xf2, 0xa9, 0xd3, 0x03,
    0x6b, 0xd7, 0x78, 0xe9, 0x4b, 0x2f, 0x1a, 0xb2, 0x6c, 0x00, 0x84, 0x3d, 0x9c, 0x00, 0xf8, 0x1d,
    0x5d, 0xb1, 0xd2, 0xcf, 0x5c, 0xd7, 0xac, 0xa2, 0x27, 0x0d, 0x9e, 0x00, 0x00, 0x38, 0xc0, 0x2c,
    0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e,
    0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14,
    0x00, 0x39, 0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c,
    0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0x52, 0x00, 0x0b, 0x00, 0x04, 0x03, 0x00,
    0x01, 0x02, 0x00, 0x0a, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19,
    0x00, 0x18, 0x00, 0x23, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d,
    0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09,
    0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01,
    0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02

};

static void test_reason_rows(void)
{
    static const enum reason verdicts[] = {REASON_REVOKED_CRL, REASON_REVOKED_PLUGIN,
                                           REASON_CERT_EXPIRED};
    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
        const struct reason_info *ri = reason_info(verdicts[i]);
        CHECK_EQ_INT(ri->v5, 0x98); /* MQTT 5 Administrative action */
        CHECK_EQ_INT(ri->v3, 0);    /* a disconnect, never a CONNACK refusal */
        CHECK(ri->untrusted);       /* no will */
        CHECK(ri->text && *ri->text);
        CHECK(ri->metric && *ri->metric);
    }
    CHECK_EQ_STR(reason_info(REASON_REVOKED_CRL)->text, "certificate revoked");
    CHECK_EQ_STR(reason_info(REASON_CERT_EXPIRED)->text, "certificate expired");
    CHECK_EQ_STR(reason_info(REASON_REVOKED_PLUGIN)->metric, "revoked_by_plugin");
    CHECK(!reason_info(REASON_NONE)->untrusted);
    CHECK(reason_info((enum reason)REASON_COUNT) == reason_info(REASON_NONE));
    CHECK(reason_info((enum reason) - 1) == reason_info(REASON_NONE));
}

#define PEERS 6

struct harness {
    struct conn_env *env;
    struct tls_ctx *ctx;
    const struct conn_proxy_opts *proxy; /* the listener's, for the next accept */
    uv_tcp_t server;
    uv_tcp_t peers[PEERS];
    uv_connect_t connects[PEERS];
    uv_write_t writes[PEERS];
    struct conn *conns[PEERS];
    size_t accepted, user_calls;
};

static void on_ready(void *ud, struct conn *c)
{
    ((struct harness *)ud)->user_calls++;
}

static void on_data(void *ud, struct conn *c, const uint8_t *p, size_t n)
{
    ((struct harness *)ud)->user_calls++;
}

static void on_writable(void *ud, struct conn *c) {}

static void on_close(void *ud, struct conn *c)
{
    ((struct harness *)ud)->user_calls++;
}

static void on_untrusted(void *ud, struct conn *c, enum reason why, const char *detail)
{
    ((struct harness *)ud)->user_calls++;
}

static const struct conn_cbs cbs = {on_ready, on_data, on_writable, on_close, on_untrusted, NULL};

static void on_connection(uv_stream_t *s, int status)
{
    struct harness *h = s->data;
    CHECK_EQ_INT(status, 0);
    if (status == 0 && h->accepted < PEERS) {
        struct tls_ctx *const *slot = &h->ctx;
        h->conns[h->accepted++] = conn_accept(h->env, s, slot, NULL, h->proxy, &cbs, h);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    CHECK_EQ_INT(status, 0);
}

static void on_connect_hello(uv_connect_t *req, int status)
{
    CHECK_EQ_INT(status, 0);
    uv_buf_t b = uv_buf_init((char *)client_hello, sizeof(client_hello));
    uv_write(req->data, req->handle, &b, 1, NULL);
}

static void run_until_accepted(struct harness *h, size_t n)
{
    for (int i = 0; i < 1000 && h->accepted < n; i++)
        uv_run(uv_default_loop(), UV_RUN_ONCE);
}

/* A TLS context, an env with max_handshakes and a loopback listening socket (its address in
 * *addr) whose connections go to conn_accept. False when the context cannot be made. */
static bool harness_start(struct harness *h, struct tls_lib *lib, uint32_t max_handshakes,
                          struct sockaddr_in *addr)
{
    uv_loop_t *loop = uv_default_loop();
    memset(h, 0, sizeof(*h));
    struct tls_server_opts o = {.cafile = path[0], .certfile = path[1], .keyfile = path[2]};
    struct diag d;
    diag_init(&d);
    h->ctx = tls_ctx_new(lib, &o, &d);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "  unexpected: %s\n", d.msgs[i]);
    diag_free(&d);
    CHECK(h->ctx != NULL);
    if (!h->ctx)
        return false;
    struct conn_env_opts eo = {.handshake_timeout_ms = 10000, .max_handshakes = max_handshakes};
    h->env = conn_env_new(loop, &eo);
    uv_tcp_init(loop, &h->server);
    h->server.data = h;
    uv_ip4_addr("127.0.0.1", 0, addr);
    CHECK_EQ_INT(uv_tcp_bind(&h->server, (const struct sockaddr *)addr, 0), 0);
    CHECK_EQ_INT(uv_listen((uv_stream_t *)&h->server, 8, on_connection), 0);
    int len = sizeof(*addr);
    uv_tcp_getsockname(&h->server, (struct sockaddr *)addr, &len);
    return true;
}

/* Closes the peers (the first n), the listening socket and the env, and runs the loop dry. */
static void harness_stop(struct harness *h, int n)
{
    uv_loop_t *loop = uv_default_loop();
    for (int i = 0; i < n; i++)
        uv_close((uv_handle_t *)&h->peers[i], NULL);
    uv_close((uv_handle_t *)&h->server, NULL);
    for (int i = 0; i < 100; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    conn_env_free(h->env);
    tls_ctx_unref(h->ctx);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_verdicts(struct tls_lib *lib)
{
    uv_loop_t *loop = uv_default_loop();
    struct harness h;
    struct sockaddr_in addr;
    /* max_handshakes 1: the second connection waits, the third too. */
    if (!harness_start(&h, lib, 1, &addr))
        return;
    const struct conn_stats *st = conn_env_stats(h.env);
    CHECK(conn_env_find(h.env, 1) == NULL);
    size_t dropped = 7;
    CHECK_EQ_INT(conn_env_recheck(h.env, &dropped), 0);
    CHECK_EQ_INT(dropped, 0);
    for (int i = 0; i < 3; i++) {
        uv_tcp_init(loop, &h.peers[i]);
        h.connects[i].data = &h.writes[i];
        uv_tcp_connect(&h.connects[i], &h.peers[i], (const struct sockaddr *)&addr,
                       on_connect_hello);
    }
    run_until_accepted(&h, 3);
    CHECK_EQ_INT(h.accepted, 3);
    if (h.accepted != 3)
        return;
    for (int i = 0; i < 1000 && st->handshaking + st->waiting < 3; i++)
        uv_run(loop, UV_RUN_ONCE);
    CHECK_EQ_INT(st->handshaking, 1);
    CHECK_EQ_INT(st->waiting, 2);
    CHECK_EQ_INT(st->hello, 0);
    /* A peer that says nothing holds no slot: it is only accepted. */
    uv_tcp_init(loop, &h.peers[3]);
    uv_tcp_connect(&h.connects[3], &h.peers[3], (const struct sockaddr *)&addr, on_connect);
    run_until_accepted(&h, 4);
    CHECK_EQ_INT(h.accepted, 4);
    if (h.accepted != 4)
        return;
    CHECK_EQ_INT(st->hello, 1);
    CHECK_EQ_INT(st->handshaking, 1);
    CHECK_EQ_INT(st->waiting, 2);
    for (int i = 0; i < 4; i++) {
        CHECK(h.conns[i] != NULL);
        CHECK(conn_env_find(h.env, conn_id(h.conns[i])) == h.conns[i]);
    }
    CHECK(conn_env_find(h.env, conn_id(h.conns[3]) + 1) == NULL);
    CHECK(conn_env_find(h.env, 0) == NULL);

    /* Nothing has finished a handshake: nothing to re-check, nothing dropped; a revocation
     * from another node finds only open connections (indexed by certificate when they open:
     * 89-cluster-revocation covers those), so none here. */
    CHECK_EQ_INT(conn_env_recheck(h.env, &dropped), 0);
    CHECK_EQ_INT(dropped, 0);
    struct tls_cert_id none = {.serial_len = 1};
    CHECK_EQ_INT(conn_env_untrust_cert(h.env, &none, REASON_REVOKED_CRL, NULL), 0);
    CHECK_EQ_INT(st->refused, 0);

    /* Verdicts before OPEN are refusals, counted per TLS reason, and the user never hears. */
    conn_untrust(h.conns[0], REASON_REVOKED_PLUGIN, "plugin says so");
    CHECK_EQ_INT(st->refused, 1);
    CHECK_EQ_INT(st->refused_by[TLS_REJECT_PLUGIN], 1);
    CHECK(conn_closing(h.conns[0]));
    /* The freed handshake slot goes to the first waiting connection. */
    CHECK_EQ_INT(st->handshaking, 1);
    CHECK_EQ_INT(st->waiting, 1);
    conn_untrust(h.conns[0], REASON_REVOKED_PLUGIN, "again"); /* closing: ignored */
    CHECK_EQ_INT(st->refused, 1);
    conn_untrust(h.conns[1], REASON_REVOKED_CRL, NULL);
    CHECK_EQ_INT(st->refused_by[TLS_REJECT_REVOKED], 1);
    conn_untrust(h.conns[2], REASON_CERT_EXPIRED, NULL); /* still waiting for a slot */
    CHECK_EQ_INT(st->refused_by[TLS_REJECT_EXPIRED], 1);
    CHECK_EQ_INT(st->refused, 3);
    CHECK_EQ_INT(st->waiting, 0);
    CHECK_EQ_INT(st->handshaking, 0);
    conn_untrust(h.conns[3], REASON_REVOKED_PLUGIN, "before its hello");
    CHECK_EQ_INT(st->refused, 4);
    CHECK_EQ_INT(st->refused_by[TLS_REJECT_PLUGIN], 2);
    CHECK_EQ_INT(st->hello, 0);
    for (int r = 0; r < REASON_COUNT; r++)
        CHECK_EQ_INT(st->untrusted[r], 0);

    /* Closed connections leave the index once their handles are closed. */
    uint64_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = conn_id(h.conns[i]);
    for (int i = 0; i < 4; i++)
        uv_close((uv_handle_t *)&h.peers[i], NULL);
    for (int i = 0; i < 100; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 4; i++)
        CHECK(conn_env_find(h.env, ids[i]) == NULL);
    CHECK_EQ_INT(h.user_calls, 0);
    harness_stop(&h, 0);
}

/* A peer that sends bytes as soon as it is connected (req->data: a struct send). */
struct send {
    uv_write_t w;
    const uint8_t *p;
    size_t n;
};

static void on_connect_send(uv_connect_t *req, int status)
{
    CHECK_EQ_INT(status, 0);
    struct send *sd = req->data;
    uv_buf_t b = uv_buf_init((char *)sd->p, (unsigned)sd->n);
    uv_write(&sd->w, req->handle, &b, 1, NULL);
}

static void connect_peer(struct harness *h, int i, const struct sockaddr_in *to, struct send *sd)
{
    uv_tcp_init(uv_default_loop(), &h->peers[i]);
    h->connects[i].data = sd;
    uv_tcp_connect(&h->connects[i], &h->peers[i], (const struct sockaddr *)to, on_connect_send);
    run_until_accepted(h, (size_t)i + 1);
}

/* Runs the loop until cond holds (at most 1000 turns). */
#define RUN_UNTIL(cond)                                                                            \
    for (int turn_ = 0; turn_ < 1000 && !(cond); turn_++)                                          \
    uv_run(uv_default_loop(), UV_RUN_ONCE)

/* PROXY v2 headers (built here, not by proxy_v2.c): TCP over IPv4 from 10.1.2.3:50000, TCP over
 * IPv6 from 2001:db8::7, LOCAL. */
#define PROXY_SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
static const uint8_t proxy4[] = {PROXY_SIG, 0x21, 0x11, 0, 12,   10,   1,    2,   3,
                                 127,       0,    0,    1, 0xC3, 0x50, 0x22, 0xB3};
static const uint8_t proxy6[] = {PROXY_SIG, 0x21, 0x21, 0, 36,   0x20, 0x01, 0x0d, 0xb8, 0, 0,
                                 0,         0,    0,    0, 0,    0,    0,    0,    0,    7, 0,
                                 0,         0,    0,    0, 0,    0,    0,    0,    0,    0, 0,
                                 0,         0,    0,    1, 0x9C, 0x40, 0x22, 0xB3};
static const uint8_t proxy_local[] = {PROXY_SIG, 0x20, 0x00, 0, 0};

/* On a proxy_protocol listener: the header's address replaces the proxy's, and the ClientHello
 * that came in the same write is not lost (the handshake starts); a header alone waits for its
 * hello; LOCAL is closed and counted, not refused; a hello without a header and a peer that is
 * not a proxy are refused as "proxy protocol". */
static void test_proxy(struct tls_lib *lib)
{
    struct harness h;
    struct sockaddr_in addr;
    if (!harness_start(&h, lib, 4, &addr))
        return;
    const struct conn_stats *st = conn_env_stats(h.env);
    struct cidr loopback, elsewhere;
    const char *why;
    CHECK_EQ_INT(cidr_parse("127.0.0.0/8", &loopback, &why), 0);
    CHECK_EQ_INT(cidr_parse("10.0.0.0/8", &elsewhere, &why), 0);
    struct conn_proxy_opts from_loopback = {.v2 = true, .from = &loopback, .from_count = 1};
    struct conn_proxy_opts from_elsewhere = {.v2 = true, .from = &elsewhere, .from_count = 1};
    h.proxy = &from_loopback;

    static uint8_t header_and_hello[sizeof(proxy4) + sizeof(client_hello)];
    memcpy(header_and_hello, proxy4, sizeof(proxy4));
    memcpy(header_and_hello + sizeof(proxy4), client_hello, sizeof(client_hello));
    struct send sends[PEERS] = {
        {.p = header_and_hello, .n = sizeof(header_and_hello)},
        {.p = proxy6, .n = sizeof(proxy6)},
        {.p = proxy_local, .n = sizeof(proxy_local)},
        {.p = client_hello, .n = sizeof(client_hello)},
        {.p = proxy4, .n = sizeof(proxy4)},
    };
    connect_peer(&h, 0, &addr, &sends[0]);
    RUN_UNTIL(st->handshaking == 1);
    CHECK_EQ_INT(st->handshaking, 1);
    CHECK_EQ_STR(conn_ip(h.conns[0]), "10.1.2.3");
    CHECK_EQ_STR(conn_addr(h.conns[0]), "10.1.2.3:50000");

    connect_peer(&h, 1, &addr, &sends[1]);
    RUN_UNTIL(st->proxied == 2);
    CHECK_EQ_STR(conn_addr(h.conns[1]), "[2001:db8::7]:40000");
    CHECK_EQ_INT(st->hello, 1); /* the header alone: still waiting for its ClientHello */
    uv_buf_t b = uv_buf_init((char *)client_hello, sizeof(client_hello));
    uv_write(&h.writes[1], (uv_stream_t *)&h.peers[1], &b, 1, NULL);
    RUN_UNTIL(st->handshaking == 2);
    CHECK_EQ_INT(st->handshaking, 2);
    CHECK_EQ_INT(st->hello, 0);

    connect_peer(&h, 2, &addr, &sends[2]);
    RUN_UNTIL(st->proxy_checks == 1);
    CHECK_EQ_INT(st->proxy_checks, 1);
    CHECK_EQ_INT(st->refused, 0); /* closed, not refused */

    connect_peer(&h, 3, &addr, &sends[3]);
    RUN_UNTIL(st->refused == 1);
    CHECK_EQ_INT(st->refused_by[TLS_REJECT_PROXY], 1);

    h.proxy = &from_elsewhere; /* 127.0.0.1 is not a proxy of this listener */
    connect_peer(&h, 4, &addr, &sends[4]);
    CHECK_EQ_INT(st->refused_by[TLS_REJECT_PROXY], 2);
    CHECK_EQ_INT(st->proxied, 2);
    CHECK_EQ_INT(st->hello, 0); /* the refused and the health check are gone */
    CHECK_EQ_INT(st->handshaking, 2);
    CHECK_EQ_INT(h.user_calls, 0);

    harness_stop(&h, 5);
}

int main(void)
{
    test_reason_rows();
    if (pki_script_run(dir, pki_script) != 0)
        return 1;
    snprintf(path[0], sizeof(path[0]), "%s/ca.crt", dir);
    snprintf(path[1], sizeof(path[1]), "%s/server.crt", dir);
    snprintf(path[2], sizeof(path[2]), "%s/server.key", dir);
    struct tls_lib *lib = tls_lib_new(false, 0);
    test_verdicts(lib);
    test_proxy(lib);
    tls_lib_free(lib);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_finish("conn_test");
}
