/* tls_attrs: a verified leaf certificate's policy attributes (certattr.h), read once per
 * handshake so the ACL can select and substitute by them without touching X.509 again.
 * Values are copied as they are (hostile ones included); certattr decides what is usable. */
#include "tls_verify.h"

#include <mbedtls/oid.h>
#include <stdio.h>
#include <string.h>

static struct certattrs *add_name(struct certattrs *a, enum certattr k, const mbedtls_x509_name *dn,
                                  const char *oid, size_t oid_len)
{
    for (const mbedtls_x509_name *n = dn; n; n = n->next)
        if (n->oid.p && n->oid.len == oid_len && !memcmp(n->oid.p, oid, oid_len))
            a = certattrs_add(a, k, n->val.p, n->val.len);
    return a;
}

/* The serial as `openssl x509 -serial` prints it: upper-case hex, no leading zero bytes. */
static struct certattrs *add_serial(struct certattrs *a, const mbedtls_x509_buf *serial)
{
    size_t i = 0;
    while (i + 1 < serial->len && serial->p[i] == 0)
        i++;
    char hex[2 * 32 + 1];
    size_t o = 0;
    for (; i < serial->len && o + 2 < sizeof(hex); i++)
        o += (size_t)snprintf(hex + o, sizeof(hex) - o, "%02X", serial->p[i]);
    return certattrs_add(a, CERTATTR_SERIAL, hex, o);
}

static struct certattrs *add_san(struct certattrs *a, const mbedtls_x509_crt *crt)
{
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
        if (!(s->buf.tag & MBEDTLS_ASN1_CONTEXT_SPECIFIC))
            continue;
        int tag = s->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK;
        if (tag == 6)
            a = certattrs_add(a, CERTATTR_SAN_URI, s->buf.p, s->buf.len);
        else if (tag == 2)
            a = certattrs_add(a, CERTATTR_SAN_DNS, s->buf.p, s->buf.len);
    }
    return a;
}

static struct certattrs *add_policies(struct certattrs *a, const mbedtls_x509_crt *crt)
{
    /* Without the extension the list is empty (its first buffer NULL): no ext_types check,
     * which Mbed TLS 3.6 keeps private. */
    for (const mbedtls_x509_sequence *s = &crt->certificate_policies; s && s->buf.p; s = s->next) {
        char oid[128];
        int n = mbedtls_oid_get_numeric_string(oid, sizeof(oid), &s->buf);
        /* An OID too long to print is still counted: a policy condition must not pass on a
         * certificate whose list it could not read whole. */
        a = certattrs_add(a, CERTATTR_POLICY, oid, n > 0 ? (size_t)n : CERTATTR_MAX_LEN + 1);
    }
    return a;
}

struct certattrs *tls__attrs_get(const mbedtls_x509_crt *crt)
{
    static const char o[] = MBEDTLS_OID_AT_ORGANIZATION, ou[] = MBEDTLS_OID_AT_ORG_UNIT,
                      cn[] = MBEDTLS_OID_AT_CN;
    struct certattrs *a = certattrs_new();
    a = add_name(a, CERTATTR_O, &crt->subject, o, sizeof(o) - 1);
    a = add_name(a, CERTATTR_OU, &crt->subject, ou, sizeof(ou) - 1);
    a = add_name(a, CERTATTR_CN, &crt->subject, cn, sizeof(cn) - 1);
    a = add_serial(a, &crt->serial);
    a = add_san(a, crt);
    a = add_name(a, CERTATTR_ISSUER_CN, &crt->issuer, cn, sizeof(cn) - 1);
    return add_policies(a, crt);
}

int tls_cert_file_read(const char *path, enum tls_identity_mode mode, char *identity, size_t cap,
                       const char **idwhy, struct certattrs **attrs, char *err, size_t errlen)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int r = mbedtls_x509_crt_parse_file(&crt, path);
    if (r != 0 || !crt.raw.p) {
        char m[128];
        snprintf(err, errlen, "%s: not a certificate (%s)", path, tls__mbed_err(r, m, sizeof(m)));
        mbedtls_x509_crt_free(&crt);
        return -1;
    }
    *attrs = tls__attrs_get(&crt);
    identity[0] = '\0';
    *idwhy = NULL;
    if (tls_identity_from_der(crt.raw.p, crt.raw.len, mode, identity, cap, idwhy) != 0)
        identity[0] = '\0';
    mbedtls_x509_crt_free(&crt);
    return 0;
}

struct certattrs *tls_attrs_from_der(const uint8_t *der, size_t len)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    struct certattrs *a = NULL;
    if (mbedtls_x509_crt_parse_der(&crt, der, len) == 0)
        a = tls__attrs_get(&crt);
    mbedtls_x509_crt_free(&crt);
    return a;
}
