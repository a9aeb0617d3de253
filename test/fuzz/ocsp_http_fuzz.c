/* ocsp_http fuzz target. Input = URL NUL response: the URL goes through ocsp_url_parse (it
 * comes from certificates), the response through ocsp_http_parse whole and byte by byte, which
 * must agree: a complete answer stays complete with more bytes, and its body lies inside. */
#include "ocsp_http.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t ul = nul ? (size_t)(nul - data) : size;
    char url[2048];
    if (ul < sizeof(url)) {
        memcpy(url, data, ul);
        url[ul] = 0;
        struct ocsp_url u;
        const char *why = NULL;
        if (ocsp_url_parse(url, &u, &why) == 0)
            require(u.host[0] && u.port[0] && u.path[0] == '/');
        else
            require(why != NULL);
    }
    if (!nul)
        return 0;
    const uint8_t *r = nul + 1;
    size_t n = size - ul - 1;
    for (int eof = 0; eof < 2; eof++) {
        int st = 0;
        size_t off = 0, len = 0;
        const char *why = NULL;
        int whole = ocsp_http_parse(r, n, eof, &st, &off, &len, &why);
        require(whole >= -1 && whole <= 1);
        if (whole == 1)
            require(off <= n && len <= n - off && st >= 0 && st <= 999);
        if (whole == -1)
            require(why != NULL);
        /* Prefixes: the first complete one must describe the same answer when a length is
         * given, and no prefix may be an error unless the whole is (or EOF was signalled). */
        for (size_t k = 0; k < n && !eof; k++) {
            int pst = 0;
            size_t poff = 0, plen = 0;
            const char *pwhy = NULL;
            int p = ocsp_http_parse(r, k, false, &pst, &poff, &plen, &pwhy);
            if (p == 1) {
                require(whole == 1 && poff == off && plen == len && pst == st);
                break;
            }
            if (p == -1) {
                require(whole == -1);
                break;
            }
        }
    }
    return 0;
}
