/* ocsp_http: responder URLs (from certificates' AIA and the configuration) and the HTTP
 * responses of OCSP responders, including incomplete and hostile ones. */
#include "check.h"
#include "ocsp_http.h"

#include <stdio.h>
#include <string.h>

static int parse(const char *resp, bool eof, int *status, size_t *off, size_t *len)
{
    const char *why = NULL;
    return ocsp_http_parse((const uint8_t *)resp, strlen(resp), eof, status, off, len, &why);
}

static void test_urls(void)
{
    struct ocsp_url u;
    const char *why = NULL;
    CHECK_EQ_INT(ocsp_url_parse("http://127.0.0.1:8888/", &u, &why), 0);
    CHECK_EQ_STR(u.host, "127.0.0.1");
    CHECK_EQ_STR(u.port, "8888");
    CHECK_EQ_STR(u.path, "/");
    CHECK_EQ_INT(ocsp_url_parse("http://ocsp.example.com", &u, &why), 0);
    CHECK_EQ_STR(u.host, "ocsp.example.com");
    CHECK_EQ_STR(u.port, "80");
    CHECK_EQ_STR(u.path, "/");
    CHECK_EQ_INT(ocsp_url_parse("HTTP://[::1]:81/ocsp/fleet", &u, &why), 0);
    CHECK_EQ_STR(u.host, "::1");
    CHECK_EQ_STR(u.port, "81");
    CHECK_EQ_STR(u.path, "/ocsp/fleet");
    CHECK_EQ_INT(ocsp_url_parse("https://ocsp.example.com/", &u, &why), -1);
    CHECK_EQ_STR(why, "https responders are not supported");
    const char *bad[] = {"",
                         "ftp://x/",
                         "http://",
                         "http:///path",
                         "http://host:0/",
                         "http://host:65536/",
                         "http://host:80x/",
                         "http://host:/",
                         "http://[::1/",
                         "http://ho st/",
                         "http://host/a b",
                         "http://host/\x7f",
                         "http://host?q",
                         "http://user@host/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        int r = ocsp_url_parse(bad[i], &u, &why);
        CHECK(r == -1 && why);
        if (r != -1)
            fprintf(stderr, "accepted: %s\n", bad[i]);
    }
    char longhost[400] = "http://";
    memset(longhost + 7, 'a', 300);
    CHECK_EQ_INT(ocsp_url_parse(longhost, &u, &why), -1);
}

static void test_responses(void)
{
    int st = 0;
    size_t off = 0, len = 0;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
                     "Content-Length: 5\r\n\r\nABCDE";
    CHECK_EQ_INT(parse(ok, false, &st, &off, &len), 1);
    CHECK_EQ_INT(st, 200);
    CHECK_EQ_INT(len, 5);
    CHECK(!memcmp(ok + off, "ABCDE", 5));
    /* Every proper prefix needs more bytes; at EOF it is an error. */
    for (size_t n = 0; n < strlen(ok); n++) {
        char pre[256];
        memcpy(pre, ok, n);
        pre[n] = 0;
        CHECK_EQ_INT(parse(pre, false, &st, &off, &len), 0);
        CHECK_EQ_INT(parse(pre, true, &st, &off, &len), -1);
    }
    /* No Content-Length: the body ends when the responder closes. */
    CHECK_EQ_INT(parse("HTTP/1.0 200 OK\r\n\r\nxyz", false, &st, &off, &len), 0);
    CHECK_EQ_INT(parse("HTTP/1.0 200 OK\r\n\r\nxyz", true, &st, &off, &len), 1);
    CHECK_EQ_INT(len, 3);
    CHECK_EQ_INT(parse("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", false,
                       &st, &off, &len),
                 1);
    CHECK_EQ_INT(st, 500);
    CHECK_EQ_INT(
        parse("HTTP/1.1 200 OK\r\ncontent-length:   2  \r\n\r\nhi", false, &st, &off, &len), 1);
    CHECK_EQ_INT(len, 2);
    const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "SMTP ready\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nABCDE\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nA",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nAB",
        "HTTP/1.1 200OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_EQ_INT(parse(bad[i], true, &st, &off, &len), -1);
    /* Headers that never end are refused once they pass the limit, not buffered forever. */
    static char huge[20000];
    strcpy(huge, "HTTP/1.1 200 OK\r\n");
    for (size_t n = strlen(huge); n < sizeof(huge) - 1; n++)
        huge[n] = 'a';
    CHECK_EQ_INT(parse(huge, false, &st, &off, &len), -1);
}

int main(void)
{
    test_urls();
    test_responses();
    return check_finish("ocsp_http");
}
