/* httpreq: the requests scrapers send (Prometheus, curl) parse with their path and version,
 * every prefix of them needs more, and the query string is not part of the path; malformed
 * heads (bare LF, folding, control bytes, bad targets and versions, bodies) are refused with
 * the status to answer, and the size and header-count limits hold at their edges. */
#include "check.h"
#include "httpreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *s, struct httpreq *r)
{
    return httpreq_parse((const uint8_t *)s, strlen(s), r);
}

static void test_scrapers(void)
{
    const char *prom = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: "
                       "Prometheus/2.42.0\r\nAccept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\n"
                       "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
    struct httpreq r;
    CHECK_EQ_INT(parse(prom, &r), (int)strlen(prom));
    CHECK_EQ_INT(r.method, HTTPREQ_GET);
    CHECK_EQ_INT(r.path_len, 8);
    CHECK(memcmp(r.path, "/metrics", 8) == 0);
    CHECK_EQ_INT(r.version_minor, 1);
    CHECK_EQ_INT(r.headers, 5);
    for (size_t k = 0; k < strlen(prom); k++)
        CHECK_EQ_INT(httpreq_parse((const uint8_t *)prom, k, &r), 0);

    const char *curl = "HEAD /healthz?verbose=1 HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\n";
    CHECK_EQ_INT(parse(curl, &r), 36);
    CHECK_EQ_INT(r.method, HTTPREQ_HEAD);
    CHECK_EQ_INT(r.path_len, 8);
    CHECK_EQ_INT(r.version_minor, 0);
    CHECK_EQ_INT(parse("DELETE /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r), 47);
    CHECK_EQ_INT(r.method, HTTPREQ_OTHER);
}

static void test_refused(void)
{
    struct httpreq r;
    static const struct {
        const char *req;
        int status;
    } bad[] = {
        {"GET /metrics HTTP/1.1\n\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: x\n", 400},
        {"GET /metrics HTTP/1.1\rX", 400},
        {"GET  /metrics HTTP/1.1\r\n", 400},
        {"GET metrics HTTP/1.1\r\n", 400},
        {"GET http://x/metrics HTTP/1.1\r\n", 400},
        {"GET /metrics\r\n", 400},
        {"GET /metrics HTTP/2.0\r\n", 505},
        {"GET /metrics HTTP/1.2\r\n", 505},
        {"GET /metrics HTTP/1.1 \r\n", 400},
        {"GET /met\x01rics HTTP/1.1\r\n", 400},
        {"G(T /metrics HTTP/1.1\r\n", 400},
        {"\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost x\r\n", 400},
        {"GET /metrics HTTP/1.1\r\n: x\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nHost: a\r\n b\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nX: a\x7f\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n", 400},
        {"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 400},
        {"GET /metrics HTTP/1.1\r\ncontent-length: 00\r\n", 400},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int got = parse(bad[i].req, &r);
        if (got != -bad[i].status)
            fprintf(stderr, "case %zu: %d\n", i, got);
        CHECK_EQ_INT(got, -bad[i].status);
    }
}

static void test_limits(void)
{
    struct httpreq r;
    char *big = malloc(HTTPREQ_MAX + 64);
    /* A request line that fills the limit without ending. */
    memset(big, 'a', HTTPREQ_MAX + 63);
    memcpy(big, "GET /", 5);
    CHECK_EQ_INT(httpreq_parse((uint8_t *)big, HTTPREQ_MAX - 1, &r), 0);
    CHECK_EQ_INT(httpreq_parse((uint8_t *)big, HTTPREQ_MAX, &r), -414);
    CHECK_EQ_INT(httpreq_parse((uint8_t *)big, HTTPREQ_MAX + 63, &r), -414);
    /* A head of exactly HTTPREQ_MAX bytes is accepted, one more is not. */
    const char *line = "GET / HTTP/1.1\r\nX: ";
    size_t n = strlen(line);
    memcpy(big, line, n);
    memset(big + n, 'v', HTTPREQ_MAX - n - 4);
    memcpy(big + HTTPREQ_MAX - 4, "\r\n\r\n", 4);
    CHECK_EQ_INT(httpreq_parse((uint8_t *)big, HTTPREQ_MAX, &r), HTTPREQ_MAX);
    memmove(big + n + 1, big + n, HTTPREQ_MAX - n);
    CHECK_EQ_INT(httpreq_parse((uint8_t *)big, HTTPREQ_MAX + 1, &r), -431);
    free(big);

    char many[2048] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < HTTPREQ_MAX_HEADERS; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    CHECK(parse(many, &r) > 0);
    CHECK_EQ_INT(r.headers, HTTPREQ_MAX_HEADERS);
    many[strlen(many) - 2] = '\0';
    strcat(many, "A: b\r\n\r\n");
    CHECK_EQ_INT(parse(many, &r), -431);
}

int main(void)
{
    test_scrapers();
    test_refused();
    test_limits();
    return check_finish("httpreq_test");
}
