/* ocsp_codec: request DER (byte for byte, and as openssl reads and writes it), and responses made
 * by `openssl ocsp` acting as an offline responder: the three statuses, each kind of signer the
 * RFC allows and the ones it does not, nonces, time windows with their skew, corruption,
 * truncation and non-successful statuses, the AIA URL, and the RSA (PKCS#1 v1.5 and PSS) path.
 * The PKI and the CA index are made at start with the openssl CLI in a temporary directory. */
#include "check.h"
#include "ocsp_codec.h"

#include <mbedtls/x509_crt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char dir[] = "/tmp/certmq-ocsp-test-XXXXXX";

/* EC P-256 except the rsa* set and weakresp (RSA-1024). "impostor" is self-signed with the
 * intermediate's name, and "forged" a responder it issued; "other" is an unrelated CA whose
 * responder has OCSPSigning.
 * index.txt is an openssl CA database: 1001 valid, 1002 revoked for keyCompromise on 2024-01-01,
 * anything else unknown. */
static const char pki_script[] =
    "set -e\n"
    "cat > x.cnf <<'E'\n"
    "[req]\ndistinguished_name=dn\n[dn]\n"
    "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "[dev]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=clientAuth\n"
    "authorityInfoAccess=caIssuers;URI:http://127.0.0.1:1/ca.crt,OCSP;URI:http://127.0.0.1:1/\n"
    "[resp]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=OCSPSigning\n"
    "[noeku]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "E\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $1.key; }\n"
    "rsa1k() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out $1.key; }\n"
    "selfca() { $1 $2; openssl req -new -x509 -config x.cnf -extensions ca -key $2.key "
    "-subj \"$3\" -days 3650 -sha256 -out $2.crt; }\n"
    "sign() { $1 $2; openssl req -new -config x.cnf -key $2.key -subj \"$5\" -out $2.csr; "
    "openssl x509 -req -in $2.csr -CA $3.crt -CAkey $3.key -set_serial $6 -days 30 -sha256 "
    "-extfile x.cnf -extensions $4 -out $2.crt; }\n"
    "selfca ec root '/CN=ocsp test root'\n"
    "sign ec inter root ca '/CN=ocsp test intermediate' 2\n"
    "sign ec dev inter dev /CN=dev 0x1001\n"
    "sign ec dev2 inter dev /CN=dev2 0x1002\n"
    "sign ec resp inter resp /CN=responder 0x1003\n"
    "sign ec noeku inter noeku /CN=noeku-responder 0x1004\n"
    "selfca ec other '/CN=other CA'\n"
    "sign ec otherresp other resp /CN=other-responder 0x2001\n"
    "selfca ec impostor '/CN=ocsp test intermediate'\n"
    "sign ec forged impostor resp /CN=forged-responder 0x1005\n"
    "selfca rsa rsaca '/CN=rsa CA'\n"
    "sign rsa rsadev rsaca dev /CN=rsadev 0x3001\n"
    "sign rsa rsaresp rsaca resp /CN=rsa-responder 0x3002\n"
    "sign rsa1k weakresp rsaca resp /CN=weak-responder 0x3003\n"
    "printf 'V\\t491231235959Z\\t\\t1001\\tunknown\\t/CN=dev\\n"
    "R\\t491231235959Z\\t240101000000Z,keyCompromise\\t1002\\tunknown\\t/CN=dev2\\n' > index.txt\n"
    "printf 'V\\t491231235959Z\\t\\t3001\\tunknown\\t/CN=rsadev\\n' > rsa.txt\n";

#define REVOKED_AT 1704067200 /* 2024-01-01T00:00:00Z */

static const uint8_t nonce[OCSP_NONCE_LEN] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                              0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};

static mbedtls_x509_crt inter, dev, dev2, rsaca, rsadev;
static struct ocsp_certid id_dev, id_dev2, id_rsadev;
static int64_t now;

static char path_buf[8][512];
static int path_i;

static const char *P(const char *name)
{
    char *p = path_buf[path_i++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* Runs a shell command in the PKI directory; its exit status. */
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof(cmd), "cd '%s' && ", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static size_t slurp(const char *name, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(P(name), "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void spit(const char *name, const uint8_t *buf, size_t n)
{
    FILE *f = fopen(P(name), "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(buf, 1, n, f) == n);
        fclose(f);
    }
}

static void load(mbedtls_x509_crt *c, const char *name)
{
    mbedtls_x509_crt_init(c);
    CHECK_EQ_INT(mbedtls_x509_crt_parse_file(c, P(name)), 0);
}

/* Sends a request for id (with the test nonce unless with_nonce is 0) to `openssl ocsp` as the
 * responder of CA `ca` with database `idx`, signing as `signer` (<signer>.crt/.key) with the
 * extra options; the response's length in resp, 0 on failure. */
static size_t respond(const struct ocsp_certid *id, int with_nonce, const char *ca, const char *idx,
                      const char *signer, const char *opts, uint8_t *resp, size_t cap)
{
    uint8_t req[256];
    int n = ocsp_request_encode(id, with_nonce ? nonce : NULL, with_nonce ? sizeof(nonce) : 0, req,
                                sizeof(req));
    CHECK(n > 0);
    if (n <= 0)
        return 0;
    spit("req.der", req, (size_t)n);
    int rc = sh("rm -f resp.der && openssl ocsp -index %s -CA %s.crt -rsigner %s.crt -rkey %s.key "
                "-reqin req.der -respout resp.der %s >/dev/null 2>&1",
                idx, ca, signer, signer, opts);
    CHECK_EQ_INT(rc, 0);
    size_t len = slurp("resp.der", resp, cap);
    CHECK(len > 0 && len < cap);
    return len;
}

/* ocsp_response_verify against inter for id at `at`; the returned value, with why. */
static int verify_at(const uint8_t *r, size_t n, const struct ocsp_certid *id,
                     const mbedtls_x509_crt *issuer, const uint8_t *nc, int64_t at,
                     struct ocsp_result *res, char *why)
{
    memset(res, 0x5a, sizeof(*res));
    return ocsp_response_verify(r, n, id, issuer, nc, nc ? sizeof(nonce) : 0, at, res, why, 128);
}

static void put(uint8_t **q, const void *p, size_t n)
{
    memcpy(*q, p, n);
    *q += n;
}

static void test_request(void)
{
    struct ocsp_certid id;
    memset(&id, 0, sizeof(id));
    for (int i = 0; i < 20; i++) {
        id.name_hash[i] = (uint8_t)(0x01 + i);
        id.key_hash[i] = (uint8_t)(0x81 + i);
    }
    id.serial[0] = 0x10;
    id.serial[1] = 0x01;
    id.serial_len = 2;

    /* RFC 6960 4.1.1, DER, for that CertID and the nonce a0..af (106 bytes):
     * 30 68 OCSPRequest
     *   30 66 TBSRequest (version DEFAULT v1 and requestorName omitted)
     *     30 3f requestList
     *       30 3d Request
     *         30 3b CertID
     *           30 09 06 05 2b0e03021a 05 00   hashAlgorithm sha1 with NULL parameters
     *           04 14 01..14                     issuerNameHash
     *           04 14 81..94                     issuerKeyHash
     *           02 02 10 01                      serialNumber
     *     a2 23 [2] EXPLICIT requestExtensions
     *       30 21 Extensions
     *         30 1f Extension
     *           06 09 2b0601050507300102         id-pkix-ocsp-nonce
     *           04 12 04 10 a0..af               extnValue: OCTET STRING { OCTET STRING nonce } */
    static const uint8_t h1[] = {0x30, 0x68, 0x30, 0x66, 0x30, 0x3f, 0x30, 0x3d,
                                 0x30, 0x3b, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
    static const uint8_t h2[] = {0x04, 0x14};
    static const uint8_t h3[] = {0x02, 0x02, 0x10, 0x01, 0xa2, 0x23, 0x30, 0x21, 0x30,
                                 0x1f, 0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07,
                                 0x30, 0x01, 0x02, 0x04, 0x12, 0x04, 0x10};
    uint8_t expect[106], *q = expect;
    put(&q, h1, sizeof(h1));
    put(&q, id.name_hash, 20);
    put(&q, h2, sizeof(h2));
    put(&q, id.key_hash, 20);
    put(&q, h3, sizeof(h3));
    put(&q, nonce, sizeof(nonce));
    CHECK_EQ_INT(q - expect, 106);

    uint8_t out[300];
    CHECK_EQ_INT(ocsp_request_encode(&id, nonce, sizeof(nonce), out, sizeof(out)), 106);
    CHECK(memcmp(out, expect, sizeof(expect)) == 0);
    CHECK_EQ_INT(ocsp_request_encode(&id, nonce, sizeof(nonce), out, 106), 106);
    CHECK(memcmp(out, expect, sizeof(expect)) == 0);
    int small_ok = 1;
    for (size_t cap = 0; cap < 106; cap++)
        small_ok &= ocsp_request_encode(&id, nonce, sizeof(nonce), out, cap) == -1;
    CHECK(small_ok);
    /* Without the nonce: the same minus requestExtensions, so the outer lengths shrink by 37. */
    CHECK_EQ_INT(ocsp_request_encode(&id, NULL, 0, out, sizeof(out)), 69);
    CHECK(out[1] == 0x43 && out[3] == 0x41 && memcmp(out + 4, expect + 4, 65) == 0);
    id.serial_len = 33;
    CHECK_EQ_INT(ocsp_request_encode(&id, NULL, 0, out, sizeof(out)), -1);

    /* openssl reads ours; and for the real device, writes the same bytes as ours. */
    int n = ocsp_request_encode(&id_dev, nonce, sizeof(nonce), out, sizeof(out));
    CHECK(n > 0);
    spit("req.der", out, (size_t)n);
    CHECK_EQ_INT(sh("openssl ocsp -reqin req.der -req_text > req.txt 2>&1"), 0);
    char text[4096] = "";
    size_t tn = slurp("req.txt", (uint8_t *)text, sizeof(text) - 1);
    text[tn] = '\0';
    CHECK(strstr(text, "Hash Algorithm: sha1") != NULL);
    CHECK(strstr(text, "Serial Number: 1001") != NULL);
    CHECK(strstr(text, "OCSP Nonce") != NULL);
    CHECK(strstr(text, "0410A0A1A2A3A4A5A6A7A8A9AAABACADAEAF") != NULL);
    CHECK_EQ_INT(sh("openssl ocsp -issuer inter.crt -cert dev.crt -no_nonce -reqout ossl.der "
                    ">/dev/null 2>&1"),
                 0);
    uint8_t ossl[300];
    size_t on = slurp("ossl.der", ossl, sizeof(ossl));
    n = ocsp_request_encode(&id_dev, NULL, 0, out, sizeof(out));
    CHECK(n > 0 && on == (size_t)n && memcmp(out, ossl, on) == 0);
}

static void test_statuses(void)
{
    uint8_t r[4096];
    struct ocsp_result res;
    char why[128];
    size_t n = respond(&id_dev, 1, "inter", "index.txt", "inter", "-ndays 1", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, now, &res, why), 0);
    CHECK_EQ_INT(res.status, OCSP_GOOD);
    CHECK(res.this_update > now - 60 && res.this_update <= now + 60);
    CHECK_EQ_INT(res.next_update, res.this_update + 86400);
    CHECK_EQ_INT(res.reason, -1);
    CHECK_EQ_STR(ocsp_status_str(res.status), "good");
    CHECK_EQ_STR(why, "");

    n = respond(&id_dev2, 1, "inter", "index.txt", "inter", "-ndays 1", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_dev2, &inter, nonce, now, &res, why), 0);
    CHECK_EQ_INT(res.status, OCSP_REVOKED);
    CHECK_EQ_INT(res.revoked_at, REVOKED_AT);
    CHECK_EQ_INT(res.reason, 1); /* keyCompromise */
    CHECK_EQ_STR(ocsp_status_str(res.status), "revoked");

    struct ocsp_certid ghost = id_dev;
    ghost.serial[1] = 0x99;
    n = respond(&ghost, 1, "inter", "index.txt", "inter", "", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &ghost, &inter, nonce, now, &res, why), 0);
    CHECK_EQ_INT(res.status, OCSP_UNKNOWN);
    CHECK_EQ_INT(res.next_update, 0); /* no -ndays: nextUpdate absent */
    CHECK_EQ_STR(ocsp_status_str(res.status), "unknown");
    /* Asked about dev, checked as if for dev2: no SingleResponse for it. */
    n = respond(&id_dev, 1, "inter", "index.txt", "inter", "", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_dev2, &inter, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "no response for this certificate");
}

/* One signer case: 0 or -1 from the verification, and why. */
static int signed_by(const char *signer, const char *opts, int64_t at, char *why)
{
    uint8_t r[4096];
    struct ocsp_result res;
    size_t n = respond(&id_dev, 1, "inter", "index.txt", signer, opts, r, sizeof(r));
    int rc = verify_at(r, n, &id_dev, &inter, nonce, at, &res, why);
    if (rc == 0)
        CHECK_EQ_INT(res.status, OCSP_GOOD);
    return rc;
}

static void test_signers(void)
{
    char why[128];
    CHECK_EQ_INT(signed_by("inter", "-ndays 1", now, why), 0);
    CHECK_EQ_INT(signed_by("inter", "-ndays 1 -resp_no_certs", now, why), 0);
    CHECK_EQ_INT(signed_by("inter", "-ndays 1 -resp_key_id", now, why), 0);
    CHECK_EQ_INT(signed_by("resp", "-ndays 1", now, why), 0);
    CHECK_EQ_INT(signed_by("resp", "-ndays 1 -resp_key_id", now, why), 0);
    CHECK_EQ_INT(signed_by("resp", "-ndays 1 -resp_no_certs", now, why), -1);
    CHECK_EQ_STR(why, "responder certificate not in response");
    CHECK_EQ_INT(signed_by("noeku", "-ndays 1", now, why), -1);
    CHECK_EQ_STR(why, "responder certificate lacks the OCSPSigning extended key usage");
    CHECK_EQ_INT(signed_by("otherresp", "-ndays 1", now, why), -1);
    CHECK_EQ_STR(why, "responder certificate not issued by the CA");
    CHECK_EQ_INT(signed_by("other", "-ndays 1", now, why), -1);
    CHECK_EQ_STR(why, "responder certificate not issued by the CA");
    /* Same name as the intermediate, another key: taken for the CA, and its signature fails. */
    CHECK_EQ_INT(signed_by("impostor", "-ndays 1", now, why), -1);
    CHECK_EQ_STR(why, "bad response signature");
    CHECK_EQ_INT(signed_by("forged", "-ndays 1", now, why), -1);
    CHECK_EQ_STR(why, "responder certificate not signed by the CA");
    /* The delegated certificate is valid 30 days; the response 1000. */
    CHECK_EQ_INT(signed_by("resp", "-ndays 1000", now + 40 * 86400, why), -1);
    CHECK_EQ_STR(why, "responder certificate expired");
    CHECK_EQ_INT(signed_by("resp", "-ndays 1000", now - 86400, why), -1);
    CHECK_EQ_STR(why, "responder certificate not yet valid");
    CHECK_EQ_INT(signed_by("inter", "-ndays 1 -rmd sha1", now, why), -1);
    CHECK_EQ_STR(why, "signature hash too weak");
    CHECK_EQ_INT(signed_by("inter", "-ndays 1 -rmd sha512", now, why), 0);
}

static void test_nonce(void)
{
    uint8_t r[4096];
    struct ocsp_result res;
    char why[128];
    size_t n = respond(&id_dev, 0, "inter", "index.txt", "resp", "-ndays 1", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "no nonce in response");
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, NULL, now, &res, why), 0);

    n = respond(&id_dev, 1, "inter", "index.txt", "resp", "-ndays 1", r, sizeof(r));
    uint8_t other[OCSP_NONCE_LEN];
    memcpy(other, nonce, sizeof(other));
    other[15] ^= 1;
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, other, now, &res, why), -1);
    CHECK_EQ_STR(why, "nonce mismatch");
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, NULL, now, &res, why), 0);
    /* The raw form: extnValue's content taken as the nonce itself, here 04 10 a0..af. */
    uint8_t raw[2 + OCSP_NONCE_LEN] = {0x04, 0x10};
    memcpy(raw + 2, nonce, sizeof(nonce));
    CHECK_EQ_INT(
        ocsp_response_verify(r, n, &id_dev, &inter, raw, sizeof(raw), now, &res, why, sizeof(why)),
        0);
    CHECK_EQ_INT(ocsp_response_verify(r, n, &id_dev, &inter, raw, sizeof(raw) - 1, now, &res, why,
                                      sizeof(why)),
                 -1);
}

static void test_times(void)
{
    uint8_t r[4096];
    struct ocsp_result res, res2;
    char why[128];
    size_t n = respond(&id_dev, 1, "inter", "index.txt", "inter", "-nmin 10", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, now, &res, why), 0);
    CHECK_EQ_INT(res.next_update - res.this_update, 600);
    int64_t tu = res.this_update, nu = res.next_update;
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, tu - OCSP_SKEW_S, &res2, why), 0);
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, tu - OCSP_SKEW_S - 1, &res2, why), -1);
    CHECK_EQ_STR(why, "response not yet valid");
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, nu + OCSP_SKEW_S, &res2, why), 0);
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, nu + OCSP_SKEW_S + 1, &res2, why), -1);
    CHECK_EQ_STR(why, "response expired");
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, now + 10LL * 365 * 86400, &res2, why), -1);
    CHECK_EQ_STR(why, "response expired");
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, now - 10LL * 365 * 86400, &res2, why), -1);
    CHECK_EQ_STR(why, "response not yet valid");
}

/* Puts a DER header for len content bytes in front of the n bytes at buf. */
static void wrap(uint8_t *buf, size_t *n, uint8_t tag)
{
    uint8_t h[4] = {tag};
    size_t hn = 2, len = *n;
    if (len < 0x80) {
        h[1] = (uint8_t)len;
    } else if (len < 0x100) {
        h[1] = 0x81, h[2] = (uint8_t)len, hn = 3;
    } else {
        h[1] = 0x82, h[2] = (uint8_t)(len >> 8), h[3] = (uint8_t)len, hn = 4;
    }
    memmove(buf + hn, buf, len);
    memcpy(buf, h, hn);
    *n += hn;
}

static size_t skip_hdr(const uint8_t *p)
{
    return p[1] < 0x80 ? 2 : 2 + (p[1] & 0x7fu);
}

/* Rebuilds a response with extra appended to the BasicOCSPResponse's content, where the
 * signature does not reach: OCSPResponse { status, [0] { SEQ { oid, OCTET { SEQ { ... } } } } } */
static size_t append_inside(const uint8_t *r, uint8_t *out, const void *extra, size_t extra_n)
{
    const uint8_t *p = r + skip_hdr(r) + 3; /* the ENUMERATED status is 0a 01 00 */
    p += skip_hdr(p);                       /* [0] */
    p += skip_hdr(p);                       /* ResponseBytes */
    const uint8_t *oid = p;
    p += 2 + p[1];
    p += skip_hdr(p); /* OCTET STRING */
    size_t hn = skip_hdr(p), n = p[1] < 0x80 ? p[1] : (size_t)p[2] << 8 | p[3];
    memcpy(out, p + hn, n);
    if (extra_n)
        memcpy(out + n, extra, extra_n);
    n += extra_n;
    wrap(out, &n, 0x30);
    wrap(out, &n, 0x04);
    memmove(out + 11, out, n);
    memcpy(out, oid, 11);
    n += 11;
    wrap(out, &n, 0x30);
    wrap(out, &n, 0xa0);
    memmove(out + 3, out, n);
    memcpy(out, "\x0a\x01\x00", 3);
    n += 3;
    wrap(out, &n, 0x30);
    return n;
}

static void test_malformed(void)
{
    uint8_t r[4096], c[4096];
    struct ocsp_result res;
    char why[128];
    size_t n =
        respond(&id_dev, 1, "inter", "index.txt", "inter", "-ndays 1 -resp_no_certs", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_dev, &inter, nonce, now, &res, why), 0);
    /* Without certs the signature BIT STRING ends the response. */
    memcpy(c, r, n);
    c[n - 1] ^= 0x01;
    CHECK_EQ_INT(verify_at(c, n, &id_dev, &inter, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "bad response signature");
    /* The serial in the signed data: the signature is checked before the content is believed. */
    memcpy(c, r, n);
    uint8_t *s = memmem(c, n, "\x02\x02\x10\x01", 4);
    CHECK(s != NULL);
    if (s)
        s[3] = 0x02;
    CHECK_EQ_INT(verify_at(c, n, &id_dev, &inter, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "bad response signature");

    int all = 1;
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1); /* exact size, so ASan sees any over-read */
        memcpy(cut, r, k);
        all &= verify_at(cut, k, &id_dev, &inter, nonce, now, &res, why) == -1;
        free(cut);
    }
    CHECK(all);
    memcpy(c, r, n);
    c[n] = 0x00;
    CHECK_EQ_INT(verify_at(c, n + 1, &id_dev, &inter, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "malformed response");
    /* Rebuilt as it was, it still verifies; with a NULL after the signature it must not. */
    size_t m = append_inside(r, c, NULL, 0);
    CHECK(m == n && memcmp(c, r, n) == 0);
    m = append_inside(r, c, "\x05\x00", 2);
    CHECK_EQ_INT(m, n + 2);
    CHECK_EQ_INT(verify_at(c, m, &id_dev, &inter, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "malformed response");

    static const char *const names[] = {NULL,
                                        "responder status malformedRequest",
                                        "responder status internalError",
                                        "responder status tryLater",
                                        "responder status not successful (undefined value)",
                                        "responder status sigRequired",
                                        "responder status unauthorized"};
    for (uint8_t st = 1; st <= 6; st++) {
        uint8_t bad[] = {0x30, 0x03, 0x0a, 0x01, st};
        CHECK_EQ_INT(verify_at(bad, sizeof(bad), &id_dev, &inter, nonce, now, &res, why), -1);
        CHECK_EQ_STR(why, names[st]);
    }
    static const uint8_t ok_but_empty[] = {0x30, 0x03, 0x0a, 0x01, 0x00};
    CHECK_EQ_INT(verify_at(ok_but_empty, 5, &id_dev, &inter, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "malformed response");
    char tiny[4];
    CHECK_EQ_INT(ocsp_response_verify(ok_but_empty, 5, &id_dev, &inter, NULL, 0, now, &res, tiny,
                                      sizeof(tiny)),
                 -1);
    CHECK_EQ_STR(tiny, "mal");
    CHECK_EQ_INT(
        ocsp_response_verify(ok_but_empty, 5, &id_dev, &inter, NULL, 0, now, &res, NULL, 0), -1);
}

static void test_aia(void)
{
    char url[64];
    CHECK_EQ_INT(ocsp_aia_url(&dev, url, sizeof(url)), 0);
    CHECK_EQ_STR(url, "http://127.0.0.1:1/");
    CHECK_EQ_INT(ocsp_aia_url(&dev, url, 20), 0); /* 19 characters and the NUL */
    CHECK_EQ_INT(ocsp_aia_url(&dev, url, 19), -1);
    CHECK_EQ_INT(ocsp_aia_url(&inter, url, sizeof(url)), -1);
    CHECK_EQ_STR(url, "");
}

static void test_rsa(void)
{
    uint8_t r[8192];
    struct ocsp_result res;
    char why[128];
    size_t n = respond(&id_rsadev, 1, "rsaca", "rsa.txt", "rsaca", "-ndays 1", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_rsadev, &rsaca, nonce, now, &res, why), 0);
    CHECK_EQ_INT(res.status, OCSP_GOOD);
    n = respond(&id_rsadev, 1, "rsaca", "rsa.txt", "rsaresp", "-ndays 1 -resp_key_id", r,
                sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_rsadev, &rsaca, nonce, now, &res, why), 0);
    n = respond(&id_rsadev, 1, "rsaca", "rsa.txt", "rsaresp",
                "-ndays 1 -rsigopt rsa_padding_mode:pss -rsigopt rsa_pss_saltlen:32", r, sizeof(r));
    CHECK(memmem(r, n, "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a", 9) != NULL); /* RSASSA-PSS */
    CHECK_EQ_INT(verify_at(r, n, &id_rsadev, &rsaca, nonce, now, &res, why), 0);
    n = respond(&id_rsadev, 1, "rsaca", "rsa.txt", "weakresp", "-ndays 1", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_rsadev, &rsaca, nonce, now, &res, why), -1);
    CHECK_EQ_STR(why, "responder key too short");
    /* An RSA-signed answer checked against the EC intermediate. */
    n = respond(&id_rsadev, 1, "rsaca", "rsa.txt", "rsaca", "-ndays 1", r, sizeof(r));
    CHECK_EQ_INT(verify_at(r, n, &id_rsadev, &inter, nonce, now, &res, why), -1);
}

static void test_certid(void)
{
    struct ocsp_certid a;
    CHECK_EQ_INT(ocsp_certid_from(&dev, &inter, &a), 0);
    CHECK_EQ_INT(a.serial_len, 2);
    CHECK(a.serial[0] == 0x10 && a.serial[1] == 0x01);
    CHECK_EQ_INT(ocsp_certid_from(&dev2, &inter, &a), 0);
    CHECK(memcmp(a.name_hash, id_dev.name_hash, 20) == 0);
    CHECK(memcmp(a.key_hash, id_dev.key_hash, 20) == 0);
    CHECK_EQ_INT(ocsp_certid_from(&dev, &rsaca, &a), 0);
    CHECK(memcmp(a.key_hash, id_dev.key_hash, 20) != 0);
    mbedtls_x509_crt empty;
    mbedtls_x509_crt_init(&empty);
    CHECK_EQ_INT(ocsp_certid_from(&empty, &inter, &a), -1);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s/gen.sh", dir);
    FILE *f = fopen(cmd, "w");
    if (!f || fputs(pki_script, f) < 0 || fclose(f) != 0)
        return 1;
    if (sh("sh gen.sh >gen.log 2>&1 || { cat gen.log; exit 1; }") != 0) {
        fprintf(stderr, "PKI generation failed\n");
        return 1;
    }
    now = (int64_t)time(NULL);
    load(&inter, "inter.crt");
    load(&dev, "dev.crt");
    load(&dev2, "dev2.crt");
    load(&rsaca, "rsaca.crt");
    load(&rsadev, "rsadev.crt");
    CHECK_EQ_INT(ocsp_certid_from(&dev, &inter, &id_dev), 0);
    CHECK_EQ_INT(ocsp_certid_from(&dev2, &inter, &id_dev2), 0);
    CHECK_EQ_INT(ocsp_certid_from(&rsadev, &rsaca, &id_rsadev), 0);
    test_certid();
    test_request();
    test_statuses();
    test_signers();
    test_nonce();
    test_times();
    test_malformed();
    test_aia();
    test_rsa();
    mbedtls_x509_crt_free(&inter);
    mbedtls_x509_crt_free(&dev);
    mbedtls_x509_crt_free(&dev2);
    mbedtls_x509_crt_free(&rsaca);
    mbedtls_x509_crt_free(&rsadev);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_finish("ocsp_codec_test");
}
