/* tls_verify: who may connect. Runs inside Mbed TLS's chain verification (once per chain
 * element, root first), turns its flags into one refusal reason with a detailed message, adds
 * the checks Mbed TLS does not make (EKU must exist to be checked, CRL required per CA, identity
 * rules, chain length), and records what later re-checks need (issuer hash + serial per
 * certificate). Knows no loop, socket or MQTT. */
#include "tls_verify.h"
#include "utf8.h"

#include "mbedx.h"

#include "log.h"
#include "xmalloc.h"

#include <uthash.h>

#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t tls__unix_time(const mbedtls_x509_time *t)
{
    struct tm tm = {0};
    tm.tm_year = t->year - 1900;
    tm.tm_mon = t->mon - 1;
    tm.tm_mday = t->day;
    tm.tm_hour = t->hour;
    tm.tm_min = t->min;
    tm.tm_sec = t->sec;
    return (int64_t)timegm(&tm);
}

static bool self_signed(const mbedtls_x509_crt *c)
{
    return c->issuer_raw.len == c->subject_raw.len &&
           memcmp(c->issuer_raw.p, c->subject_raw.p, c->issuer_raw.len) == 0;
}

static bool same_name(const mbedtls_x509_buf *a, const mbedtls_x509_buf *b)
{
    return a->len == b->len && memcmp(a->p, b->p, a->len) == 0;
}

/* ---- identity ----------------------------------------------------------------------------- */

bool tls_identity_valid(const uint8_t *p, size_t len, const char **why)
{
    if (len == 0) {
        *why = "empty";
        return false;
    }
    if (len > TLS_IDENTITY_MAX) {
        *why = "longer than 256 bytes";
        return false;
    }
    if (!utf8_valid(p, len, true)) { /* NUL is refused below, with the controls */
        *why = "not valid UTF-8";
        return false;
    }
    /* "victim " is not "victim", but reads the same in every log line and ACL listing. */
    if (p[0] == ' ' || p[len - 1] == ' ') {
        *why = "begins or ends with a space";
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        /* C0 controls, DEL, and the C1 controls U+0080..U+009F (UTF-8 C2 80..C2 9F). */
        if (p[i] < 0x20 || p[i] == 0x7F ||
            (p[i] == 0xC2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)) {
            *why = "contains a control character";
            return false;
        }
        if (p[i] == '+' || p[i] == '#' || p[i] == '/') {
            *why = "contains '+', '#' or '/', which would widen ACL patterns";
            return false;
        }
    }
    return true;
}

/* One attribute of a DN, read from its DER (Mbed TLS 3.6 keeps which attributes share an RDN
 * private). */
struct dn_attr {
    mbedtls_asn1_buf oid;
    const unsigned char *val;
    size_t len;
    bool merged; /* the next attribute is in the same (multi-valued) RDN */
};

/* Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }. Returns the count or -1. */
static int dn_attrs(const mbedtls_x509_buf *raw, struct dn_attr *a, int max)
{
    unsigned char *p = raw->p, *end = p + raw->len, *set_end, *e;
    size_t len;
    int n = 0;
    if (!p || mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
        return -1;
    end = p + len;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SET))
            return -1;
        for (set_end = p + len; p < set_end; p = e) {
            if (n == max || mbedtls_asn1_get_tag(&p, set_end, &len,
                                                 MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
                return -1;
            e = p + len;
            a[n].oid.tag = MBEDTLS_ASN1_OID;
            if (mbedtls_asn1_get_tag(&p, e, &a[n].oid.len, MBEDTLS_ASN1_OID))
                return -1;
            a[n].oid.p = p;
            p += a[n].oid.len;
            if (p >= e)
                return -1;
            p++; /* the value's tag: any string type */
            if (mbedtls_asn1_get_len(&p, e, &len) || p + len != e)
                return -1;
            a[n].val = p;
            a[n].len = len;
            a[n].merged = e < set_end;
            n++;
        }
    }
    return n;
}

/* RFC 4514 string of a DN: RDNs in reverse order, ',' between them, '+' inside a multi-valued
 * RDN, special characters escaped. Returns the length, or -1 when it does not fit. */
static int dn_rfc4514(const mbedtls_x509_buf *raw, char *out, size_t cap)
{
    struct dn_attr v[64];
    int n = dn_attrs(raw, v, 64);
    if (n < 0)
        return -1;
    size_t o = 0;
    /* Walk RDN groups from the last to the first; each group stays in its own order. */
    int end = n;
    while (end > 0) {
        int start = end - 1;
        while (start > 0 && v[start - 1].merged)
            start--;
        for (int i = start; i < end; i++) {
            const char *sn = NULL;
            char num[64];
            if (mbedtls_oid_get_attr_short_name(&v[i].oid, &sn) != 0) {
                if (mbedtls_oid_get_numeric_string(num, sizeof(num), &v[i].oid) < 0)
                    return -1;
                sn = num;
            }
            int w = snprintf(out + o, cap - o, "%s%s=", o ? (i == start ? "," : "+") : "", sn);
            if (w < 0 || (size_t)w >= cap - o)
                return -1;
            o += (size_t)w;
            for (size_t k = 0; k < v[i].len; k++) {
                unsigned char ch = v[i].val[k];
                bool esc = strchr("\"+,;<>\\", ch) || (k == 0 && (ch == '#' || ch == ' ')) ||
                           (k + 1 == v[i].len && ch == ' ');
                if (ch < 0x20 || ch == 0x7F)
                    w = snprintf(out + o, cap - o, "\\%02X", ch);
                else
                    w = snprintf(out + o, cap - o, esc ? "\\%c" : "%c", ch);
                if (w < 0 || (size_t)w >= cap - o)
                    return -1;
                o += (size_t)w;
            }
        }
        end = start;
    }
    return (int)o;
}

static int identity_get(const mbedtls_x509_crt *crt, enum tls_identity_mode mode, char *out,
                        size_t cap, const char **why)
{
    const uint8_t *v = NULL;
    size_t vlen = 0;
    int found = 0;
    char dn[TLS_IDENTITY_MAX + 2];
    if (mode == TLS_ID_CN) {
        for (const mbedtls_x509_name *n = &crt->subject; n; n = n->next) {
            if (n->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
                found++;
                v = n->val.p;
                vlen = n->val.len;
            }
        }
    } else if (mode == TLS_ID_SUBJECT) {
        int r = dn_rfc4514(&crt->subject_raw, dn, sizeof(dn));
        if (r > 0) {
            found = 1;
            v = (const uint8_t *)dn;
            vlen = (size_t)r;
        }
    } else {
        int tag = mode == TLS_ID_SAN_DNS ? 2 : mode == TLS_ID_SAN_URI ? 6 : 1;
        for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
            if ((s->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK) == tag &&
                (s->buf.tag & MBEDTLS_ASN1_CONTEXT_SPECIFIC)) {
                found++;
                v = s->buf.p;
                vlen = s->buf.len;
            }
        }
    }
    if (found == 0) {
        *why = "the certificate has no field for the configured identity";
        return -1;
    }
    if (found > 1) {
        *why = "the identity field appears more than once";
        return -1;
    }
    if (!tls_identity_valid(v, vlen, why))
        return -1;
    if (vlen >= cap) {
        *why = "too long";
        return -1;
    }
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return 0;
}

int tls_identity_from_der(const uint8_t *der, size_t len, enum tls_identity_mode mode, char *out,
                          size_t cap, const char **why)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int r = -1;
    if (mbedtls_x509_crt_parse_der(&crt, der, len) == 0)
        r = identity_get(&crt, mode, out, cap, why);
    else
        *why = "not a certificate";
    mbedtls_x509_crt_free(&crt);
    return r;
}

/* ---- peer fields -------------------------------------------------------------------------- */

static void add_chain(struct tls_peer *p, const mbedtls_x509_crt *c)
{
    p->chain = xrealloc(p->chain, (p->chain_len + 1u) * sizeof(*p->chain));
    struct tls_cert_id *id = &p->chain[p->chain_len++];
    memset(id, 0, sizeof(*id));
    mbedtls_sha256(c->issuer_raw.p, c->issuer_raw.len, id->issuer_hash, 0);
    id->serial_len =
        (uint8_t)(c->serial.len < sizeof(id->serial) ? c->serial.len : sizeof(id->serial));
    memcpy(id->serial, c->serial.p, id->serial_len);
    id->not_after = tls__unix_time(&c->valid_to);
    if (!p->not_after || id->not_after < p->not_after)
        p->not_after = id->not_after;
}

static const char no_name[] = "";

void tls__peer_names_free(struct tls_peer *p)
{
    if (p->identity && p->identity != no_name)
        free((char *)p->identity);
    p->identity = p->subject = p->issuer = p->serial = no_name;
}

static void set_names(struct tls_peer *p, const char *identity, const mbedtls_x509_crt *crt)
{
    char subj[256] = "", iss[256] = "", ser[80] = "";
    mbedtls_x509_dn_gets(subj, sizeof(subj), &crt->subject);
    mbedtls_x509_dn_gets(iss, sizeof(iss), &crt->issuer);
    mbedtls_x509_serial_gets(ser, sizeof(ser), &crt->serial);
    const char *src[4] = {identity, subj, iss, ser};
    size_t len[4], total = 0;
    for (int i = 0; i < 4; i++)
        total += len[i] = strlen(src[i]) + 1;
    tls__peer_names_free(p);
    char *m = xmalloc(total), *at = m;
    const char **dst[4] = {&p->identity, &p->subject, &p->issuer, &p->serial};
    for (int i = 0; i < 4; i++) {
        memcpy(at, src[i], len[i]);
        *dst[i] = at;
        at += len[i];
    }
}

static void describe(struct tls_verify_state *vs, const mbedtls_x509_crt *crt, const char *what)
{
    char subj[200] = "?", iss[200] = "?", ser[80] = "?";
    mbedtls_x509_dn_gets(subj, sizeof(subj), &crt->subject);
    mbedtls_x509_dn_gets(iss, sizeof(iss), &crt->issuer);
    mbedtls_x509_serial_gets(ser, sizeof(ser), &crt->serial);
    snprintf(vs->detail, sizeof(vs->detail), "%s (subject %s, serial %s, issuer %s)", what, subj,
             ser, iss);
}

static void reject(struct tls_verify_state *vs, enum tls_reject r, const mbedtls_x509_crt *crt,
                   const char *what)
{
    if (vs->reject != TLS_REJECT_NONE)
        return;
    vs->reject = r;
    describe(vs, crt, what);
}

static bool has_crl_for(const struct tls_ctx *c, const mbedtls_x509_crt *crt)
{
    for (const mbedtls_x509_crl *l = &c->crl; l && l->raw.p; l = l->next)
        if (same_name(&l->issuer_raw, &crt->issuer_raw))
            return true;
    return false;
}

static int leaf_checks(struct tls_verify_state *vs, const mbedtls_x509_crt *crt)
{
    struct tls_peer *p = vs->peer;
    if (mbedx_has_ext(crt, MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) &&
        mbedtls_x509_crt_check_extended_key_usage(crt, MBEDTLS_OID_CLIENT_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
        reject(vs, TLS_REJECT_BAD_EKU, crt, "extended key usage without clientAuth");
        return -1;
    }
    /* Mbed TLS's own usage check is skipped when verification is deferred: do it here. */
    if (mbedtls_x509_crt_check_key_usage(crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0) {
        reject(vs, TLS_REJECT_BAD_EKU, crt, "key usage without digitalSignature");
        return -1;
    }
    const char *why = NULL;
    char identity[TLS_IDENTITY_MAX + 1];
    if (identity_get(crt, vs->ctx->opts.identity, identity, sizeof(identity), &why) != 0) {
        char what[160];
        snprintf(what, sizeof(what), "bad identity: %s", why);
        reject(vs, TLS_REJECT_BAD_IDENTITY, crt, what);
        return -1;
    }
    set_names(p, identity, crt);
    free(vs->leaf_der);
    vs->leaf_der = xmemdup(crt->raw.p, crt->raw.len);
    vs->leaf_der_len = crt->raw.len;
    /* Replaced, not added to: a verified-chain cache hit that fails falls back to a full
     * verification, which comes here again. */
    certattrs_free(p->attrs);
    p->attrs = tls__attrs_get(crt);
    return 0;
}

/* Expired CRLs under crl_expired warn: accepted, counted, and logged at most once a handshake and
 * once a minute per listener, so a reconnect storm cannot flood the log. */
static void crl_expired_accept(struct tls_verify_state *vs, uint32_t *flags)
{
    struct tls_ctx *c = vs->ctx;
    *flags &= ~(uint32_t)MBEDTLS_X509_BADCRL_EXPIRED;
    if (vs->crl_warned)
        return;
    vs->crl_warned = true;
    c->crl_expired_accepted++;
    int64_t now = (int64_t)time(NULL);
    if (now - c->crl_warned_at >= 60) {
        c->crl_warned_at = now;
        log_warn("accepting certificates under an expired CRL (crl_expired warn); %llu so far",
                 (unsigned long long)c->crl_expired_accepted);
    }
}

static bool in_list(const mbedtls_x509_crt *list, const mbedtls_x509_crt *crt)
{
    for (const mbedtls_x509_crt *x = list; x && x->raw.p; x = x->next)
        if (x->raw.len == crt->raw.len && memcmp(x->raw.p, crt->raw.p, crt->raw.len) == 0)
            return true;
    return false;
}

/* Called by Mbed TLS once per certificate of the verified path, trust anchor first. Never
 * returns non-zero: refusals are flags, so Mbed TLS sends the matching alert; the first reason
 * found is the one reported. */
int tls_verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct tls_verify_state *vs = arg;
    struct tls_ctx *c = vs->ctx;
    if (vs->deferred)
        return 0;
    if (!vs->verified)
        vs->top = depth; /* the first call is for the top of the path */
    vs->verified = true;
    if ((*flags & MBEDTLS_X509_BADCRL_EXPIRED) && c->opts.crl_expired_warn)
        crl_expired_accept(vs, flags);
    if ((unsigned)depth > c->verify_depth) {
        /* The certificate at that depth is a CA: the operator needs the device's name. Without
         * the chain at hand (Mbed TLS's own verification, 3.6) the refusal is taken now and
         * described when the callback reaches the device's certificate (depth 0). */
        char what[96];
        snprintf(what, sizeof(what), "certificate chain of %d CAs, longer than verify_depth %u",
                 depth, c->verify_depth);
        if (vs->leaf) {
            reject(vs, TLS_REJECT_CHAIN_TOO_LONG, vs->leaf, what);
        } else if (vs->reject == TLS_REJECT_NONE) {
            vs->reject = TLS_REJECT_CHAIN_TOO_LONG;
            vs->name_leaf = true;
            snprintf(vs->detail, sizeof(vs->detail), "%s", what);
        }
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    }
    if (depth == 0 && vs->name_leaf) {
        char what[sizeof(vs->detail)];
        memcpy(what, vs->detail, sizeof(what));
        describe(vs, crt, what);
        vs->name_leaf = false;
    }
    if (*flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
        reject(vs, TLS_REJECT_UNKNOWN_CA, crt, "certificate not issued by a trusted CA");
    if (*flags & MBEDTLS_X509_BADCERT_REVOKED)
        reject(vs, TLS_REJECT_REVOKED, crt, depth ? "issuing CA revoked" : "certificate revoked");
    if (*flags & MBEDTLS_X509_BADCERT_EXPIRED)
        reject(vs, TLS_REJECT_EXPIRED, crt, "certificate expired");
    if (*flags & MBEDTLS_X509_BADCERT_FUTURE)
        reject(vs, TLS_REJECT_NOT_YET_VALID, crt, "certificate not yet valid");
    if (*flags & MBEDTLS_X509_BADCRL_EXPIRED)
        reject(vs, TLS_REJECT_CRL_EXPIRED, crt, "the CRL covering this certificate has expired");
    if (!self_signed(crt)) {
        /* An intermediate configured as trusted is a trust anchor to Mbed TLS, which then never
         * looks it up in its issuer's CRL: do it here. */
        for (const mbedtls_x509_crl *l = &c->crl; c->crl_count && l && l->raw.p; l = l->next) {
            if (same_name(&l->issuer_raw, &crt->issuer_raw) &&
                mbedtls_x509_crt_is_revoked(crt, l)) {
                *flags |= MBEDTLS_X509_BADCERT_REVOKED;
                reject(vs, TLS_REJECT_REVOKED, crt,
                       depth ? "issuing CA certificate revoked" : "certificate revoked");
            }
        }
        /* crl_strict needs at least one CRL configured: with none there is no CRL policy to
         * be strict about, and every device is accepted as without crl_strict. It applies to
         * the CAs in the path: the top certificate's issuer is not one of them. */
        if (depth < vs->top && c->crl_count && c->opts.crl_strict && !has_crl_for(c, crt) &&
            !(*flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)) {
            reject(vs, TLS_REJECT_CRL_MISSING, crt, "no CRL loaded for the issuing CA");
            *flags |= MBEDTLS_X509_BADCERT_OTHER;
        }
        add_chain(vs->peer, crt);
        if (depth > 0 && !in_list(&c->ca, crt) && vs->nsent < 8)
            vs->sent[vs->nsent++] = crt;
    }
    if (depth == 0 && leaf_checks(vs, crt) != 0)
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    /* Keep the leaf first in the recorded chain (callbacks run root first). */
    if (depth == 0 && vs->peer->chain_len > 1) {
        struct tls_cert_id leaf = vs->peer->chain[vs->peer->chain_len - 1];
        memmove(&vs->peer->chain[1], &vs->peer->chain[0],
                (vs->peer->chain_len - 1u) * sizeof(leaf));
        vs->peer->chain[0] = leaf;
    }
    if (*flags && vs->reject == TLS_REJECT_NONE)
        reject(vs, TLS_REJECT_HANDSHAKE, crt, "certificate verification failed");
    return 0;
}

void tls_verify_remember(struct tls_verify_state *vs)
{
    struct tls_ctx *c = vs->ctx;
    for (unsigned i = 0; i < vs->nsent && c->seen_count < TLS_SEEN_MAX; i++) {
        if (in_list(&c->seen, vs->sent[i]))
            continue;
        if (mbedtls_x509_crt_parse_der(&c->seen, vs->sent[i]->raw.p, vs->sent[i]->raw.len) == 0)
            c->seen_count++;
    }
    vs->nsent = 0; /* the pointers die with the peer certificate */
}

/* The CA of crt: the CA set first, then intermediates verified earlier on this listener. */
const mbedtls_x509_crt *tls_verify_find_issuer(const struct tls_ctx *c, const mbedtls_x509_crt *crt)
{
    for (const mbedtls_x509_crt *ca = &c->ca; ca && ca->raw.p; ca = ca->next)
        if (same_name(&ca->subject_raw, &crt->issuer_raw))
            return ca;
    for (const mbedtls_x509_crt *ca = &c->seen; ca && ca->raw.p; ca = ca->next)
        if (same_name(&ca->subject_raw, &crt->issuer_raw))
            return ca;
    return NULL;
}

/* The CRL part of the policy for one certificate, as the verify callback applies it. */
static const char *crl_check(const struct tls_ctx *c, const mbedtls_x509_crt *crt, bool strict)
{
    bool have = false;
    for (const mbedtls_x509_crl *l = &c->crl; c->crl_count && l && l->raw.p; l = l->next) {
        if (!same_name(&l->issuer_raw, &crt->issuer_raw))
            continue;
        have = true;
        if (mbedtls_x509_crt_is_revoked(crt, l))
            return "revoked";
        if (mbedtls_x509_time_is_past(&l->next_update) && !c->opts.crl_expired_warn)
            return "CRL expired";
    }
    if (strict && c->crl_count && c->opts.crl_strict && !have)
        return "CRL missing";
    return NULL;
}

/* Cheap checks only (no signature): the ticket itself proves that this server verified the
 * chain when it issued it; what may have changed since is revocation, time and the CA set. */
const char *tls_verify_ticket_check(const struct tls_ctx *c, const mbedtls_x509_crt *leaf)
{
    const mbedtls_x509_crt *crt = leaf;
    if (!crt)
        return "no certificate in the ticket";
    for (unsigned depth = 0; depth <= c->verify_depth; depth++) {
        if (mbedtls_x509_time_is_past(&crt->valid_to))
            return "expired";
        if (mbedtls_x509_time_is_future(&crt->valid_from))
            return "not yet valid";
        if (self_signed(crt))
            return depth ? NULL : "self-signed";
        const mbedtls_x509_crt *up = tls_verify_find_issuer(c, crt);
        const char *why = crl_check(c, crt, up != NULL);
        if (why)
            return why;
        /* A trusted intermediate whose own issuer is not loaded is a trust anchor. */
        if (!up)
            return depth && in_list(&c->ca, crt) ? NULL : "issuer not among the trusted CAs";
        crt = up;
    }
    return "chain too long";
}

int tls_verify_resumed(struct tls_verify_state *vs, const mbedtls_x509_crt *crt)
{
    struct tls_peer *p = vs->peer;
    if (leaf_checks(vs, crt) != 0)
        return -1;
    add_chain(p, crt);
    const mbedtls_x509_crt *up = tls_verify_find_issuer(vs->ctx, crt);
    for (int i = 0; up && !self_signed(up) && i < 8; i++) {
        add_chain(p, up);
        up = tls_verify_find_issuer(vs->ctx, up);
    }
    return 0;
}

void tls_verify_check_crls(struct tls_ctx *c, const mbedtls_x509_crl *first, const char *file,
                           struct diag *d)
{
    for (const mbedtls_x509_crl *l = first; l && l->raw.p; l = l->next) {
        char iss[200] = "?";
        mbedtls_x509_dn_gets(iss, sizeof(iss), &l->issuer);
        const mbedtls_x509_crt *ca = NULL;
        for (const mbedtls_x509_crt *x = &c->ca; x && x->raw.p && !ca; x = x->next)
            if (same_name(&x->subject_raw, &l->issuer_raw))
                ca = x;
        if (!ca) {
            diag_add(d, file, 0, "CRL issued by %s, which is not a loaded CA", iss);
            continue;
        }
        if (mbedtls_x509_crt_check_key_usage(ca, MBEDTLS_X509_KU_CRL_SIGN) != 0) {
            diag_add(d, file, 0, "CRL issued by %s, whose key usage does not allow cRLSign", iss);
            continue;
        }
        if (mbedx_crl_signed_by(l, ca) != 0) {
            diag_add(d, file, 0, "CRL claiming issuer %s: signature does not verify with that CA",
                     iss);
            continue;
        }
        if (mbedtls_x509_time_is_future(&l->this_update))
            diag_add(d, file, 0, "CRL issued by %s: thisUpdate is in the future", iss);
    }
}

bool tls_ctx_peer_revoked(const struct tls_ctx *c, const struct tls_peer *p, char *why, size_t n)
{
    for (const mbedtls_x509_crl *l = &c->crl; c->crl_count && l && l->raw.p; l = l->next) {
        uint8_t h[32];
        mbedtls_sha256(l->issuer_raw.p, l->issuer_raw.len, h, 0);
        for (uint8_t i = 0; i < p->chain_len; i++) {
            const struct tls_cert_id *id = &p->chain[i];
            if (memcmp(h, id->issuer_hash, 32) != 0)
                continue;
            for (const mbedtls_x509_crl_entry *e = &l->entry; e && e->raw.p; e = e->next) {
                if (e->serial.len == id->serial_len &&
                    memcmp(e->serial.p, id->serial, id->serial_len) == 0) {
                    if (why)
                        snprintf(why, n,
                                 i == 0 ? "certificate revoked"
                                        : "an issuing CA certificate was revoked");
                    return true;
                }
            }
        }
    }
    return false;
}

void tls_cert_id_key(const struct tls_cert_id *id, uint8_t key[TLS_CERT_KEY_LEN])
{
    uint8_t n = id->serial_len <= 32 ? id->serial_len : 32;
    memset(key, 0, TLS_CERT_KEY_LEN);
    memcpy(key, id->issuer_hash, 32);
    key[32] = n;
    memcpy(key + 33, id->serial, n);
}

void tls_ctx_crl_foreach(const struct tls_ctx *c,
                         void (*cb)(void *ud, const struct tls_cert_id *id), void *ud)
{
    for (const mbedtls_x509_crl *l = &c->crl; c->crl_count && l && l->raw.p; l = l->next) {
        struct tls_cert_id id = {0};
        mbedtls_sha256(l->issuer_raw.p, l->issuer_raw.len, id.issuer_hash, 0);
        for (const mbedtls_x509_crl_entry *e = &l->entry; e && e->raw.p; e = e->next) {
            if (e->serial.len > sizeof(id.serial))
                continue; /* RFC 5280: at most 20 octets; no certificate of ours can match */
            memset(id.serial, 0, sizeof(id.serial));
            memcpy(id.serial, e->serial.p, e->serial.len);
            id.serial_len = (uint8_t)e->serial.len;
            cb(ud, &id);
        }
    }
}

/* ---- the verified-chain cache ------------------------------------------------------------ */

struct tls_vcache_entry {
    uint8_t key[32];
    int64_t until;
    UT_hash_handle hh; /* insertion order = age */
};

static void chain_key(const mbedtls_x509_crt *chain, uint8_t key[32])
{
    mbedtls_sha256_context h;
    mbedtls_sha256_init(&h);
    mbedtls_sha256_starts(&h, 0);
    for (const mbedtls_x509_crt *x = chain; x && x->raw.p; x = x->next) {
        uint8_t len[4] = {(uint8_t)(x->raw.len >> 24), (uint8_t)(x->raw.len >> 16),
                          (uint8_t)(x->raw.len >> 8), (uint8_t)x->raw.len};
        mbedtls_sha256_update(&h, len, sizeof(len));
        mbedtls_sha256_update(&h, x->raw.p, x->raw.len);
    }
    mbedtls_sha256_finish(&h, key);
    mbedtls_sha256_free(&h);
}

static bool vcache_hit(struct tls_ctx *c, const uint8_t key[32], int64_t now)
{
    struct tls_vcache_entry *e;
    HASH_FIND(hh, c->vcache, key, 32, e);
    if (e && e->until <= now) {
        HASH_DEL(c->vcache, e);
        c->vcache_count--;
        free(e);
        e = NULL;
    }
    return e != NULL;
}

static void vcache_add(struct tls_ctx *c, const uint8_t key[32], int64_t now)
{
    struct tls_vcache_entry *e;
    HASH_FIND(hh, c->vcache, key, 32, e);
    if (e)
        return;
    while (c->vcache_count >= TLS_VCACHE_MAX) {
        struct tls_vcache_entry *old = c->vcache;
        HASH_DEL(c->vcache, old);
        c->vcache_count--;
        free(old);
    }
    e = xmalloc(sizeof(*e));
    memcpy(e->key, key, 32);
    e->until = now + TLS_VCACHE_TTL_S;
    HASH_ADD(hh, c->vcache, key, 32, e);
    c->vcache_count++;
}

void tls_vcache_free(struct tls_ctx *c)
{
    struct tls_vcache_entry *e, *tmp;
    HASH_ITER(hh, c->vcache, e, tmp)
    {
        HASH_DEL(c->vcache, e);
        free(e);
    }
    c->vcache_count = 0;
}

static unsigned char alert_for(enum tls_reject r)
{
    switch (r) {
    case TLS_REJECT_NO_CERT:
        return MBEDTLS_SSL_ALERT_MSG_NO_CERT;
    case TLS_REJECT_UNKNOWN_CA:
    case TLS_REJECT_CHAIN_TOO_LONG:
        return MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA;
    case TLS_REJECT_REVOKED:
        return MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED;
    case TLS_REJECT_EXPIRED:
    case TLS_REJECT_NOT_YET_VALID:
    case TLS_REJECT_CRL_EXPIRED:
        return MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED;
    case TLS_REJECT_BAD_EKU:
        return MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT;
    default:
        return MBEDTLS_SSL_ALERT_MSG_BAD_CERT;
    }
}

int tls_verify_peer_chain(struct tls_verify_state *vs, const mbedtls_x509_crt *chain,
                          unsigned char *alert)
{
    struct tls_ctx *c = vs->ctx;
    vs->deferred = false;
    if (!chain || !chain->raw.p) {
        vs->reject = TLS_REJECT_NO_CERT;
        snprintf(vs->detail, sizeof(vs->detail), "the client sent no certificate");
        *alert = MBEDTLS_SSL_ALERT_MSG_NO_CERT;
        return -1;
    }
    int64_t now = (int64_t)time(NULL);
    uint8_t key[32];
    chain_key(chain, key);
    /* A hit re-applies everything but the signatures, exactly as for a session ticket. */
    if (vcache_hit(c, key, now) && tls_verify_ticket_check(c, chain) == NULL &&
        tls_verify_resumed(vs, chain) == 0) {
        c->vcache_hits++;
        return 0;
    }
    vs->reject = TLS_REJECT_NONE;
    /* Mbed TLS gives up on a path of more than MBEDTLS_X509_MAX_INTERMEDIATE_CA certificates
     * with a bare "fatal error"; a chain that cannot fit verify_depth is refused here by name. */
    unsigned sent = 0;
    for (const mbedtls_x509_crt *x = chain; x && x->raw.p; x = x->next)
        sent++;
    if (sent - 1 > c->verify_depth) {
        char what[96];
        snprintf(what, sizeof(what),
                 "the client sent %u CA certificates, more than verify_depth %u", sent - 1,
                 c->verify_depth);
        reject(vs, TLS_REJECT_CHAIN_TOO_LONG, chain, what);
        *alert = alert_for(vs->reject);
        return -1;
    }
    free(vs->peer->chain);
    vs->peer->chain = NULL;
    vs->peer->chain_len = 0;
    vs->peer->not_after = 0;
    uint32_t flags = 0;
    vs->leaf = chain;
    /* Mbed TLS wants mutable certificates here; it does not modify them. */
    int r = mbedtls_x509_crt_verify_with_profile((mbedtls_x509_crt *)chain, &c->ca,
                                                 c->crl_count ? &c->crl : NULL, c->profile, NULL,
                                                 &flags, tls_verify_cb, vs);
    vs->leaf = NULL; /* the chain is not ours to keep */
    if (r == 0 && flags == 0 && vs->reject == TLS_REJECT_NONE) {
        vcache_add(c, key, now);
        return 0;
    }
    if (vs->reject == TLS_REJECT_NONE)
        reject(vs, TLS_REJECT_HANDSHAKE, chain, "certificate verification failed");
    *alert = alert_for(vs->reject);
    return -1;
}
