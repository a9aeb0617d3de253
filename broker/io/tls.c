/* tls: Mbed TLS server sessions over memory buffers (2.28: TLS 1.2; 3.6: TLS 1.2 and 1.3, public
 * API only).
 *
 * Ciphertext in and out are plain byte buffers, so the transport decides when to read and write
 * and many records can leave in one socket write. Certificate policy lives in tls_verify.c.
 * Knows no loop, no socket, no MQTT. */
#include "tls.h"

#include "log.h"
#include "tls_ticket.h"
#include "tls_verify.h"
#include "tlsmem.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#if MBEDTLS_VERSION_MAJOR < 3
#include <mbedtls/ssl_internal.h>
#else
#include <psa/crypto.h>
#endif
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>

struct tls_lib {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    /* Random ticket keys, the newest first: a new one every lifetime, the one before still
     * decrypts (what Mbed TLS's own ticket module does, which cannot carry certmq's data). */
    struct tls_ticket_keys *rand_keys[2];
    int64_t rand_keys_at;
    struct tls_ticket_keys *file_keys; /* tls_ticket_key_file: these instead, when set */
    uint32_t ticket_lifetime;
    bool use_tickets;
};

#if MBEDTLS_VERSION_MAJOR >= 3
/* Bytes kept from the start of each record buffer while parked: in TLS (not DTLS) Mbed TLS 3.6
 * keeps the incoming sequence number in the input buffer's first 8 bytes and the next record's
 * header right after it; the rest of a buffer holds nothing once its records are processed.
 * 64 is a margin over those 13 bytes; tls_test's park rounds check the sequence numbers. */
#define PARK_KEEP 64
#endif

struct tls_conn {
    struct tls_ctx *ctx;
    mbedtls_ssl_context ssl;
    struct buf in;      /* ciphertext kept between reads */
    const uint8_t *ext; /* ciphertext of the current read, borrowed */
    size_t ext_len;
    struct buf out;
    struct tls_verify_state vs;
    struct tls_peer peer;
    bool done, failed;
    bool ticket; /* set by the ticket wrapper when it accepted this connection's ticket */
    mbedtls_x509_crt *ticket_crt; /* the certificate carried by that ticket */
    bool keep_der;
    bool parked; /* record buffers released; the sequence numbers are here */
#if MBEDTLS_VERSION_MAJOR < 3
    uint8_t in_ctr[8], out_ctr[8];
#else
    struct tlsmem_buf rec[2]; /* the record buffers, as tlsmem saw mbedtls_ssl_setup() take them */
    uint8_t rec_head[2][PARK_KEEP];
    /* Where the ciphertext handed to Mbed TLS stands in TLS's record framing, so that a partial
     * record inside its input buffer (which 3.x's public API does not report) stops parking. */
    uint8_t hdr[5];
    uint8_t hdr_have;
    size_t rec_left;
#endif
    uint8_t *der, *issuer_der; /* kept for a certificate check (tls_conn_keep_der) */
    size_t der_len, issuer_der_len;
    char err[384];
};

struct tls_lib *tls_lib_new(bool tickets, uint32_t lifetime)
{
    struct tls_lib *l = xcalloc(1, sizeof(*l));
#if MBEDTLS_VERSION_MAJOR >= 3
#if defined(MBEDTLS_PLATFORM_MEMORY)
    /* Process-wide, like the allocator it replaces; safe whenever it is set, since tlsmem_free
     * frees any pointer it does not own with free(). */
    mbedtls_platform_set_calloc_free(tlsmem_calloc, tlsmem_free);
#endif
    /* TLS 1.3 and key parsing run on PSA; nothing works before this. */
    if (psa_crypto_init() != PSA_SUCCESS) {
        fputs("certmq: cannot initialise PSA crypto\n", stderr);
        abort();
    }
#endif
    mbedtls_entropy_init(&l->entropy);
    mbedtls_ctr_drbg_init(&l->drbg);
    static const char pers[] = "certmq";
    if (mbedtls_ctr_drbg_seed(&l->drbg, mbedtls_entropy_func, &l->entropy,
                              (const unsigned char *)pers, sizeof(pers) - 1) != 0) {
        fputs("certmq: cannot seed the random generator\n", stderr);
        abort();
    }
    l->use_tickets = tickets;
    l->ticket_lifetime = lifetime;
    if (tickets) {
        l->rand_keys[0] = tls__ticket_keys_random(mbedtls_ctr_drbg_random, &l->drbg);
        l->rand_keys_at = (int64_t)time(NULL);
        l->use_tickets = l->rand_keys[0] != NULL;
    }
    return l;
}

void tls_lib_free(struct tls_lib *l)
{
    if (!l)
        return;
    tls__ticket_keys_free(l->rand_keys[0]);
    tls__ticket_keys_free(l->rand_keys[1]);
    tls__ticket_keys_free(l->file_keys);
    mbedtls_ctr_drbg_free(&l->drbg);
    mbedtls_entropy_free(&l->entropy);
    free(l);
}

int tls_lib_ticket_keys(struct tls_lib *l, const char *path, struct tls_load *how, struct diag *d)
{
    struct tls_ticket_keys *k = tls__ticket_keys_load(path, how, d);
    if (!k)
        return -1;
    /* Nothing keeps a pointer to the keys between the callbacks: swapping is safe mid-handshake
     * (a ticket is parsed at ClientHello and written at the end, each with the keys then). */
    tls__ticket_keys_free(l->file_keys);
    l->file_keys = k;
    return 0;
}

size_t tls_lib_ticket_key_info(const struct tls_lib *l, char name_hex[33])
{
    tls__ticket_keys_name(l->file_keys, name_hex);
    return tls__ticket_keys_count(l->file_keys);
}

/* ---- contexts ----------------------------------------------------------------------------- */

const char *tls__mbed_err(int r, char *buf, size_t n)
{
    mbedtls_strerror(r, buf, n);
    return buf;
}

/* X25519 is cheapest; P-256 must stay because P-256 device certificates need it in TLS 1.2. */
#if MBEDTLS_VERSION_MAJOR < 3
static const mbedtls_ecp_group_id curves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
                                              MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};
#else
/* 3.6 picks the ECDHE group in this (the server's) order for TLS 1.2, and accepts a TLS 1.3
 * key share in any of them. */
static const uint16_t groups[] = {MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
                                  MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
                                  MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, 0};
#endif

/* Certificates and CRLs: SHA-256 or better, EC (named NIST curves) or RSA of 2048 bits or more. */
static const mbedtls_x509_crt_profile profile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_RSA) | MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECKEY) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECDSA),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP384R1) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP521R1),
    2048,
};

/* The newest random key, replaced every ticket lifetime (the previous one still decrypts). */
static struct tls_ticket_keys *rand_keys(struct tls_lib *l)
{
    int64_t now = (int64_t)time(NULL);
    if (now - l->rand_keys_at >= (int64_t)l->ticket_lifetime) {
        struct tls_ticket_keys *k = tls__ticket_keys_random(mbedtls_ctr_drbg_random, &l->drbg);
        if (k) {
            tls__ticket_keys_free(l->rand_keys[1]);
            l->rand_keys[1] = l->rand_keys[0];
            l->rand_keys[0] = k;
            l->rand_keys_at = now;
        }
    }
    return l->rand_keys[0];
}

static int ticket_write(void *p, const mbedtls_ssl_session *s, unsigned char *start,
                        const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
    struct tls_ctx *c = p;
    struct tls_lib *l = c->lib;
    struct tls_conn *conn = c->cur_conn;
    /* The client's certificate goes into the ticket: from this handshake's verification, or
     * from the ticket this (resumed) connection presented. */
    const uint8_t *der = conn ? conn->vs.leaf_der : NULL;
    size_t der_len = conn ? conn->vs.leaf_der_len : 0;
    if (!der && conn && conn->ticket_crt) {
        der = conn->ticket_crt->raw.p;
        der_len = conn->ticket_crt->raw.len;
    }
    *tlen = 0;
    *lifetime = l->ticket_lifetime;
    if (!der)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    return tls__ticket_write(l->file_keys ? l->file_keys : rand_keys(l), mbedtls_ctr_drbg_random,
                             &l->drbg, l->ticket_lifetime, der, der_len, s, start, end, tlen,
                             lifetime);
}

/* A ticket proves a past verification only: the certificate must still be acceptable under the
 * current CRLs, CA set and its validity period, else Mbed TLS ignores the ticket and runs a full
 * handshake, whose verification then names the reason. Accepting it is the only sign of a
 * resumption that Mbed TLS gives, so the connection is told here. The same for keys from
 * tls_ticket_key_file: a ticket issued before a restart proves nothing about a revocation made
 * while the broker was down. */
static int ticket_parse(void *p, mbedtls_ssl_session *s, unsigned char *buf, size_t len)
{
    struct tls_ctx *c = p;
    struct tls_lib *l = c->lib;
    uint8_t *der;
    size_t der_len;
    int r;
    if (l->file_keys) {
        r = tls__ticket_parse(l->file_keys, l->ticket_lifetime, s, buf, len, &der, &der_len);
    } else {
        /* An unknown key name is refused before anything is decrypted, so buf is intact for
         * the previous key. */
        r = tls__ticket_parse(l->rand_keys[0], l->ticket_lifetime, s, buf, len, &der, &der_len);
        if (r == MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED && l->rand_keys[1])
            r = tls__ticket_parse(l->rand_keys[1], l->ticket_lifetime, s, buf, len, &der, &der_len);
    }
    if (r != 0)
        return r;
    mbedtls_x509_crt *crt = xmalloc(sizeof(*crt));
    mbedtls_x509_crt_init(crt);
    if (!c->cur_conn || mbedtls_x509_crt_parse_der(crt, der, der_len) != 0 ||
        tls_verify_ticket_check(c, crt) != NULL) {
        mbedtls_x509_crt_free(crt);
        free(crt);
        return MBEDTLS_ERR_SSL_INVALID_MAC;
    }
    struct tls_conn *conn = c->cur_conn;
    if (conn->ticket_crt) {
        mbedtls_x509_crt_free(conn->ticket_crt);
        free(conn->ticket_crt);
    }
    conn->ticket_crt = crt;
    conn->ticket = true;
    return 0;
}

static void setup_conf(struct tls_ctx *c, struct tls_lib *lib)
{
    mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                MBEDTLS_SSL_PRESET_DEFAULT);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &lib->drbg);
#if MBEDTLS_VERSION_MAJOR < 3
    mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_curves(&c->conf, curves);
#else
    mbedtls_ssl_conf_min_tls_version(&c->conf, (mbedtls_ssl_protocol_version)c->min_version);
    mbedtls_ssl_conf_max_tls_version(&c->conf, (mbedtls_ssl_protocol_version)c->max_version);
    mbedtls_ssl_conf_groups(&c->conf, groups);
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    /* Full handshakes, and resumption with ECDHE (psk_dhe_ke, forward secret); resumption from
     * the ticket alone (psk_ke) only when the listener allows it (docs/configuration.md). */
    mbedtls_ssl_conf_tls13_key_exchange_modes(
        &c->conf, c->opts.tls13_psk_ke ? MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_ALL
                                       : MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL |
                                             MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL);
#endif
#endif
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, c->crl_count ? &c->crl : NULL);
    mbedtls_ssl_conf_cert_profile(&c->conf, &profile);
    mbedtls_ssl_conf_ciphersuites(&c->conf, c->suites);
#if defined(MBEDTLS_SSL_RENEGOTIATION) /* a build without it cannot renegotiate anyway */
    mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    if (lib->use_tickets)
        mbedtls_ssl_conf_session_tickets_cb(&c->conf, ticket_write, ticket_parse, c);
}

struct tls_ctx *tls_ctx_new(struct tls_lib *lib, const struct tls_server_opts *o, struct diag *d)
{
    struct tls_load how = {.settle_ms = 0};
    return tls_ctx_load(lib, o, &how, d);
}

const struct tls_crl_file *tls_ctx_crl_files(const struct tls_ctx *c, size_t *n)
{
    *n = c->crl_file_count;
    return c->crl_files;
}

size_t tls_ctx_crl_entries(const struct tls_ctx *c)
{
    return c->crl_entries;
}

struct tls_ctx *tls_ctx_load(struct tls_lib *lib, const struct tls_server_opts *o,
                             struct tls_load *how, struct diag *d)
{
    char eb[128];
    how->unstable = false;
    how->unstable_at[0] = '\0';
    size_t before = d->count;
    struct tls_ctx *c = xcalloc(1, sizeof(*c));
    c->refs = 1;
    c->lib = lib;
    c->opts = *o;
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crl_init(&c->crl);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_x509_crt_init(&c->seen);
    mbedtls_x509_crt_init(&c->no_ca);
#if MBEDTLS_VERSION_MAJOR < 3
    for (size_t i = 0; i < sizeof(c->verifier) / sizeof(c->verifier[0]); i++)
        mbedtls_ecdsa_init(&c->verifier[i]);
#endif
    c->profile = &profile;
    mbedtls_pk_init(&c->key);
    mbedtls_ssl_config_init(&c->conf);
    c->verify_depth = o->verify_depth ? o->verify_depth : 4;
    c->load = how;
    tls__load_files(c, o, d);
    c->load = NULL;
    if (d->count == before && !how->unstable) {
        setup_conf(c, lib);
        int r = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key);
        if (r != 0)
            diag_add(d, o->certfile, 0, "cannot use the certificate: %s",
                     tls__mbed_err(r, eb, sizeof(eb)));
    }
    if (d->count != before || how->unstable) {
        tls_ctx_unref(c);
        return NULL;
    }
    return c;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *c)
{
    c->refs++;
    return c;
}

uint64_t tls_ctx_chain_cache_hits(const struct tls_ctx *c)
{
    return c->vcache_hits;
}

void tls_ctx_unref(struct tls_ctx *c)
{
    if (!c || --c->refs > 0)
        return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crl_free(&c->crl);
    for (size_t i = 0; i < c->crl_file_count; i++)
        free(c->crl_files[i].path);
    free(c->crl_files);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_x509_crt_free(&c->seen);
    mbedtls_x509_crt_free(&c->no_ca);
#if MBEDTLS_VERSION_MAJOR < 3
    for (size_t i = 0; i < sizeof(c->verifier) / sizeof(c->verifier[0]); i++)
        mbedtls_ecdsa_free(&c->verifier[i]);
#endif
    tls_vcache_free(c);
    mbedtls_pk_free(&c->key);
    free(c);
}

/* ---- connections -------------------------------------------------------------------------- */

static int bio_send(void *p, const unsigned char *b, size_t n)
{
    struct tls_conn *c = p;
    buf_append(&c->out, b, n);
    return (int)n;
}

#if MBEDTLS_VERSION_MAJOR >= 3
/* Follows the record framing (5-byte header with the length in its last two bytes) over the
 * bytes Mbed TLS takes. */
static void track_records(struct tls_conn *c, const unsigned char *b, size_t n)
{
    while (n) {
        if (c->rec_left) {
            size_t k = n < c->rec_left ? n : c->rec_left;
            c->rec_left -= k;
            b += k;
            n -= k;
            continue;
        }
        c->hdr[c->hdr_have++] = *b++;
        n--;
        if (c->hdr_have == sizeof(c->hdr)) {
            c->rec_left = (size_t)c->hdr[3] << 8 | c->hdr[4];
            c->hdr_have = 0;
        }
    }
}
#define TRACK(c, b, n) track_records(c, b, n)
#else
#define TRACK(c, b, n) ((void)0)
#endif

/* Leftovers of earlier reads first, then the borrowed bytes of the current read. */
static int bio_recv(void *p, unsigned char *b, size_t n)
{
    struct tls_conn *c = p;
    size_t have = buf_size(&c->in);
    if (have) {
        if (n > have)
            n = have;
        memcpy(b, buf_head(&c->in), n);
        buf_consume(&c->in, n);
        TRACK(c, b, n);
        return (int)n;
    }
    if (!c->ext_len)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > c->ext_len)
        n = c->ext_len;
    memcpy(b, c->ext, n);
    c->ext += n;
    c->ext_len -= n;
    TRACK(c, b, n);
    return (int)n;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx)
{
    struct tls_conn *c = xcalloc(1, sizeof(*c));
    c->ctx = tls_ctx_ref(ctx);
    mbedtls_ssl_init(&c->ssl);
#if MBEDTLS_VERSION_MAJOR >= 3
    tlsmem_capture(c->rec, 2);
    mbedtls_ssl_setup(&c->ssl, &ctx->conf);
    tlsmem_capture(NULL, 0);
#else
    mbedtls_ssl_setup(&c->ssl, &ctx->conf);
#endif
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    c->vs.ctx = ctx;
    c->vs.peer = &c->peer;
    mbedtls_ssl_set_verify(&c->ssl, tls_verify_cb, &c->vs);
    strcpy(c->err, "no error");
    return c;
}

static void drop_ticket_crt(struct tls_conn *c)
{
    if (c->ticket_crt) {
        mbedtls_x509_crt_free(c->ticket_crt);
        free(c->ticket_crt);
        c->ticket_crt = NULL;
    }
}

void tls_conn_free(struct tls_conn *c)
{
    if (!c)
        return;
    unsigned char *in = NULL, *out = NULL;
#if MBEDTLS_VERSION_MAJOR < 3
    /* mbedtls_ssl_free zeroes both record buffers before freeing them, faulting in every page
     * the pool kept non-resident; pooled buffers are wiped by discarding their pages instead. */
    if (tlsmem_owns(c->ssl.in_buf) && tlsmem_owns(c->ssl.out_buf)) {
        in = c->ssl.in_buf;
        out = c->ssl.out_buf;
        c->ssl.in_buf = c->ssl.out_buf = NULL;
    }
#endif
    mbedtls_ssl_free(&c->ssl);
    free(in);
    free(out);
    drop_ticket_crt(c);
    free(c->vs.leaf_der);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c->peer.chain);
    certattrs_free(c->peer.attrs);
    tls_conn_drop_der(c);
    tls_ctx_unref(c->ctx);
    free(c);
}

void tls_conn_input(struct tls_conn *c, const uint8_t *p, size_t n)
{
    buf_append(&c->in, p, n);
}

void tls_conn_input_borrow(struct tls_conn *c, const uint8_t *p, size_t n)
{
    c->ext = p;
    c->ext_len = n;
}

void tls_conn_input_release(struct tls_conn *c)
{
    /* Only a partial record (or bytes not read while paused) is ever copied. */
    if (c->ext_len)
        buf_append(&c->in, c->ext, c->ext_len);
    c->ext = NULL;
    c->ext_len = 0;
}

struct buf *tls_conn_output(struct tls_conn *c)
{
    return &c->out;
}

static void keep_der(struct tls_conn *c, const mbedtls_x509_crt *crt)
{
    c->der = xmemdup(crt->raw.p, crt->raw.len);
    c->der_len = crt->raw.len;
    /* One the peer sent first, else a trust anchor or an intermediate seen before. */
    const mbedtls_x509_crt *iss = NULL;
    for (const mbedtls_x509_crt *x = crt->next; x && x->raw.p && !iss; x = x->next)
        if (x->subject_raw.len == crt->issuer_raw.len &&
            !memcmp(x->subject_raw.p, crt->issuer_raw.p, crt->issuer_raw.len))
            iss = x;
    if (!iss)
        iss = tls_verify_find_issuer(c->ctx, crt);
    if (iss) {
        c->issuer_der = xmemdup(iss->raw.p, iss->raw.len);
        c->issuer_der_len = iss->raw.len;
    }
}

void tls_conn_keep_der(struct tls_conn *c)
{
    c->keep_der = true;
}

bool tls_conn_cert_der(const struct tls_conn *c, const uint8_t **der, size_t *len,
                       const uint8_t **issuer, size_t *issuer_len)
{
    *der = c->der;
    *len = c->der_len;
    *issuer = c->issuer_der;
    *issuer_len = c->issuer_der_len;
    return c->der != NULL;
}

void tls_conn_drop_der(struct tls_conn *c)
{
    free(c->der);
    free(c->issuer_der);
    c->der = c->issuer_der = NULL;
    c->der_len = c->issuer_der_len = 0;
}

static int finish_handshake(struct tls_conn *c);

static int fail(struct tls_conn *c, int r)
{
    char eb[160];
    if (c->vs.reject == TLS_REJECT_NONE) {
        c->vs.reject =
            r == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE ? TLS_REJECT_NO_CERT : TLS_REJECT_HANDSHAKE;
        if (r == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
            snprintf(c->err, sizeof(c->err), "the client sent no certificate");
        else
            snprintf(c->err, sizeof(c->err), "%s", tls__mbed_err(r, eb, sizeof(eb)));
    } else {
        snprintf(c->err, sizeof(c->err), "%s", c->vs.detail);
    }
    c->failed = true;
    return -1;
}

/* Mbed TLS walks at most MBEDTLS_X509_MAX_INTERMEDIATE_CA CAs and then gives up with a bare
 * "fatal error", having already freed the chain: the device cannot be named, but the reason
 * can. */
static void chain_too_long(struct tls_conn *c)
{
    if (c->vs.reject != TLS_REJECT_NONE)
        return;
    c->vs.reject = TLS_REJECT_CHAIN_TOO_LONG;
    snprintf(c->vs.detail, sizeof(c->vs.detail),
             "certificate chain longer than %d CAs (verify_depth %u)",
             MBEDTLS_X509_MAX_INTERMEDIATE_CA, c->ctx->verify_depth);
}

#if MBEDTLS_VERSION_MAJOR < 3
/* Mbed TLS picks the ECDHE group in the client's order; many device stacks list the costly
 * NIST curves first. Reorder the client's list by ours (X25519 first): same groups, cheaper
 * key exchange when the client supports X25519. */
static void prefer_our_curves(struct tls_conn *c)
{
    const mbedtls_ecp_curve_info **list = c->ssl.handshake ? c->ssl.handshake->curves : NULL;
    if (!list)
        return;
    const mbedtls_ecp_curve_info *out[32];
    size_t n = 0, total = 0;
    while (list[total] && total < 32)
        total++;
    for (const mbedtls_ecp_group_id *g = curves; *g != MBEDTLS_ECP_DP_NONE; g++)
        for (size_t i = 0; i < total; i++)
            if (list[i]->grp_id == *g)
                out[n++] = list[i];
    for (size_t i = 0; i < total; i++) {
        bool ours = false;
        for (const mbedtls_ecp_group_id *g = curves; *g != MBEDTLS_ECP_DP_NONE; g++)
            ours |= list[i]->grp_id == *g;
        if (!ours)
            out[n++] = list[i];
    }
    memcpy(list, out, n * sizeof(out[0]));
}

/* Mbed TLS 2.28 checks a CertificateVerify made with an EC key by copying the key into a
 * temporary ECDSA context whose freshly loaded group recomputes the generator's comb table:
 * 1.6 ms per full handshake here instead of 1.1 ms. For the one step that checks it, the
 * device's public key is lent to a long-lived ECDSA context of its curve, which keeps the table;
 * the certificate gets its own key context back right after the step. */
static mbedtls_x509_crt *lend_peer_key(struct tls_conn *c, mbedtls_pk_context *saved)
{
    static const mbedtls_ecp_group_id ids[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
                                               MBEDTLS_ECP_DP_SECP521R1};
    _Static_assert(sizeof(ids) / sizeof(ids[0]) ==
                       sizeof(c->ctx->verifier) / sizeof(c->ctx->verifier[0]),
                   "one verifier per curve");
    mbedtls_x509_crt *peer = c->ssl.session_negotiate ? c->ssl.session_negotiate->peer_cert : NULL;
    if (!peer || mbedtls_pk_get_type(&peer->pk) != MBEDTLS_PK_ECKEY)
        return NULL;
    const mbedtls_ecp_keypair *kp = mbedtls_pk_ec(peer->pk);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        mbedtls_ecdsa_context *v = &c->ctx->verifier[i];
        if (ids[i] != kp->grp.id)
            continue;
        if ((v->grp.id != ids[i] && mbedtls_ecp_group_load(&v->grp, ids[i]) != 0) ||
            mbedtls_ecp_copy(&v->Q, &kp->Q) != 0)
            return NULL;
        *saved = peer->pk;
        peer->pk.pk_info = mbedtls_pk_info_from_type(MBEDTLS_PK_ECDSA);
        peer->pk.pk_ctx = v;
        return peer;
    }
    return NULL;
}

int tls_conn_handshake_step(struct tls_conn *c)
{
    if (c->done)
        return 0;
    if (c->failed)
        return -1;
    if (c->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        bool cert_step = c->ssl.state == MBEDTLS_SSL_CLIENT_CERTIFICATE;
        bool hello_step = c->ssl.state == MBEDTLS_SSL_CLIENT_HELLO;
        if (cert_step && !c->vs.deferred) {
            /* The CertificateRequest is out (naming the real CAs). Mbed TLS now checks the
             * chain against an empty trust list (no signature work) and leaves the verdict to
             * tls_verify_peer_chain, which can skip chain signatures it has checked before. */
            c->vs.deferred = true;
            mbedtls_ssl_set_hs_authmode(&c->ssl, MBEDTLS_SSL_VERIFY_OPTIONAL);
            mbedtls_ssl_set_hs_ca_chain(&c->ssl, &c->ctx->no_ca, NULL);
        }
        c->ctx->cur_conn = c;
        mbedtls_pk_context own_key;
        mbedtls_x509_crt *lent =
            c->ssl.state == MBEDTLS_SSL_CERTIFICATE_VERIFY ? lend_peer_key(c, &own_key) : NULL;
        int r = mbedtls_ssl_handshake_step(&c->ssl);
        if (lent)
            lent->pk = own_key;
        c->ctx->cur_conn = NULL;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
            buf_shrink(&c->in, 0);
            return TLS_AGAIN;
        }
        /* Shorter chains over verify_depth are refused by tls_verify_peer_chain with the
         * device's name. */
        if (r == MBEDTLS_ERR_X509_FATAL_ERROR && cert_step)
            chain_too_long(c);
        if (r != 0)
            return fail(c, r);
        if (hello_step && c->ssl.state != MBEDTLS_SSL_CLIENT_HELLO)
            prefer_our_curves(c);
        if (cert_step && c->ssl.state != MBEDTLS_SSL_CLIENT_CERTIFICATE) {
            unsigned char alert = 0;
            if (tls_verify_peer_chain(&c->vs, c->ssl.session_negotiate->peer_cert, &alert) != 0) {
                mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
                return fail(c, -1);
            }
        }
        if (c->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER)
            return TLS_MORE;
    }
    return finish_handshake(c);
}

#else
/* 3.6 needs none of 2.28's tricks: the ECDHE group follows the server's order (setup_conf),
 * ECDSA uses precomputed generator tables, and Mbed TLS checks the chain against the real CA set
 * with tls_verify_cb applying the policy (the handshake state, which the deferred chain check
 * keyed on, is private in 3.6). Nor can it be stepped: mbedtls_ssl_is_handshake_over() is also
 * true inside a TLS 1.3 handshake (its states are numbered after HANDSHAKE_OVER), so each call
 * runs mbedtls_ssl_handshake() as far as the input allows. */
int tls_conn_handshake_step(struct tls_conn *c)
{
    if (c->done)
        return 0;
    if (c->failed)
        return -1;
    c->ctx->cur_conn = c;
    int r = mbedtls_ssl_handshake(&c->ssl);
    c->ctx->cur_conn = NULL;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        buf_shrink(&c->in, 0);
        return TLS_AGAIN;
    }
    if (r == MBEDTLS_ERR_X509_FATAL_ERROR)
        chain_too_long(c);
    if (r != 0)
        return fail(c, r);
    return finish_handshake(c);
}
#endif

int tls_conn_handshake(struct tls_conn *c)
{
    int r;
    while ((r = tls_conn_handshake_step(c)) == TLS_MORE)
        ;
    return r;
}

/* The handshake is over: apply the per-certificate policy where Mbed TLS did not (resumption),
 * copy out what the broker needs and drop the certificate. */
static int finish_handshake(struct tls_conn *c)
{
    /* Resumed: the ticket wrapper accepted a ticket, so the verify callback did not run and
     * the policy's per-certificate checks are applied here, to the ticket's certificate (on a
     * full handshake after a refused ticket, the verification's own). */
    c->peer.resumed = c->ticket && !c->vs.verified;
    const mbedtls_x509_crt *crt =
        c->peer.resumed ? c->ticket_crt : mbedtls_ssl_get_peer_cert(&c->ssl);
    if (!crt) {
        c->vs.reject = TLS_REJECT_NO_CERT;
        snprintf(c->vs.detail, sizeof(c->vs.detail), "no peer certificate after the handshake");
        return fail(c, -1);
    }
    if (c->peer.resumed && tls_verify_resumed(&c->vs, crt) != 0)
        return fail(c, -1);
    if (!c->peer.resumed)
        tls_verify_remember(&c->vs);
    if (c->keep_der)
        keep_der(c, crt);
    drop_ticket_crt(c);
    free(c->vs.leaf_der);
    c->vs.leaf_der = NULL;
    c->vs.leaf_der_len = 0;
#if MBEDTLS_VERSION_MAJOR < 3
    /* Everything the broker needs is copied out and the ticket (which embeds the certificate)
     * is already written: the certificate (~2.5 KB) is not kept (notes/mbedtls-2.28.md §3.4).
     * Safe because renegotiation is off and mbedtls_ssl_get_session() is never called. 3.6
     * keeps it: its session is private, and TLS 1.3 needs MBEDTLS_SSL_KEEP_PEER_CERTIFICATE. */
    if (c->ssl.session->peer_cert) {
        mbedtls_x509_crt_free(c->ssl.session->peer_cert);
        mbedtls_free(c->ssl.session->peer_cert);
        c->ssl.session->peer_cert = NULL;
    }
#endif
    c->done = true;
    buf_shrink(&c->in, 0);
    return 0;
}

/* TLS 1.2 keeps the record sequence numbers in the first bytes of the record buffers
 * (in_ctr = in_buf, out_ctr = out_buf); nothing else in them outlives a completely processed
 * record. */
#if MBEDTLS_VERSION_MAJOR < 3
bool tls_conn_park(struct tls_conn *c)
{
    mbedtls_ssl_context *s = &c->ssl;
    if (!c->done || c->parked || s->in_left || s->in_msglen || s->in_offt || s->out_left ||
        buf_size(&c->in) || c->ext_len || s->in_ctr != s->in_buf || s->out_ctr != s->out_buf)
        return false;
    memcpy(c->in_ctr, s->in_ctr, 8);
    memcpy(c->out_ctr, s->out_ctr, 8);
    /* Without the pool (sanitizer builds) zeroing stands in for the kernel's fresh pages, so
     * the same code path is exercised. */
    if (!tlsmem_release(s->in_buf))
        memset(s->in_buf, 0, MBEDTLS_SSL_IN_BUFFER_LEN);
    if (!tlsmem_release(s->out_buf))
        memset(s->out_buf, 0, MBEDTLS_SSL_OUT_BUFFER_LEN);
    c->parked = true;
    return true;
}

static void unpark(struct tls_conn *c)
{
    if (!c->parked)
        return;
    memcpy(c->ssl.in_ctr, c->in_ctr, 8);
    memcpy(c->ssl.out_ctr, c->out_ctr, 8);
    c->parked = false;
}
#else
/* 3.x: the record buffers' addresses come from tlsmem (allocator hooks); whether anything is
 * still buffered, from the public API (our BIO takes every byte written, so nothing waits to
 * be sent). Without the hooks (a system Mbed TLS without MBEDTLS_PLATFORM_MEMORY) nothing is
 * parked. */
bool tls_conn_park(struct tls_conn *c)
{
    if (!c->done || c->parked || !c->rec[0].p || !c->rec[1].p || buf_size(&c->in) || c->ext_len ||
        c->hdr_have || c->rec_left || mbedtls_ssl_check_pending(&c->ssl) ||
        mbedtls_ssl_get_bytes_avail(&c->ssl))
        return false;
    for (int i = 0; i < 2; i++) {
        memcpy(c->rec_head[i], c->rec[i].p, PARK_KEEP);
        /* Without the pool (sanitizer builds) zeroing stands in for the kernel's fresh pages,
         * so the same code path is exercised. */
        if (!tlsmem_release(c->rec[i].p))
            memset(c->rec[i].p, 0, c->rec[i].size);
    }
    c->parked = true;
    return true;
}

static void unpark(struct tls_conn *c)
{
    if (!c->parked)
        return;
    for (int i = 0; i < 2; i++)
        memcpy(c->rec[i].p, c->rec_head[i], PARK_KEEP);
    c->parked = false;
}
#endif

int tls_conn_read(struct tls_conn *c, uint8_t *out, size_t cap)
{
    unpark(c);
    int r = mbedtls_ssl_read(&c->ssl, out, cap);
    if (r > 0)
        return r;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        buf_shrink(&c->in, 0);
        return TLS_AGAIN;
    }
    if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == 0)
        return TLS_EOF;
    char eb[160];
    snprintf(c->err, sizeof(c->err), "%s", tls__mbed_err(r, eb, sizeof(eb)));
    return -1;
}

int tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n)
{
    unpark(c);
    while (n) {
        int r = mbedtls_ssl_write(&c->ssl, p, n);
        if (r < 0) {
            char eb[160];
            snprintf(c->err, sizeof(c->err), "%s", tls__mbed_err(r, eb, sizeof(eb)));
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

void tls_conn_close_notify(struct tls_conn *c)
{
    unpark(c);
    if (c->done)
        mbedtls_ssl_close_notify(&c->ssl);
}

const struct tls_peer *tls_conn_peer(const struct tls_conn *c)
{
    return &c->peer;
}

enum tls_reject tls_conn_reject(const struct tls_conn *c)
{
    return c->vs.reject;
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->err;
}

const char *tls_reject_str(enum tls_reject r)
{
    static const char *const s[TLS_REJECT_COUNT] = {
        [TLS_REJECT_NONE] = "none",
        [TLS_REJECT_NO_CERT] = "no certificate",
        [TLS_REJECT_UNKNOWN_CA] = "unknown CA",
        [TLS_REJECT_REVOKED] = "revoked",
        [TLS_REJECT_EXPIRED] = "expired",
        [TLS_REJECT_NOT_YET_VALID] = "not yet valid",
        [TLS_REJECT_BAD_EKU] = "bad extended key usage",
        [TLS_REJECT_BAD_IDENTITY] = "bad identity",
        [TLS_REJECT_CRL_MISSING] = "CRL missing",
        [TLS_REJECT_CRL_EXPIRED] = "CRL expired",
        [TLS_REJECT_CHAIN_TOO_LONG] = "chain too long",
        [TLS_REJECT_HANDSHAKE] = "handshake failed",
        [TLS_REJECT_PLUGIN] = "refused by plugin",
        [TLS_REJECT_PROXY] = "proxy protocol",
    };
    return (unsigned)r < TLS_REJECT_COUNT ? s[r] : "unknown";
}

void tls_library_version(char *out)
{
    mbedtls_version_get_string(out);
}
