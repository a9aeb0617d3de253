/* tls_load: the files behind a TLS context (CA set or capath, certificate and key, CRL files
 * and crlpath) and the cipher list, each read whole and stable (fileread) and parsed from memory,
 * every problem reported with its file. Split from tls.c, which runs the engine. */
#include "tls.h"

#include "fileread.h"
#include "log.h"
#include "tls_verify.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/version.h>
#include <mbedtls/ssl.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <mbedtls/psa_util.h>
/* 3.x wants a generator for RSA blinding while parsing and pair-checking keys: PSA's own
 * (psa_crypto_init() runs in tls_lib_new, before any context is loaded). */
#define KEY_RNG , mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE
#else
#define KEY_RNG
#endif

/* The allowed suites: ECDHE key exchange with AEAD ciphers only (16-byte tags), in server
 * preference order. AES-128-CCM comes first because Mbed TLS 2.28's GCM hashes one block per
 * PCLMUL call and costs twice CCM's AES-NI CBC-MAC per record (0.42 vs 0.21 us for a 90-byte
 * record here): for a fleet that sends one small message per record the cipher is the largest
 * per-message cost. Clients that do not offer CCM (OpenSSL's defaults) get AES-128-GCM.
 * Operators write OpenSSL names (as for mosquitto); Mbed TLS resolves its own names, so a suite
 * this build of Mbed TLS lacks is skipped rather than silently mis-numbered. */
static const struct {
    const char *openssl, *mbed;
} suites[] = {
    {"ECDHE-ECDSA-AES128-CCM", "TLS-ECDHE-ECDSA-WITH-AES-128-CCM"},
    {"ECDHE-ECDSA-AES128-GCM-SHA256", "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"},
    {"ECDHE-ECDSA-AES256-CCM", "TLS-ECDHE-ECDSA-WITH-AES-256-CCM"},
    {"ECDHE-ECDSA-AES256-GCM-SHA384", "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"},
    {"ECDHE-ECDSA-CHACHA20-POLY1305", "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"},
    {"ECDHE-RSA-AES128-GCM-SHA256", "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"},
    {"ECDHE-RSA-AES256-GCM-SHA384", "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"},
    {"ECDHE-RSA-CHACHA20-POLY1305", "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"},
    /* TLS 1.3 (Mbed TLS 3.6; unknown to 2.28, so skipped there). CCM first for the reason
     * above; OpenSSL clients offer GCM and ChaCha20 only. */
    {"TLS_AES_128_CCM_SHA256", "TLS1-3-AES-128-CCM-SHA256"},
    {"TLS_AES_128_GCM_SHA256", "TLS1-3-AES-128-GCM-SHA256"},
    {"TLS_AES_256_GCM_SHA384", "TLS1-3-AES-256-GCM-SHA384"},
    {"TLS_CHACHA20_POLY1305_SHA256", "TLS1-3-CHACHA20-POLY1305-SHA256"},
};
#define FIRST_TLS13 8 /* suites[] from here on are TLS 1.3's */
#define NSUITES (sizeof(suites) / sizeof(suites[0]))
_Static_assert(NSUITES < sizeof(((struct tls_ctx *)0)->suites) / sizeof(int), "suites[] too small");

static void add_suite(struct tls_ctx *c, size_t *n, size_t i)
{
    int id = mbedtls_ssl_get_ciphersuite_id(suites[i].mbed);
    for (size_t k = 0; k < *n; k++)
        if (c->suites[k] == id)
            return;
    if (id != 0 && *n < NSUITES)
        c->suites[(*n)++] = id;
}

static void parse_ciphers(struct tls_ctx *c, const char *list, struct diag *d)
{
    size_t n = 0;
    if (!list) {
        for (size_t i = 0; i < NSUITES; i++)
            add_suite(c, &n, i);
    } else {
        char *copy = xstrdup(list), *save = NULL;
        for (char *t = strtok_r(copy, ":, ", &save); t; t = strtok_r(NULL, ":, ", &save)) {
            size_t i = 0;
            while (i < NSUITES && strcmp(suites[i].openssl, t) != 0)
                i++;
            if (i == NSUITES)
                diag_add(d, NULL, 0,
                         "ciphers: '%s' is not allowed (only ECDHE with AES-GCM, AES-CCM or "
                         "ChaCha20-Poly1305, e.g. ECDHE-ECDSA-AES128-GCM-SHA256)",
                         t);
            else
                add_suite(c, &n, i);
        }
        free(copy);
        /* `ciphers` names TLS 1.2 suites (as OpenSSL's cipher list does); TLS 1.3's stay on
         * unless the list names some of them. */
        bool any13 = false;
        for (size_t k = 0; k < n; k++)
            for (size_t i = FIRST_TLS13; i < NSUITES; i++)
                any13 |= c->suites[k] == mbedtls_ssl_get_ciphersuite_id(suites[i].mbed);
        for (size_t i = FIRST_TLS13; i < NSUITES && !any13; i++)
            add_suite(c, &n, i);
    }
    c->suites[n] = 0;
    if (!n)
        diag_add(d, NULL, 0, "ciphers: no usable cipher suite");
}

/* Largest certificate, key or CRL file read: far above real ones (a CRL of a million serials
 * is ~30 MB in PEM would be unusual for a device fleet; 64 MiB bounds a mistaken path). */
#define TLS_MAX_FILE (64u << 20)

/* Read a file for Mbed TLS's parsers, stable (fileread.h); instead of mbedtls_*_parse_file(),
 * which read whatever is there. The length counts the terminating NUL when the text is PEM, as
 * Mbed TLS's own loader does (its PEM parser needs the NUL, the DER one must not see it). NULL
 * when unreadable (in d, which also tells a missing file from an empty one: Mbed TLS reports all
 * as one generic I/O error) or still being written (c->load->unstable set, nothing in d). */
static char *read_file(struct tls_ctx *c, const char *path, const char *what, size_t *len,
                       struct diag *d)
{
    char *buf;
    size_t n;
    int r = fileread_stable(path, TLS_MAX_FILE, c->load->settle_ms, NULL, &buf, &n);
    if (r == FILEREAD_UNSTABLE) {
        if (!c->load->unstable)
            snprintf(c->load->unstable_at, sizeof(c->load->unstable_at), "%s", path);
        c->load->unstable = true;
        return NULL;
    }
    if (r != FILEREAD_OK) {
        diag_add(d, path, 0, "cannot read %s: %s", what, fileread_strerror(r, errno));
        return NULL;
    }
    if (n == 0) {
        diag_add(d, path, 0, "%s file is empty", what);
        free(buf);
        return NULL;
    }
    *len = strstr(buf, "-----BEGIN ") ? n + 1 : n;
    return buf;
}

/* Returns Mbed TLS's result: < 0 not parsed, > 0 that many certificates skipped, 0 fine;
 * 1 (a skip) when the file could not be read. */
static int parse_certs(struct tls_ctx *c, mbedtls_x509_crt *chain, const char *path,
                       const char *what, struct diag *d)
{
    size_t n;
    char *buf = read_file(c, path, what, &n, d);
    if (!buf)
        return 1;
    int r = mbedtls_x509_crt_parse(chain, (const unsigned char *)buf, n);
    free(buf);
    return r;
}

static void load_certs(struct tls_ctx *c, mbedtls_x509_crt *chain, const char *path,
                       const char *what, struct diag *d)
{
    char eb[128];
    size_t before = d->count;
    int r = parse_certs(c, chain, path, what, d);
    if (d->count != before || c->load->unstable)
        return;
    if (r < 0)
        diag_add(d, path, 0, "not a certificate (PEM or DER): %s",
                 tls__mbed_err(r, eb, sizeof(eb)));
    else if (r > 0)
        diag_add(d, path, 0, "%d of its certificates could not be parsed", r);
}

static void load_key(struct tls_ctx *c, const char *path, struct diag *d)
{
    char eb[128];
    size_t n;
    char *buf = read_file(c, path, "private key", &n, d);
    if (!buf)
        return;
    int r = mbedtls_pk_parse_key(&c->key, (const unsigned char *)buf, n, NULL, 0 KEY_RNG);
    mbedtls_platform_zeroize(buf, n);
    free(buf);
    if (r != 0)
        diag_add(d, path, 0, "not a usable private key (PEM or DER, unencrypted): %s",
                 tls__mbed_err(r, eb, sizeof(eb)));
}

#if MBEDTLS_VERSION_MAJOR < 3
/* Mbed TLS 2.28 signs with an EC key parsed as ECKEY by copying it into a temporary ECDSA
 * context whose freshly loaded group recomputes the generator's comb table for every signature
 * (0.71 ms per ServerKeyExchange here instead of 0.33 ms). An ECDSA-typed context signs in place
 * and keeps the table after its first signature. Done after the certificate/key pair check,
 * which wants both sides typed alike. */
static void sign_in_place(mbedtls_pk_context *key)
{
    if (mbedtls_pk_get_type(key) != MBEDTLS_PK_ECKEY)
        return;
    mbedtls_pk_context k;
    mbedtls_pk_init(&k);
    if (mbedtls_pk_setup(&k, mbedtls_pk_info_from_type(MBEDTLS_PK_ECDSA)) != 0 ||
        mbedtls_ecdsa_from_keypair(mbedtls_pk_ec(k), mbedtls_pk_ec(*key)) != 0) {
        mbedtls_pk_free(&k); /* keep the slower but working ECKEY context */
        return;
    }
    mbedtls_pk_free(key);
    *key = k;
}
#else
/* 3.x signs with the key's own ECP group, whose generator uses precomputed static tables. */
static void sign_in_place(mbedtls_pk_context *key)
{
    (void)key;
}
#endif

/* "tlsv1.2" / "tlsv1.3" to 0x0303 / 0x0304; 0 for anything else. */
static int version_of(const char *v)
{
    return !strcmp(v, "tlsv1.2") ? 0x0303 : !strcmp(v, "tlsv1.3") ? 0x0304 : 0;
}

/* tls_version pins one version; min_tls_version sets the lowest, the newest being the highest.
 * Default: 1.2 and 1.3 (1.2 only where Mbed TLS is 2.28). */
static void parse_versions(struct tls_ctx *c, const struct tls_server_opts *o, struct diag *d)
{
    int newest = TLS_HAVE_13 ? 0x0304 : 0x0303;
    c->min_version = 0x0303;
    c->max_version = newest;
    const char *key = o->tls_version ? "tls_version" : "min_tls_version";
    const char *v = o->tls_version ? o->tls_version : o->min_tls_version;
    if (!v)
        return;
    int ver = version_of(v);
    if (!ver) {
        diag_add(d, NULL, 0, "%s %s: use tlsv1.2 or tlsv1.3", key, v);
        return;
    }
    if (ver > newest) {
        diag_add(d, NULL, 0, "%s %s: this build's Mbed TLS (%s) speaks TLS 1.2 only", key, v,
                 MBEDTLS_VERSION_STRING);
        return;
    }
    c->min_version = ver;
    if (o->tls_version)
        c->max_version = ver;
    if (o->tls_version && o->min_tls_version)
        diag_add(d, NULL, 0, "tls_version and min_tls_version: give one of them");
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every regular file of dir, in name order so that problems are listed stably. */
static void each_file(struct tls_ctx *c, const char *dir, const char *what,
                      void (*fn)(struct tls_ctx *c, const char *path, void *arg), void *arg,
                      struct diag *d)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, by_name);
    if (n < 0) {
        diag_add(d, dir, 0, "cannot open %s directory: %s", what, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            fn(c, path, arg);
        free(ents[i]);
    }
    free(ents);
}

/* An unreadable or unparsable file of a capath is skipped (counted), as Mbed TLS's own
 * mbedtls_x509_crt_parse_path() does; one still being written fails the load (unstable). */
static void ca_dir_file(struct tls_ctx *c, const char *path, void *arg)
{
    struct diag ignored;
    diag_init(&ignored);
    if (parse_certs(c, &c->ca, path, "CA certificates", &ignored) != 0)
        ++*(int *)arg;
    diag_free(&ignored);
}

static void load_ca_dir(struct tls_ctx *c, const char *dir, struct diag *d)
{
    int skipped = 0;
    each_file(c, dir, "capath", ca_dir_file, &skipped, d);
    if (skipped > 0) /* capath often holds other files (hash links, READMEs): not fatal */
        log_warn("%s: %d files are not certificates and were skipped", dir, skipped);
}

/* One file may hold several CRLs (PEM); each new one is checked against the CA set under the
 * file's name. CAs must be loaded first. */
static void load_crl_file(struct tls_ctx *c, const char *path, bool check, struct diag *d)
{
    char eb[128];
    size_t n;
    char *buf = read_file(c, path, "CRL", &n, d);
    if (!buf)
        return;
    mbedtls_x509_crl *last = NULL;
    for (mbedtls_x509_crl *l = &c->crl; l && l->raw.p; l = l->next)
        last = l;
    int r = mbedtls_x509_crl_parse(&c->crl, (const unsigned char *)buf, n);
    free(buf);
    if (r != 0) {
        diag_add(d, path, 0, "not a CRL (PEM or DER): %s", tls__mbed_err(r, eb, sizeof(eb)));
        return;
    }
    const mbedtls_x509_crl *first = last ? last->next : &c->crl;
    struct tls_crl_file f = {.path = xstrdup(path)};
    for (const mbedtls_x509_crl *l = first; l && l->raw.p; l = l->next) {
        c->crl_count++;
        for (const mbedtls_x509_crl_entry *e = &l->entry; e && e->raw.p; e = e->next)
            c->crl_entries++;
        int64_t tu = tls__unix_time(&l->this_update);
        int64_t nu = l->next_update.year ? tls__unix_time(&l->next_update) : 0;
        if (!f.this_update || tu < f.this_update)
            f.this_update = tu;
        if (nu && (!f.next_update || nu < f.next_update))
            f.next_update = nu;
    }
    c->crl_files = xrealloc(c->crl_files, (c->crl_file_count + 1) * sizeof(*c->crl_files));
    c->crl_files[c->crl_file_count++] = f;
    if (check)
        tls_verify_check_crls(c, first, path, d);
}

struct crl_dir {
    bool check;
    struct diag *d;
};

static void crl_dir_file(struct tls_ctx *c, const char *path, void *arg)
{
    struct crl_dir *a = arg;
    load_crl_file(c, path, a->check, a->d);
}

static void load_crl_dir(struct tls_ctx *c, const char *dir, bool check, struct diag *d)
{
    struct crl_dir a = {check, d};
    each_file(c, dir, "crlpath", crl_dir_file, &a, d);
}

void tls__load_files(struct tls_ctx *c, const struct tls_server_opts *o, struct diag *d)
{
    size_t before = d->count;
    if (o->cafile)
        load_certs(c, &c->ca, o->cafile, "CA certificates", d);
    if (o->capath)
        load_ca_dir(c, o->capath, d);
    if (!o->cafile && !o->capath)
        diag_add(d, NULL, 0, "no cafile or capath: client certificates cannot be verified");
    else if (d->count == before && !c->load->unstable && !c->ca.raw.p)
        diag_add(d, o->cafile ? o->cafile : o->capath, 0, "no CA certificate found");
    /* CRL issuer checks need the CAs; when those failed they would only add noise. */
    bool check_crls = d->count == before && !c->load->unstable;
    if (!o->certfile)
        diag_add(d, NULL, 0, "no certfile: the server needs a certificate");
    else
        load_certs(c, &c->cert, o->certfile, "server certificate", d);
    if (!o->keyfile) {
        diag_add(d, NULL, 0, "no keyfile: the server needs a private key");
    } else {
        size_t key_errors = d->count;
        load_key(c, o->keyfile, d);
        if (d->count == key_errors && !c->load->unstable && c->cert.raw.p &&
            mbedtls_pk_check_pair(&c->cert.pk, &c->key KEY_RNG) != 0)
            diag_add(d, o->keyfile, 0, "private key does not match the certificate in %s",
                     o->certfile);
        sign_in_place(&c->key);
    }
    for (size_t i = 0; i < o->crlfile_count; i++)
        load_crl_file(c, o->crlfiles[i], check_crls, d);
    if (o->crlpath)
        load_crl_dir(c, o->crlpath, check_crls, d);
    parse_versions(c, o, d);
    parse_ciphers(c, o->ciphers, d);
}
