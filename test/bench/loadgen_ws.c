/* loadgen_ws: the client side of RFC 6455 for --ws: the HTTP upgrade (with its
 * Sec-WebSocket-Accept check), masked frames out, incremental frame parsing in. */
#include "loadgen.h"

/* --- WebSocket framing (RFC 6455), client side ----------------------------------------- */

uint64_t ws_rng = 0x9E3779B97F4A7C15ull;
static uint32_t ws_mask_key(void)
{
    ws_rng ^= ws_rng << 13; /* xorshift64: masking keys need not be secret here */
    ws_rng ^= ws_rng >> 7;
    ws_rng ^= ws_rng << 17;
    return (uint32_t)(ws_rng >> 16);
}

/* one masked frame (FIN set) of opcode op carrying d[0..n) into c->wout */
void ws_frame(conn_t *c, uint8_t op, const uint8_t *d, size_t n)
{
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)(0x80 | op);
    if (n < 126)
        h[hl++] = (uint8_t)(0x80 | n);
    else if (n < 65536) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    uint32_t k = ws_mask_key();
    uint8_t m[4];
    memcpy(m, &k, 4);
    memcpy(h + hl, m, 4);
    hl += 4;
    buf_reserve(&c->wout, hl + n);
    buf_put(&c->wout, h, hl);
    uint8_t *o = c->wout.p + c->wout.off + c->wout.len;
    size_t i = 0;
    uint64_t m8;
    uint8_t mm[8] = {m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]};
    memcpy(&m8, mm, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, d + i, 8);
        v ^= m8;
        memcpy(o + i, &v, 8);
    }
    for (; i < n; i++)
        o[i] = d[i] ^ m[i & 3];
    c->wout.len += n;
}

void ws_send_upgrade(conn_t *c)
{
    unsigned char raw[16];
    size_t ol = 0;
    if (mbedtls_ctr_drbg_random(&drbg, raw, sizeof raw) ||
        mbedtls_base64_encode((unsigned char *)c->ws_key, sizeof c->ws_key, &ol, raw, sizeof raw)) {
        conn_fail(c, "ws key", 0);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                     opt.ws_path, opt.host, opt.port, c->ws_key);
    buf_put(&c->wout, req, (size_t)n);
    c->ws_state = 1;
}

/* the 101 response: status, Upgrade, Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) */
static int ws_check_response(conn_t *c, const char *h, size_t n)
{
    if (n < 12 || strncmp(h, "HTTP/1.1 101", 12))
        return -1;
    char cat[64];
    unsigned char dg[20];
    char want[32];
    size_t wl = 0;
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->ws_key);
    if (LG_SHA1((const unsigned char *)cat, strlen(cat), dg) ||
        mbedtls_base64_encode((unsigned char *)want, sizeof want, &wl, dg, sizeof dg))
        return -2;
    int accept_ok = 0, proto_ok = 0;
    const char *e = h + n;
    for (const char *l = h; l < e;) {
        const char *nl = memchr(l, '\n', (size_t)(e - l));
        size_t ll = nl ? (size_t)(nl - l) : (size_t)(e - l);
        if (ll && l[ll - 1] == '\r')
            ll--;
        const char *colon = memchr(l, ':', ll);
        if (colon) {
            size_t kl = (size_t)(colon - l);
            const char *v = colon + 1, *ve = l + ll;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vl = (size_t)(ve - v);
            if (kl == 20 && !strncasecmp(l, "Sec-WebSocket-Accept", 20))
                accept_ok = vl == wl && !memcmp(v, want, wl);
            else if (kl == 22 && !strncasecmp(l, "Sec-WebSocket-Protocol", 22))
                proto_ok = vl == 4 && !strncasecmp(v, "mqtt", 4);
        }
        l = nl ? nl + 1 : e;
    }
    if (!accept_ok)
        return -3;
    if (!proto_ok)
        return -4;
    return 0;
}

static void ws_peer_closed(conn_t *c)
{
    if (phase >= 2 || c->role == R_STORM || c->role == R_IDLE)
        conn_close(c);
    else
        conn_fail(c, "ws close from peer", 0);
}

/* parse frames out of d[0..n); returns bytes consumed (whole frames only), or -1 if c was closed */
static long ws_parse(conn_t *c, const uint8_t *d, size_t n)
{
    size_t pos = 0;
    while (n - pos >= 2) {
        const uint8_t *f = d + pos;
        size_t avail = n - pos, hl = 2;
        uint64_t pl = f[1] & 127;
        if (f[1] & 0x80) {
            conn_fail(c, "masked frame from server", 0);
            return -1;
        }
        if (pl == 126) {
            if (avail < 4)
                break;
            pl = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (pl == 127) {
            if (avail < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | f[2 + i];
            hl = 10;
            if (pl > (1u << 30)) {
                conn_fail(c, "ws frame too large", 0);
                return -1;
            }
        }
        if (avail - hl < pl)
            break;
        const uint8_t *p = f + hl;
        uint8_t op = f[0] & 15;
        switch (op) {
        case 0: /* continuation: MQTT is a byte stream, so fragments just concatenate */
        case 2: /* binary */
            if (pl)
                on_plain(c, p, (size_t)pl);
            break;
        case 8: /* close: echo it once, then close the socket */
            if (c->ws_state != 3) {
                ws_frame(c, 8, p, pl >= 2 ? 2 : 0);
                c->ws_state = 3;
                conn_flush(c);
            }
            ws_peer_closed(c);
            return -1;
        case 9: /* ping */
            if (c->ws_state == 2) {
                ws_frame(c, 10, p, (size_t)pl);
                conn_flush(c);
            }
            break;
        case 10: /* pong */
            break;
        default:
            conn_fail(c, "ws text or unknown opcode", -(int)op);
            return -1;
        }
        if (c->st == S_CLOSING || c->st == S_FREE)
            return -1;
        pos += hl + (size_t)pl;
    }
    return (long)pos;
}

/* decrypted bytes of a --ws connection: the HTTP 101 response, then frames */
void ws_input(conn_t *c, const uint8_t *p, size_t n)
{
    buf_t *w = &c->win;
    if (c->ws_state == 1) {
        buf_put(w, p, n);
        const uint8_t *h = w->p + w->off;
        const uint8_t *end = memmem(h, w->len, "\r\n\r\n", 4);
        if (!end) {
            if (w->len > 16384)
                conn_fail(c, "ws upgrade response too long", 0);
            return;
        }
        size_t hn = (size_t)(end - h) + 4;
        int r = ws_check_response(c, (const char *)h, hn);
        if (r) {
            if (n_failed < 5)
                fprintf(stderr, "loadgen: upgrade response: %.*s\n", (int)(hn < 300 ? hn : 300),
                        (const char *)h);
            conn_fail(c, "ws upgrade", r);
            return;
        }
        buf_consume(w, hn);
        c->ws_state = 2;
        mqtt_connect(c);
        conn_flush(c);
        if (c->st == S_CLOSING || c->st == S_FREE || !w->len)
            return;
        p = NULL;
        n = 0;
    }
    if (!w->len) {
        long u = ws_parse(c, p, n);
        if (u >= 0 && (size_t)u < n)
            buf_put(w, p + u, n - (size_t)u);
        return;
    }
    if (n)
        buf_put(w, p, n);
    long u = ws_parse(c, w->p + w->off, w->len);
    if (u > 0 && c->st != S_CLOSING && c->st != S_FREE)
        buf_consume(w, (size_t)u);
}
