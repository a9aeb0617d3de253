/* cidr: network parsing and matching (see cidr.h). libc only: inet_pton reads the address. */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Strict decimal 0..max, nothing else (no sign, no spaces, no leading zeros beyond "0"). */
static int prefix_bits(const char *s, unsigned max)
{
    if (!*s || strlen(s) > 3 || (s[0] == '0' && s[1]))
        return -1;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    return v <= max ? (int)v : -1;
}

/* Any bit set beyond the prefix: "10.1.2.3/8" is almost always a typo for a host or for
 * 10.0.0.0/8, and guessing which would widen or narrow who may speak for others. */
static bool host_bits_set(const uint8_t *a, size_t len, unsigned bits)
{
    for (size_t i = 0; i < len; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * (unsigned)i : 0;
        uint8_t mask = keep ? (uint8_t)(0xff << (8 - keep)) : 0;
        if (a[i] & (uint8_t)~mask)
            return true;
    }
    return false;
}

int cidr_parse(const char *s, struct cidr *out, const char **why)
{
    char text[CIDR_TEXT_MAX];
    size_t n = strlen(s);
    if (n >= sizeof(text)) {
        *why = "too long for an address with a prefix length";
        return -1;
    }
    memcpy(text, s, n + 1);
    char *slash = strchr(text, '/');
    if (slash)
        *slash = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1) {
        out->len = 4;
    } else if (inet_pton(AF_INET6, text, out->addr) == 1) {
        out->len = 16;
    } else {
        *why = "not an IPv4 or IPv6 address (expected ADDRESS or ADDRESS/BITS)";
        return -1;
    }
    int bits = slash ? prefix_bits(slash + 1, 8u * out->len) : 8 * out->len;
    if (bits < 0) {
        *why = out->len == 4 ? "the prefix length must be a number from 0 to 32"
                             : "the prefix length must be a number from 0 to 128";
        return -1;
    }
    out->bits = (uint8_t)bits;
    if (host_bits_set(out->addr, out->len, out->bits)) {
        *why = "address bits are set beyond the prefix length (write the network address, e.g. "
               "10.0.0.0/8, or a single address without /BITS)";
        return -1;
    }
    if (out->len == 16 && out->bits >= 96 && !memcmp(out->addr, v4_mapped, sizeof(v4_mapped))) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->len = 4;
        out->bits -= 96;
    }
    return 0;
}

bool cidr_match(const struct cidr *net, const uint8_t *addr, size_t len)
{
    if (len == 16 && !memcmp(addr, v4_mapped, sizeof(v4_mapped))) {
        addr += 12;
        len = 4;
    }
    if (len != net->len)
        return false;
    unsigned full = net->bits / 8, rest = net->bits % 8;
    if (memcmp(addr, net->addr, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (addr[full] & mask) == net->addr[full];
}

bool cidr_match_any(const struct cidr *nets, size_t n, const uint8_t *addr, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_match(&nets[i], addr, len))
            return true;
    return false;
}
