/* mbedx: the few X.509 helpers certmq needs from Mbed TLS that are public in 2.28 but private in
 * 3.6 (signature fields of certificates and CRLs, x509_get_time/sig_alg, ext_types), written on
 * the public ASN.1/OID API so the same code builds against both; plus the 2.28 names of the
 * hash functions that 3.0 renamed. Used by the broker's tls module and the OCSP plugin. */
#ifndef CERTMQ_MBEDX_H
#define CERTMQ_MBEDX_H

#include <mbedtls/asn1.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include <stddef.h>
#include <stdint.h>

#if MBEDTLS_VERSION_MAJOR < 3
/* The 3.x names (2.28 has them with a _ret suffix; the unsuffixed ones are void there). */
#define mbedtls_sha1 mbedtls_sha1_ret
#define mbedtls_sha256 mbedtls_sha256_ret
#define mbedtls_sha256_starts mbedtls_sha256_starts_ret
#define mbedtls_sha256_update mbedtls_sha256_update_ret
#define mbedtls_sha256_finish mbedtls_sha256_finish_ret
#endif

/* psa_crypto_init() where Mbed TLS is 3.x (TLS 1.3 and key parsing need it); idempotent. 0 or
 * -1. */
int mbedx_crypto_init(void);
/* The PSA state mbedx_crypto_init made, freed: only for a copy of Mbed TLS of one's own (a
 * plugin linked statically), never for the one the broker uses. */
void mbedx_crypto_free(void);
/* mbedtls_pk_parse_keyfile without a password, with PSA's generator for 3.x's blinding. */
int mbedx_pk_parse_keyfile(mbedtls_pk_context *key, const char *path);

/* A signature algorithm resolved: hash, key type, and RSASSA-PSS options when pk is
 * MBEDTLS_PK_RSASSA_PSS (opts then points at pss). */
struct mbedx_sig_alg {
    mbedtls_md_type_t md;
    mbedtls_pk_type_t pk;
    mbedtls_pk_rsassa_pss_options pss;
    const void *opts;
};

/* AlgorithmIdentifier (oid + parameters) to a signature algorithm; 0 or -1 (unknown, or PSS
 * parameters that are malformed or name an unknown hash). */
int mbedx_sig_alg(const mbedtls_asn1_buf *oid, const mbedtls_asn1_buf *params,
                  struct mbedx_sig_alg *out);
/* A signed X.509 object (certificate or CRL: SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }):
 * its signature algorithm and signature value, read from raw after tbs. 0 or -1. */
int mbedx_signed(const mbedtls_x509_buf *raw, const mbedtls_x509_buf *tbs,
                 struct mbedx_sig_alg *alg, const unsigned char **sig, size_t *sig_len);
/* Verifies sig over data with signer's key under alg. 0 or -1. */
int mbedx_verify(const struct mbedx_sig_alg *alg, const mbedtls_pk_context *signer,
                 const unsigned char *data, size_t len, const unsigned char *sig, size_t sig_len);
/* The signature of a CRL was made by ca's key. 0 or -1. */
int mbedx_crl_signed_by(const mbedtls_x509_crl *crl, const mbedtls_x509_crt *ca);
/* GeneralizedTime (YYYYMMDDHHMMSS, optional Z) at *p, as unix seconds; *p moves past it. */
int mbedx_get_gentime(unsigned char **p, const unsigned char *end, int64_t *out);
/* An X.509 time as unix seconds (UTC, independent of TZ and the C library). */
int64_t mbedx_time_unix(const mbedtls_x509_time *t);
/* Does the certificate carry this extension (MBEDTLS_X509_EXT_*)? */
int mbedx_has_ext(const mbedtls_x509_crt *crt, int ext_type);

#endif
