/* ocsp_codec: OCSP (RFC 6960) request encoding and response verification on top of Mbed TLS 2.28,
 * which has no OCSP module. Pure functions over caller-owned buffers: no I/O, no global state,
 * the current time is a parameter. */
#ifndef CERTMQ_OCSP_CODEC_H
#define CERTMQ_OCSP_CODEC_H

#include <mbedtls/x509_crt.h>
#include <stddef.h>
#include <stdint.h>

#define OCSP_NONCE_LEN 16
#define OCSP_SKEW_S 300 /* tolerated clock difference for thisUpdate / nextUpdate */

struct ocsp_certid {
    uint8_t name_hash[20]; /* SHA-1 of the issuer's DER Name (leaf->issuer_raw, tag+len included) */
    uint8_t key_hash[20];  /* SHA-1 of the issuer's subjectPublicKey BIT STRING value */
    uint8_t serial[32];    /* the leaf's serial INTEGER content bytes as in the certificate */
    size_t serial_len;
};

/* 0, or -1 when the certificates cannot give one (e.g. serial longer than 32 bytes). */
int ocsp_certid_from(const mbedtls_x509_crt *leaf, const mbedtls_x509_crt *issuer,
                     struct ocsp_certid *out);

/* DER OCSPRequest (one Request, SHA-1 CertID, nonce extension id-pkix-ocsp-nonce whose extnValue
 * is an OCTET STRING wrapping an OCTET STRING of the nonce, like openssl does) into out; returns
 * its length, or -1 if cap is too small. nonce NULL/0 = no extension. */
int ocsp_request_encode(const struct ocsp_certid *id, const uint8_t *nonce, size_t nonce_len,
                        uint8_t *out, size_t cap);

enum ocsp_status { OCSP_GOOD = 0, OCSP_REVOKED = 1, OCSP_UNKNOWN = 2 };

struct ocsp_result {
    enum ocsp_status status;
    int64_t this_update, next_update; /* unix seconds; next_update 0 = absent */
    int64_t revoked_at;               /* unix seconds when revoked */
    int reason;                       /* CRLReason when revoked and given, else -1 */
};

/* Parses and fully verifies a DER OCSPResponse for the certificate id, issued by issuer: status
 * successful, basic response well formed without trailing bytes, signature by the issuer or by a
 * delegated responder (carried in the response, issued by issuer, valid at now, with an explicit
 * id-kp-OCSPSigning EKU), a SingleResponse for id, the nonce when nonce is given (NULL/0 = not
 * checked), and thisUpdate/nextUpdate against now (unix seconds) with OCSP_SKEW_S of tolerance.
 * Signatures must use SHA-224 or stronger, a delegated responder's RSA key 2048 bits or more.
 * Returns 0 with res filled, or -1 with a short reason in why, which is NUL-terminated whenever
 * why_len is not 0 (and "" on success). */
int ocsp_response_verify(const uint8_t *der, size_t len, const struct ocsp_certid *id,
                         const mbedtls_x509_crt *issuer, const uint8_t *nonce, size_t nonce_len,
                         int64_t now, struct ocsp_result *res, char *why, size_t why_len);

/* The first OCSP URL (accessMethod id-ad-ocsp, accessLocation uniformResourceIdentifier) of the
 * certificate's authorityInfoAccess extension. 0 with a NUL-terminated URL in out, -1 when
 * absent, malformed, not printable ASCII or too long for cap. */
int ocsp_aia_url(const mbedtls_x509_crt *crt, char *out, size_t cap);

const char *ocsp_status_str(enum ocsp_status s); /* "good" "revoked" "unknown" */

#endif
