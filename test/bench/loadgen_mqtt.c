/* loadgen_mqtt: its own MQTT 3.1.1 codec (independent of the broker's) and publishing. */
#include "loadgen.h"

/* --- MQTT encoding ---------------------------------------------------------------------- */

size_t put_varlen(uint8_t *p, size_t v)
{
    size_t i = 0;
    do {
        uint8_t b = v % 128;
        v /= 128;
        if (v)
            b |= 0x80;
        p[i++] = b;
    } while (v);
    return i;
}
void put_str(buf_t *b, const char *s)
{
    size_t l = strlen(s);
    uint8_t h[2] = {(uint8_t)(l >> 8), (uint8_t)l};
    buf_put(b, h, 2);
    buf_put(b, s, l);
}

void mqtt_connect(conn_t *c)
{
    char cid[64];
    snprintf(cid, sizeof cid, "%s%c%d", client_prefix, "sPSiAWD"[c->role], c -> idx);
    size_t rl = 10 + 2 + strlen(cid);
    uint8_t h[16];
    size_t n = 0;
    h[n++] = 0x10;
    n += put_varlen(h + n, rl);
    buf_put(&c->pout, h, n);
    put_str(&c->pout, "MQTT");
    uint8_t v[4] = {4, 0x02, (uint8_t)(opt.keepalive >> 8), (uint8_t)opt.keepalive};
    buf_put(&c->pout, v, 4);
    put_str(&c->pout, cid);
}

void mqtt_subscribe(conn_t *c, const char *filter)
{
    size_t rl = 2 + 2 + strlen(filter) + 1;
    uint8_t h[8];
    size_t n = 0;
    h[n++] = 0x82;
    n += put_varlen(h + n, rl);
    h[n++] = 0;
    h[n++] = 1;
    buf_put(&c->pout, h, n);
    put_str(&c->pout, filter);
    uint8_t q = (uint8_t)opt.qos;
    buf_put(&c->pout, &q, 1);
}

void mqtt_publish(conn_t *c, uint32_t seq)
{
    size_t tl = strlen(c->topic);
    size_t rl = 2 + tl + (opt.qos ? 2 : 0) + (size_t)opt.size;
    uint8_t h[8];
    size_t n = 0;
    h[n++] = (uint8_t)(0x30 | (opt.qos << 1));
    n += put_varlen(h + n, rl);
    buf_reserve(&c->pout, n + rl);
    buf_put(&c->pout, h, n);
    put_str(&c->pout, c->topic);
    if (opt.qos) {
        if (++c->pid == 0)
            c->pid = 1;
        uint8_t pid[2] = {(uint8_t)(c->pid >> 8), (uint8_t)c->pid};
        buf_put(&c->pout, pid, 2);
    }
    uint8_t *pl = c->pout.p + c->pout.off + c->pout.len;
    memset(pl, 0, (size_t)opt.size);
    uint64_t t = uv_hrtime();
    uint32_t pi = (uint32_t)c->idx;
    memcpy(pl, &t, 8);
    memcpy(pl + 8, &pi, 4);
    memcpy(pl + 12, &seq, 4);
    c->pout.len += (size_t)opt.size;
}

/* --- MQTT decoding ---------------------------------------------------------------------- */

void on_ready(conn_t *c)
{
    c->st = S_READY;
    n_active_hs--;
    n_ready++;
    c->t_ready = uv_hrtime();
    if (lat_connect)
        lat_connect[c->idx] = c->t_ready - c->t_start;
    if (c->role == R_SUB) {
        mqtt_subscribe(c, opt.sub_filter);
        conn_flush(c);
    }
    if (c->role == R_IDLE && opt.lean)
        c->lean = 1; /* on_read frees the TLS state once this read is processed */
    if (c->role == R_STORM && storm_disc)
        conn_disconnect(c); /* a reconnecting device: CONNECT, CONNACK, DISCONNECT */
    if (c->role == R_ATK || c->role == R_SLOW)
        attack_on_ready(c);
    if (opt.scen == SC_RESTART)
        restart_on_ready(c);
    start_more();
    scenario_progress();
}

void handle_packet(conn_t *c, uint8_t type, const uint8_t *p, size_t n)
{
    switch (type >> 4) {
    case 2: /* CONNACK */
        if (c->st != S_MQTT || n < 2) {
            conn_fail(c, "unexpected CONNACK", 0);
            return;
        }
        if (p[1] != 0) {
            conn_fail(c, "CONNACK refused", -(int)p[1]);
            return;
        }
        on_ready(c);
        return;
    case 9: /* SUBACK */
        if (c->role == R_ATK || c->role == R_SLOW) {
            attack_on_suback(c, p, n);
            return;
        }
        if (n < 3 || p[2] == 0x80) {
            conn_fail(c, "SUBSCRIBE refused", 0);
            return;
        }
        c->subacked = 1;
        if (opt.scen == SC_RESTART)
            restart_on_suback(c);
        scenario_progress();
        return;
    case 4: /* PUBACK */
        c->acked++;
        if (c->role == R_ATK)
            attack_on_puback(c);
        return;
    case 13: /* PINGRESP */
        return;
    case 3: { /* PUBLISH */
        int q = (type >> 1) & 3;
        if (n < 2)
            return;
        size_t tl = (size_t)p[0] << 8 | p[1];
        size_t off = 2 + tl;
        uint16_t pid = 0;
        if (q) {
            if (off + 2 > n)
                return;
            pid = (uint16_t)(p[off] << 8 | p[off + 1]);
            off += 2;
        }
        if (off > n)
            return;
        if (c->role == R_ATK)
            attack_on_publish(c);
        if (q == 1) {
            uint8_t a[4] = {0x40, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
            buf_put(&c->pout, a, 4);
            if (!opt.pipeline)
                conn_flush(c); /* device-like: every PUBACK its own TLS record */
        }
        if (n - off >= 16) {
            uint64_t t;
            uint32_t pi;
            memcpy(&t, p + off, 8);
            memcpy(&pi, p + off + 8, 4);
            uint64_t now = uv_hrtime();
            if (pi < (uint32_t)npubs && phase >= 1) {
                conn_t *pc = &conns[pi];
                pc->delivered++;
                total_delivered++;
                last_deliv_ns = now;
                if (opt.scen == SC_STORMLAT || opt.scen == SC_ATTACK || opt.scen == SC_RESTART) {
                    if (nrecs == recs_cap) {
                        recs_cap = recs_cap ? recs_cap * 2 : 65536;
                        recs = realloc(recs, recs_cap * sizeof *recs);
                        if (!recs)
                            die("out of memory");
                    }
                    recs[nrecs].t = t;
                    recs[nrecs++].lat = now - t;
                } else if (t >= m_start_ns)
                    sample_add(now - t);
                pc->want_pump = 1;
            }
        }
        return;
    }
    default:
        return;
    }
}

void on_plain(conn_t *c, const uint8_t *p, size_t n)
{
    buf_t *m = &c->min;
    const uint8_t *d = p;
    size_t dl = n;
    if (m->len) {
        buf_put(m, p, n);
        d = m->p + m->off;
        dl = m->len;
    }
    size_t pos = 0;
    while (dl - pos >= 2) {
        size_t rl = 0, mul = 1, i = 1;
        int ok = 0;
        for (; i < 5 && pos + i < dl; i++) {
            rl += (d[pos + i] & 127) * mul;
            mul *= 128;
            if (!(d[pos + i] & 128)) {
                ok = 1;
                i++;
                break;
            }
        }
        if (!ok) {
            if (i >= 5) {
                conn_fail(c, "bad remaining length", 0);
                return;
            }
            break;
        }
        if (dl - pos < i + rl)
            break;
        handle_packet(c, d[pos], d + pos + i, rl);
        if (c->st == S_CLOSING || c->st == S_FREE)
            return;
        pos += i + rl;
    }
    if (m->len) {
        buf_consume(m, pos);
    } else if (pos < dl) {
        buf_put(m, d + pos, dl - pos);
    }
}

/* --- publishing ------------------------------------------------------------------------- */

uint64_t pub_allowed(conn_t *c)
{
    /* end-to-end window: messages published but not yet seen by every subscriber */
    uint64_t copies = c->sent * (uint64_t)nsubs;
    uint64_t in_transit =
        copies > c->delivered + c->lost_adj ? copies - c->delivered - c->lost_adj : 0;
    uint64_t wcopies = (uint64_t)opt.window * (uint64_t)nsubs;
    if (in_transit >= wcopies)
        return 0;
    uint64_t a = (wcopies - in_transit + (uint64_t)nsubs - 1) / (uint64_t)nsubs;
    if (opt.qos) {
        uint64_t unacked = c->sent - c->acked;
        if (unacked >= (uint64_t)opt.window)
            return 0;
        if (a > (uint64_t)opt.window - unacked)
            a = (uint64_t)opt.window - unacked;
    }
    return a;
}

void pump_n(conn_t *c, uint64_t want)
{
    if (phase != 1 || c->st != S_READY)
        return;
    if (c->writing || c->cout.len > 262144)
        return; /* socket back-pressure: on_write pumps again */
    uint64_t a = pub_allowed(c);
    if (want > a)
        want = a;
    if (total_target && total_sent + want > total_target)
        want = total_target - total_sent;
    if (want > 256)
        want = 256;
    if (!want)
        return;
    if (opt.pipeline) {
        /* one busy gateway: up to --pipeline packets coalesced into each TLS record */
        for (uint64_t i = 0; i < want; i++) {
            mqtt_publish(c, (uint32_t)c->sent++);
            if ((i + 1) % (uint64_t)opt.pipeline == 0 || i + 1 == want)
                conn_flush(c);
        }
    } else {
        /* device-like: each PUBLISH encrypted and written as its own TLS record (several may
         * leave back to back when the window has room, as libmosquitto's queue does) */
        for (uint64_t i = 0; i < want; i++) {
            mqtt_publish(c, (uint32_t)c->sent++);
            conn_flush(c);
        }
    }
    total_sent += want;
}

uint64_t rate_due(conn_t *c)
{
    double per_pub = opt.rate / npubs;
    double el = (double)(uv_hrtime() - m_start_ns) / 1e9;
    /* Each device its own phase (publisher 0 sends at once, the others spread over one
     * period), as a fleet's devices are: all in step, 1,000 devices at 10 msg/s would arrive
     * as a burst of 1,000 every 100 ms. */
    double offset = 1.0 - (double)(c - conns) / npubs;
    uint64_t due = (uint64_t)(el * per_pub + offset);
    return due > c->sent ? due - c->sent : 0;
}

void pump(conn_t *c)
{
    if (opt.rate > 0)
        pump_n(c, rate_due(c));
    else
        pump_n(c, UINT64_MAX);
}

void on_rate(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < npubs; i++)
        pump(&conns[i]);
}
