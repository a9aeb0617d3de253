/* certattr: a certificate's policy attributes as one bounded allocation (see certattr.h). */
#include "certattr.h"

#include "utf8.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[CERTATTR_COUNT] = {"o",       "ou",      "cn",        "serial",
                                                  "san_uri", "san_dns", "issuer_cn", "policy"};

const char *certattr_name(enum certattr k)
{
    return (unsigned)k < CERTATTR_COUNT ? names[k] : "?";
}

int certattr_from_name(const char *s, size_t len)
{
    for (int k = 0; k < CERTATTR_COUNT; k++)
        if (strlen(names[k]) == len && !memcmp(names[k], s, len))
            return k;
    return -1;
}

struct certattrs *certattrs_new(void)
{
    return xcalloc(1, sizeof(struct certattrs));
}

struct certattrs *certattrs_add(struct certattrs *a, enum certattr k, const void *p, size_t len)
{
    if (!a)
        a = certattrs_new();
    if (a->refs)
        abort(); /* the other holders would see it change, or keep a freed pointer */
    if (a->seen[k] < UINT8_MAX)
        a->seen[k]++;
    if (a->kept[k] >= CERTATTR_MAX_VALUES || len > CERTATTR_MAX_LEN)
        return a;
    size_t at = a->bytes, entry = 3 + len + 1;
    a = xrealloc(a, sizeof(*a) + at + entry);
    unsigned char *e = a->data + at;
    e[0] = (unsigned char)k;
    e[1] = (unsigned char)(len >> 8);
    e[2] = (unsigned char)len;
    memcpy(e + 3, p, len);
    e[3 + len] = '\0';
    a->bytes = (uint32_t)(at + entry);
    a->kept[k]++;
    return a;
}

struct certattrs *certattrs_dup(const struct certattrs *a)
{
    struct certattrs *m = (struct certattrs *)a; /* every set is heap-allocated, only refs moves */
    if (m)
        m->refs++;
    return m;
}

void certattrs_free(struct certattrs *a)
{
    if (a && a->refs) {
        a->refs--;
        return;
    }
    free(a);
}

size_t certattrs_count(const struct certattrs *a, enum certattr k)
{
    return a && (unsigned)k < CERTATTR_COUNT ? a->seen[k] : 0;
}

bool certattrs_value(const struct certattrs *a, enum certattr k, size_t i, const char **p,
                     size_t *len)
{
    for (size_t at = 0; a && at < a->bytes;) {
        const unsigned char *e = a->data + at;
        size_t n = (size_t)e[1] << 8 | e[2];
        if (e[0] == (unsigned char)k && i-- == 0) {
            *p = (const char *)e + 3;
            *len = n;
            return true;
        }
        at += 3 + n + 1;
    }
    return false;
}

bool certattrs_has(const struct certattrs *a, enum certattr k, const char *p, size_t len)
{
    const char *v;
    size_t n;
    for (size_t i = 0; certattrs_value(a, k, i, &v, &n); i++)
        if (n == len && !memcmp(v, p, len))
            return true;
    return false;
}

bool certattr_level_ok(const char *p, size_t len)
{
    if (!len || !utf8_valid((const uint8_t *)p, len, false))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x20 || ch == 0x7F || ch == '+' || ch == '#' || ch == '/')
            return false;
        /* C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8. */
        if (ch == 0xC2 && i + 1 < len && (unsigned char)p[i + 1] <= 0x9F)
            return false;
    }
    return true;
}

bool certattrs_single(const struct certattrs *a, enum certattr k, const char **p, size_t *len)
{
    return certattrs_count(a, k) == 1 && certattrs_value(a, k, 0, p, len) &&
           certattr_level_ok(*p, *len);
}

bool certattr_field(const char *p, size_t len, int n, const char **fp, size_t *flen)
{
    size_t fields = 1;
    for (size_t i = 0; i < len; i++)
        fields += p[i] == ':';
    if (n == 0 || (size_t)abs(n) > fields)
        return false;
    size_t want = n > 0 ? (size_t)n - 1 : fields - (size_t)(-n), f = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != ':')
            continue;
        if (f++ == want) {
            *fp = p + start;
            *flen = i - start;
            return true;
        }
        start = i + 1;
    }
    return false;
}
