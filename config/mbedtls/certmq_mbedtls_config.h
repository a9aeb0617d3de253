/* Mbed TLS 3.6 configuration for certmq (MBEDTLS_CONFIG_FILE), used when the build fetches and
 * compiles Debian trixie's Mbed TLS itself (cmake -DCERTMQ_MBEDTLS=fetch, see
 * cmake/mbedtls.cmake). Every file that includes an Mbed TLS header is compiled with this same
 * file, or struct layouts would differ between certmq and the library.
 *
 * What certmq needs and nothing more: a TLS 1.2 + 1.3 server (and the client side for the load
 * generator and the unit tests' peer), mutual authentication with X.509, session tickets,
 * ECDHE over X25519, P-256 and P-384, AEAD ciphers only (AES-GCM, AES-CCM, ChaCha20-Poly1305),
 * ECDSA and RSA certificates, CRLs, and what the OCSP plugin builds on (ASN.1 writer, SHA-1 for
 * CertID, base64 for GET requests). */
#ifndef CERTMQ_MBEDTLS_CONFIG_H
#define CERTMQ_MBEDTLS_CONFIG_H

/* ---- platform ---------------------------------------------------------------------------- */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE
#define MBEDTLS_PLATFORM_C
/* Allocator hooks (mbedtls_platform_set_calloc_free): how tlsmem keeps idle record buffers
 * non-resident without linker wrapping. */
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_FS_IO
#define MBEDTLS_ERROR_C
#define MBEDTLS_VERSION_C

/* ---- randomness -------------------------------------------------------------------------- */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_HMAC_DRBG_C /* deterministic ECDSA */

/* ---- symmetric crypto -------------------------------------------------------------------- */
#define MBEDTLS_AES_C
#define MBEDTLS_AESNI_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_GCM_C
#define MBEDTLS_CCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_CIPHER_MODE_CTR /* PSA's AES-CCM/GCM build on it */

/* ---- hashes ------------------------------------------------------------------------------ */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA1_C /* OCSP CertID, and old CA signatures the profile then refuses by name */
#define MBEDTLS_SHA224_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA384_C
#define MBEDTLS_SHA512_C
#define MBEDTLS_HKDF_C

/* ---- public keys ------------------------------------------------------------------------- */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_DETERMINISTIC
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_SECP521R1_ENABLED /* device certificates on P-521 still verify */
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21 /* RSA-PSS: TLS 1.3 signs with it */
#define MBEDTLS_GENPRIME
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_PK_WRITE_C
#define MBEDTLS_PK_PARSE_EC_EXTENDED
#define MBEDTLS_PK_PARSE_EC_COMPRESSED
/* PSA is what TLS 1.3 runs on; psa_crypto_init() is called at start-up. MBEDTLS_USE_PSA_CRYPTO
 * puts the record keys of TLS 1.2 and 1.3 in PSA key slots (~100 bytes each) instead of cipher
 * contexts with expanded AES keys and GCM tables (~690 bytes per direction): an idle TLS 1.3
 * connection, which keeps its handshake keys too (3.6 never frees the handshake state of a
 * 1.3 connection), costs ~3 KB less, a TLS 1.2 one ~1.2 KB less (AES-GCM); the CPU per message
 * and per handshake stayed within the noise (docs/performance.md, issue #17).
 * The PSA P-256 driver
 * (p256-m, MBEDTLS_PSA_P256M_DRIVER_ENABLED) stays off: 3-7x slower than ECP on this CPU. */
#define MBEDTLS_PSA_CRYPTO_C
#define MBEDTLS_USE_PSA_CRYPTO
/* Dynamic PSA key store: TLS 1.3 keeps keys per connection, the static one has 32 slots. */
#define MBEDTLS_PSA_KEY_STORE_DYNAMIC

/* ---- ASN.1, PEM, X.509 ------------------------------------------------------------------- */
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_OID_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_PEM_WRITE_C
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_CRL_PARSE_C
#define MBEDTLS_X509_RSASSA_PSS_SUPPORT

/* ---- TLS --------------------------------------------------------------------------------- */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_CLI_C /* load generator and unit tests */
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_SSL_TLS1_3_COMPATIBILITY_MODE /* middlebox-compatible, what OpenSSL sends */
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED
/* psk_ke resumption: accepted only on listeners with tls13_resumption any */
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_SESSION_TICKETS
#define MBEDTLS_SSL_TICKET_C
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_ALPN
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE /* required by TLS 1.3 in 3.6 */
#define MBEDTLS_SSL_CONTEXT_SERIALIZATION
#define MBEDTLS_SSL_ALL_ALERT_MESSAGES
/* 2.28 allowed a chain of 8 intermediates; the broker's verify_depth bounds it further. */
#define MBEDTLS_X509_MAX_INTERMEDIATE_CA 8

#endif
