/* tls_ctx: the process-wide TLS state (random generator, ticket keys) and one listener's
 * certificate set and Mbed TLS configuration, refcounted across reloads; the session-ticket
 * callbacks that wrap certmq's own ticket format. The per-connection engine is tls.c.
 * Knows no loop, no socket, no MQTT. */
#include "tls.h"

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
#include <mbedtls/ssl.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#endif
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
const mbedtls_ecp_group_id tls__curves[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1,
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
    /* The client's certificate goes into the ticket: from this handshake's verification, or
     * from the ticket this (resumed) connection presented. */
    size_t der_len = 0;
    const uint8_t *der = c->cur_conn ? tls__conn_ticket_der(c->cur_conn, &der_len) : NULL;
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
    tls__conn_ticket_accepted(c->cur_conn, crt);
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
    mbedtls_ssl_conf_curves(&c->conf, tls__curves);
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
