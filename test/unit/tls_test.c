/* tls: identity rules, context loading errors, and full handshakes between our server engine
 * and an in-memory Mbed TLS client, back to back (no sockets): accepted and refused devices,
 * plaintext both ways, ticket resumption refused after revocation, the revocation index. */
#include "check.h"
#include "tls.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/certmq-tls-test-XXXXXX";
static char path_buf[8][512];
static int path_i;

static const char *P(const char *fmt, const char *a)
{
    char *p = path_buf[path_i++ % 8];
    char rel[256];
    snprintf(rel, sizeof(rel), fmt, a);
    snprintf(p, 512, "%s/%s", dir, rel);
    return p;
}

static void pki(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "../../certs/certmq-pki -d %s/pki %s >/dev/null", dir, args);
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        exit(1);
    }
}

/* ---- a minimal in-memory client ------------------------------------------------------------ */

struct pipe {
    uint8_t buf[65536];
    size_t len;
};

struct client {
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt ca, crt;
    mbedtls_pk_context key;
    struct pipe in; /* server -> client */
    struct tls_conn *server;
};

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

static int c_send(void *p, const unsigned char *b, size_t n)
{
    struct client *c = p;
    tls_conn_input(c->server, b, n);
    return (int)n;
}

static int c_recv(void *p, unsigned char *b, size_t n)
{
    struct client *c = p;
    if (!c->in.len)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > c->in.len)
        n = c->in.len;
    memcpy(b, c->in.buf, n);
    memmove(c->in.buf, c->in.buf + n, c->in.len - n);
    c->in.len -= n;
    return (int)n;
}

static void pump_to_client(struct client *c)
{
    struct buf *o = tls_conn_output(c->server);
    size_t n = buf_size(o);
    if (n > sizeof(c->in.buf) - c->in.len)
        n = sizeof(c->in.buf) - c->in.len;
    memcpy(c->in.buf + c->in.len, buf_head(o), n);
    c->in.len += n;
    buf_consume(o, n);
}

static void client_init(struct client *c, const char *name, mbedtls_ssl_session *resume)
{
    memset(c, 0, sizeof(*c));
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_ssl_init(&c->ssl);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->crt);
    mbedtls_pk_init(&c->key);
    mbedtls_x509_crt_parse_file(&c->ca, P("pki/ca.crt", ""));
    if (name) {
        CHECK_EQ_INT(mbedtls_x509_crt_parse_file(&c->crt, P("pki/issued/%s.crt", name)), 0);
        CHECK_EQ_INT(mbedtls_pk_parse_keyfile(&c->key, P("pki/private/%s.key", name), NULL), 0);
    }
    mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                MBEDTLS_SSL_PRESET_DEFAULT);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    if (name)
        mbedtls_ssl_conf_own_cert(&c->conf, &c->crt, &c->key);
    mbedtls_ssl_setup(&c->ssl, &c->conf);
    mbedtls_ssl_set_hostname(&c->ssl, "localhost");
    mbedtls_ssl_set_bio(&c->ssl, c, c_send, c_recv, NULL);
    if (resume)
        mbedtls_ssl_set_session(&c->ssl, resume);
}

static void client_free(struct client *c)
{
    mbedtls_ssl_free(&c->ssl);
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->crt);
    mbedtls_pk_free(&c->key);
}

/* Runs both handshakes to completion; returns the server's result. */
static int handshake(struct client *c, struct tls_ctx *ctx)
{
    c->server = tls_conn_new(ctx);
    int sr = TLS_AGAIN;
    for (int i = 0; i < 50; i++) {
        int cr = mbedtls_ssl_handshake(&c->ssl);
        if (sr == TLS_AGAIN)
            sr = tls_conn_handshake(c->server);
        pump_to_client(c);
        if (sr < 0 && sr != TLS_AGAIN)
            return sr;
        if (sr == 0 && cr == 0)
            return 0;
        if (cr != 0 && cr != MBEDTLS_ERR_SSL_WANT_READ && cr != MBEDTLS_ERR_SSL_WANT_WRITE &&
            sr == 0)
            return cr;
    }
    return -999;
}

static struct tls_ctx *ctx_for(struct tls_lib *lib, const char *crl, struct diag *d)
{
    const char *crls[1] = {crl};
    struct tls_server_opts o = {
        .cafile = P("pki/ca.crt", ""),
        .certfile = P("pki/issued/server.crt", ""),
        .keyfile = P("pki/private/server.key", ""),
        .crlfiles = crls,
        .crlfile_count = crl ? 1 : 0,
        .verify_depth = 4,
        .crl_strict = true,
    };
    return tls_ctx_new(lib, &o, d);
}

static void test_identity_rules(void)
{
    const char *why;
    CHECK(tls_identity_valid((const uint8_t *)"device-001", 10, &why));
    CHECK(tls_identity_valid((const uint8_t *)"capteur-\xc3\xa9t\xc3\xa9", 13, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"", 0, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a+b", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a/b", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a#", 2, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a\nb", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a\0b", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"\xc0\xaf", 2, &why));
    char big[300];
    memset(big, 'a', sizeof(big));
    CHECK(!tls_identity_valid((const uint8_t *)big, sizeof(big), &why));
}

static void test_subject_identity(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "
             "%s/s.key -out %s/s.der -outform DER -days 1 -subj '/C=DE/O=Acme, Inc/CN=dev9' "
             "2>/dev/null",
             dir, dir);
    CHECK_EQ_INT(system(cmd), 0);
    FILE *f = fopen(P("s.der", ""), "rb");
    uint8_t der[4096];
    size_t n = f ? fread(der, 1, sizeof(der), f) : 0;
    if (f)
        fclose(f);
    char out[300];
    const char *why = NULL;
    CHECK_EQ_INT(tls_identity_from_der(der, n, TLS_ID_SUBJECT, out, sizeof(out), &why), 0);
    CHECK_EQ_STR(out, "CN=dev9,O=Acme\\, Inc,C=DE");
    CHECK_EQ_INT(tls_identity_from_der(der, n, TLS_ID_CN, out, sizeof(out), &why), 0);
    CHECK_EQ_STR(out, "dev9");
    CHECK_EQ_INT(tls_identity_from_der(der, n, TLS_ID_SAN_URI, out, sizeof(out), &why), -1);
    CHECK_EQ_INT(tls_identity_from_der(der, 10, TLS_ID_CN, out, sizeof(out), &why), -1);
}

static void test_load_errors(struct tls_lib *lib)
{
    struct diag d;
    diag_init(&d);
    struct tls_server_opts o = {.cafile = P("pki/nope.crt", ""),
                                .certfile = P("pki/issued/server.crt", ""),
                                .keyfile = P("pki/private/dev1.key", ""),
                                .verify_depth = 4};
    CHECK(tls_ctx_new(lib, &o, &d) == NULL);
    CHECK(d.count >= 2);
    bool ca = false, key = false;
    for (size_t i = 0; i < d.count; i++) {
        ca |= strstr(d.msgs[i], "nope.crt") != NULL;
        key |= strstr(d.msgs[i], "does not match") != NULL;
    }
    CHECK(ca);
    CHECK(key);
    diag_free(&d);
    o.cafile = P("pki/ca.crt", "");
    o.keyfile = P("pki/private/server.key", "");
    o.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:AES128-SHA";
    CHECK(tls_ctx_new(lib, &o, &d) == NULL);
    CHECK(d.count == 1 && strstr(d.msgs[0], "AES128-SHA"));
    diag_free(&d);
}

static void test_handshakes(struct tls_lib *lib)
{
    struct diag d;
    diag_init(&d);
    struct tls_ctx *ctx = ctx_for(lib, P("pki/crl.pem", ""), &d);
    CHECK(ctx != NULL);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "%s\n", d.msgs[i]);

    struct client c;
    client_init(&c, "dev1", NULL);
    CHECK_EQ_INT(handshake(&c, ctx), 0);
    const struct tls_peer *p = tls_conn_peer(c.server);
    CHECK_EQ_STR(p->identity, "dev1");
    CHECK(!p->resumed);
    CHECK(p->chain_len == 1);
    CHECK(!tls_ctx_peer_revoked(ctx, p, NULL, 0));
    /* plaintext both ways, large */
    static uint8_t big[100000], got[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31);
    CHECK_EQ_INT(tls_conn_write(c.server, big, sizeof(big)), 0);
    size_t have = 0;
    for (int i = 0; i < 200 && have < sizeof(big); i++) {
        pump_to_client(&c);
        int r = mbedtls_ssl_read(&c.ssl, got + have, sizeof(got) - have);
        if (r > 0)
            have += (size_t)r;
    }
    CHECK_EQ_INT(have, sizeof(big));
    CHECK(!memcmp(big, got, sizeof(big)));
    CHECK_EQ_INT(mbedtls_ssl_write(&c.ssl, (const uint8_t *)"ping", 4), 4);
    uint8_t pb[16];
    CHECK_EQ_INT(tls_conn_read(c.server, pb, sizeof(pb)), 4);
    CHECK_EQ_INT(tls_conn_read(c.server, pb, sizeof(pb)), TLS_AGAIN);
    mbedtls_ssl_session saved;
    mbedtls_ssl_session_init(&saved);
    CHECK_EQ_INT(mbedtls_ssl_get_session(&c.ssl, &saved), 0);
    mbedtls_ssl_close_notify(&c.ssl);
    CHECK_EQ_INT(tls_conn_read(c.server, pb, sizeof(pb)), TLS_EOF);
    tls_conn_free(c.server);
    client_free(&c);

    /* resumption with the ticket */
    client_init(&c, "dev1", &saved);
    CHECK_EQ_INT(handshake(&c, ctx), 0);
    CHECK(tls_conn_peer(c.server)->resumed);
    CHECK_EQ_STR(tls_conn_peer(c.server)->identity, "dev1");
    tls_conn_free(c.server);
    client_free(&c);

    /* refusals */
    struct {
        const char *name;
        enum tls_reject why;
    } bad[] = {{NULL, TLS_REJECT_NO_CERT},
               {"revoked", TLS_REJECT_REVOKED},
               {"expired", TLS_REJECT_EXPIRED},
               {"srvonly", TLS_REJECT_BAD_EKU},
               {"plus", TLS_REJECT_BAD_IDENTITY}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        client_init(&c, bad[i].name, NULL);
        CHECK(handshake(&c, ctx) != 0);
        if (tls_conn_reject(c.server) != bad[i].why)
            fprintf(stderr, "  %s: %s (%s)\n", bad[i].name ? bad[i].name : "(none)",
                    tls_reject_str(tls_conn_reject(c.server)), tls_conn_error(c.server));
        CHECK_EQ_INT(tls_conn_reject(c.server), bad[i].why);
        tls_conn_free(c.server);
        client_free(&c);
    }

    /* dev1 is revoked after its ticket was issued: a new context with the new CRL refuses
     * both the ticket and the full handshake, and the revocation index flags the old peer. */
    client_init(&c, "dev1", NULL);
    CHECK_EQ_INT(handshake(&c, ctx), 0);
    struct tls_peer keep = *tls_conn_peer(c.server);
    pki("revoke dev1");
    struct tls_ctx *ctx2 = ctx_for(lib, P("pki/crl.pem", ""), &d);
    CHECK(ctx2 != NULL);
    CHECK(tls_ctx_peer_revoked(ctx2, &keep, NULL, 0));
    CHECK(!tls_ctx_peer_revoked(ctx, &keep, NULL, 0));
    tls_conn_free(c.server);
    client_free(&c);
    client_init(&c, "dev1", &saved);
    CHECK(handshake(&c, ctx2) != 0);
    CHECK_EQ_INT(tls_conn_reject(c.server), TLS_REJECT_REVOKED);
    tls_conn_free(c.server);
    client_free(&c);
    mbedtls_ssl_session_free(&saved);
    tls_ctx_unref(ctx);
    tls_ctx_unref(ctx2);
    diag_free(&d);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    pki("init");
    pki("server server");
    pki("device dev1");
    pki("device revoked");
    pki("revoke revoked");
    pki("device expired --start 20200101000000Z --end 20210101000000Z");
    pki("device srvonly --eku serverAuth");
    pki("device plus --cn a+b");
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);
    struct tls_lib *lib = tls_lib_new(true, 3600);
    test_identity_rules();
    test_subject_identity();
    test_load_errors(lib);
    test_handshakes(lib);
    tls_lib_free(lib);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_finish("tls_test");
}
