/* proxy_v2: the PROXY protocol version 2 header a load balancer (HAProxy send-proxy-v2) puts in
 * front of a connection's first byte, carrying the device's own address.
 *
 * Pure: bytes in, a verdict out, parsed in place (nothing is copied or allocated), so it can run
 * on the HELLO buffer before any TLS engine exists and be fuzzed. Accepts what certmq can use:
 * version 2, command LOCAL (the proxy's own health check: no addresses needed) or PROXY with TCP
 * over IPv4 or IPv6; TLVs are skipped. Knows no sockets, no TLS, no MQTT. */
#ifndef CERTMQ_PROXY_V2_H
#define CERTMQ_PROXY_V2_H

#include <stddef.h>
#include <stdint.h>

/* The fixed part: 12-byte signature, version/command, family/transport, 2-byte length. */
#define PROXY_V2_FIXED 16
/* The most header bytes after the fixed part certmq accepts: the 36 address bytes of IPv6 plus
 * room for the TLVs proxies send (unique id, ALPN, authority, CRC: tens of bytes). Bounds what a
 * connection may make the broker buffer before TLS. */
#define PROXY_V2_MAX_BODY 512
#define PROXY_V2_MAX (PROXY_V2_FIXED + PROXY_V2_MAX_BODY)

enum proxy_v2_command { PROXY_V2_LOCAL = 0, PROXY_V2_PROXY = 1 };

/* Everything proxy_v2_parse refuses; proxy_v2_strerror says it in a sentence. */
enum proxy_v2_error {
    PROXY_V2_ERR_SIGNATURE = -1, /* the first bytes are not the v2 signature */
    PROXY_V2_ERR_V1 = -2,        /* the text header of version 1 ("PROXY TCP4 ...") */
    PROXY_V2_ERR_VERSION = -3,   /* signature, then a version other than 2 */
    PROXY_V2_ERR_COMMAND = -4,   /* neither LOCAL nor PROXY */
    PROXY_V2_ERR_FAMILY = -5,    /* PROXY for anything but TCP over IPv4 / IPv6 */
    PROXY_V2_ERR_SHORT = -6,     /* fewer address bytes than the family needs */
    PROXY_V2_ERR_TOO_LONG = -7,  /* more than PROXY_V2_MAX_BODY bytes after the fixed part */
};

/* A peer's address as the header gives it: network-order bytes and a host-order port. */
struct proxy_v2_addr {
    uint8_t len; /* 4 (IPv4) or 16 (IPv6); 0 for LOCAL */
    uint8_t ip[16];
    uint16_t port;
};

struct proxy_v2 {
    enum proxy_v2_command command;
    struct proxy_v2_addr src, dst; /* PROXY only: the device (src) and the address it dialled */
};

/* The verdict on the first n bytes of a connection: > 0 a complete header of that many bytes
 * (fixed part, addresses and TLVs: the caller skips them; what follows is the peer's own
 * stream) and *out filled in; 0 a valid prefix, more bytes are needed; < 0 an enum
 * proxy_v2_error, given as soon as the bytes that show it are in (a TLS record's first byte is
 * enough). Never reads beyond PROXY_V2_MAX bytes, nor beyond n. */
int proxy_v2_parse(const uint8_t *p, size_t n, struct proxy_v2 *out);
const char *proxy_v2_strerror(int err);

#endif
