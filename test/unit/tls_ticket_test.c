/* tls_ticket: session-ticket keys from a file (tls_ticket_key_file). Each "restart" is a fresh
 * tls_lib (new random state, new contexts) given a key file; tickets come from full handshakes
 * between our server engine and an in-memory Mbed TLS client, back to back:
 *   - a ticket written with key A resumes under [A] after a restart, and under [B, A] (rotation);
 *     under [B] only it is refused and the device does a full handshake;
 *   - a device revoked "while the broker was down" cannot resume: the re-check still runs;
 *   - short, corrupt, duplicate-name, all-zero and oversized files, bad modes and a foreign owner
 *     are refused with a message, and a refused reload keeps the keys in force;
 *   - a tampered ticket falls back to a full handshake. */
#include "check.h"
#include "pki_script.h"
#include "tls_client.h"
#include "tls.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/certmq-ticket-test-XXXXXX";

static const char pki_script[] =
    "set -e\n"
    "cat > req.cnf <<'E'\n"
    "[req]\ndistinguished_name=dn\n[dn]\n"
    "[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\n"
    "[server]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n"
    "[dev]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=clientAuth\n"
    "E\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "key root\n"
    "openssl req -new -x509 -config req.cnf -extensions root -key root.key -subj /CN=root "
    "-days 3650 -sha256 -out root.crt\n"
    ": > root.idx; echo 1000 > root.num; echo 5000 > root.srl\n"
    "printf '[ca]\\ndefault_ca=x\\n[x]\\ndatabase=root.idx\\nserial=root.srl\\n"
    "crlnumber=root.num\\nnew_certs_dir=.\\ncertificate=root.crt\\nprivate_key=root.key\\n"
    "default_md=sha256\\ndefault_crl_days=30\\npolicy=p\\nunique_subject=no\\n"
    "[p]\\ncommonName=optional\\n' > root.cnf\n"
    "n=100\n"
    "sign() { n=$((n+1)); key $1; openssl req -new -config req.cnf -key $1.key -subj /CN=$1 "
    "-out $1.csr; openssl x509 -req -in $1.csr -CA root.crt -CAkey root.key -set_serial $n "
    "-days 30 -sha256 -extfile req.cnf -extensions $2 -out $1.crt 2>/dev/null; }\n"
    "sign server server\n"
    "sign dev1 dev\n"
    "sign later dev\n"
    "openssl ca -batch -config root.cnf -gencrl -out root.crl 2>/dev/null\n"
    "openssl ca -batch -config root.cnf -revoke later.crt 2>/dev/null\n"
    "openssl ca -batch -config root.cnf -gencrl -out root2.crl 2>/dev/null\n";

static const char *P(const char *name)
{
    return pki_path(dir, name);
}

/* The tests run over TLS 1.2, and again over TLS 1.3 where Mbed TLS has it: a 1.3 session of
 * Mbed TLS 3.6 holds no client certificate, so the re-checks depend on certmq's ticket format. */
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_SSL_PROTO_TLS1_3)
#define HAVE_TLS13 1
#else
#define HAVE_TLS13 0
#endif
static bool tls13;
static bool listener_psk_ke; /* start(): tls13_resumption any */

static void client_init(struct client *c, const char *name, const mbedtls_ssl_session *resume)
{
    char crt[64], key[64];
    snprintf(crt, sizeof(crt), "%s.crt", name);
    snprintf(key, sizeof(key), "%s.key", name);
    const char *ca = P("root.crt");
    client_tls13 = tls13;
    client_start(c, ca, P(crt), P(key), resume);
}

/* TLS 1.3: read the NewSessionTicket the server sent after its handshake. */
static void take_ticket(struct client *c)
{
#if HAVE_TLS13
    if (tls13) {
        /* The first read only notices the message (WANT_READ), the next one parses it. */
        unsigned char b[64];
        int r = MBEDTLS_ERR_SSL_WANT_READ;
        for (int i = 0; i < 3 && r == MBEDTLS_ERR_SSL_WANT_READ; i++)
            r = mbedtls_ssl_read(&c->ssl, b, sizeof(b));
        CHECK_EQ_INT(r, MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET);
        CHECK_EQ_INT(mbedtls_ssl_get_version_number(&c->ssl), MBEDTLS_SSL_VERSION_TLS1_3);
    }
#else
    (void)c;
#endif
}

/* ---- key files and "broker processes" ------------------------------------------------------ */

/* Two distinct keys, as certmq-pki ticket-key would make them (any non-zero bytes do). */
static uint8_t key_a[80], key_b[80];

static const char *write_file(const char *name, const void *data, size_t n, mode_t mode)
{
    const char *path = P(name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return path;
    CHECK_EQ_INT(fwrite(data, 1, n, f), n);
    fclose(f);
    CHECK_EQ_INT(chmod(path, mode), 0);
    return path;
}

/* keys: a string of 'A' and 'B', the file's keys in order. */
static const char *key_file(const char *keys)
{
    uint8_t buf[80 * 4];
    size_t n = 0;
    for (const char *k = keys; *k; k++, n += 80)
        memcpy(buf + n, *k == 'A' ? key_a : key_b, 80);
    char name[32];
    snprintf(name, sizeof(name), "keys-%s", keys);
    return write_file(name, buf, n, 0600);
}

struct proc {
    struct tls_lib *lib;
    struct tls_ctx *ctx;
};

/* A broker process: fresh tls_lib, keys from `keys` (NULL: random ones), one listener. */
static struct proc start(const char *keys, const char *crl)
{
    struct proc p = {.lib = tls_lib_new(true, 3600)};
    if (keys) {
        struct diag d;
        diag_init(&d);
        struct tls_load how = {.settle_ms = 0};
        CHECK_EQ_INT(tls_lib_ticket_keys(p.lib, key_file(keys), &how, &d), 0);
        for (size_t i = 0; i < d.count; i++)
            fprintf(stderr, "  unexpected: %s\n", d.msgs[i]);
        diag_free(&d);
        char name[33];
        CHECK_EQ_INT(tls_lib_ticket_key_info(p.lib, name), strlen(keys));
        CHECK_EQ_INT(strlen(name), 32);
    }
    const char *crls[1] = {P(crl)};
    struct tls_server_opts o = {
        .cafile = P("root.crt"),
        .certfile = P("server.crt"),
        .keyfile = P("server.key"),
        .crlfiles = crls,
        .crlfile_count = 1,
        .verify_depth = 4,
        .tls13_psk_ke = listener_psk_ke,
    };
    struct diag d;
    diag_init(&d);
    p.ctx = tls_ctx_new(p.lib, &o, &d);
    CHECK(p.ctx != NULL);
    diag_free(&d);
    return p;
}

static void stop(struct proc *p)
{
    tls_ctx_unref(p->ctx);
    tls_lib_free(p->lib);
}

static void get_ticket(struct proc *p, const char *name, mbedtls_ssl_session *s)
{
    struct client c;
    client_init(&c, name, NULL);
    CHECK_EQ_INT(handshake(&c, p->ctx), 0);
    CHECK(!tls_conn_peer(c.server)->resumed);
    take_ticket(&c);
    mbedtls_ssl_session_init(s);
    CHECK_EQ_INT(mbedtls_ssl_get_session(&c.ssl, s), 0);
#if MBEDTLS_VERSION_MAJOR < 3 /* private in 3.x: the resumptions below show it */
    CHECK(s->ticket != NULL && s->ticket_len > 0);
#endif
    client_free(&c);
}

/* Connects with ticket s: the server's result; *resumed says whether the ticket was used. */
static int resume(struct proc *p, const char *name, const mbedtls_ssl_session *s, bool *resumed,
                  enum tls_reject *why)
{
    struct client c;
    client_init(&c, name, s);
    int r = handshake(&c, p->ctx);
    *resumed = tls_conn_peer(c.server)->resumed;
    if (why)
        *why = tls_conn_reject(c.server);
    client_free(&c);
    return r;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_restart_and_rotation(void)
{
    bool resumed;
    mbedtls_ssl_session ta, tb;
    struct proc p = start("A", "root.crl");
    get_ticket(&p, "dev1", &ta);
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(resumed);
    stop(&p);

    /* Restart with the same file: the ticket resumes (no full handshake). */
    p = start("A", "root.crl");
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(resumed);
    stop(&p);

    /* Rotation: B prepended, A kept. A's ticket resumes; new tickets are B's. */
    p = start("BA", "root.crl");
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(resumed);
    get_ticket(&p, "dev1", &tb);
    stop(&p);

    /* A rotated out: its ticket is refused and the device does a full handshake; B's resumes. */
    p = start("B", "root.crl");
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(!resumed);
    CHECK_EQ_INT(resume(&p, "dev1", &tb, &resumed, NULL), 0);
    CHECK(resumed);
    stop(&p);

    /* B's ticket was encrypted with B, not A. */
    p = start("A", "root.crl");
    CHECK_EQ_INT(resume(&p, "dev1", &tb, &resumed, NULL), 0);
    CHECK(!resumed);
    stop(&p);

    /* Without a key file (today's behaviour): random keys, nothing resumes after a restart. */
    p = start(NULL, "root.crl");
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(!resumed);
    mbedtls_ssl_session tr;
    get_ticket(&p, "dev1", &tr);
    CHECK_EQ_INT(resume(&p, "dev1", &tr, &resumed, NULL), 0);
    CHECK(resumed);
    stop(&p);
    p = start(NULL, "root.crl");
    CHECK_EQ_INT(resume(&p, "dev1", &tr, &resumed, NULL), 0);
    CHECK(!resumed);
    stop(&p);

#if MBEDTLS_VERSION_MAJOR < 3 /* the client's copy of the ticket is private in 3.x */
    /* A tampered ticket (one byte of the encrypted state): a full handshake, not an error. */
    p = start("A", "root.crl");
    ta.ticket[ta.ticket_len / 2] ^= 0x01;
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(!resumed);
    stop(&p);
#endif

    mbedtls_ssl_session_free(&ta);
    mbedtls_ssl_session_free(&tb);
    mbedtls_ssl_session_free(&tr);
}

/* "later" gets a ticket, the broker stops, "later" is revoked (root2.crl), the broker starts
 * with the same keys: the ticket decrypts, but the re-check refuses it and the full handshake
 * names the revocation. */
static void test_revoked_while_down(void)
{
    bool resumed;
    enum tls_reject why;
    mbedtls_ssl_session tl, td;
    struct proc p = start("A", "root.crl");
    get_ticket(&p, "later", &tl);
    get_ticket(&p, "dev1", &td);
    stop(&p);
    p = start("A", "root2.crl");
    CHECK(resume(&p, "later", &tl, &resumed, &why) < 0);
    CHECK(!resumed);
    CHECK_EQ_INT(why, TLS_REJECT_REVOKED);
    CHECK_EQ_INT(resume(&p, "dev1", &td, &resumed, &why), 0);
    CHECK(resumed);
    stop(&p);
    mbedtls_ssl_session_free(&tl);
    mbedtls_ssl_session_free(&td);
}

/* tls13_resumption any: a client offering psk_ke only (no key share) resumes from its ticket
 * alone, and the ticket is re-checked as any other: revoked while the broker was down, it does
 * not resume (and the full handshake the client cannot do without a key share fails). The
 * default listener (psk_dhe_ke only) gives such a client no resumption. */
static void test_psk_ke(void)
{
#if HAVE_TLS13
    bool resumed;
    enum tls_reject why;
    mbedtls_ssl_session tl, td;
    tls13 = true;
    listener_psk_ke = true;
    struct proc p = start("A", "root.crl");
    get_ticket(&p, "later", &tl);
    get_ticket(&p, "dev1", &td);
    client_psk_ke_only = true;
    CHECK_EQ_INT(resume(&p, "dev1", &td, &resumed, &why), 0);
    CHECK(resumed);
    stop(&p);
    p = start("A", "root2.crl"); /* "later" revoked */
    CHECK(resume(&p, "later", &tl, &resumed, &why) < 0);
    CHECK(!resumed);
    CHECK_EQ_INT(resume(&p, "dev1", &td, &resumed, &why), 0);
    CHECK(resumed);
    stop(&p);
    listener_psk_ke = false;
    p = start("A", "root.crl");
    CHECK(resume(&p, "dev1", &td, &resumed, &why) < 0);
    CHECK(!resumed);
    stop(&p);
    client_psk_ke_only = false;
    mbedtls_ssl_session_free(&tl);
    mbedtls_ssl_session_free(&td);
#endif
}

/* Loads path into lib: must fail with a message containing want. */
static void refused(struct tls_lib *lib, const char *path, const char *want)
{
    struct diag d;
    diag_init(&d);
    struct tls_load how = {.settle_ms = 0};
    CHECK_EQ_INT(tls_lib_ticket_keys(lib, path, &how, &d), -1);
    CHECK(!how.unstable);
    CHECK(d.count >= 1);
    bool found = false;
    for (size_t i = 0; i < d.count; i++)
        found |= strstr(d.msgs[i], want) != NULL;
    if (!found)
        fprintf(stderr, "  %s: wanted '%s', got '%s'\n", path, want, d.count ? d.msgs[0] : "");
    CHECK(found);
    diag_free(&d);
}

static void test_bad_files(void)
{
    bool resumed;
    struct proc p = start("A", "root.crl");
    mbedtls_ssl_session ta;
    get_ticket(&p, "dev1", &ta);

    uint8_t buf[80 * 66];
    memcpy(buf, key_a, 80);
    refused(p.lib, write_file("empty", buf, 0, 0600), "0 bytes");
    refused(p.lib, write_file("short", buf, 79, 0600), "79 bytes");
    refused(p.lib, write_file("long", buf, 81, 0600), "81 bytes");
    memcpy(buf + 80, key_a, 80);
    refused(p.lib, write_file("dup", buf, 160, 0600), "same name");
    memset(buf + 80, 0, 80);
    refused(p.lib, write_file("zero", buf, 160, 0600), "key 2 is all zeros");
    for (size_t i = 0; i < 66; i++) {
        memcpy(buf + 80 * i, key_a, 80);
        buf[80 * i] = (uint8_t)(i + 1);
    }
    refused(p.lib, write_file("many", buf, 80 * 65, 0600), "larger than 64 keys");
    refused(p.lib, write_file("group", key_b, 80, 0640), "mode 0640");
    refused(p.lib, write_file("world", key_b, 80, 0604), "0600 or stricter");
    refused(p.lib, P("missing"), "cannot read");
    refused(p.lib, dir, "not a regular file");
    if (geteuid() == 0) {
        const char *f = write_file("foreign", key_b, 80, 0600);
        CHECK_EQ_INT(chown(f, 65534, 65534), 0);
        refused(p.lib, f, "owned by uid 65534");
    } else {
        fprintf(stderr, "  (not root: the owner check is not exercised)\n");
    }

    /* After every refused reload the keys in force are A's: the ticket still resumes. */
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(resumed);
    char name[33];
    CHECK_EQ_INT(tls_lib_ticket_key_info(p.lib, name), 1);

    /* 0400 is stricter than 0600: accepted. Then a good reload to [B] takes effect at once. */
    struct diag d;
    diag_init(&d);
    struct tls_load how = {.settle_ms = 0};
    CHECK_EQ_INT(tls_lib_ticket_keys(p.lib, write_file("ro", key_a, 80, 0400), &how, &d), 0);
    CHECK_EQ_INT(tls_lib_ticket_keys(p.lib, key_file("B"), &how, &d), 0);
    CHECK_EQ_INT(d.count, 0);
    diag_free(&d);
    CHECK_EQ_INT(resume(&p, "dev1", &ta, &resumed, NULL), 0);
    CHECK(!resumed);
    stop(&p);
    mbedtls_ssl_session_free(&ta);
}

int main(void)
{
    if (pki_script_run(dir, pki_script) != 0)
        return 1;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);
    mbedtls_ctr_drbg_random(&drbg, key_a, sizeof(key_a));
    mbedtls_ctr_drbg_random(&drbg, key_b, sizeof(key_b));

    for (int v = 0; v <= HAVE_TLS13; v++) {
        tls13 = v;
        test_restart_and_rotation();
        test_revoked_while_down();
        test_bad_files();
    }
    test_psk_ke();

    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_finish("tls_ticket_test");
}
