/* proxy_v2: hand-built headers (HAProxy's layout, built here byte by byte, not by the parser's
 * own tables). IPv4 and IPv6 PROXY headers give their addresses and length, with TLVs skipped
 * and the bytes after the header left to the caller; every prefix needs more; LOCAL needs no
 * addresses; garbage, a TLS ClientHello, v1's text header, another version, command, family or
 * transport, a short address block and an oversized header are refused as soon as the byte that
 * shows it is in, and stay refused however many bytes follow. */
#include "check.h"
#include "proxy_v2.h"

#include <string.h>

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Fixed part + body_len bytes of body: the first copy bytes from body, the rest zero. */
static size_t header_n(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t copy,
                       size_t body_len)
{
    memcpy(out, sig, sizeof(sig));
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(body_len >> 8);
    out[15] = (uint8_t)body_len;
    memset(out + 16, 0, body_len);
    if (body)
        memcpy(out + 16, body, copy < body_len ? copy : body_len);
    return 16 + body_len;
}

static size_t header(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body,
                     size_t body_len)
{
    return header_n(out, ver_cmd, fam, body, body_len, body_len);
}

static const uint8_t v4_block[12] = {10, 1, 2, 3, 127, 0, 0, 1, 0xC3, 0x50, 0x22, 0xB3};

/* 2001:db8::7 port 40000 -> ::1 port 8883. */
static size_t v6_block(uint8_t *b)
{
    memset(b, 0, 36);
    b[0] = 0x20;
    b[1] = 0x01;
    b[2] = 0x0d;
    b[3] = 0xb8;
    b[15] = 7;
    b[31] = 1;
    b[32] = 0x9C;
    b[33] = 0x40;
    b[34] = 0x22;
    b[35] = 0xB3;
    return 36;
}

static void test_ipv4(void)
{
    uint8_t b[64];
    size_t n = header(b, 0x21, 0x11, v4_block, sizeof(v4_block));
    memcpy(b + n, "\x16\x03\x01", 3); /* the TLS stream that follows */
    struct proxy_v2 r;
    CHECK_EQ_INT(proxy_v2_parse(b, n, &r), 28);
    CHECK_EQ_INT(proxy_v2_parse(b, n + 3, &r), 28);
    CHECK_EQ_INT(r.command, PROXY_V2_PROXY);
    CHECK_EQ_INT(r.src.len, 4);
    CHECK(!memcmp(r.src.ip, "\x0a\x01\x02\x03", 4));
    CHECK_EQ_INT(r.src.port, 50000);
    CHECK(!memcmp(r.dst.ip, "\x7f\x00\x00\x01", 4));
    CHECK_EQ_INT(r.dst.port, 8883);
    size_t bad = 0;
    for (size_t k = 0; k < n; k++)
        bad += proxy_v2_parse(b, k, &r) != 0;
    CHECK_EQ_INT(bad, 0);
}

static void test_ipv6_with_tlvs(void)
{
    uint8_t body[36 + 40], b[128];
    v6_block(body);
    /* PP2_TYPE_UNIQUE_ID (0x05) of 37 bytes: skipped, whatever it holds. */
    body[36] = 0x05;
    body[37] = 0;
    body[38] = 37;
    memset(body + 39, 'x', 37);
    size_t n = header(b, 0x21, 0x21, body, sizeof(body));
    struct proxy_v2 r;
    CHECK_EQ_INT(proxy_v2_parse(b, n, &r), 16 + 36 + 40);
    CHECK_EQ_INT(r.src.len, 16);
    CHECK(!memcmp(r.src.ip, "\x20\x01\x0d\xb8", 4) && r.src.ip[15] == 7);
    CHECK_EQ_INT(r.src.port, 40000);
    CHECK_EQ_INT(r.dst.ip[15], 1);
    CHECK_EQ_INT(r.dst.port, 8883);
    CHECK_EQ_INT(proxy_v2_parse(b, n - 1, &r), 0);
}

static void test_local(void)
{
    uint8_t b[64];
    struct proxy_v2 r;
    /* HAProxy's health check: LOCAL, family UNSPEC, no body. */
    size_t n = header(b, 0x20, 0x00, NULL, 0);
    CHECK_EQ_INT(proxy_v2_parse(b, n, &r), 16);
    CHECK_EQ_INT(r.command, PROXY_V2_LOCAL);
    CHECK_EQ_INT(r.src.len, 0);
    /* LOCAL with an address block: the block is skipped, the family ignored. */
    n = header(b, 0x20, 0x11, v4_block, sizeof(v4_block));
    CHECK_EQ_INT(proxy_v2_parse(b, n, &r), 28);
    CHECK_EQ_INT(r.command, PROXY_V2_LOCAL);
    n = header(b, 0x20, 0x31, NULL, 0); /* even AF_UNIX */
    CHECK_EQ_INT(proxy_v2_parse(b, n, &r), 16);
}

/* An error at byte k stays an error with every byte after it. */
static void check_refused_from(const uint8_t *b, size_t n, size_t k, int err)
{
    struct proxy_v2 r;
    CHECK_EQ_INT(proxy_v2_parse(b, k - 1, &r), 0);
    for (size_t i = k; i <= n; i++)
        CHECK_EQ_INT(proxy_v2_parse(b, i, &r), err);
}

static void test_refusals(void)
{
    uint8_t b[700];
    struct proxy_v2 r;
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x00, 0xb7, 0x01};
    CHECK_EQ_INT(proxy_v2_parse(hello, 1, &r), PROXY_V2_ERR_SIGNATURE);
    CHECK_EQ_INT(proxy_v2_parse(hello, sizeof(hello), &r), PROXY_V2_ERR_SIGNATURE);
    static const char v1[] = "PROXY TCP4 10.1.2.3 127.0.0.1 50000 8883\r\n";
    CHECK_EQ_INT(proxy_v2_parse((const uint8_t *)v1, sizeof(v1) - 1, &r), PROXY_V2_ERR_V1);
    CHECK_EQ_INT(proxy_v2_parse((const uint8_t *)v1, 1, &r), PROXY_V2_ERR_SIGNATURE);
    size_t n = header(b, 0x21, 0x11, v4_block, sizeof(v4_block));
    b[11] = 0x0B; /* the last signature byte */
    check_refused_from(b, n, 12, PROXY_V2_ERR_SIGNATURE);
    n = header(b, 0x11, 0x11, v4_block, sizeof(v4_block));
    check_refused_from(b, n, 13, PROXY_V2_ERR_VERSION);
    n = header(b, 0x22, 0x11, v4_block, sizeof(v4_block));
    check_refused_from(b, n, 13, PROXY_V2_ERR_COMMAND);
    static const uint8_t families[] = {0x00, 0x12, 0x22, 0x31, 0x10, 0x41};
    for (size_t i = 0; i < sizeof(families); i++) {
        n = header(b, 0x21, families[i], v4_block, sizeof(v4_block));
        check_refused_from(b, n, 14, PROXY_V2_ERR_FAMILY);
    }
    n = header(b, 0x21, 0x11, v4_block, 11);
    check_refused_from(b, n, 16, PROXY_V2_ERR_SHORT);
    n = header(b, 0x21, 0x21, v4_block, sizeof(v4_block)); /* 12 bytes for IPv6 */
    check_refused_from(b, n, 16, PROXY_V2_ERR_SHORT);
    n = header_n(b, 0x21, 0x11, v4_block, sizeof(v4_block), 513);
    check_refused_from(b, n, 16, PROXY_V2_ERR_TOO_LONG);
    n = header_n(b, 0x21, 0x11, v4_block, sizeof(v4_block), 512); /* the bound itself */
    CHECK_EQ_INT(proxy_v2_parse(b, n, &r), 528);
    for (int e = PROXY_V2_ERR_TOO_LONG; e <= PROXY_V2_ERR_SIGNATURE; e++)
        CHECK(strlen(proxy_v2_strerror(e)) > 20);
}

int main(void)
{
    test_ipv4();
    test_ipv6_with_tlvs();
    test_local();
    test_refusals();
    return check_finish("proxy_v2_test");
}
