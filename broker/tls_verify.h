/* tls_verify: the certificate policy behind tls, shared only by tls.c and tls_verify.c.
 *
 * Holds the layout of a listener's TLS context and the per-handshake verification state, the
 * Mbed TLS verify callback (every check and its refusal reason), identity extraction, and the
 * re-checks done when a session ticket is presented or the CRLs change. */
#ifndef CERTMQ_TLS_VERIFY_H
#define CERTMQ_TLS_VERIFY_H

#include "tls.h"

#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

struct tls_ctx {
    int refs;
    struct tls_lib *lib;
    struct tls_server_opts opts; /* flags only are used after creation; strings may dangle */
    mbedtls_x509_crt ca, cert;
    mbedtls_x509_crl crl;
    size_t crl_count;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    int suites[8];
    unsigned verify_depth;
    uint8_t (*crl_issuers)[32]; /* reserved for an issuer index */
    int64_t crl_warned_at;      /* last "expired CRL accepted" warning (unix seconds) */
    uint64_t crl_expired_accepted;
};

struct tls_verify_state {
    struct tls_ctx *ctx;
    struct tls_peer *peer;
    enum tls_reject reject;
    bool verified; /* the verify callback ran: a full handshake */
    char detail[320];
};

int tls_verify_cb(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags);
/* A ticket's certificate, re-checked against the context's current CRLs and the clock. */
bool tls_verify_ticket_ok(const struct tls_ctx *c, const mbedtls_x509_crt *crt);
/* After a resumed handshake: identity, EKU and peer fields from the ticket's certificate. */
int tls_verify_resumed(struct tls_verify_state *vs, const mbedtls_x509_crt *crt);
/* Every loaded CRL must be signed by a loaded CA allowed to sign CRLs and not be from the
 * future. Problems go to d. */
void tls_verify_check_crls(struct tls_ctx *c, struct diag *d);

#endif
