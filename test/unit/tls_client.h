/* tls_client: an in-memory Mbed TLS client for the tests of certmq's server engine (tls,
 * tls_ticket): the client's records go straight into a tls_conn and the server's output back,
 * so both handshakes run back to back without sockets. Header-only, for the unit tests. */
#ifndef CERTMQ_TEST_TLS_CLIENT_H
#define CERTMQ_TEST_TLS_CLIENT_H

#include "buf.h"
#include "check.h"
#include "mbedx.h"
#include "tls.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <stdbool.h>
#include <string.h>

struct client {
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt ca, crt;
    mbedtls_pk_context key;
    uint8_t in[65536]; /* server -> client */
    size_t in_len;
    struct tls_conn *server;
    struct buf *capture; /* when set, client -> server bytes go here instead */
};

/* Set by a test to speak TLS 1.3 (Mbed TLS 3.x with it); ignored on 2.28. */
static bool client_tls13 __attribute__((unused));
/* With client_tls13: offer resumption without ECDHE only (psk_ke, no key share), as a
 * constrained device may; OpenSSL clients always offer psk_dhe_ke too. */
static bool client_psk_ke_only __attribute__((unused));
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

static int c_send(void *p, const unsigned char *b, size_t n)
{
    struct client *c = p;
    if (c->capture)
        buf_append(c->capture, b, n);
    else
        tls_conn_input(c->server, b, n);
    return (int)n;
}

static int c_recv(void *p, unsigned char *b, size_t n)
{
    struct client *c = p;
    if (!c->in_len)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > c->in_len)
        n = c->in_len;
    memcpy(b, c->in, n);
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    return (int)n;
}

static void pump_to_client(struct client *c)
{
    struct buf *o = tls_conn_output(c->server);
    size_t n = buf_size(o);
    if (n > sizeof(c->in) - c->in_len)
        n = sizeof(c->in) - c->in_len;
    memcpy(c->in + c->in_len, buf_head(o), n);
    c->in_len += n;
    buf_consume(o, n);
}

/* name: files <name>.crt (or <name>-chain.pem when chain) and <name>.key; NULL = no cert. */
/* Set up c with the CA at ca_path; crt_path/key_path may be NULL (a client without a
 * certificate); resume: a session to offer. The DRBG must be seeded before. */
static void client_start(struct client *c, const char *ca_path, const char *crt_path,
                         const char *key_path, const mbedtls_ssl_session *resume)
{
    memset(c, 0, sizeof(*c));
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_ssl_init(&c->ssl);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->crt);
    mbedtls_pk_init(&c->key);
    CHECK_EQ_INT(mbedtls_x509_crt_parse_file(&c->ca, ca_path), 0);
    if (crt_path) {
        CHECK_EQ_INT(mbedtls_x509_crt_parse_file(&c->crt, crt_path), 0);
        CHECK_EQ_INT(mbedx_pk_parse_keyfile(&c->key, key_path), 0);
    }
    mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                MBEDTLS_SSL_PRESET_DEFAULT);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &drbg);
#if MBEDTLS_VERSION_MAJOR >= 3
    /* TLS 1.2 unless the test asks for 1.3 (whose ticket comes after the handshake, taken only
     * when the client is told to); the version is fixed by mbedtls_ssl_setup below. */
    mbedtls_ssl_protocol_version v =
        client_tls13 ? MBEDTLS_SSL_VERSION_TLS1_3 : MBEDTLS_SSL_VERSION_TLS1_2;
    mbedtls_ssl_conf_min_tls_version(&c->conf, v);
    mbedtls_ssl_conf_max_tls_version(&c->conf, v);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3) && defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
        &c->conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
#endif
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    if (client_tls13 && client_psk_ke_only)
        mbedtls_ssl_conf_tls13_key_exchange_modes(&c->conf,
                                                  MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK);
#endif
#endif
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
    if (crt_path)
        mbedtls_ssl_conf_own_cert(&c->conf, &c->crt, &c->key);
    mbedtls_ssl_setup(&c->ssl, &c->conf);
    mbedtls_ssl_set_hostname(&c->ssl, "localhost");
    mbedtls_ssl_set_bio(&c->ssl, c, c_send, c_recv, NULL);
    if (resume)
        mbedtls_ssl_set_session(&c->ssl, resume);
}

static void client_free(struct client *c)
{
    tls_conn_free(c->server);
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

#endif
