/* proxy_v2: the PROXY protocol v2 header parser (see proxy_v2.h and HAProxy's
 * doc/proxy-protocol.txt, section 2.2). Judges each field as soon as its byte is in, so a peer
 * that sends something else is refused at once, not after the hello timeout. */
#include "proxy_v2.h"

#include <string.h>

#define SIG_LEN 12
#define VERSION_2 0x2
#define TCP_OVER_IPV4 0x11 /* family AF_INET (1), transport STREAM (1) */
#define TCP_OVER_IPV6 0x21 /* family AF_INET6 (2), transport STREAM (1) */
#define IPV4_BLOCK 12      /* source, destination (4 each), two ports */
#define IPV6_BLOCK 36      /* source, destination (16 each), two ports */

_Static_assert(PROXY_V2_MAX == 528, "proxy_v2_strerror names the bound");

static const uint8_t signature[SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                           0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* One address block: both addresses first, then both ports (the protocol's order). */
static void read_addrs(const uint8_t *a, uint8_t len, struct proxy_v2 *out)
{
    out->src.len = out->dst.len = len;
    memcpy(out->src.ip, a, len);
    memcpy(out->dst.ip, a + len, len);
    out->src.port = (uint16_t)(a[2 * len] << 8 | a[2 * len + 1]);
    out->dst.port = (uint16_t)(a[2 * len + 2] << 8 | a[2 * len + 3]);
}

int proxy_v2_parse(const uint8_t *p, size_t n, struct proxy_v2 *out)
{
    static const char v1[] = "PROXY ";
    if (!n)
        return 0;
    if (n >= sizeof(v1) - 1 && !memcmp(p, v1, sizeof(v1) - 1))
        return PROXY_V2_ERR_V1;
    if (memcmp(p, signature, n < SIG_LEN ? n : SIG_LEN) != 0)
        return PROXY_V2_ERR_SIGNATURE;
    if (n <= SIG_LEN)
        return 0;
    if (p[12] >> 4 != VERSION_2)
        return PROXY_V2_ERR_VERSION;
    unsigned command = p[12] & 0x0F;
    if (command != PROXY_V2_LOCAL && command != PROXY_V2_PROXY)
        return PROXY_V2_ERR_COMMAND;
    if (n < 14)
        return 0;
    /* LOCAL: "the receiver must ... discard the protocol block including the family". */
    uint8_t family = p[13];
    if (command == PROXY_V2_PROXY && family != TCP_OVER_IPV4 && family != TCP_OVER_IPV6)
        return PROXY_V2_ERR_FAMILY;
    if (n < PROXY_V2_FIXED)
        return 0;
    size_t body = (size_t)p[14] << 8 | p[15];
    if (body > PROXY_V2_MAX_BODY)
        return PROXY_V2_ERR_TOO_LONG;
    size_t block = family == TCP_OVER_IPV4 ? IPV4_BLOCK : IPV6_BLOCK;
    if (command == PROXY_V2_PROXY && body < block)
        return PROXY_V2_ERR_SHORT;
    if (n < PROXY_V2_FIXED + body)
        return 0;
    memset(out, 0, sizeof(*out));
    out->command = (enum proxy_v2_command)command;
    if (command == PROXY_V2_PROXY)
        read_addrs(p + PROXY_V2_FIXED, family == TCP_OVER_IPV4 ? 4 : 16, out);
    return (int)(PROXY_V2_FIXED + body);
}

const char *proxy_v2_strerror(int err)
{
    switch (err) {
    case PROXY_V2_ERR_SIGNATURE:
        return "not a PROXY protocol v2 header";
    case PROXY_V2_ERR_V1:
        return "a PROXY protocol v1 (text) header; only v2 is accepted (HAProxy: send-proxy-v2)";
    case PROXY_V2_ERR_VERSION:
        return "PROXY protocol header of a version other than 2";
    case PROXY_V2_ERR_COMMAND:
        return "PROXY protocol v2 header with a command other than LOCAL or PROXY";
    case PROXY_V2_ERR_FAMILY:
        return "PROXY protocol v2 header for something other than TCP over IPv4 or IPv6";
    case PROXY_V2_ERR_SHORT:
        return "PROXY protocol v2 header too short for its addresses";
    case PROXY_V2_ERR_TOO_LONG:
        return "PROXY protocol v2 header longer than 528 bytes";
    default:
        return "malformed PROXY protocol v2 header";
    }
}
