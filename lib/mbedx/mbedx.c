/* mbedx: see mbedx.h. Public Mbed TLS API only, 2.28 and 3.6 alike. */
#include "mbedx.h"

#include <mbedtls/oid.h>
#include <string.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <mbedtls/psa_util.h>
#include <psa/crypto.h>
#endif

int mbedx_crypto_init(void)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
#else
    return 0;
#endif
}

void mbedx_crypto_free(void)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    mbedtls_psa_crypto_free();
#endif
}

int mbedx_pk_parse_keyfile(mbedtls_pk_context *key, const char *path)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    if (mbedx_crypto_init() != 0)
        return -1;
    return mbedtls_pk_parse_keyfile(key, path, NULL, mbedtls_psa_get_random,
                                    MBEDTLS_PSA_RANDOM_STATE);
#else
    return mbedtls_pk_parse_keyfile(key, path, NULL);
#endif
}

#define T_SEQ (MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)
#define T_CTX(n) (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | (n))

/* RFC 4055: RSASSA-PSS-params ::= SEQUENCE { [0] hashAlgorithm DEFAULT sha1, [1]
 * maskGenAlgorithm DEFAULT mgf1SHA1, [2] saltLength DEFAULT 20, [3] trailerField DEFAULT 1 }. */
static int pss_params(const mbedtls_asn1_buf *params, struct mbedx_sig_alg *out)
{
    mbedtls_md_type_t md = MBEDTLS_MD_SHA1, mgf_md = MBEDTLS_MD_SHA1;
    int salt = 20;
    if (params->tag != T_SEQ)
        return -1;
    unsigned char *p = params->p, *end = p + params->len, *e;
    size_t len;
    mbedtls_asn1_buf oid, inner;
    if (p < end && *p == T_CTX(0)) { /* hashAlgorithm */
        if (mbedtls_asn1_get_tag(&p, end, &len, T_CTX(0)) != 0)
            return -1;
        e = p + len;
        if (mbedtls_asn1_get_alg_null(&p, e, &oid) != 0 || p != e ||
            mbedtls_oid_get_md_alg(&oid, &md) != 0)
            return -1;
    }
    if (p < end && *p == T_CTX(1)) { /* maskGenAlgorithm: mgf1 with a hash */
        if (mbedtls_asn1_get_tag(&p, end, &len, T_CTX(1)) != 0)
            return -1;
        e = p + len;
        if (mbedtls_asn1_get_alg(&p, e, &oid, &inner) != 0 || p != e ||
            MBEDTLS_OID_CMP(MBEDTLS_OID_MGF1, &oid) != 0 || inner.tag != T_SEQ)
            return -1;
        /* inner is the content of MGF1's parameter, itself an AlgorithmIdentifier. */
        unsigned char *q = inner.p, *qend = inner.p + inner.len;
        mbedtls_asn1_buf hoid = {.tag = MBEDTLS_ASN1_OID};
        if (mbedtls_asn1_get_tag(&q, qend, &hoid.len, MBEDTLS_ASN1_OID) != 0)
            return -1;
        hoid.p = q;
        q += hoid.len;
        size_t nlen;
        if (q < qend && (mbedtls_asn1_get_tag(&q, qend, &nlen, MBEDTLS_ASN1_NULL) != 0 || nlen))
            return -1;
        if (q != qend || mbedtls_oid_get_md_alg(&hoid, &mgf_md) != 0)
            return -1;
    }
    if (p < end && *p == T_CTX(2)) { /* saltLength */
        if (mbedtls_asn1_get_tag(&p, end, &len, T_CTX(2)) != 0)
            return -1;
        e = p + len;
        if (mbedtls_asn1_get_int(&p, e, &salt) != 0 || p != e || salt < 0)
            return -1;
    }
    if (p < end && *p == T_CTX(3)) { /* trailerField: 1 (0xBC) is the only one defined */
        int t;
        if (mbedtls_asn1_get_tag(&p, end, &len, T_CTX(3)) != 0)
            return -1;
        e = p + len;
        if (mbedtls_asn1_get_int(&p, e, &t) != 0 || p != e || t != 1)
            return -1;
    }
    if (p != end || md != mgf_md) /* Mbed TLS verifies with one hash for both */
        return -1;
    out->md = md;
    out->pss.mgf1_hash_id = mgf_md;
    out->pss.expected_salt_len = salt;
    out->opts = &out->pss;
    return 0;
}

int mbedx_sig_alg(const mbedtls_asn1_buf *oid, const mbedtls_asn1_buf *params,
                  struct mbedx_sig_alg *out)
{
    memset(out, 0, sizeof(*out));
    if (mbedtls_oid_get_sig_alg(oid, &out->md, &out->pk) != 0)
        return -1;
    if (out->pk == MBEDTLS_PK_RSASSA_PSS)
        return pss_params(params, out);
    /* Other algorithms: parameters absent or NULL. */
    if (params && ((params->tag != MBEDTLS_ASN1_NULL && params->tag != 0) || params->len != 0))
        return -1;
    return 0;
}

int mbedx_signed(const mbedtls_x509_buf *raw, const mbedtls_x509_buf *tbs,
                 struct mbedx_sig_alg *alg, const unsigned char **sig, size_t *sig_len)
{
    if (!raw->p || !tbs->p || tbs->p < raw->p || tbs->p + tbs->len > raw->p + raw->len)
        return -1;
    unsigned char *p = tbs->p + tbs->len, *end = raw->p + raw->len;
    mbedtls_asn1_buf oid, params;
    size_t len;
    if (mbedtls_asn1_get_alg(&p, end, &oid, &params) != 0 || mbedx_sig_alg(&oid, &params, alg) ||
        mbedtls_asn1_get_bitstring_null(&p, end, &len) != 0)
        return -1;
    *sig = p;
    *sig_len = len;
    return 0;
}

int mbedx_verify(const struct mbedx_sig_alg *alg, const mbedtls_pk_context *signer,
                 const unsigned char *data, size_t len, const unsigned char *sig, size_t sig_len)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    const mbedtls_md_info_t *mi = mbedtls_md_info_from_type(alg->md);
    /* Under MBEDTLS_USE_PSA_CRYPTO the verification runs on PSA, which must be initialised in
     * this copy of the library: a plugin (the OCSP one) links its own. Idempotent and cheap. */
    if (!mi || mbedx_crypto_init() != 0 || mbedtls_md(mi, data, len, hash) != 0)
        return -1;
    return mbedtls_pk_verify_ext(alg->pk, alg->opts, (mbedtls_pk_context *)signer, alg->md, hash,
                                 mbedtls_md_get_size(mi), sig, sig_len) == 0
               ? 0
               : -1;
}

int mbedx_crl_signed_by(const mbedtls_x509_crl *crl, const mbedtls_x509_crt *ca)
{
    struct mbedx_sig_alg alg;
    const unsigned char *sig;
    size_t sig_len;
    if (mbedx_signed(&crl->raw, &crl->tbs, &alg, &sig, &sig_len) != 0)
        return -1;
    return mbedx_verify(&alg, &ca->pk, crl->tbs.p, crl->tbs.len, sig, sig_len);
}

static int digits(const unsigned char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t mbedx_time_unix(const mbedtls_x509_time *t)
{
    return days_from_civil(t->year, t->mon, t->day) * 86400 + t->hour * 3600 + t->min * 60 + t->sec;
}

int mbedx_get_gentime(unsigned char **p, const unsigned char *end, int64_t *out)
{
    size_t len;
    if (mbedtls_asn1_get_tag(p, end, &len, MBEDTLS_ASN1_GENERALIZED_TIME) != 0)
        return -1;
    const unsigned char *s = *p;
    if (len != 14 && !(len == 15 && s[14] == 'Z'))
        return -1;
    int y = digits(s, 4), mo = digits(s + 4, 2), d = digits(s + 6, 2), h = digits(s + 8, 2),
        mi = digits(s + 10, 2), se = digits(s + 12, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 59)
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    *p += len;
    return 0;
}

int mbedx_has_ext(const mbedtls_x509_crt *crt, int ext_type)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    return mbedtls_x509_crt_has_ext_type(crt, ext_type);
#else
    return (crt->ext_types & ext_type) != 0;
#endif
}
