/* tls_hello: the ClientHello completeness check (see tls_hello.h). Knows TLS framing only: no
 * Mbed TLS, no loop, no socket. */
#include "tls_hello.h"

#define REC_HEADER 5
#define REC_MAX 16384 /* 2^14: the largest plaintext record (ClientHellos are never encrypted) */
#define HS_HEADER 4
#define CONTENT_HANDSHAKE 22
#define HS_CLIENT_HELLO 1

/* Walks the records in order, counting their payload bytes, until the handshake message's own
 * length (read from its header, which may itself be split across records) is covered. */
enum tls_hello tls_hello_complete(const uint8_t *p, size_t n)
{
    size_t off = 0;     /* start of the current record */
    size_t payload = 0; /* handshake bytes seen in complete or partial records so far */
    uint8_t hs[HS_HEADER];
    size_t need = 0; /* 0 until the handshake header is known: then header + body */
    while (off < n) {
        if (off + REC_HEADER > TLS_HELLO_MAX)
            return TLS_HELLO_TOO_LONG;
        /* Judge the header byte by byte as it arrives: garbage is refused at its first byte. */
        if (p[off] != CONTENT_HANDSHAKE)
            return TLS_HELLO_NOT_TLS;
        if (off + 1 < n && p[off + 1] != 3)
            return TLS_HELLO_NOT_TLS;
        if (off + REC_HEADER > n)
            return TLS_HELLO_NEED;
        size_t len = (size_t)p[off + 3] << 8 | p[off + 4];
        if (len == 0 || len > REC_MAX)
            return TLS_HELLO_NOT_TLS;
        if (off + REC_HEADER + len > TLS_HELLO_MAX)
            return TLS_HELLO_TOO_LONG;
        size_t have = n - (off + REC_HEADER);
        if (have > len)
            have = len;
        const uint8_t *body = p + off + REC_HEADER;
        for (size_t i = 0; i < have && payload + i < HS_HEADER; i++)
            hs[payload + i] = body[i];
        payload += have;
        if (!need && payload >= HS_HEADER) {
            if (hs[0] != HS_CLIENT_HELLO)
                return TLS_HELLO_NOT_TLS;
            need = HS_HEADER + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
            /* Larger than the record limit as one message: no real client sends that. */
            if (need > REC_MAX)
                return TLS_HELLO_TOO_LONG;
        }
        if (need && payload >= need)
            return TLS_HELLO_COMPLETE;
        if (have < len)
            return TLS_HELLO_NEED; /* inside this record still */
        off += REC_HEADER + len;
    }
    return TLS_HELLO_NEED;
}
