/* tls_ticket: session tickets protected by keys from an operator's file, so that they stay
 * valid across restarts (format in tls_ticket.h). The revocation re-check around parsing stays
 * in tls.c, the same for these keys and for Mbed TLS's random ones. Knows no loop. */
#include "tls_ticket.h"

#include "fileread.h"
#include "xmalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/cipher.h>
#include <mbedtls/platform_util.h>

#define IV_LEN 12
#define LEN_LEN 2
#define TAG_LEN 16
#define AAD_LEN (TLS_TICKET_NAME_LEN + IV_LEN + LEN_LEN)
#define MIN_TICKET (AAD_LEN + TAG_LEN)
#define AES_OFF TLS_TICKET_NAME_LEN
#define AES_LEN 32

struct tls_ticket_key {
    uint8_t name[TLS_TICKET_NAME_LEN];
    mbedtls_cipher_context_t gcm;
};

struct tls_ticket_keys {
    size_t n;
    struct tls_ticket_key k[];
};

void tls__ticket_keys_free(struct tls_ticket_keys *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++)
        mbedtls_cipher_free(&k->k[i].gcm); /* zeroizes the expanded key */
    free(k);
}

size_t tls__ticket_keys_count(const struct tls_ticket_keys *k)
{
    return k ? k->n : 0;
}

void tls__ticket_keys_name(const struct tls_ticket_keys *k, char hex[2 * TLS_TICKET_NAME_LEN + 1])
{
    hex[0] = '\0';
    for (size_t i = 0; k && k->n && i < TLS_TICKET_NAME_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", k->k[0].name[i]);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

struct tls_ticket_keys *tls__ticket_keys_parse(const uint8_t *p, size_t n, const char *path,
                                               struct diag *d)
{
    if (n == 0 || n % TLS_TICKET_KEY_LEN != 0) {
        diag_add(d, path, 0,
                 "tls_ticket_key_file: %zu bytes: a key file holds one or more %d-byte keys "
                 "(binary, nothing else; make one with 'certmq-pki ticket-key FILE')",
                 n, TLS_TICKET_KEY_LEN);
        return NULL;
    }
    size_t count = n / TLS_TICKET_KEY_LEN;
    if (count > TLS_TICKET_MAX_KEYS) {
        diag_add(d, path, 0, "tls_ticket_key_file: %zu keys, at most %d", count,
                 TLS_TICKET_MAX_KEYS);
        return NULL;
    }
    const mbedtls_cipher_info_t *gcm = mbedtls_cipher_info_from_type(MBEDTLS_CIPHER_AES_256_GCM);
    struct tls_ticket_keys *k = xcalloc(1, sizeof(*k) + count * sizeof(k->k[0]));
    bool bad = false;
    for (size_t i = 0; i < count && !bad; i++) {
        const uint8_t *raw = p + i * TLS_TICKET_KEY_LEN;
        struct tls_ticket_key *key = &k->k[i];
        mbedtls_cipher_init(&key->gcm);
        k->n = i + 1;
        if (all_zero(raw, TLS_TICKET_NAME_LEN) || all_zero(raw + AES_OFF, AES_LEN)) {
            diag_add(d, path, 0,
                     "tls_ticket_key_file: key %zu is all zeros (not random bytes: make keys "
                     "with 'certmq-pki ticket-key FILE')",
                     i + 1);
            bad = true;
            break;
        }
        for (size_t j = 0; j < i && !bad; j++)
            if (!memcmp(k->k[j].name, raw, TLS_TICKET_NAME_LEN)) {
                diag_add(d, path, 0,
                         "tls_ticket_key_file: keys %zu and %zu have the same name (the first "
                         "16 bytes); every key needs its own",
                         j + 1, i + 1);
                bad = true;
            }
        memcpy(key->name, raw, TLS_TICKET_NAME_LEN);
        if (!bad &&
            (!gcm || mbedtls_cipher_setup(&key->gcm, gcm) != 0 ||
             mbedtls_cipher_setkey(&key->gcm, raw + AES_OFF, 8 * AES_LEN, MBEDTLS_ENCRYPT) != 0)) {
            diag_add(d, path, 0, "tls_ticket_key_file: cannot set up AES-256-GCM with key %zu",
                     i + 1);
            bad = true;
        }
    }
    if (bad) {
        tls__ticket_keys_free(k);
        return NULL;
    }
    return k;
}

/* Largest file read: TLS_TICKET_MAX_KEYS keys, plus one byte so that a longer file is told
 * apart from a full one. */
#define MAX_FILE (TLS_TICKET_MAX_KEYS * TLS_TICKET_KEY_LEN + 1)

/* Anyone who can read the keys can decrypt every ticket they protect (the sessions' master
 * secrets) and forge tickets naming any device certificate the broker ever accepted. */
static bool permissions_ok(const char *path, const struct stat *st, struct diag *d)
{
    if (st->st_mode & (S_IRWXG | S_IRWXO)) {
        diag_add(d, path, 0,
                 "tls_ticket_key_file: mode %04o lets others read the ticket keys; it must be "
                 "0600 or stricter (chmod 600 %s)",
                 (unsigned)(st->st_mode & 07777), path);
        return false;
    }
    if (st->st_uid != geteuid()) {
        diag_add(d, path, 0,
                 "tls_ticket_key_file: owned by uid %u, not by the broker's user (uid %u); "
                 "chown it to the user certmq runs as",
                 (unsigned)st->st_uid, (unsigned)geteuid());
        return false;
    }
    return true;
}

/* Is the version read the one whose permissions were checked? ctime covers chmod and chown. */
static bool same_file(const struct fileread_stamp *a, const struct stat *st)
{
    uint64_t dev = (uint64_t)major(st->st_dev) << 32 | minor(st->st_dev);
    int64_t ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    return a->dev == dev && a->ino == (uint64_t)st->st_ino && a->ctime_ns == ctime_ns;
}

struct tls_ticket_keys *tls__ticket_keys_load(const char *path, struct tls_load *how,
                                              struct diag *d)
{
    how->unstable = false;
    how->unstable_at[0] = '\0';
    struct stat st;
    if (stat(path, &st) != 0) {
        diag_add(d, path, 0, "tls_ticket_key_file: cannot read it: %s", strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        diag_add(d, path, 0, "tls_ticket_key_file: not a regular file");
        return NULL;
    }
    if (!permissions_ok(path, &st, d))
        return NULL;
    char *buf;
    size_t n;
    struct fileread_stamp stamp;
    int r = fileread_stable(path, MAX_FILE, how->settle_ms, &stamp, &buf, &n);
    if (r == FILEREAD_UNSTABLE || (r == FILEREAD_OK && !same_file(&stamp, &st))) {
        /* Being written, or replaced or changed (chmod) since its permissions were checked:
         * next time. */
        if (r == FILEREAD_OK) {
            mbedtls_platform_zeroize(buf, n);
            free(buf);
        }
        how->unstable = true;
        snprintf(how->unstable_at, sizeof(how->unstable_at), "%s", path);
        return NULL;
    }
    if (r == FILEREAD_TOO_BIG) {
        diag_add(d, path, 0, "tls_ticket_key_file: larger than %d keys of %d bytes",
                 TLS_TICKET_MAX_KEYS, TLS_TICKET_KEY_LEN);
        return NULL;
    }
    if (r != FILEREAD_OK) {
        diag_add(d, path, 0, "tls_ticket_key_file: cannot read it: %s",
                 fileread_strerror(r, errno));
        return NULL;
    }
    struct tls_ticket_keys *k = tls__ticket_keys_parse((const uint8_t *)buf, n, path, d);
    mbedtls_platform_zeroize(buf, n);
    free(buf);
    return k;
}

/* ---- the tickets -------------------------------------------------------------------------- */

struct tls_ticket_keys *tls__ticket_keys_random(int (*f_rng)(void *, unsigned char *, size_t),
                                                void *p_rng)
{
    uint8_t raw[TLS_TICKET_KEY_LEN];
    struct tls_ticket_keys *k = NULL;
    struct diag d;
    diag_init(&d);
    /* An all-zero name or key (the parser's refusal) is as likely as guessing the key. */
    if (f_rng(p_rng, raw, sizeof(raw)) == 0)
        k = tls__ticket_keys_parse(raw, sizeof(raw), "(random)", &d);
    mbedtls_platform_zeroize(raw, sizeof(raw));
    diag_free(&d);
    return k;
}

/* The clear state: issued_at[8] | extra_len[2] | extra | mbedtls_ssl_session_save(). */
#define HEAD_LEN 10

int tls__ticket_write(struct tls_ticket_keys *k, int (*f_rng)(void *, unsigned char *, size_t),
                      void *p_rng, uint32_t lifetime, const uint8_t *extra, size_t extra_len,
                      const mbedtls_ssl_session *s, unsigned char *start, const unsigned char *end,
                      size_t *tlen, uint32_t *lifetime_out)
{
    *tlen = 0;
    *lifetime_out = lifetime; /* read by Mbed TLS even when writing fails */
    if (!k->n || end < start || (size_t)(end - start) < MIN_TICKET + HEAD_LEN + extra_len ||
        extra_len > 0xffff)
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    unsigned char *name = start, *iv = start + TLS_TICKET_NAME_LEN, *len = iv + IV_LEN;
    unsigned char *state = len + LEN_LEN;
    size_t room = (size_t)(end - state), clear_len, ciph_len;
    int r;
    memcpy(name, k->k[0].name, TLS_TICKET_NAME_LEN);
    if ((r = f_rng(p_rng, iv, IV_LEN)) != 0)
        return r;
    uint64_t now = (uint64_t)time(NULL);
    for (int i = 0; i < 8; i++)
        state[i] = (unsigned char)(now >> (56 - 8 * i));
    state[8] = (unsigned char)(extra_len >> 8);
    state[9] = (unsigned char)extra_len;
    if (extra_len)
        memcpy(state + HEAD_LEN, extra, extra_len);
    size_t used = HEAD_LEN + extra_len;
    if ((r = mbedtls_ssl_session_save(s, state + used, room - TAG_LEN - used, &clear_len)) != 0)
        return r;
    clear_len += used;
    if (clear_len > 0xffff)
        return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
    len[0] = (unsigned char)(clear_len >> 8);
    len[1] = (unsigned char)clear_len;
    /* In place: GCM output may overlap its input exactly. */
    r = mbedtls_cipher_auth_encrypt_ext(&k->k[0].gcm, iv, IV_LEN, name, AAD_LEN, state, clear_len,
                                        state, room, &ciph_len, TAG_LEN);
    if (r != 0)
        return r;
    if (ciph_len != clear_len + TAG_LEN)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    *tlen = AAD_LEN + ciph_len;
    return 0;
}

int tls__ticket_parse(struct tls_ticket_keys *k, uint32_t lifetime, mbedtls_ssl_session *s,
                      unsigned char *buf, size_t len, uint8_t **extra, size_t *extra_len)
{
    *extra = NULL;
    *extra_len = 0;
    if (len < MIN_TICKET)
        return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    const unsigned char *name = buf, *iv = buf + TLS_TICKET_NAME_LEN, *lp = iv + IV_LEN;
    unsigned char *state = buf + AAD_LEN;
    size_t enc_len = (size_t)lp[0] << 8 | lp[1];
    if (len != MIN_TICKET + enc_len)
        return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    struct tls_ticket_key *key = NULL;
    for (size_t i = 0; i < k->n && !key; i++)
        if (!memcmp(k->k[i].name, name, TLS_TICKET_NAME_LEN))
            key = &k->k[i];
    if (!key) /* rotated out (or never ours): a full handshake */
        return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    size_t clear_len;
    int r = mbedtls_cipher_auth_decrypt_ext(&key->gcm, iv, IV_LEN, name, AAD_LEN, state,
                                            enc_len + TAG_LEN, state, enc_len, &clear_len, TAG_LEN);
    if (r != 0)
        return r == MBEDTLS_ERR_CIPHER_AUTH_FAILED ? MBEDTLS_ERR_SSL_INVALID_MAC : r;
    if (clear_len != enc_len || clear_len < HEAD_LEN)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    uint64_t issued = 0;
    for (int i = 0; i < 8; i++)
        issued = issued << 8 | state[i];
    size_t xlen = (size_t)state[8] << 8 | state[9];
    if (xlen > clear_len - HEAD_LEN)
        return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    r = mbedtls_ssl_session_load(s, state + HEAD_LEN + xlen, clear_len - HEAD_LEN - xlen);
    if (r != 0) {
        mbedtls_platform_zeroize(state, clear_len);
        return r;
    }
    /* The key may be older than the ticket lifetime (it rotates only when the operator rotates
     * the file): the ticket's own age is what bounds it. */
    uint64_t now = (uint64_t)time(NULL);
    if (now < issued || now - issued > lifetime) {
        mbedtls_platform_zeroize(state, clear_len);
        return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
    }
    /* The extra part (a certificate) is not secret; the session's secrets are wiped. */
    mbedtls_platform_zeroize(state + HEAD_LEN + xlen, clear_len - HEAD_LEN - xlen);
    *extra = state + HEAD_LEN;
    *extra_len = xlen;
    return 0;
}
