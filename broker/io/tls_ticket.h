/* tls_ticket: session-ticket keys from an operator's file (tls_ticket_key_file) and the tickets
 * they protect; shared only by tls.c and tls_ticket.c.
 *
 * Mbed TLS's mbedtls_ssl_ticket_* draws its keys at random and offers no way to load one, so a
 * restarted broker cannot read the tickets it issued before; and in 3.6 its TLS 1.3 tickets do
 * not carry the client's certificate. These callbacks do the same work
 * (mbedtls_ssl_session_save/load, AES-256-GCM) with keys from a file, or random ones:
 *
 *   key file: one or more 80-byte keys, concatenated, nothing else (binary):
 *       name[16]  the key's public name, written into every ticket it protects
 *       aes[32]   the AES-256-GCM key
 *       spare[32] reserved (random; not used by this format)
 *     The first key encrypts new tickets; every key decrypts. Names must differ.
 *
 *   ticket (RFC 5077 §4's recommended layout, with an AEAD instead of AES-CBC + HMAC):
 *       key_name[16] | iv[12] | length[2] | encrypted_state[length] | tag[16]
 *     key_name, iv and length are the additional authenticated data; the state is
 *       issued_at[8] (unix seconds) | cert_len[2] | client certificate (DER) |
 *       mbedtls_ssl_session_save()'s serialisation
 *     The certificate travels beside the session because a TLS 1.3 session of Mbed TLS 3.6 has
 *     none, and the revocation, expiry and identity re-checks on resumption need it. */
#ifndef CERTMQ_TLS_TICKET_H
#define CERTMQ_TLS_TICKET_H

#include "tls.h"

#include <mbedtls/ssl.h>

#define TLS_TICKET_KEY_LEN 80
#define TLS_TICKET_NAME_LEN 16
/* Keys one file may hold: rotation needs two or three; 64 bounds a mistaken path. */
#define TLS_TICKET_MAX_KEYS 64

struct tls_ticket_keys;

/* The keys in p (a whole file's bytes); NULL with the reason in d under path. */
struct tls_ticket_keys *tls__ticket_keys_parse(const uint8_t *p, size_t n, const char *path,
                                               struct diag *d);
/* Reads path (mode 0600 or stricter, owned by the broker's user) stable (fileread.h) with
 * how->settle_ms. NULL with the reason in d, or with how->unstable set (nothing in d) when the
 * file is still being written. */
struct tls_ticket_keys *tls__ticket_keys_load(const char *path, struct tls_load *how,
                                              struct diag *d);
void tls__ticket_keys_free(struct tls_ticket_keys *k);
size_t tls__ticket_keys_count(const struct tls_ticket_keys *k);
/* The encrypting key's name in hex (33 bytes with the NUL). */
void tls__ticket_keys_name(const struct tls_ticket_keys *k, char hex[2 * TLS_TICKET_NAME_LEN + 1]);

/* One random key (Mbed TLS 3.6's ticket module cannot carry what certmq puts in a ticket, so
 * certmq's format is used with random keys too, rotated by tls.c). NULL if the generator fails. */
struct tls_ticket_keys *tls__ticket_keys_random(int (*f_rng)(void *, unsigned char *, size_t),
                                                void *p_rng);

/* mbedtls_ssl_ticket_write_t / _parse_t with keys k, carrying `extra` bytes (the client's
 * certificate, DER: TLS 1.3 session state in Mbed TLS 3.6 has none) beside the session; lifetime
 * in seconds is the hint given to clients and the oldest ticket accepted. On success the parse
 * points *extra into buf (valid until the callback returns). */
int tls__ticket_write(struct tls_ticket_keys *k, int (*f_rng)(void *, unsigned char *, size_t),
                      void *p_rng, uint32_t lifetime, const uint8_t *extra, size_t extra_len,
                      const mbedtls_ssl_session *s, unsigned char *start, const unsigned char *end,
                      size_t *tlen, uint32_t *lifetime_out);
int tls__ticket_parse(struct tls_ticket_keys *k, uint32_t lifetime, mbedtls_ssl_session *s,
                      unsigned char *buf, size_t len, uint8_t **extra, size_t *extra_len);

#endif
