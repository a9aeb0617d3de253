/* cidr: IPv4 and IPv6 networks written as operators write them ("10.0.0.0/8", "2001:db8::/32",
 * or one address), and whether an address lies inside one of them.
 *
 * Used for the addresses allowed to speak for others (proxy_protocol_from). Addresses are raw
 * network-order bytes (4 or 16), so the module knows no sockets; an IPv4 address a dual-stack
 * socket reports as ::ffff:a.b.c.d matches the IPv4 networks, as an operator expects. */
#ifndef CERTMQ_CIDR_H
#define CERTMQ_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longer than any address with a prefix ("ffff:...:ffff/128", "::ffff:255.255.255.255/128"). */
#define CIDR_TEXT_MAX 64

struct cidr {
    uint8_t len;  /* address bytes: 4 (IPv4) or 16 (IPv6) */
    uint8_t bits; /* prefix length: 0..32 or 0..128 */
    uint8_t addr[16];
};

/* "ADDR" or "ADDR/BITS" (a bare address is one host). Returns 0, or -1 with *why set to what is
 * wrong (not an address, prefix out of range, address bits set beyond the prefix). An IPv6
 * network inside ::ffff:0:0/96 is stored as the IPv4 network it means. */
int cidr_parse(const char *s, struct cidr *out, const char **why);
/* addr: len bytes (4 or 16), network order. */
bool cidr_match(const struct cidr *net, const uint8_t *addr, size_t len);
bool cidr_match_any(const struct cidr *nets, size_t n, const uint8_t *addr, size_t len);

#endif
