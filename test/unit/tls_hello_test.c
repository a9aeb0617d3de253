/* tls_hello: the ClientHello completeness check on hand-built records: every prefix of a hello
 * needs more, the whole one is complete (with or without bytes after it), a hello split over
 * records (even its 4-byte header) is complete only when its last byte is in, and garbage, a
 * record of another type, a bad length or a hello too long for the bound are refused as soon as
 * the bytes that show it are in. */
#include "check.h"
#include "tls_hello.h"

#include <stdlib.h>
#include <string.h>

/* A handshake message of type hs_type with body_len body bytes, framed in records of at most
 * frag payload bytes each. Returns the length written to out. */
static size_t build(uint8_t *out, uint8_t hs_type, size_t body_len, size_t frag)
{
    size_t msg_len = 4 + body_len;
    uint8_t *msg = malloc(msg_len);
    msg[0] = hs_type;
    msg[1] = (uint8_t)(body_len >> 16);
    msg[2] = (uint8_t)(body_len >> 8);
    msg[3] = (uint8_t)body_len;
    for (size_t i = 0; i < body_len; i++)
        msg[4 + i] = (uint8_t)(i * 7);
    size_t n = 0;
    for (size_t off = 0; off < msg_len; off += frag) {
        size_t len = msg_len - off < frag ? msg_len - off : frag;
        out[n++] = 22;
        out[n++] = 3;
        out[n++] = 1;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
        memcpy(out + n, msg + off, len);
        n += len;
    }
    free(msg);
    return n;
}

static uint8_t b[200000];

static void test_whole_and_prefixes(void)
{
    size_t n = build(b, 1, 300, 16384);
    CHECK_EQ_INT(n, 309);
    CHECK_EQ_INT(tls_hello_complete(b, 0), TLS_HELLO_NEED);
    size_t bad = 0;
    for (size_t k = 1; k < n; k++)
        bad += tls_hello_complete(b, k) != TLS_HELLO_NEED;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(tls_hello_complete(b, n), TLS_HELLO_COMPLETE);
    b[n] = 0x42; /* whatever follows is not the detector's business */
    CHECK_EQ_INT(tls_hello_complete(b, n + 1), TLS_HELLO_COMPLETE);
}

static void test_fragmented(void)
{
    /* 3-byte records: even the handshake header is split. */
    size_t n = build(b, 1, 50, 3);
    size_t bad = 0;
    for (size_t k = 0; k < n; k++)
        bad += tls_hello_complete(b, k) != TLS_HELLO_NEED;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(tls_hello_complete(b, n), TLS_HELLO_COMPLETE);
    /* A record of another type in the middle of the hello. */
    b[8] = 23;
    CHECK_EQ_INT(tls_hello_complete(b, n), TLS_HELLO_NOT_TLS);
    /* The largest hello in one record is fine. */
    n = build(b, 1, 16384 - 4, 16384);
    CHECK_EQ_INT(n, TLS_HELLO_MAX);
    CHECK_EQ_INT(tls_hello_complete(b, n), TLS_HELLO_COMPLETE);
    CHECK_EQ_INT(tls_hello_complete(b, n - 1), TLS_HELLO_NEED);
    /* The same in small records no longer fits the bound: refused once the bound is passed. */
    n = build(b, 1, 16384 - 4, 1000);
    CHECK(n > TLS_HELLO_MAX);
    CHECK_EQ_INT(tls_hello_complete(b, 1000), TLS_HELLO_NEED);
    CHECK_EQ_INT(tls_hello_complete(b, n), TLS_HELLO_TOO_LONG);
    /* Tiny records: bounded too, whatever the hello's length. */
    n = build(b, 1, 16000, 1);
    CHECK_EQ_INT(tls_hello_complete(b, 6000), TLS_HELLO_NEED);
    CHECK_EQ_INT(tls_hello_complete(b, TLS_HELLO_MAX), TLS_HELLO_TOO_LONG);
    CHECK_EQ_INT(tls_hello_complete(b, n), TLS_HELLO_TOO_LONG);
}

static void test_refused(void)
{
    static const uint8_t get[] = "GET / HTTP/1.1\r\n";
    CHECK_EQ_INT(tls_hello_complete(get, 1), TLS_HELLO_NOT_TLS); /* at its first byte */
    CHECK_EQ_INT(tls_hello_complete(get, sizeof(get) - 1), TLS_HELLO_NOT_TLS);
    static const uint8_t mqtt[] = {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T'};
    CHECK_EQ_INT(tls_hello_complete(mqtt, sizeof(mqtt)), TLS_HELLO_NOT_TLS);
    static const uint8_t sslv2[] = {0x80, 0x2e, 0x01, 0x03, 0x01};
    CHECK_EQ_INT(tls_hello_complete(sslv2, sizeof(sslv2)), TLS_HELLO_NOT_TLS);
    static const uint8_t zeros[16] = {0};
    CHECK_EQ_INT(tls_hello_complete(zeros, 1), TLS_HELLO_NOT_TLS);
    static const uint8_t bad_major[] = {22, 2, 0};
    CHECK_EQ_INT(tls_hello_complete(bad_major, 2), TLS_HELLO_NOT_TLS);
    static const uint8_t empty_rec[] = {22, 3, 1, 0, 0};
    CHECK_EQ_INT(tls_hello_complete(empty_rec, 5), TLS_HELLO_NOT_TLS);
    static const uint8_t huge_rec[] = {22, 3, 1, 0x40, 0x01};
    CHECK_EQ_INT(tls_hello_complete(huge_rec, 5), TLS_HELLO_NOT_TLS);
    size_t n = build(b, 2, 40, 16384); /* a ServerHello */
    CHECK_EQ_INT(tls_hello_complete(b, 5), TLS_HELLO_NEED);
    CHECK_EQ_INT(tls_hello_complete(b, 6), TLS_HELLO_NEED); /* the type alone: header not yet */
    CHECK_EQ_INT(tls_hello_complete(b, n), TLS_HELLO_NOT_TLS);
    static const uint8_t long_hello[] = {22, 3, 1, 0, 4, 1, 0, 0x50, 0};
    CHECK_EQ_INT(tls_hello_complete(long_hello, sizeof(long_hello)), TLS_HELLO_TOO_LONG);
}

int main(void)
{
    test_whole_and_prefixes();
    test_fragmented();
    test_refused();
    return check_finish("tls_hello_test");
}
