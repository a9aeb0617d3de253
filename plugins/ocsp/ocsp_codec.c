/* ocsp_codec: RFC 6960 request encoding and response verification with Mbed TLS 2.28 public
 * (and exported internal x509) calls. Mbed TLS's ASN.1 readers take `unsigned char **` although
 * they never write through it, and its verify calls take non-const key contexts although they do
 * not modify the key, hence the const casts at those calls.
 *
 * The whole response is parsed strictly before any signature is checked, so that a fuzzer reaches
 * every parser without having to forge a signature; the status, CertID match, nonce and times are
 * only looked at once the signature over them has been verified. */
#include "ocsp_codec.h"

#include "mbedx.h"

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform.h>
#include <mbedtls/sha1.h>
#include <mbedtls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define T_SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define T_EXPL(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))
#define T_IMPL(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | (n))

#define OID_AD_OCSP MBEDTLS_OID_PKIX "\x30\x01" /* 1.3.6.1.5.5.7.48.1, also id-pkix-ocsp */
#define OID_OCSP_BASIC OID_AD_OCSP "\x01"       /* 1.3.6.1.5.5.7.48.1.1 */
#define OID_OCSP_NONCE OID_AD_OCSP "\x02"       /* 1.3.6.1.5.5.7.48.1.2 */
#define OID_PE_AIA MBEDTLS_OID_PKIX "\x01\x01"  /* 1.3.6.1.5.5.7.1.1 */
#define OID_IS(p, len, oid) ((len) == MBEDTLS_OID_SIZE(oid) && memcmp((p), (oid), (len)) == 0)

/* Bounds CPU and memory spent on certificates an attacker can stuff into a response. */
#define MAX_CERTS 8

struct basic {
    unsigned char *tbs; /* ResponseData with its tag and length: what the signature covers */
    size_t tbs_len;
    int rid_by_key; /* responderID: byKey (SHA-1 key hash) or byName (DER Name) */
    unsigned char *rid;
    size_t rid_len;
    int matched; /* a SingleResponse for the requested CertID was found; res/has_next are its */
    struct ocsp_result res;
    int has_next;
    unsigned char *nonce; /* extnValue content of the nonce extension, NULL when absent */
    size_t nonce_len;
    mbedtls_x509_buf sig_oid, sig_params, sig;
    unsigned char *certs, *certs_end; /* content of the certs SEQUENCE, NULL when absent */
};

static void say(char *why, size_t why_len, const char *msg)
{
    if (why && why_len)
        snprintf(why, why_len, "%s", msg);
}

/* Reads a header of the expected tag; *e becomes the end of its content. */
static int enter(unsigned char **p, const unsigned char *end, int tag, unsigned char **e)
{
    size_t len;
    if (mbedtls_asn1_get_tag(p, end, &len, tag) != 0)
        return -1;
    *e = *p + len;
    return 0;
}

/* Skips one element of any low-number tag. */
static int skip_tlv(unsigned char **p, const unsigned char *end)
{
    size_t len;
    if (*p >= end || (**p & 0x1f) == 0x1f)
        return -1;
    (*p)++;
    if (mbedtls_asn1_get_len(p, end, &len) != 0)
        return -1;
    *p += len;
    return 0;
}

static int64_t unix_time(const mbedtls_x509_time *t)
{
    return mbedx_time_unix(t);
}

/* OCSP times are GeneralizedTime only (mbedtls_x509_get_time would also take UTCTime). */
static int get_gentime(unsigned char **p, const unsigned char *end, int64_t *out)
{
    return mbedx_get_gentime(p, end, out);
}

/* SHA-1 of the subjectPublicKey BIT STRING value (unused-bits octet excluded, as openssl does). */
static int key_hash(const mbedtls_x509_crt *c, uint8_t out[20])
{
    unsigned char *p = c->pk_raw.p, *end, *alg_end;
    mbedtls_asn1_bitstring bs;
    if (!p || enter(&p, p + c->pk_raw.len, T_SEQ, &end) != 0 ||
        enter(&p, end, T_SEQ, &alg_end) != 0)
        return -1;
    p = alg_end;
    if (mbedtls_asn1_get_bitstring(&p, end, &bs) != 0 || bs.unused_bits != 0)
        return -1;
    return mbedtls_sha1(bs.p, bs.len, out) == 0 ? 0 : -1;
}

int ocsp_certid_from(const mbedtls_x509_crt *leaf, const mbedtls_x509_crt *issuer,
                     struct ocsp_certid *out)
{
    if (!leaf || !issuer || !out || !leaf->issuer_raw.p || leaf->serial.len == 0 ||
        leaf->serial.len > sizeof(out->serial))
        return -1;
    memset(out, 0, sizeof(*out));
    if (mbedtls_sha1(leaf->issuer_raw.p, leaf->issuer_raw.len, out->name_hash) != 0 ||
        key_hash(issuer, out->key_hash) != 0)
        return -1;
    memcpy(out->serial, leaf->serial.p, leaf->serial.len);
    out->serial_len = leaf->serial.len;
    return 0;
}

/* Prepends the header of a content of len bytes already written at *p. */
static int wrap(unsigned char **p, unsigned char *start, size_t len, unsigned char tag)
{
    int a = mbedtls_asn1_write_len(p, start, len);
    int b = a < 0 ? a : mbedtls_asn1_write_tag(p, start, tag);
    return b < 0 ? b : a + b;
}

#define PUT(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) < 0)                                                                            \
            return -1;                                                                             \
    } while (0)

int ocsp_request_encode(const struct ocsp_certid *id, const uint8_t *nonce, size_t nonce_len,
                        uint8_t *out, size_t cap)
{
    if (!id || !out || id->serial_len == 0 || id->serial_len > sizeof(id->serial) ||
        cap > (size_t)0x7fffffff)
        return -1;
    /* Mbed TLS writes DER backwards from the end of the buffer; moved to the front at the end. */
    unsigned char *end = out + cap, *p = end, *list_end;
    if (nonce && nonce_len) {
        PUT(mbedtls_asn1_write_octet_string(&p, out, nonce, nonce_len));
        PUT(wrap(&p, out, (size_t)(end - p), MBEDTLS_ASN1_OCTET_STRING)); /* extnValue */
        PUT(mbedtls_asn1_write_oid(&p, out, OID_OCSP_NONCE, MBEDTLS_OID_SIZE(OID_OCSP_NONCE)));
        PUT(wrap(&p, out, (size_t)(end - p), T_SEQ));     /* Extension */
        PUT(wrap(&p, out, (size_t)(end - p), T_SEQ));     /* Extensions */
        PUT(wrap(&p, out, (size_t)(end - p), T_EXPL(2))); /* requestExtensions */
    }
    list_end = p;
    PUT(mbedtls_asn1_write_raw_buffer(&p, out, id->serial, id->serial_len));
    PUT(wrap(&p, out, id->serial_len, MBEDTLS_ASN1_INTEGER));
    PUT(mbedtls_asn1_write_octet_string(&p, out, id->key_hash, sizeof(id->key_hash)));
    PUT(mbedtls_asn1_write_octet_string(&p, out, id->name_hash, sizeof(id->name_hash)));
    /* par_len 0 writes the NULL parameters openssl writes too. */
    PUT(mbedtls_asn1_write_algorithm_identifier(&p, out, MBEDTLS_OID_DIGEST_ALG_SHA1,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_DIGEST_ALG_SHA1), 0));
    PUT(wrap(&p, out, (size_t)(list_end - p), T_SEQ)); /* CertID */
    PUT(wrap(&p, out, (size_t)(list_end - p), T_SEQ)); /* Request */
    PUT(wrap(&p, out, (size_t)(list_end - p), T_SEQ)); /* requestList */
    PUT(wrap(&p, out, (size_t)(end - p), T_SEQ));      /* TBSRequest */
    PUT(wrap(&p, out, (size_t)(end - p), T_SEQ));      /* OCSPRequest */
    size_t n = (size_t)(end - p);
    memmove(out, p, n);
    return (int)n;
}

/* One SingleResponse's content [p, end); *match tells whether its CertID is id. */
static int parse_single(unsigned char *p, const unsigned char *end, const struct ocsp_certid *id,
                        struct ocsp_result *r, int *has_next, int *match)
{
    unsigned char *cid_end, *alg_end, *e;
    size_t len;
    int m;
    if (enter(&p, end, T_SEQ, &cid_end) != 0 || enter(&p, cid_end, T_SEQ, &alg_end) != 0 ||
        mbedtls_asn1_get_tag(&p, alg_end, &len, MBEDTLS_ASN1_OID) != 0)
        return -1;
    m = OID_IS(p, len, MBEDTLS_OID_DIGEST_ALG_SHA1);
    p += len;
    if (p < alg_end) { /* SHA-1's parameters, when present, are NULL */
        m = m && alg_end - p == 2 && p[0] == MBEDTLS_ASN1_NULL && p[1] == 0;
        if (skip_tlv(&p, alg_end) != 0)
            return -1;
    }
    if (p != alg_end || mbedtls_asn1_get_tag(&p, cid_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
        return -1;
    m = m && len == sizeof(id->name_hash) && memcmp(p, id->name_hash, len) == 0;
    p += len;
    if (mbedtls_asn1_get_tag(&p, cid_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
        return -1;
    m = m && len == sizeof(id->key_hash) && memcmp(p, id->key_hash, len) == 0;
    p += len;
    if (mbedtls_asn1_get_tag(&p, cid_end, &len, MBEDTLS_ASN1_INTEGER) != 0 || len == 0)
        return -1;
    m = m && len == id->serial_len && memcmp(p, id->serial, len) == 0;
    p += len;
    if (p != cid_end || p >= end)
        return -1;

    memset(r, 0, sizeof(*r));
    r->reason = -1;
    if (*p == T_IMPL(0) || *p == T_IMPL(2)) { /* good / unknown: IMPLICIT NULL */
        r->status = *p == T_IMPL(0) ? OCSP_GOOD : OCSP_UNKNOWN;
        if (mbedtls_asn1_get_tag(&p, end, &len, *p) != 0 || len != 0)
            return -1;
    } else if (*p == T_EXPL(1)) { /* revoked: IMPLICIT RevokedInfo, a SEQUENCE */
        r->status = OCSP_REVOKED;
        if (enter(&p, end, T_EXPL(1), &e) != 0 || get_gentime(&p, e, &r->revoked_at) != 0)
            return -1;
        if (p < e) {
            unsigned char *re;
            if (enter(&p, e, T_EXPL(0), &re) != 0 || mbedtls_asn1_get_enum(&p, re, &r->reason) ||
                p != re || r->reason < 0 || r->reason > 10 || r->reason == 7)
                return -1;
        }
        if (p != e)
            return -1;
    } else {
        return -1;
    }
    if (get_gentime(&p, end, &r->this_update) != 0)
        return -1;
    *has_next = 0;
    if (p < end && *p == T_EXPL(0)) {
        if (enter(&p, end, T_EXPL(0), &e) != 0 || get_gentime(&p, e, &r->next_update) != 0 ||
            p != e || r->next_update < r->this_update)
            return -1;
        *has_next = 1;
    }
    if (p < end && *p == T_EXPL(1)) { /* singleExtensions: none understood, none required */
        if (enter(&p, end, T_EXPL(1), &e) != 0 || enter(&p, e, T_SEQ, &alg_end) != 0 ||
            alg_end != e)
            return -1;
        p = e;
    }
    *match = m;
    return p == end ? 0 : -1;
}

/* responseExtensions' content [p, end): remembers the nonce, refuses it twice. */
static int parse_exts(unsigned char *p, const unsigned char *end, struct basic *b)
{
    unsigned char *e, *xe;
    size_t len;
    int crit;
    if (enter(&p, end, T_SEQ, &e) != 0 || e != end || p == e)
        return -1;
    while (p < e) {
        if (enter(&p, e, T_SEQ, &xe) != 0 ||
            mbedtls_asn1_get_tag(&p, xe, &len, MBEDTLS_ASN1_OID) != 0)
            return -1;
        int is_nonce = OID_IS(p, len, OID_OCSP_NONCE);
        p += len;
        if (p < xe && *p == MBEDTLS_ASN1_BOOLEAN && mbedtls_asn1_get_bool(&p, xe, &crit) != 0)
            return -1;
        if (mbedtls_asn1_get_tag(&p, xe, &len, MBEDTLS_ASN1_OCTET_STRING) != 0 || p + len != xe)
            return -1;
        if (is_nonce) {
            if (b->nonce)
                return -1;
            b->nonce = p;
            b->nonce_len = len;
        }
        p = xe;
    }
    return 0;
}

/* ResponseData's content [p, end). */
static int parse_tbs(unsigned char *p, const unsigned char *end, const struct ocsp_certid *id,
                     struct basic *b)
{
    unsigned char *e, *ie;
    int64_t produced_at;
    if (p < end && *p == T_EXPL(0)) {
        int v;
        if (enter(&p, end, T_EXPL(0), &e) != 0 || mbedtls_asn1_get_int(&p, e, &v) != 0 || p != e ||
            v != 0)
            return -1;
    }
    if (p < end && *p == T_EXPL(1)) { /* byName: the Name with its header, as in subject_raw */
        if (enter(&p, end, T_EXPL(1), &e) != 0)
            return -1;
        b->rid = p;
        if (enter(&p, e, T_SEQ, &ie) != 0 || ie != e)
            return -1;
        b->rid_len = (size_t)(e - b->rid);
    } else if (p < end && *p == T_EXPL(2)) {
        size_t len;
        if (enter(&p, end, T_EXPL(2), &e) != 0 ||
            mbedtls_asn1_get_tag(&p, e, &len, MBEDTLS_ASN1_OCTET_STRING) != 0 || len != 20 ||
            p + len != e)
            return -1;
        b->rid_by_key = 1;
        b->rid = p;
        b->rid_len = len;
    } else {
        return -1;
    }
    p = e;
    if (get_gentime(&p, end, &produced_at) != 0 || enter(&p, end, T_SEQ, &e) != 0)
        return -1;
    while (p < e) {
        struct ocsp_result r;
        int match = 0, has_next = 0;
        if (enter(&p, e, T_SEQ, &ie) != 0 || parse_single(p, ie, id, &r, &has_next, &match) != 0)
            return -1;
        if (match && !b->matched) { /* the first one counts, as with openssl */
            b->matched = 1;
            b->res = r;
            b->has_next = has_next;
        }
        p = ie;
    }
    if (p < end && *p == T_EXPL(1)) {
        if (enter(&p, end, T_EXPL(1), &e) != 0 || parse_exts(p, e, b) != 0)
            return -1;
        p = e;
    }
    return p == end ? 0 : -1;
}

/* OCSPResponse down to the end of BasicOCSPResponse. Returns 0, -1 when malformed, or the
 * responseStatus when it is not successful. */
static int parse_response(unsigned char *p, const unsigned char *end, const struct ocsp_certid *id,
                          struct basic *b)
{
    unsigned char *e, *be, *te;
    size_t len;
    int status;
    if (enter(&p, end, T_SEQ, &e) != 0 || e != end || mbedtls_asn1_get_enum(&p, e, &status) != 0)
        return -1;
    if (status != 0)
        return status > 0 ? status : -1;
    if (enter(&p, end, T_EXPL(0), &e) != 0 || e != end || enter(&p, end, T_SEQ, &e) != 0 ||
        e != end || mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_OID) != 0 ||
        !OID_IS(p, len, OID_OCSP_BASIC))
        return -1;
    p += len;
    if (enter(&p, end, MBEDTLS_ASN1_OCTET_STRING, &e) != 0 || e != end ||
        enter(&p, end, T_SEQ, &be) != 0 || be != end)
        return -1;
    b->tbs = p;
    if (enter(&p, be, T_SEQ, &te) != 0)
        return -1;
    b->tbs_len = (size_t)(te - b->tbs);
    if (parse_tbs(p, te, id, b) != 0)
        return -1;
    p = te;
    size_t sig_len;
    if (mbedtls_asn1_get_alg(&p, be, &b->sig_oid, &b->sig_params) != 0 ||
        mbedtls_asn1_get_bitstring_null(&p, be, &sig_len) != 0)
        return -1;
    b->sig.p = p;
    b->sig.len = sig_len;
    p += sig_len;
    if (p < be) {
        if (enter(&p, be, T_EXPL(0), &e) != 0 || enter(&p, e, T_SEQ, &te) != 0 || te != e)
            return -1;
        b->certs = p;
        b->certs_end = e;
        while (p < e) { /* each a SEQUENCE; their content is Mbed TLS's to judge */
            if (enter(&p, e, T_SEQ, &te) != 0)
                return -1;
            p = te;
        }
    }
    return p == be ? 0 : -1;
}

/* SHA-1 is refused: chosen-prefix collisions make a SHA-1 signature forgeable. */
static int strong_md(mbedtls_md_type_t md)
{
    return md == MBEDTLS_MD_SHA224 || md == MBEDTLS_MD_SHA256 || md == MBEDTLS_MD_SHA384 ||
           md == MBEDTLS_MD_SHA512;
}

static int check_sig(const struct mbedx_sig_alg *alg, const mbedtls_x509_crt *signer,
                     const unsigned char *data, size_t len, const unsigned char *sig,
                     size_t sig_len)
{
    if (!strong_md(alg->md))
        return -1;
    return mbedx_verify(alg, &signer->pk, data, len, sig, sig_len);
}

static int rid_matches(const struct basic *b, const mbedtls_x509_crt *c)
{
    uint8_t h[20];
    if (b->rid_by_key)
        return key_hash(c, h) == 0 && memcmp(h, b->rid, sizeof(h)) == 0;
    return c->subject_raw.p && c->subject_raw.len == b->rid_len &&
           memcmp(c->subject_raw.p, b->rid, b->rid_len) == 0;
}

/* Why the certificate r may not answer for issuer's certificates (RFC 6960 4.2.2.2), or NULL.
 * The signature is checked directly rather than with mbedtls_x509_crt_verify, which would judge
 * validity by the system clock instead of now. */
static const char *delegate_refusal(const mbedtls_x509_crt *r, const mbedtls_x509_crt *issuer,
                                    int64_t now)
{
    const mbedtls_x509_sequence *u = NULL;
    if (r->issuer_raw.len != issuer->subject_raw.len ||
        memcmp(r->issuer_raw.p, issuer->subject_raw.p, r->issuer_raw.len) != 0)
        return "responder certificate not issued by the CA";
    struct mbedx_sig_alg alg;
    const unsigned char *sig;
    size_t sig_len;
    if (mbedx_signed(&r->raw, &r->tbs, &alg, &sig, &sig_len) != 0 ||
        check_sig(&alg, issuer, r->tbs.p, r->tbs.len, sig, sig_len) != 0)
        return "responder certificate not signed by the CA";
    /* The floor of Mbed TLS's default verification profile; the CA's own key is the caller's. */
    if (mbedtls_pk_get_type(&r->pk) == MBEDTLS_PK_RSA && mbedtls_pk_get_bitlen(&r->pk) < 2048)
        return "responder key too short";
    if (unix_time(&r->valid_from) > now)
        return "responder certificate not yet valid";
    if (unix_time(&r->valid_to) < now)
        return "responder certificate expired";
    /* Mbed TLS treats a missing EKU as "any"; a delegated responder must say OCSPSigning, and
     * anyExtendedKeyUsage does not count either. */
    bool has_eku = mbedx_has_ext(r, MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE);
    if (has_eku)
        for (u = &r->ext_key_usage; u; u = u->next)
            if (OID_IS(u->buf.p, u->buf.len, MBEDTLS_OID_OCSP_SIGNING))
                break;
    if (!has_eku || !u)
        return "responder certificate lacks the OCSPSigning extended key usage";
    if (mbedtls_x509_crt_check_key_usage(r, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0)
        return "responder certificate key usage forbids signing";
    return NULL;
}

/* The nonce as openssl sends it (an OCTET STRING inside extnValue) or raw in extnValue. */
static int nonce_eq(unsigned char *v, size_t vlen, const uint8_t *n, size_t nlen)
{
    unsigned char *p = v;
    size_t len;
    if (mbedtls_asn1_get_tag(&p, v + vlen, &len, MBEDTLS_ASN1_OCTET_STRING) == 0 &&
        p + len == v + vlen && len == nlen && memcmp(p, n, nlen) == 0)
        return 1;
    return vlen == nlen && memcmp(v, n, nlen) == 0;
}

static const char *status_refusal(int status)
{
    switch (status) {
    case 1:
        return "responder status malformedRequest";
    case 2:
        return "responder status internalError";
    case 3:
        return "responder status tryLater";
    case 5:
        return "responder status sigRequired";
    case 6:
        return "responder status unauthorized";
    default:
        return "responder status not successful (undefined value)";
    }
}

int ocsp_response_verify(const uint8_t *der, size_t len, const struct ocsp_certid *id,
                         const mbedtls_x509_crt *issuer, const uint8_t *nonce, size_t nonce_len,
                         int64_t now, struct ocsp_result *res, char *why, size_t why_len)
{
    struct basic b;
    mbedtls_x509_crt certs;
    const mbedtls_x509_crt *signer = NULL, *c;
    struct mbedx_sig_alg alg;
    const char *err = NULL;
    int n = 0;

    say(why, why_len, "");
    if (!der || !id || !issuer || !res) {
        say(why, why_len, "bad arguments");
        return -1;
    }
    memset(&b, 0, sizeof(b));
    mbedtls_x509_crt_init(&certs);
    int st = parse_response((unsigned char *)der, der + len, id, &b);
    if (st != 0) {
        say(why, why_len, st < 0 ? "malformed response" : status_refusal(st));
        return -1;
    }
    if (mbedx_sig_alg(&b.sig_oid, &b.sig_params, &alg) != 0) {
        err = "unsupported signature algorithm";
        goto out;
    }
    if (!strong_md(alg.md)) {
        err = "signature hash too weak";
        goto out;
    }
    /* Certificates Mbed TLS cannot parse cannot be the signer, so they are merely skipped. */
    for (unsigned char *p = b.certs, *e; p && p < b.certs_end && n < MAX_CERTS; p = e, n++) {
        unsigned char *start = p;
        if (enter(&p, b.certs_end, T_SEQ, &e) != 0)
            break;
        (void)mbedtls_x509_crt_parse_der(&certs, start, (size_t)(e - start));
    }
    if (rid_matches(&b, issuer)) {
        signer = issuer;
    } else {
        err = "responder certificate not in response";
        for (c = &certs; c && c->raw.p && !signer; c = c->next)
            if (rid_matches(&b, c) && !(err = delegate_refusal(c, issuer, now)))
                signer = c;
        if (!signer)
            goto out;
        err = NULL;
    }
    if (check_sig(&alg, signer, b.tbs, b.tbs_len, b.sig.p, b.sig.len) != 0)
        err = "bad response signature";
    else if (!b.matched)
        err = "no response for this certificate";
    else if (nonce && nonce_len && !b.nonce)
        err = "no nonce in response";
    else if (nonce && nonce_len && !nonce_eq(b.nonce, b.nonce_len, nonce, nonce_len))
        err = "nonce mismatch";
    else if (b.res.this_update - OCSP_SKEW_S > now)
        err = "response not yet valid";
    else if (b.has_next && b.res.next_update + OCSP_SKEW_S < now)
        err = "response expired";
out:
    mbedtls_x509_crt_free(&certs);
    if (err) {
        say(why, why_len, err);
        return -1;
    }
    *res = b.res;
    if (!b.has_next)
        res->next_update = 0;
    return 0;
}

int ocsp_aia_url(const mbedtls_x509_crt *crt, char *out, size_t cap)
{
    unsigned char *p, *end, *xe, *ae, *de;
    size_t len;
    int crit;
    if (!crt || !out || !cap)
        return -1;
    out[0] = '\0';
    p = crt->v3_ext.p; /* the Extensions SEQUENCE, inside the [3] wrapper */
    if (!p || !crt->v3_ext.len || enter(&p, p + crt->v3_ext.len, T_SEQ, &end) != 0)
        return -1;
    while (p < end) {
        if (enter(&p, end, T_SEQ, &xe) != 0 ||
            mbedtls_asn1_get_tag(&p, xe, &len, MBEDTLS_ASN1_OID) != 0)
            return -1;
        int is_aia = OID_IS(p, len, OID_PE_AIA);
        p += len;
        if (p < xe && *p == MBEDTLS_ASN1_BOOLEAN && mbedtls_asn1_get_bool(&p, xe, &crit) != 0)
            return -1;
        if (mbedtls_asn1_get_tag(&p, xe, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return -1;
        if (!is_aia) {
            p = xe;
            continue;
        }
        if (enter(&p, p + len, T_SEQ, &ae) != 0)
            return -1;
        while (p < ae) { /* AccessDescription ::= SEQUENCE { accessMethod, accessLocation } */
            if (enter(&p, ae, T_SEQ, &de) != 0 ||
                mbedtls_asn1_get_tag(&p, de, &len, MBEDTLS_ASN1_OID) != 0)
                return -1;
            int is_ocsp = OID_IS(p, len, OID_AD_OCSP);
            p += len;
            if (p >= de)
                return -1;
            if (is_ocsp && *p == T_IMPL(6)) {
                if (mbedtls_asn1_get_tag(&p, de, &len, T_IMPL(6)) != 0 || len == 0 || len >= cap)
                    return -1;
                /* The URL goes into an HTTP request line: control bytes would smuggle headers. */
                for (size_t i = 0; i < len; i++)
                    if (p[i] <= 0x20 || p[i] >= 0x7f)
                        return -1;
                memcpy(out, p, len);
                out[len] = '\0';
                return 0;
            }
            p = de;
        }
        return -1;
    }
    return -1;
}

const char *ocsp_status_str(enum ocsp_status s)
{
    switch (s) {
    case OCSP_GOOD:
        return "good";
    case OCSP_REVOKED:
        return "revoked";
    case OCSP_UNKNOWN:
        return "unknown";
    }
    return "?";
}
