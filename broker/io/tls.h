/* tls: the Mbed TLS 2.28 engine over memory buffers, and the certificate policy it enforces.
 *
 * Bytes in, bytes out: ciphertext from the network is handed to tls_conn_input(), ciphertext to
 * send accumulates in tls_conn_output() for the transport to flush. Knows no loop and no socket,
 * so two engines can be wired back to back in a test. Knows nothing of MQTT.
 *
 * Policy (enforced in every path, there is no switch to turn it off): a client certificate is
 * required and must chain to the listener's CA set within verify_depth; it must be within its
 * validity period; if it has an extended key usage, that must include clientAuth; CRLs loaded for
 * its issuers are checked; its identity (CN by default) must pass tls_identity_valid().
 * Session tickets are on by default; a presented ticket is re-checked against the current CRLs
 * and the certificate's validity period, and rejected (falling back to a full handshake) if the
 * certificate is no longer acceptable. */
#ifndef CERTMQ_TLS_H
#define CERTMQ_TLS_H

#include "buf.h"
#include "certattr.h"
#include "diag.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Distinct from byte counts and from error codes (which are -1). */
#define TLS_AGAIN (-0x10001) /* need more input; not an error */
#define TLS_EOF (-0x10002)   /* peer sent close_notify */
#define TLS_MORE (-0x10003)  /* a handshake step was done; call again (no input needed) */
/* Identities are at most this many bytes (plus NUL). */
#define TLS_IDENTITY_MAX 256

enum tls_identity_mode {
    TLS_ID_CN = 0,
    TLS_ID_SAN_DNS,
    TLS_ID_SAN_URI,
    TLS_ID_SAN_EMAIL,
    TLS_ID_SUBJECT
};

/* Why a certificate was refused; one counter per value in $SYS and metrics. */
enum tls_reject {
    TLS_REJECT_NONE = 0,
    TLS_REJECT_NO_CERT,
    TLS_REJECT_UNKNOWN_CA,
    TLS_REJECT_REVOKED,
    TLS_REJECT_EXPIRED,
    TLS_REJECT_NOT_YET_VALID,
    TLS_REJECT_BAD_EKU,
    TLS_REJECT_BAD_IDENTITY,
    TLS_REJECT_CRL_MISSING,
    TLS_REJECT_CRL_EXPIRED,
    TLS_REJECT_CHAIN_TOO_LONG,
    TLS_REJECT_HANDSHAKE, /* protocol failure: no common cipher, bad record, not TLS, ... */
    TLS_REJECT_PLUGIN,    /* a certificate-check plugin said no (or did not answer in time) */
    /* before TLS, on a proxy_protocol listener: not from a proxy, or no valid PROXY v2 header */
    TLS_REJECT_PROXY,
    TLS_REJECT_COUNT
};
const char *tls_reject_str(enum tls_reject r);
/* The Mbed TLS version the process runs with ("2.28.3"), into out (at least 18 bytes). */
void tls_library_version(char *out);

/* Process-wide TLS state: entropy, DRBG, session-ticket keys. Shared by every listener and kept
 * across reloads so that tickets stay valid when certificates are rotated. */
struct tls_lib;
struct tls_lib *tls_lib_new(bool tickets, uint32_t ticket_lifetime_s);
void tls_lib_free(struct tls_lib *lib);

struct tls_server_opts {
    const char *cafile, *capath, *certfile, *keyfile;
    const char *const *crlfiles;
    size_t crlfile_count;
    const char *crlpath;
    const char *tls_version;     /* NULL, "tlsv1.2" or "tlsv1.3": that version only */
    const char *min_tls_version; /* NULL, "tlsv1.2" or "tlsv1.3": that version or newer */
    const char *ciphers;         /* NULL = default set; else OpenSSL-style names joined by ':' */
    unsigned verify_depth;
    enum tls_identity_mode identity;
    bool crl_strict;       /* a CA in the chain with no CRL loaded refuses the device */
    bool tls13_psk_ke;     /* TLS 1.3 resumption without ECDHE (psk_ke) allowed too */
    bool crl_expired_warn; /* accept under an expired CRL (logged) instead of refusing */
};

/* One listener's certificate set and Mbed TLS configuration. Refcounted: each tls_conn holds a
 * reference, so a reload can build a new ctx for new connections while old ones finish. */
struct tls_ctx;
/* Loads and checks every file; returns NULL with every problem in d (file: reason). Every file
 * is read stable (fileread.h) without a settle time: for start-up and --test-config. */
struct tls_ctx *tls_ctx_new(struct tls_lib *lib, const struct tls_server_opts *o, struct diag *d);

/* How a reload reads its files, and what it found. */
struct tls_load {
    uint32_t settle_ms;    /* in: fileread_stable()'s settle time */
    bool unstable;         /* out: a file was still being written; NULL was returned */
    char unstable_at[256]; /* out: which one (maybe cut short) */
};
/* tls_ctx_new for a reload: a file still being written makes it return NULL with
 * how->unstable set (and nothing in d for that file), so the caller keeps its context and
 * tries again later instead of reporting an error. */
struct tls_ctx *tls_ctx_load(struct tls_lib *lib, const struct tls_server_opts *o,
                             struct tls_load *how, struct diag *d);

/* Session-ticket keys from a file (tls_ticket_key_file; format in tls_ticket.h and
 * docs/configuration.md) instead of Mbed TLS's random ones, so that tickets outlive a restart:
 * the first key encrypts, every key decrypts. The file must be a regular file of mode 0600 or
 * stricter owned by the effective user. 0: the file's keys are in force from now on (for every
 * context of lib); -1: the keys in force stay (random ones, or the file's previous keys), with
 * the reason in d, or with how->unstable set and nothing in d when the file is being written.
 * The ticket lifetime (tls_lib_new) bounds a ticket's age; the keys rotate only with the file. */
int tls_lib_ticket_keys(struct tls_lib *lib, const char *path, struct tls_load *how,
                        struct diag *d);
/* Keys loaded from the file (0: random keys), and the encrypting key's name in hex. */
size_t tls_lib_ticket_key_info(const struct tls_lib *lib, char name_hex[33]);
/* Revoked certificates listed by the context's CRLs (all of them, every issuer). */
size_t tls_ctx_crl_entries(const struct tls_ctx *c);
/* One CRL file of the context (crlfile, or a file of crlpath) and its update times (unix seconds;
 * with several CRLs in the file, the oldest thisUpdate and the earliest nextUpdate, 0 = none). */
struct tls_crl_file {
    char *path;
    int64_t this_update, next_update;
};
const struct tls_crl_file *tls_ctx_crl_files(const struct tls_ctx *c, size_t *n);
struct tls_ctx *tls_ctx_ref(struct tls_ctx *c);
void tls_ctx_unref(struct tls_ctx *c);

/* One certificate of a peer's chain, enough to re-check it against new CRLs after the
 * certificate itself has been freed. */
struct tls_cert_id {
    uint8_t issuer_hash[32]; /* SHA-256 of the issuer's DER name */
    uint8_t serial[32];
    uint8_t serial_len;
    int64_t not_after; /* unix seconds */
};

/* What the broker learns about a verified peer. */
struct tls_peer {
    /* "" until a handshake fills them; then exact-length copies in one allocation, because
     * fixed arrays cost every idle connection ~850 bytes. Valid while the connection is. */
    const char *identity; /* at most TLS_IDENTITY_MAX bytes */
    const char *subject;  /* RFC 4514-ish, for logs */
    const char *issuer;
    const char *serial;        /* hex, colon separated as mbedtls prints it */
    int64_t not_after;         /* unix seconds: earliest notAfter in the chain */
    bool resumed;              /* session ticket used */
    struct tls_cert_id *chain; /* leaf first, then intermediates (not the trust anchor) */
    uint8_t chain_len;
    /* The leaf's policy attributes, captured once per handshake (full or resumed) so the ACL
     * never parses X.509; NULL until then. Owned by the connection. */
    struct certattrs *attrs;
};

/* Full handshakes whose client chain was found in the verified-chain cache. */
uint64_t tls_ctx_chain_cache_hits(const struct tls_ctx *ctx);
/* Is any certificate of the peer's chain revoked by the CRLs of ctx? Fills why when so. */
bool tls_ctx_peer_revoked(const struct tls_ctx *ctx, const struct tls_peer *p, char *why, size_t n);
/* A certificate id as a fixed-size hash key: issuer name hash, serial length, serial
 * (zero-padded). */
#define TLS_CERT_KEY_LEN (32 + 1 + 32)
void tls_cert_id_key(const struct tls_cert_id *id, uint8_t key[TLS_CERT_KEY_LEN]);
/* Every certificate the CRLs of ctx revoke, as (issuer name hash, serial). */
void tls_ctx_crl_foreach(const struct tls_ctx *ctx,
                         void (*cb)(void *ud, const struct tls_cert_id *id), void *ud);
/* Identity of a DER certificate under mode (for tests and the fuzzer). 0 or -1 with *why. */
int tls_identity_from_der(const uint8_t *der, size_t len, enum tls_identity_mode mode, char *out,
                          size_t cap, const char **why);
/* The policy attributes of a DER certificate (for --explain, tests and the fuzzer); NULL when it
 * does not parse. The caller frees with certattrs_free(). */
struct certattrs *tls_attrs_from_der(const uint8_t *der, size_t len);
/* certmq --explain: the first certificate of a file (PEM or DER) as a handshake would see it:
 * *attrs, and its identity under mode in identity (or "" with *idwhy when a handshake would
 * refuse it). 0, or -1 with err when the file does not hold a certificate. */
int tls_cert_file_read(const char *path, enum tls_identity_mode mode, char *identity, size_t cap,
                       const char **idwhy, struct certattrs **attrs, char *err, size_t errlen);

struct tls_conn;
struct tls_conn *tls_conn_new(struct tls_ctx *ctx);
void tls_conn_free(struct tls_conn *c);
/* Ciphertext received from the peer (copied). */
void tls_conn_input(struct tls_conn *c, const uint8_t *p, size_t n);
/* The same without a copy: p stays valid until tls_conn_input_release(), which keeps (copies)
 * only what the engine has not consumed by then. */
void tls_conn_input_borrow(struct tls_conn *c, const uint8_t *p, size_t n);
void tls_conn_input_release(struct tls_conn *c);
/* Ciphertext waiting to be sent; the transport consumes from it. */
struct buf *tls_conn_output(struct tls_conn *c);
/* Drive the handshake. 0 = done (peer filled), TLS_AGAIN = needs input, < 0 = failed:
 * tls_conn_reject() and tls_conn_error() say why. */
int tls_conn_handshake(struct tls_conn *c);
/* The same, one Mbed TLS state at a time (a step costs at most one public-key operation), so
 * the caller can spread a handshake over loop turns: TLS_MORE = call again. */
int tls_conn_handshake_step(struct tls_conn *c);
/* Plaintext: > 0 bytes read, TLS_AGAIN, TLS_EOF, < 0 error. Call until TLS_AGAIN. */
int tls_conn_read(struct tls_conn *c, uint8_t *out, size_t cap);
/* Encrypt all of p (split into records of at most 16 KiB) into the output. 0 or < 0. */
int tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n);
/* An idle connection: give the record buffers' pages back (~8-20 KB resident) and keep only
 * the sequence numbers; the next read or write restores them. False when something is still
 * buffered (then nothing is done). */
bool tls_conn_park(struct tls_conn *c);
/* Queue a close_notify alert. */
void tls_conn_close_notify(struct tls_conn *c);
const struct tls_peer *tls_conn_peer(const struct tls_conn *c);
/* Keep the peer's certificate and its issuer's (DER) past the handshake, for a certificate
 * check outside the engine; call before the handshake ends. Freed by tls_conn_drop_der(). */
void tls_conn_keep_der(struct tls_conn *c);
/* False when nothing is kept; issuer may be NULL when it was not found. */
bool tls_conn_cert_der(const struct tls_conn *c, const uint8_t **der, size_t *len,
                       const uint8_t **issuer, size_t *issuer_len);
void tls_conn_drop_der(struct tls_conn *c);
enum tls_reject tls_conn_reject(const struct tls_conn *c);
/* Human-readable detail of the last failure (e.g. "certificate revoked (serial 1A:2B, issuer
 * CN=Fleet CA)"); never NULL. */
const char *tls_conn_error(const struct tls_conn *c);

/* Identity rules (design.md §6): non-empty, valid UTF-8, at most TLS_IDENTITY_MAX bytes, no NUL,
 * no control characters, no '+', '#' or '/'. Sets *why on failure. */
bool tls_identity_valid(const uint8_t *p, size_t len, const char **why);

#endif
