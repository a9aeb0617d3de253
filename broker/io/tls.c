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

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/platform.h>
#include <mbedtls/ssl.h>
#if MBEDTLS_VERSION_MAJOR < 3
#include <mbedtls/ssl_internal.h>
#endif
#include <mbedtls/version.h>

#if MBEDTLS_VERSION_MAJOR >= 3
/* Bytes kept from the start of each record buffer while parked: in TLS (not DTLS) Mbed TLS 3.6
 * keeps the incoming sequence number in the input buffer's first 8 bytes and the next record's
 * header right after it; the rest of a buffer holds nothing once its records are processed.
 * Those 13 bytes, rounded up (every parked connection keeps two copies); tls_test's park rounds
 * check the sequence numbers. */
#define PARK_KEEP 16
#endif

struct tls_conn {
    struct tls_ctx *ctx;
    mbedtls_ssl_context ssl;
    struct buf in;      /* ciphertext kept between reads */
    const uint8_t *ext; /* ciphertext of the current read, borrowed */
    size_t ext_len;
    struct buf out;
    /* The handshake's verification state; freed once the handshake succeeded (an idle
     * connection does not keep its ~450 bytes), kept after a failure for the reason. */
    struct tls_verify_state *vs;
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
    char *err; /* the last failure; NULL: none (allocated only when something fails) */
};

static void set_err(struct tls_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct tls_conn *c, const char *fmt, ...)
{
    char b[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof(b), fmt, ap);
    va_end(ap);
    free(c->err);
    c->err = xstrdup(b);
}

const uint8_t *tls__conn_ticket_der(const struct tls_conn *c, size_t *len)
{
    if (c->vs && c->vs->leaf_der) {
        *len = c->vs->leaf_der_len;
        return c->vs->leaf_der;
    }
    if (c->ticket_crt) {
        *len = c->ticket_crt->raw.len;
        return c->ticket_crt->raw.p;
    }
    *len = 0;
    return NULL;
}

static void drop_ticket_crt(struct tls_conn *c)
{
    if (c->ticket_crt) {
        mbedtls_x509_crt_free(c->ticket_crt);
        free(c->ticket_crt);
        c->ticket_crt = NULL;
    }
}

void tls__conn_ticket_accepted(struct tls_conn *c, mbedtls_x509_crt *crt)
{
    drop_ticket_crt(c);
    c->ticket_crt = crt;
    c->ticket = true;
}

static void free_vs(struct tls_conn *c)
{
    if (c->vs)
        free(c->vs->leaf_der);
    free(c->vs);
    c->vs = NULL;
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
    c->vs = xcalloc(1, sizeof(*c->vs));
    c->vs->ctx = ctx;
    c->vs->peer = &c->peer;
    tls__peer_names_free(&c->peer);
    mbedtls_ssl_set_verify(&c->ssl, tls_verify_cb, c->vs);
    return c;
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
    free_vs(c);
    free(c->err);
    tls__peer_names_free(&c->peer);
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
    if (c->vs->reject == TLS_REJECT_NONE) {
        c->vs->reject =
            r == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE ? TLS_REJECT_NO_CERT : TLS_REJECT_HANDSHAKE;
        if (r == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE)
            set_err(c, "the client sent no certificate");
        else
            set_err(c, "%s", tls__mbed_err(r, eb, sizeof(eb)));
    } else {
        set_err(c, "%s", c->vs->detail);
    }
    c->failed = true;
    return -1;
}

/* Mbed TLS walks at most MBEDTLS_X509_MAX_INTERMEDIATE_CA CAs and then gives up with a bare
 * "fatal error", having already freed the chain: the device cannot be named, but the reason
 * can. */
static void chain_too_long(struct tls_conn *c)
{
    if (c->vs->reject != TLS_REJECT_NONE)
        return;
    c->vs->reject = TLS_REJECT_CHAIN_TOO_LONG;
    snprintf(c->vs->detail, sizeof(c->vs->detail),
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
    for (const mbedtls_ecp_group_id *g = tls__curves; *g != MBEDTLS_ECP_DP_NONE; g++)
        for (size_t i = 0; i < total; i++)
            if (list[i]->grp_id == *g)
                out[n++] = list[i];
    for (size_t i = 0; i < total; i++) {
        bool ours = false;
        for (const mbedtls_ecp_group_id *g = tls__curves; *g != MBEDTLS_ECP_DP_NONE; g++)
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
        if (cert_step && !c->vs->deferred) {
            /* The CertificateRequest is out (naming the real CAs). Mbed TLS now checks the
             * chain against an empty trust list (no signature work) and leaves the verdict to
             * tls_verify_peer_chain, which can skip chain signatures it has checked before. */
            c->vs->deferred = true;
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
            if (tls_verify_peer_chain(c->vs, c->ssl.session_negotiate->peer_cert, &alert) != 0) {
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
    c->peer.resumed = c->ticket && !c->vs->verified;
    const mbedtls_x509_crt *crt =
        c->peer.resumed ? c->ticket_crt : mbedtls_ssl_get_peer_cert(&c->ssl);
    if (!crt) {
        c->vs->reject = TLS_REJECT_NO_CERT;
        snprintf(c->vs->detail, sizeof(c->vs->detail), "no peer certificate after the handshake");
        return fail(c, -1);
    }
    if (c->peer.resumed && tls_verify_resumed(c->vs, crt) != 0)
        return fail(c, -1);
    if (!c->peer.resumed)
        tls_verify_remember(c->vs);
    if (c->keep_der)
        keep_der(c, crt);
    drop_ticket_crt(c);
    free_vs(c);
#if MBEDTLS_VERSION_MAJOR < 3
    /* Everything the broker needs is copied out and the ticket (which embeds the certificate)
     * is already written: the certificate (~2.5 KB) is not kept (notes/mbedtls-2.28.md §3.4).
     * Safe because renegotiation is off and mbedtls_ssl_get_session() is never called. */
    if (c->ssl.session->peer_cert) {
        mbedtls_x509_crt_free(c->ssl.session->peer_cert);
        mbedtls_free(c->ssl.session->peer_cert);
        c->ssl.session->peer_cert = NULL;
    }
#else
    /* 3.6 must parse and keep the certificate (TLS 1.3 checks the CertificateVerify with it:
     * MBEDTLS_SSL_KEEP_PEER_CERTIFICATE), and its session, which holds it for the connection's
     * life, is private: ~1.5 KB per idle connection (DER copy, key, name lists) that nothing
     * reads again. The certificate's contents are freed with the public free function, which
     * leaves it zeroed as mbedtls_x509_crt_init() would (an empty certificate); only the
     * struct stays, and the session frees it with the connection. Safe for the same reasons as
     * 2.28's: every ticket is written before the handshake ends, renegotiation is off, and
     * neither mbedtls_ssl_get_session() nor mbedtls_ssl_context_save() is called. Every
     * handshake of tls_test and the integration suite (ASan and UBSan in CI) goes through here
     * before its data, park, ticket and close rounds. */
    const mbedtls_x509_crt *kept = mbedtls_ssl_get_peer_cert(&c->ssl);
    if (kept)
        mbedtls_x509_crt_free((mbedtls_x509_crt *)kept);
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
    set_err(c, "%s", tls__mbed_err(r, eb, sizeof(eb)));
    return -1;
}

int tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n)
{
    unpark(c);
    while (n) {
        int r = mbedtls_ssl_write(&c->ssl, p, n);
        if (r < 0) {
            char eb[160];
            set_err(c, "%s", tls__mbed_err(r, eb, sizeof(eb)));
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
    return c->vs ? c->vs->reject : TLS_REJECT_NONE;
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return c->err ? c->err : "no error";
}
