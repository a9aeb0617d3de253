/* cidr: networks as operators write them: IPv4 and IPv6 with and without a prefix, a bare
 * address is one host, ::ffff:a.b.c.d networks mean IPv4; matching at and around the prefix
 * boundary, IPv4 peers seen as ::ffff:a.b.c.d on a dual-stack socket match IPv4 networks, the
 * families never mix otherwise; typos (bad address, prefix out of range or not a number, host
 * bits set) are refused with a reason. */
#include "check.h"
#include "cidr.h"

#include <arpa/inet.h>
#include <string.h>

static struct cidr net(const char *s)
{
    struct cidr c;
    const char *why = NULL;
    int r = cidr_parse(s, &c, &why);
    if (r != 0)
        fprintf(stderr, "  %s: %s\n", s, why);
    CHECK_EQ_INT(r, 0);
    return c;
}

static bool in(const char *network, const char *addr)
{
    struct cidr c = net(network);
    uint8_t a[16];
    if (inet_pton(AF_INET, addr, a) == 1)
        return cidr_match(&c, a, 4);
    CHECK_EQ_INT(inet_pton(AF_INET6, addr, a), 1);
    return cidr_match(&c, a, 16);
}

static void test_parse(void)
{
    struct cidr c = net("127.0.0.0/8");
    CHECK_EQ_INT(c.len, 4);
    CHECK_EQ_INT(c.bits, 8);
    c = net("10.1.2.3");
    CHECK_EQ_INT(c.bits, 32);
    c = net("2001:db8::/32");
    CHECK_EQ_INT(c.len, 16);
    CHECK_EQ_INT(c.bits, 32);
    c = net("::1");
    CHECK_EQ_INT(c.bits, 128);
    c = net("::ffff:10.0.0.0/104");
    CHECK_EQ_INT(c.len, 4);
    CHECK_EQ_INT(c.bits, 8);
    CHECK_EQ_INT(c.addr[0], 10);
    c = net("0.0.0.0/0");
    CHECK_EQ_INT(c.bits, 0);
}

static void test_match(void)
{
    CHECK(in("127.0.0.0/8", "127.0.0.1"));
    CHECK(in("127.0.0.0/8", "127.255.255.255"));
    CHECK(!in("127.0.0.0/8", "128.0.0.1"));
    CHECK(in("10.1.2.0/23", "10.1.3.200"));
    CHECK(!in("10.1.2.0/23", "10.1.4.0"));
    CHECK(in("10.1.2.3", "10.1.2.3"));
    CHECK(!in("10.1.2.3", "10.1.2.4"));
    CHECK(in("0.0.0.0/0", "192.0.2.1"));
    CHECK(!in("0.0.0.0/0", "2001:db8::1"));
    CHECK(in("2001:db8::/32", "2001:db8:ffff::7"));
    CHECK(!in("2001:db8::/32", "2001:db9::7"));
    CHECK(in("::/0", "::1"));
    CHECK(!in("::/0", "10.0.0.1"));
    CHECK(in("127.0.0.0/8", "::ffff:127.0.0.1"));
    CHECK(in("::ffff:127.0.0.0/104", "127.0.0.9"));
    CHECK(!in("::1", "127.0.0.1"));
    struct cidr list[2] = {net("192.0.2.0/24"), net("2001:db8::/32")};
    uint8_t a[16];
    inet_pton(AF_INET6, "2001:db8::5", a);
    CHECK(cidr_match_any(list, 2, a, 16));
    inet_pton(AF_INET, "198.51.100.1", a);
    CHECK(!cidr_match_any(list, 2, a, 4));
    CHECK(!cidr_match_any(list, 0, a, 4));
}

static void test_refused(void)
{
    static const char *const bad[] = {
        "",
        "localhost",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/08",
        "10.0.0.0/8/8",
        "10.1.2.3/8",
        "2001:db8::/129",
        "2001:db8::1/32",
        "10.0.0.0 /8",
        "1.2.3",
        "::ffff:10.0.0.1/104",
        "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cidr c;
        const char *why = NULL;
        int r = cidr_parse(bad[i], &c, &why);
        if (r == 0)
            fprintf(stderr, "  accepted: '%s'\n", bad[i]);
        CHECK_EQ_INT(r, -1);
        CHECK(why && strlen(why) > 10);
    }
}

int main(void)
{
    test_parse();
    test_match();
    test_refused();
    return check_finish("cidr_test");
}
