/* tls_verify: the certificate policy behind tls, shared only by tls.c and tls_verify.c.
 *
 * Holds the layout of a listener's TLS context and the per-handshake verification state, the
 * Mbed TLS verify callback (every check and its refusal reason), identity extraction, and the
 * re-checks done when a session ticket is presented or the CRLs change. */
#ifndef CERTMQ_TLS_VERIFY_H
#define CERTMQ_TLS_VERIFY_H

#include "tls.h"

#include <mbedtls/version.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

/* Can this build speak TLS 1.3 (Mbed TLS 3.6 with it configured)? */
#if defined(MBEDTLS_SSL_PROTO_TLS1_3) && MBEDTLS_VERSION_MAJOR >= 3
#define TLS_HAVE_13 1
#else
#define TLS_HAVE_13 0
#endif

/* Intermediates a device sent (not in the CA set) that passed a full verification here, kept
 * so a ticket's certificate can be re-checked up to a trust anchor: tickets hold the leaf only. */
#define TLS_SEEN_MAX 32

/* Client chains that passed a full verification on this context (keyed by a hash of their DER),
 * so a reconnecting device costs no chain signature checks; the CertificateVerify signature is
 * still checked every time, and time, CRLs and the rest of the policy are re-applied. */
#define TLS_VCACHE_MAX 10000
#define TLS_VCACHE_TTL_S 3600
struct tls_vcache_entry;

struct tls_ctx {
    int refs;
    struct tls_lib *lib;
    struct tls_server_opts opts; /* flags only are used after creation; strings may dangle */
    mbedtls_x509_crt ca, cert;
    mbedtls_x509_crl crl;
    size_t crl_count;               /* CRLs loaded (0: none configured) */
    size_t crl_entries;             /* revoked certificates listed by them, for reload warnings */
    struct tls_crl_file *crl_files; /* per file: its update times, for metrics */
    size_t crl_file_count;
    /* While loading: how files are read, and whether one was still being written. */
    struct tls_load *load;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    int suites[16];               /* the allowed suites (tls_load.c) + 0 */
    int min_version, max_version; /* 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3) */
    unsigned verify_depth;
    mbedtls_x509_crt seen; /* see TLS_SEEN_MAX */
    unsigned seen_count;
    /* Set by tls_conn_handshake_step around mbedtls_ssl_handshake_step(): the ticket callbacks
     * only get the ctx, and this is the connection they work for. Single-threaded by design, so
     * one slot per ctx suffices. */
    struct tls_conn *cur_conn;
    int64_t crl_warned_at; /* last "expired CRL accepted" warning (unix seconds) */
    uint64_t crl_expired_accepted;
    struct tls_vcache_entry *vcache;
    size_t vcache_count;
    uint64_t vcache_hits;
    mbedtls_x509_crt no_ca; /* an empty trust list: Mbed TLS's own chain check finds nothing */
#if MBEDTLS_VERSION_MAJOR < 3
    /* Long-lived ECDSA contexts (P-256, P-384, P-521) lent the device's key for the
     * CertificateVerify check, so the generator's comb table is computed once (tls.c). */
    mbedtls_ecdsa_context verifier[3];
#endif
    const mbedtls_x509_crt_profile *profile;
};

struct tls_verify_state {
    struct tls_ctx *ctx;
    struct tls_peer *peer;
    enum tls_reject reject;
    bool verified;   /* the verify callback ran: a full handshake */
    bool crl_warned; /* this handshake already counted an expired CRL */
    bool deferred;   /* Mbed TLS's chain check is a formality: tls_verify_peer_chain decides */
    bool name_leaf;  /* a refusal waits for the device's certificate to be named */
    int top;         /* depth of the top of the verified path */
    const mbedtls_x509_crt *leaf;    /* the device's certificate, named when a CA is at fault */
    const mbedtls_x509_crt *sent[8]; /* verified intermediates not in the CA set */
    unsigned nsent;
    /* The accepted client certificate (DER), for the session ticket written at the end of the
     * handshake; freed when the handshake is over. */
    uint8_t *leaf_der;
    size_t leaf_der_len;
    char detail[320];
};

int tls_verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags);
/* tls.c, for the ticket callbacks (tls_ctx.c): the certificate a new ticket carries (this
 * handshake's verified leaf, else the certificate of the ticket c presented), NULL when none. */
const uint8_t *tls__conn_ticket_der(const struct tls_conn *c, size_t *len);
/* The ticket c presented was accepted; c takes crt, the certificate it carried. */
void tls__conn_ticket_accepted(struct tls_conn *c, mbedtls_x509_crt *crt);
#if MBEDTLS_VERSION_MAJOR < 3
/* ECDHE curves in the server's order of preference (tls_ctx.c). */
extern const mbedtls_ecp_group_id tls__curves[];
#endif
/* The peer's strings back to "" (also the initial state of a zeroed peer), freeing them. */
void tls__peer_names_free(struct tls_peer *p);
/* A ticket's certificate, re-checked against the context's current CRLs, CA set and the clock.
 * NULL when acceptable, else why not. */
const char *tls_verify_ticket_check(const struct tls_ctx *c, const mbedtls_x509_crt *leaf);
/* The client's chain right after its Certificate message (verification deferred to here): the
 * whole policy, with chain signatures checked only on a cache miss. 0, or -1 with the refusal
 * in vs and the TLS alert to send in *alert. */
int tls_verify_peer_chain(struct tls_verify_state *vs, const mbedtls_x509_crt *chain,
                          unsigned char *alert);
void tls_vcache_free(struct tls_ctx *c);
/* The CA of crt by name: the CA set first, then intermediates verified earlier here. */
const mbedtls_x509_crt *tls_verify_find_issuer(const struct tls_ctx *c,
                                               const mbedtls_x509_crt *crt);
/* After a successful full handshake: remember the verified intermediates (see TLS_SEEN_MAX). */
void tls_verify_remember(struct tls_verify_state *vs);
/* After a resumed handshake: identity, EKU and peer fields from the ticket's certificate. */
int tls_verify_resumed(struct tls_verify_state *vs, const mbedtls_x509_crt *crt);
/* Checks the CRLs from `first` to the end of the list, all loaded from file: each must be
 * issued by a loaded CA allowed to sign CRLs, with a valid signature, and not be from the
 * future. Problems go to d under the file's name. */
void tls_verify_check_crls(struct tls_ctx *c, const mbedtls_x509_crl *first, const char *file,
                           struct diag *d);

/* tls_attrs.c: the leaf's policy attributes (never NULL). */
struct certattrs *tls__attrs_get(const mbedtls_x509_crt *crt);

/* tls_load.c: every file of the context and its cipher list; problems go to d. */
void tls__load_files(struct tls_ctx *c, const struct tls_server_opts *o, struct diag *d);
/* Mbed TLS's text for an error code, in buf. */
const char *tls__mbed_err(int r, char *buf, size_t n);
/* An X.509 time (UTC) as unix seconds. */
int64_t tls__unix_time(const mbedtls_x509_time *t);

#endif
