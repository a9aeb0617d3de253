/* tls: identity rules and extraction, context loading errors, and full handshakes between our
 * server engine and an in-memory Mbed TLS client, back to back (no sockets): accepted and
 * refused devices with the exact reason, CRL policies, plaintext both ways, close_notify,
 * ticket resumption and its refusal after a revocation. The PKI is made at start with the
 * openssl CLI in a temporary directory. */
#include "check.h"
#include "pki_script.h"
#include "tls_client.h"
#include "tls.h"
#include <mbedtls/version.h>

/* Mbed TLS 3.x parks idle record buffers only with its allocator hooks, and caches no verified
 * chains (tls.c). */
#if MBEDTLS_VERSION_MAJOR < 3 || defined(MBEDTLS_PLATFORM_MEMORY)
#define CAN_PARK 1
#else
#define CAN_PARK 0
#endif
#define CHAIN_CACHE (MBEDTLS_VERSION_MAJOR < 3)

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[] = "/tmp/certmq-tls-test-XXXXXX";

/* Every certificate is EC P-256. x509 -req keeps the subject as written (two CNs); openssl ca
 * is used where dates must be set and for CRLs. */
static const char pki_script[] =
    "set -e\n"
    "cat > req.cnf <<'E'\n"
    "[req]\ndistinguished_name=dn\n[dn]\n"
    "[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\n"
    "[inter]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "[server]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n"
    "[dev]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=clientAuth\n"
    "[srvonly]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth\n"
    "[noeku]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "[uri]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=clientAuth\nsubjectAltName=URI:urn:certmq:dev-uri,DNS:dev-uri.example\n"
    "E\n"
    "n=100\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "db() { : > $1.idx; echo 1000 > $1.num; echo 5000 > $1.srl; printf '[ca]\\ndefault_ca=x\\n"
    "[x]\\ndatabase=%s.idx\\nserial=%s.srl\\n"
    "crlnumber=%s.num\\nnew_certs_dir=.\\ncertificate=%s.crt\\nprivate_key=%s.key\\n"
    "default_md=sha256\\ndefault_crl_days=30\\npolicy=p\\nunique_subject=no\\n"
    "[p]\\ncommonName=optional\\n' $1 $1 $1 $1 $1 > $1.cnf; }\n"
    "ca() { key $1; openssl req -new -x509 -config req.cnf -extensions root -key $1.key "
    "-subj \"$2\" -days 3650 -sha256 -out $1.crt; db $1; }\n"
    "csr() { key $1; openssl req -new -config req.cnf -key $1.key -subj \"$2\" -out $1.csr; }\n"
    "sign() { n=$((n+1)); csr $1 \"$4\"; openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key "
    "-set_serial $n -days 30 -sha256 -extfile req.cnf -extensions $3 -out $1.crt 2>/dev/null; }\n"
    "dated() { csr $1 /CN=$1; openssl ca -batch -config root.cnf -extfile req.cnf -extensions dev "
    "-in $1.csr -out $1.crt -notext -rand_serial -startdate $2 -enddate $3 2>/dev/null; }\n"
    "crl() { openssl ca -batch -config $1.cnf -gencrl -out $2 $3 2>/dev/null; }\n"
    "ca root '/CN=certmq test root'\n"
    "ca other '/CN=other CA'\n"
    "ca impostor '/CN=certmq test root'\n"
    "sign inter root inter '/CN=certmq test intermediate'; db inter\n"
    "sign server root server /CN=localhost\n"
    "sign dev1 root dev '/O=Fleet/CN=dev1'\n"
    "sign later root dev /CN=later\n"
    "sign revoked root dev /CN=revoked\n"
    "sign foreign other dev /CN=foreign\n"
    "sign srvonly root srvonly /CN=srvonly\n"
    "sign noeku root noeku /CN=noeku\n"
    "sign plus root dev '/CN=a\\+b'\n"
    "sign twocn root dev /CN=a/CN=b\n"
    "sign uri root uri /CN=uri1\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out $1.key; }\n"
    "sign dev384 root dev /CN=dev384\n"
    "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "sign idev inter dev /CN=idev; cat idev.crt inter.crt > idev-chain.pem\n"
    "cat root.crt inter.crt > cas.pem\n"
    "dated expired 20200101000000Z 20210101000000Z\n"
    "dated future 20990101000000Z 20991231000000Z\n"
    "openssl ca -batch -config root.cnf -revoke revoked.crt 2>/dev/null\n"
    "crl root root.crl\n"
    "crl root expired.crl '-crl_lastupdate 20200101000000Z -crl_nextupdate 20210101000000Z'\n"
    "crl root future.crl '-crl_lastupdate 20990101000000Z -crl_nextupdate 20991231000000Z'\n"
    "openssl ca -batch -config root.cnf -revoke later.crt 2>/dev/null\n"
    "crl root root2.crl\n"
    "crl inter inter.crl\n"
    "crl other other.crl\n"
    "crl impostor impostor.crl\n"
    "echo 'not a CRL at all' > garbage.crl\n"
    "mkdir crldir; cp root.crl inter.crl crldir/; mkdir baddir; cp root.crl garbage.crl baddir/\n"
    "for c in dev1 uri twocn plus; do openssl x509 -in $c.crt -outform DER -out $c.der; done\n";

static const char *P(const char *name)
{
    return pki_path(dir, name);
}

static void client_init(struct client *c, const char *name, bool chain,
                        const mbedtls_ssl_session *resume)
{
    char crt[64], key[64];
    if (name) {
        snprintf(crt, sizeof(crt), chain ? "%s-chain.pem" : "%s.crt", name);
        snprintf(key, sizeof(key), "%s.key", name);
    }
    const char *ca = P("root.crt");
    client_start(c, ca, name ? P(crt) : NULL, name ? P(key) : NULL, resume);
}

struct ctx_opts {
    const char *crls[3];
    const char *crlpath;
    bool bundle; /* the CA set is root + intermediate, else the root only */
    bool strict, warn;
    unsigned depth;
    enum tls_identity_mode id;
};

static struct tls_ctx *make_ctx(struct tls_lib *lib, struct ctx_opts co)
{
    const char *crls[3];
    size_t n = 0;
    for (size_t i = 0; i < 3 && co.crls[i]; i++)
        crls[n++] = P(co.crls[i]);
    struct tls_server_opts o = {
        .cafile = P(co.bundle ? "cas.pem" : "root.crt"),
        .certfile = P("server.crt"),
        .keyfile = P("server.key"),
        .crlfiles = crls,
        .crlfile_count = n,
        .crlpath = co.crlpath ? P(co.crlpath) : NULL,
        .verify_depth = co.depth ? co.depth : 4,
        .identity = co.id,
        .crl_strict = co.strict,
        .crl_expired_warn = co.warn,
    };
    struct diag d;
    diag_init(&d);
    struct tls_ctx *ctx = tls_ctx_new(lib, &o, &d);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "  unexpected: %s\n", d.msgs[i]);
    CHECK(ctx != NULL);
    diag_free(&d);
    return ctx;
}

/* Handshakes name (chain: send the intermediate too) and checks the refusal reason, or the
 * identity when want is TLS_REJECT_NONE. */
static void expect(struct tls_ctx *ctx, const char *name, bool chain, enum tls_reject want,
                   const char *identity)
{
    struct client c;
    client_init(&c, name, chain, NULL);
    int r = handshake(&c, ctx);
    if (tls_conn_reject(c.server) != want)
        fprintf(stderr, "  %s: got '%s' (%s), want '%s'\n", name ? name : "(no cert)",
                tls_reject_str(tls_conn_reject(c.server)), tls_conn_error(c.server),
                tls_reject_str(want));
    CHECK_EQ_INT(tls_conn_reject(c.server), want);
    if (want == TLS_REJECT_NONE) {
        CHECK_EQ_INT(r, 0);
        CHECK_EQ_STR(tls_conn_peer(c.server)->identity, identity);
    } else {
        CHECK(r < 0);
        CHECK(strlen(tls_conn_error(c.server)) > 0);
    }
    client_free(&c);
}

static void test_identity_rules(void)
{
    const char *why;
    CHECK(tls_identity_valid((const uint8_t *)"device-001", 10, &why));
    CHECK(tls_identity_valid((const uint8_t *)"capteur-\xc3\xa9t\xc3\xa9", 13, &why));
    CHECK(tls_identity_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"", 0, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a+b", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a/b", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a#", 2, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a\nb", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a\x7f", 2, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a\0b", 3, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"victim ", 7, &why));
    CHECK(!strcmp(why, "begins or ends with a space"));
    CHECK(!tls_identity_valid((const uint8_t *)" victim", 7, &why));
    CHECK(tls_identity_valid((const uint8_t *)"sensor 7", 8, &why));
    CHECK(!tls_identity_valid((const uint8_t *)"a\xc2\x85", 3, &why)); /* U+0085 NEL */
    CHECK(tls_identity_valid((const uint8_t *)"a\xc2\xa0"
                                              "b",
                             4, &why));                                   /* U+00A0 inside */
    CHECK(!tls_identity_valid((const uint8_t *)"\xc0\xaf", 2, &why));     /* overlong '/' */
    CHECK(!tls_identity_valid((const uint8_t *)"\xed\xa0\x80", 3, &why)); /* surrogate */
    CHECK(!tls_identity_valid((const uint8_t *)"\xc3", 1, &why));         /* truncated */
    char big[300];
    memset(big, 'a', sizeof(big));
    CHECK(tls_identity_valid((const uint8_t *)big, TLS_IDENTITY_MAX, &why));
    CHECK(!tls_identity_valid((const uint8_t *)big, TLS_IDENTITY_MAX + 1, &why));
    CHECK_EQ_STR(tls_reject_str(TLS_REJECT_REVOKED), "revoked");
    CHECK_EQ_STR(tls_reject_str(TLS_REJECT_CRL_MISSING), "CRL missing");
    CHECK_EQ_STR(tls_reject_str(TLS_REJECT_HANDSHAKE), "handshake failed");
}

static int id_of(const char *file, enum tls_identity_mode mode, char *out, const char **why)
{
    uint8_t der[4096];
    FILE *f = fopen(P(file), "rb");
    size_t n = f ? fread(der, 1, sizeof(der), f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 0);
    return tls_identity_from_der(der, n, mode, out, TLS_IDENTITY_MAX + 1, why);
}

static void test_identity_modes(void)
{
    char out[TLS_IDENTITY_MAX + 1];
    const char *why = NULL;
    CHECK_EQ_INT(id_of("dev1.der", TLS_ID_CN, out, &why), 0);
    CHECK_EQ_STR(out, "dev1");
    CHECK_EQ_INT(id_of("dev1.der", TLS_ID_SUBJECT, out, &why), 0);
    CHECK_EQ_STR(out, "CN=dev1,O=Fleet");
    CHECK_EQ_INT(id_of("dev1.der", TLS_ID_SAN_URI, out, &why), -1);
    CHECK_EQ_INT(id_of("uri.der", TLS_ID_SAN_URI, out, &why), 0);
    CHECK_EQ_STR(out, "urn:certmq:dev-uri");
    CHECK_EQ_INT(id_of("uri.der", TLS_ID_SAN_DNS, out, &why), 0);
    CHECK_EQ_STR(out, "dev-uri.example");
    CHECK_EQ_INT(id_of("uri.der", TLS_ID_SAN_EMAIL, out, &why), -1);
    CHECK_EQ_INT(id_of("uri.der", TLS_ID_CN, out, &why), 0);
    CHECK_EQ_STR(out, "uri1");
    CHECK_EQ_INT(id_of("twocn.der", TLS_ID_CN, out, &why), -1);
    CHECK(strstr(why, "more than once") != NULL);
    CHECK_EQ_INT(id_of("plus.der", TLS_ID_CN, out, &why), -1);
    uint8_t junk[8] = {0x30, 0x82, 0xff, 0xff, 0, 0, 0, 0};
    why = NULL;
    CHECK_EQ_INT(tls_identity_from_der(junk, sizeof(junk), TLS_ID_CN, out, sizeof(out), &why), -1);
    CHECK(why != NULL);
}

/* Expects tls_ctx_new to fail with a problem mentioning both strings. */
static void load_fails(struct tls_lib *lib, struct tls_server_opts o, const char *a, const char *b)
{
    struct diag d;
    diag_init(&d);
    CHECK(tls_ctx_new(lib, &o, &d) == NULL);
    bool found = false;
    for (size_t i = 0; i < d.count; i++)
        found |= strstr(d.msgs[i], a) && strstr(d.msgs[i], b);
    if (!found) {
        fprintf(stderr, "  wanted '%s' + '%s' among %zu problems:\n", a, b, d.count);
        for (size_t i = 0; i < d.count; i++)
            fprintf(stderr, "    %s\n", d.msgs[i]);
    }
    CHECK(found);
    diag_free(&d);
}

static void test_load_errors(struct tls_lib *lib)
{
    const char *crl[1];
    struct tls_server_opts ok = {.cafile = P("root.crt"),
                                 .certfile = P("server.crt"),
                                 .keyfile = P("server.key"),
                                 .crlfiles = crl,
                                 .verify_depth = 4};
    struct tls_server_opts o = ok;
    o.cafile = P("nope.crt");
    load_fails(lib, o, "nope.crt", "No such file");
    o = ok;
    o.keyfile = P("dev1.key");
    load_fails(lib, o, "dev1.key", "does not match");
    o = ok;
    o.certfile = P("dev1.key");
    load_fails(lib, o, "dev1.key", "not a certificate");
    o = ok;
    o.crlfile_count = 1;
    crl[0] = P("garbage.crl");
    load_fails(lib, o, "garbage.crl", "not a CRL");
    crl[0] = P("other.crl");
    load_fails(lib, o, "other.crl", "not a loaded CA");
    crl[0] = P("impostor.crl");
    load_fails(lib, o, "impostor.crl", "signature does not verify");
    crl[0] = P("future.crl");
    load_fails(lib, o, "future.crl", "thisUpdate is in the future");
    o = ok;
    o.crlpath = P("baddir");
    load_fails(lib, o, "baddir/garbage.crl", "not a CRL");
    o.crlpath = P("nodir");
    load_fails(lib, o, "nodir", "crlpath");
    o = ok;
    o.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:AES128-SHA";
    load_fails(lib, o, "AES128-SHA", "not allowed");
    o = ok;
    o.tls_version = "tlsv1.1";
    load_fails(lib, o, "tlsv1.1", "use tlsv1.2 or tlsv1.3");
#if MBEDTLS_VERSION_MAJOR < 3
    o.tls_version = "tlsv1.3";
    load_fails(lib, o, "tlsv1.3", "TLS 1.2 only");
#endif
    o = ok;
    o.tls_version = "tlsv1.2";
    o.min_tls_version = "tlsv1.2";
    load_fails(lib, o, "min_tls_version", "give one of them");
    /* The good set loads; an allowed cipher list too. */
    o = ok;
    o.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
    o.tls_version = "tlsv1.2";
    struct diag d;
    diag_init(&d);
    struct tls_ctx *ctx = tls_ctx_new(lib, &o, &d);
    CHECK(ctx != NULL && d.count == 0);
    tls_ctx_unref(ctx);
    diag_free(&d);
}

static void test_refusals(struct tls_lib *lib)
{
    struct tls_ctx *ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}});
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
    expect(ctx, "noeku", false, TLS_REJECT_NONE, "noeku");
    expect(ctx, "idev", true, TLS_REJECT_NONE, "idev"); /* inter has no CRL: not strict */
    expect(ctx, NULL, false, TLS_REJECT_NO_CERT, NULL);
    expect(ctx, "foreign", false, TLS_REJECT_UNKNOWN_CA, NULL);
    expect(ctx, "idev", false, TLS_REJECT_UNKNOWN_CA, NULL); /* intermediate not sent */
    expect(ctx, "revoked", false, TLS_REJECT_REVOKED, NULL);
    expect(ctx, "expired", false, TLS_REJECT_EXPIRED, NULL);
    expect(ctx, "future", false, TLS_REJECT_NOT_YET_VALID, NULL);
    expect(ctx, "srvonly", false, TLS_REJECT_BAD_EKU, NULL);
    expect(ctx, "plus", false, TLS_REJECT_BAD_IDENTITY, NULL);
    expect(ctx, "twocn", false, TLS_REJECT_BAD_IDENTITY, NULL);
    /* The detail names the certificate. */
    struct client c;
    client_init(&c, "revoked", false, NULL);
    CHECK(handshake(&c, ctx) < 0);
    CHECK(strstr(tls_conn_error(c.server), "CN=revoked") != NULL);
    CHECK(buf_size(tls_conn_output(c.server)) > 0 || c.in_len > 0); /* the alert */
    client_free(&c);
    tls_ctx_unref(ctx);

    ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}, .depth = 1});
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
    expect(ctx, "idev", true, TLS_REJECT_CHAIN_TOO_LONG, NULL);
    tls_ctx_unref(ctx);

    ctx = make_ctx(lib, (struct ctx_opts){.id = TLS_ID_SAN_URI});
    expect(ctx, "uri", false, TLS_REJECT_NONE, "urn:certmq:dev-uri");
    expect(ctx, "dev1", false, TLS_REJECT_BAD_IDENTITY, NULL);
    tls_ctx_unref(ctx);
    ctx = make_ctx(lib, (struct ctx_opts){.id = TLS_ID_SUBJECT});
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "CN=dev1,O=Fleet");
    tls_ctx_unref(ctx);
}

static void test_crl_policies(struct tls_lib *lib)
{
    struct tls_ctx *ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}, .strict = true});
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
    expect(ctx, "idev", true, TLS_REJECT_CRL_MISSING, NULL);
    tls_ctx_unref(ctx);
    /* A CRL is accepted only from a loaded CA, so the intermediate's CRL needs it in the set. */
    ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}, .bundle = true, .strict = true});
    expect(ctx, "idev", true, TLS_REJECT_CRL_MISSING, NULL);
    expect(ctx, "idev", false, TLS_REJECT_CRL_MISSING, NULL);
    tls_ctx_unref(ctx);
    ctx = make_ctx(
        lib, (struct ctx_opts){.crls = {"root.crl", "inter.crl"}, .bundle = true, .strict = true});
    expect(ctx, "idev", true, TLS_REJECT_NONE, "idev");
    expect(ctx, "idev", false, TLS_REJECT_NONE, "idev");
    tls_ctx_unref(ctx);
    ctx = make_ctx(lib, (struct ctx_opts){.crlpath = "crldir", .bundle = true, .strict = true});
    expect(ctx, "idev", true, TLS_REJECT_NONE, "idev");
    expect(ctx, "revoked", false, TLS_REJECT_REVOKED, NULL);
    tls_ctx_unref(ctx);
    /* No CRL configured at all: strict has nothing to be strict about. */
    ctx = make_ctx(lib, (struct ctx_opts){.strict = true});
    expect(ctx, "idev", true, TLS_REJECT_NONE, "idev");
    tls_ctx_unref(ctx);
    ctx = make_ctx(lib, (struct ctx_opts){.crls = {"expired.crl"}});
    expect(ctx, "dev1", false, TLS_REJECT_CRL_EXPIRED, NULL);
    tls_ctx_unref(ctx);
    ctx = make_ctx(lib, (struct ctx_opts){.crls = {"expired.crl"}, .warn = true});
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
    expect(ctx, "revoked", false, TLS_REJECT_REVOKED, NULL); /* an expired CRL still revokes */
    tls_ctx_unref(ctx);
}

/* Server -> client and client -> server, 100 KB each, records of at most 16 KiB. */
static void test_data(struct tls_lib *lib)
{
    struct tls_ctx *ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}});
    struct client c;
    client_init(&c, "dev1", false, NULL);
    CHECK_EQ_INT(handshake(&c, ctx), 0);
    CHECK(!tls_conn_peer(c.server)->resumed);
    static uint8_t big[100000], got[100000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31 + i / 977);
    CHECK_EQ_INT(tls_conn_write(c.server, big, sizeof(big)), 0);
    const struct buf *o = tls_conn_output(c.server);
    size_t records = 0;
    for (size_t off = 0; off + 5 <= buf_size(o); records++) {
        size_t len = (size_t)buf_head(o)[off + 3] << 8 | buf_head(o)[off + 4];
        CHECK(len <= 16384 + 256);
        off += 5 + len;
    }
    CHECK(records >= 7);
    size_t have = 0;
    for (int i = 0; i < 200 && have < sizeof(big); i++) {
        pump_to_client(&c);
        int r = mbedtls_ssl_read(&c.ssl, got + have, sizeof(got) - have);
        if (r > 0)
            have += (size_t)r;
    }
    CHECK_EQ_INT(have, sizeof(big));
    CHECK(!memcmp(big, got, sizeof(big)));

    memset(got, 0, sizeof(got));
    for (size_t off = 0; off < sizeof(big);) {
        int r = mbedtls_ssl_write(&c.ssl, big + off, sizeof(big) - off);
        CHECK(r > 0);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    have = 0;
    for (int r; (r = tls_conn_read(c.server, got + have, sizeof(got) - have)) > 0;)
        have += (size_t)r;
    CHECK_EQ_INT(have, sizeof(big));
    CHECK(!memcmp(big, got, sizeof(big)));
    CHECK_EQ_INT(tls_conn_read(c.server, got, sizeof(got)), TLS_AGAIN);

    /* Borrowed input, fed in 7-byte pieces that split records: what the engine has not
     * consumed at release time is kept, and every byte arrives once. */
    struct buf wire;
    buf_init(&wire);
    c.capture = &wire;
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(mbedtls_ssl_write(&c.ssl, big + i * 1000, 1000), 1000);
    c.capture = NULL;
    have = 0;
    for (size_t off = 0; off < buf_size(&wire); off += 7) {
        size_t n = buf_size(&wire) - off < 7 ? buf_size(&wire) - off : 7;
        tls_conn_input_borrow(c.server, buf_head(&wire) + off, n);
        for (int r; (r = tls_conn_read(c.server, got + have, sizeof(got) - have)) > 0;)
            have += (size_t)r;
        tls_conn_input_release(c.server);
    }
    CHECK_EQ_INT(have, 3000);
    CHECK(!memcmp(big, got, 3000));
    buf_free(&wire);
    buf_init(&wire);

    /* Parked between exchanges (the record buffers given back, zeroed when not pooled): the
     * sequence numbers survive in both directions, round after round. */
    for (int round = 0; round < 3; round++) {
        CHECK(tls_conn_park(c.server) == CAN_PARK);
        CHECK(!tls_conn_park(c.server));
        CHECK_EQ_INT(mbedtls_ssl_write(&c.ssl, big + round, 500), 500);
        have = 0;
        for (int r; (r = tls_conn_read(c.server, got + have, sizeof(got) - have)) > 0;)
            have += (size_t)r;
        CHECK_EQ_INT(have, 500);
        CHECK(!memcmp(big + round, got, 500));
        CHECK(tls_conn_park(c.server) == CAN_PARK);
        CHECK_EQ_INT(tls_conn_write(c.server, big + 7 + round, 300), 0);
        pump_to_client(&c);
        CHECK_EQ_INT(mbedtls_ssl_read(&c.ssl, got, sizeof(got)), 300);
        CHECK(!memcmp(big + 7 + round, got, 300));
    }
    /* Never with half a record inside: those bytes are state. */
    c.capture = &wire;
    CHECK_EQ_INT(mbedtls_ssl_write(&c.ssl, big, 1000), 1000);
    c.capture = NULL;
    tls_conn_input_borrow(c.server, buf_head(&wire), 10);
    CHECK_EQ_INT(tls_conn_read(c.server, got, sizeof(got)), TLS_AGAIN);
    tls_conn_input_release(c.server);
    CHECK(!tls_conn_park(c.server));
    tls_conn_input(c.server, buf_head(&wire) + 10, buf_size(&wire) - 10);
    have = 0;
    for (int r; (r = tls_conn_read(c.server, got + have, sizeof(got) - have)) > 0;)
        have += (size_t)r;
    CHECK_EQ_INT(have, 1000);
    CHECK(!memcmp(big, got, 1000));
    CHECK(tls_conn_park(c.server) == CAN_PARK);
    buf_free(&wire);

    /* close_notify both ways */
    tls_conn_close_notify(c.server);
    pump_to_client(&c);
    CHECK_EQ_INT(mbedtls_ssl_read(&c.ssl, got, 16), MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
    mbedtls_ssl_close_notify(&c.ssl);
    CHECK_EQ_INT(tls_conn_read(c.server, got, 16), TLS_EOF);
    client_free(&c);
    tls_ctx_unref(ctx);
}

static void get_ticket(struct tls_ctx *ctx, const char *name, bool chain, mbedtls_ssl_session *s)
{
    struct client c;
    client_init(&c, name, chain, NULL);
    CHECK_EQ_INT(handshake(&c, ctx), 0);
    CHECK(!tls_conn_peer(c.server)->resumed);
    mbedtls_ssl_session_init(s);
    CHECK_EQ_INT(mbedtls_ssl_get_session(&c.ssl, s), 0);
    client_free(&c);
}

/* Resumes with s; returns the server's result, fills *resumed and *why. */
static int resume(struct tls_ctx *ctx, const char *name, const mbedtls_ssl_session *s,
                  bool *resumed, enum tls_reject *why, char *id)
{
    struct client c;
    client_init(&c, name, strcmp(name, "idev") == 0, s); /* idev sends its intermediate */
    int r = handshake(&c, ctx);
    *resumed = tls_conn_peer(c.server)->resumed;
    *why = tls_conn_reject(c.server);
    snprintf(id, TLS_IDENTITY_MAX + 1, "%s", tls_conn_peer(c.server)->identity);
    client_free(&c);
    return r;
}

static void test_tickets(struct tls_lib *lib)
{
    struct tls_ctx *ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}});
    mbedtls_ssl_session dev1, later, idev;
    get_ticket(ctx, "dev1", false, &dev1);
    get_ticket(ctx, "later", false, &later);
    bool resumed;
    enum tls_reject why;
    char id[TLS_IDENTITY_MAX + 1];
    CHECK_EQ_INT(resume(ctx, "dev1", &dev1, &resumed, &why, id), 0);
    CHECK(resumed);
    CHECK_EQ_STR(id, "dev1");
    CHECK_EQ_INT(resume(ctx, "later", &later, &resumed, &why, id), 0);
    CHECK(resumed);

    /* "later" is revoked after its ticket was issued: a reloaded context (same tls_lib, so
     * the ticket keys are the same) ignores its ticket and the full handshake refuses it;
     * dev1's ticket stays good across the reload. */
    struct tls_ctx *ctx2 = make_ctx(lib, (struct ctx_opts){.crls = {"root2.crl"}});
    CHECK(resume(ctx2, "later", &later, &resumed, &why, id) < 0);
    CHECK(!resumed);
    CHECK_EQ_INT(why, TLS_REJECT_REVOKED);
    CHECK_EQ_INT(resume(ctx2, "dev1", &dev1, &resumed, &why, id), 0);
    CHECK(resumed);
    CHECK_EQ_STR(id, "dev1");
    tls_ctx_unref(ctx2);
    /* An expired CRL under the reject policy refuses tickets too (full handshake says why). */
    ctx2 = make_ctx(lib, (struct ctx_opts){.crls = {"expired.crl"}});
    CHECK(resume(ctx2, "dev1", &dev1, &resumed, &why, id) < 0);
    CHECK_EQ_INT(why, TLS_REJECT_CRL_EXPIRED);
    tls_ctx_unref(ctx2);
    /* A device sending an intermediate the CA set lacks: the ticket holds the leaf only, so it
     * resumes once that intermediate was verified on this context by a full handshake. */
    ctx2 = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}});
    get_ticket(ctx2, "idev", true, &idev);
    tls_ctx_unref(ctx2);
    ctx2 = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}});
    CHECK_EQ_INT(resume(ctx2, "idev", &idev, &resumed, &why, id), 0);
    CHECK(!resumed); /* fresh context: full handshake (the intermediate was sent again) */
    CHECK_EQ_INT(resume(ctx2, "idev", &idev, &resumed, &why, id), 0);
    CHECK(resumed);
    CHECK_EQ_STR(id, "idev");
    tls_ctx_unref(ctx2);
    /* With both CRLs and strict, tickets work; without the intermediate's CRL they do not. */
    ctx2 = make_ctx(
        lib, (struct ctx_opts){.crls = {"root.crl", "inter.crl"}, .bundle = true, .strict = true});
    CHECK_EQ_INT(resume(ctx2, "idev", &idev, &resumed, &why, id), 0);
    CHECK(resumed);
    tls_ctx_unref(ctx2);
    ctx2 = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}, .bundle = true, .strict = true});
    CHECK(resume(ctx2, "idev", &idev, &resumed, &why, id) < 0);
    CHECK(!resumed);
    CHECK_EQ_INT(why, TLS_REJECT_CRL_MISSING);
    tls_ctx_unref(ctx2);

    mbedtls_ssl_session_free(&dev1);
    mbedtls_ssl_session_free(&later);
    mbedtls_ssl_session_free(&idev);
    tls_ctx_unref(ctx);
}

/* name's certificate (chain) with the private key in key_file: refused at CertificateVerify. */
static void expect_wrong_key(struct tls_ctx *ctx, const char *name, bool chain,
                             const char *key_file)
{
    struct client c;
    client_init(&c, name, chain, NULL);
    mbedtls_pk_free(&c.key);
    mbedtls_pk_init(&c.key);
    CHECK_EQ_INT(mbedx_pk_parse_keyfile(&c.key, P(key_file)), 0);
    CHECK(handshake(&c, ctx) < 0);
    CHECK_EQ_INT(tls_conn_reject(c.server), TLS_REJECT_HANDSHAKE);
    client_free(&c);
}

/* A live connection's peer, re-checked against a reloaded context's CRLs. */
/* A chain verified once is not verified again (until the context is rebuilt), but everything
 * else is: possession of the key (CertificateVerify), identity, chain ids for revocation. */
static void test_chain_cache(struct tls_lib *lib)
{
    struct tls_ctx *ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}});
    uint64_t hits = tls_ctx_chain_cache_hits(ctx);
    for (int i = 0; i < 3; i++) {
        expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
        expect(ctx, "idev", true, TLS_REJECT_NONE, "idev");
    }
    CHECK_EQ_INT(tls_ctx_chain_cache_hits(ctx) - hits, CHAIN_CACHE ? 4 : 0);
    struct client c;
    client_init(&c, "idev", true, NULL);
    CHECK_EQ_INT(handshake(&c, ctx), 0);
    CHECK_EQ_INT(tls_conn_peer(c.server)->chain_len, 2); /* leaf and intermediate, as before */
    client_free(&c);
    /* The cached chain with a key that is not its own: CertificateVerify still refuses it. */
    expect_wrong_key(ctx, "dev1", false, "later.key");
    /* The CertificateVerify check borrows a shared ECDSA context per curve: the key lent for
     * the refused handshake does not stick, the right ones still pass, in any order. */
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
    expect(ctx, "idev", true, TLS_REJECT_NONE, "idev");
    expect_wrong_key(ctx, "idev", true, "dev1.key");
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
    expect(ctx, "dev384", false, TLS_REJECT_NONE, "dev384");
    expect(ctx, "dev1", false, TLS_REJECT_NONE, "dev1");
    expect(ctx, "dev384", false, TLS_REJECT_NONE, "dev384");
    /* Revoked and foreign chains are never cached, so they are refused every time. */
    for (int i = 0; i < 2; i++) {
        expect(ctx, "revoked", false, TLS_REJECT_REVOKED, NULL);
        expect(ctx, "foreign", false, TLS_REJECT_UNKNOWN_CA, NULL);
        expect(ctx, NULL, false, TLS_REJECT_NO_CERT, NULL);
    }
    tls_ctx_unref(ctx);
}

static void test_revocation_index(struct tls_lib *lib)
{
    struct tls_ctx *ctx = make_ctx(lib, (struct ctx_opts){.crls = {"root.crl"}});
    struct tls_ctx *ctx2 = make_ctx(lib, (struct ctx_opts){.crls = {"root2.crl"}});
    struct client c;
    client_init(&c, "later", false, NULL);
    CHECK_EQ_INT(handshake(&c, ctx), 0);
    const struct tls_peer *p = tls_conn_peer(c.server);
    CHECK_EQ_INT(p->chain_len, 1);
    CHECK(p->not_after > 0);
    CHECK(strstr(p->subject, "later") != NULL);
    char why[80];
    CHECK(!tls_ctx_peer_revoked(ctx, p, why, sizeof(why)));
    CHECK(tls_ctx_peer_revoked(ctx2, p, why, sizeof(why)));
    client_free(&c);
    tls_ctx_unref(ctx); /* the connection's reference kept it alive until now */
    tls_ctx_unref(ctx2);
}

int main(void)
{
    if (pki_script_run(dir, pki_script) != 0)
        return 1;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);
    struct tls_lib *lib = tls_lib_new(true, 3600);
    test_identity_rules();
    test_identity_modes();
    test_load_errors(lib);
    test_refusals(lib);
    test_crl_policies(lib);
    test_data(lib);
    test_tickets(lib);
    test_revocation_index(lib);
    test_chain_cache(lib);
    tls_lib_free(lib);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_finish("tls_test");
}
