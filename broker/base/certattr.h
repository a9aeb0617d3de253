/* certattr: the attributes of a device's certificate that policy may use (O, OU, CN, serial,
 * SAN URIs, SAN DNS names, issuer CN, certificate policy OIDs), as a plain value.
 *
 * tls fills one per handshake from the verified leaf certificate; the broker keeps a copy with
 * the session and the ACL reads it when it compiles a client's rules, so no X.509 parsing ever
 * happens on the message path. It lives in base because both io (which fills it) and domain
 * (which reads it) need it and must not see each other.
 *
 * Bounded: at most CERTATTR_MAX_VALUES values per attribute and CERTATTR_MAX_LEN bytes per
 * value are kept; every value is counted, kept or not, so "several values" is always known. */
#ifndef CERTMQ_CERTATTR_H
#define CERTMQ_CERTATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum certattr {
    CERTATTR_O = 0,     /* subject organizationName */
    CERTATTR_OU,        /* subject organizationalUnitName */
    CERTATTR_CN,        /* subject commonName */
    CERTATTR_SERIAL,    /* serial number, upper-case hex without separators or leading zeros */
    CERTATTR_SAN_URI,   /* subjectAltName uniformResourceIdentifier */
    CERTATTR_SAN_DNS,   /* subjectAltName dNSName */
    CERTATTR_ISSUER_CN, /* issuer commonName */
    CERTATTR_POLICY,    /* certificatePolicies OIDs, dotted decimal */
    CERTATTR_COUNT
};

#define CERTATTR_MAX_VALUES 8
#define CERTATTR_MAX_LEN 256

/* One allocation: a small header and the kept values, each [attr, len (2 bytes), bytes, NUL]. */
struct certattrs {
    uint32_t bytes;               /* used in data[] */
    uint32_t refs;                /* holders beyond the first (certattrs_dup) */
    uint8_t seen[CERTATTR_COUNT]; /* values in the certificate, kept or not (saturates) */
    uint8_t kept[CERTATTR_COUNT]; /* values in data[] */
    unsigned char data[];
};

/* "o", "ou", "cn", "serial", "san_uri", "san_dns", "issuer_cn", "policy". */
const char *certattr_name(enum certattr k);
/* The attribute named by the len bytes at s, or -1. */
int certattr_from_name(const char *s, size_t len);

/* An empty set (a certificate without any of the attributes). */
struct certattrs *certattrs_new(void);
/* Adds one value of k (a may be NULL: a new set is made); returns the possibly moved set.
 * A value beyond the bounds is counted but not kept. */
struct certattrs *certattrs_add(struct certattrs *a, enum certattr k, const void *p, size_t len);
/* Another holder of the same set (a connection and its session share one, ~100 bytes each
 * otherwise): each holder calls certattrs_free(). A shared set must not be added to. */
struct certattrs *certattrs_dup(const struct certattrs *a);
void certattrs_free(struct certattrs *a);

/* How many values of k the certificate had (0 for a NULL set). */
size_t certattrs_count(const struct certattrs *a, enum certattr k);
/* The i-th kept value of k (NUL-terminated; may contain a NUL before len). */
bool certattrs_value(const struct certattrs *a, enum certattr k, size_t i, const char **p,
                     size_t *len);
/* Does k have a kept value equal to the len bytes at p? */
bool certattrs_has(const struct certattrs *a, enum certattr k, const char *p, size_t len);
/* The value of k usable as one topic level: exactly one value in the certificate, kept, and
 * usable (certattr_level_ok). False when missing, ambiguous or hostile. */
bool certattrs_single(const struct certattrs *a, enum certattr k, const char **p, size_t *len);
/* Can these bytes stand as one topic level without widening a rule? Non-empty, valid UTF-8, no
 * NUL or control characters, no '+', '#' or '/'. */
bool certattr_level_ok(const char *p, size_t len);
/* Field n (1 = first; negative counts from the end, -1 = last) of a colon-separated value, as
 * in a URN (urn:acme:device:sensor:0042 has 5 fields). False when there is no such field. */
bool certattr_field(const char *p, size_t len, int n, const char **fp, size_t *flen);

#endif
