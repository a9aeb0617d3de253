/* loadgen_attack: "one hostile or broken device must not hurt the fleet".
 *
 * Three processes on loadgen's CPU, forked before any libuv state exists:
 *   parent    the latency pair (publisher + subscriber at --rate, as in storm-latency) and the
 *             broker's RSS (sampled every 100 ms) and CPU;
 *   arrivals  new devices at --arrive-rate per second for --attack-s seconds: full handshake,
 *             CONNECT, CONNACK, DISCONNECT; connect time = TCP connect started -> CONNACK
 *             (normal priority, like the pair: a new device is part of the fleet);
 *   attacker  one hostile device (or unauthenticated peers), SCHED_IDLE, so its own CPU use
 *             never delays the pair or the arrivals on loadgen's side.
 * The attacker does its set-up first (retained messages, the slow subscriber), says "R" on its
 * pipe, waits for the go byte, attacks for --attack-s seconds, and reports one JSON line with its
 * window (CLOCK_MONOTONIC, shared by the three processes). The parent reports the pair's latency
 * for messages published inside the window and before it, the arrivals' connect times and the
 * broker's RSS maximum. Every wait is bounded. */
#include "loadgen.h"

int atk_child, paced;

static int kind; /* 0 subscribe, 1 silent, 2 memory, 3 flood */
static uv_timer_t atk_timer;
static int atk_cert_idx = -1;

/* ---- attacker child ------------------------------------------------------------------------ */

static int atk_state;  /* 0 set-up, 1 ready, 2 attacking, 3 done */
static int go_in = -1; /* child: read end of the go pipe */
static uint64_t t_setup0, t_ready, t_go, t_end;
static uint64_t stored, subs_sent, subacks, granted, refused, rx_msgs, pubs_sent, pubs_acked;
static uint64_t bytes_sent, reconnects, slow_ready;
static uint16_t sub_pid;
static uint8_t *payload;
static uint64_t last_reconnect;

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_write_t w;
    int idx, open, closed;
    uint64_t t0, t_closed;
} silent_t;
static silent_t *sil;
static int nsil, sil_cap, sil_connected, sil_failed, sil_closed;
static uint8_t half_hello[96];

static void child_say(const char *s)
{
    fputs(s, stdout);
    fflush(stdout);
}

static size_t fmt_topic(char *t, size_t cap, const char *what, uint64_t i)
{
    return (size_t)snprintf(t, cap, "devices/%s/%s%" PRIu64, certs[atk_cert_idx].cn, what, i);
}

/* one PUBLISH, QoS 1 */
static void atk_publish(conn_t *c, const char *topic, const uint8_t *pl, size_t n, int retain)
{
    size_t tl = strlen(topic);
    size_t rl = 2 + tl + 2 + n;
    uint8_t h[8];
    size_t k = 0;
    h[k++] = (uint8_t)(0x32 | (retain ? 1 : 0));
    k += put_varlen(h + k, rl);
    buf_reserve(&c->pout, k + rl);
    buf_put(&c->pout, h, k);
    put_str(&c->pout, topic);
    if (++c->pid == 0)
        c->pid = 1;
    uint8_t pid[2] = {(uint8_t)(c->pid >> 8), (uint8_t)c->pid};
    buf_put(&c->pout, pid, 2);
    buf_put(&c->pout, pl, n);
    c->sent++;
}

static void atk_subscribe_packet(conn_t *c, int all)
{
    buf_t body = {0};
    if (++sub_pid == 0)
        sub_pid = 1;
    uint8_t pid[2] = {(uint8_t)(sub_pid >> 8), (uint8_t)sub_pid};
    buf_put(&body, pid, 2);
    int nf = all ? opt.copies : opt.filters;
    char f[256];
    for (int i = 0; i < nf; i++) {
        if (all)
            snprintf(f, sizeof f, "%s", opt.flood_all);
        else
            snprintf(f, sizeof f, "%sx%04d", opt.flood_filter, i);
        put_str(&body, f);
        uint8_t q = 0;
        buf_put(&body, &q, 1);
    }
    uint8_t h[8];
    size_t k = 0;
    h[k++] = 0x82;
    k += put_varlen(h + k, body.len);
    buf_put(&c->pout, h, k);
    buf_put(&c->pout, body.p + body.off, body.len);
    buf_free(&body);
    subs_sent++;
    conn_flush(c);
}

static void atk_set_ready(void)
{
    if (atk_state != 0)
        return;
    atk_state = 1;
    t_ready = uv_hrtime();
    child_say("R\n");
}

static void atk_report(void)
{
    char js[2048];
    int n = 0;
#define J(...) n += snprintf(js + n, sizeof js - (size_t)n, __VA_ARGS__)
    J("{\"kind\":\"%s\",\"t_start_ns\":%" PRIu64 ",\"t_end_ns\":%" PRIu64 ",\"setup_s\":%.3f",
      opt.attack, t_go, t_end, t_ready > t_setup0 ? (double)(t_ready - t_setup0) / 1e9 : -1);
    if (kind == 0)
        J(",\"retained_stored\":%" PRIu64 ",\"subscribes_sent\":%" PRIu64 ",\"subacks\":%" PRIu64
          ",\"filters_granted\":%" PRIu64 ",\"filters_refused\":%" PRIu64
          ",\"msgs_received\":%" PRIu64 ",\"reconnects\":%" PRIu64,
          stored, subs_sent, subacks, granted, refused, rx_msgs, reconnects);
    else if (kind == 1) {
        uint64_t *ct = malloc(((size_t)nsil + 1) * sizeof *ct);
        size_t m = 0;
        int open_end = 0;
        for (int i = 0; ct && i < nsil; i++) {
            if (sil[i].closed && sil[i].t_closed > sil[i].t0)
                ct[m++] = sil[i].t_closed - sil[i].t0;
            open_end += sil[i].open && !sil[i].closed;
        }
        if (ct)
            qsort(ct, m, sizeof *ct, u64cmp);
        J(",\"silent_started\":%d,\"silent_connected\":%d,\"silent_connect_failed\":%d"
          ",\"silent_closed_by_broker\":%d,\"silent_open_at_end\":%d,\"silent_close_p50_s\":%.2f",
          nsil, sil_connected, sil_failed, sil_closed, open_end, ct ? pct_of(ct, m, 0.5) / 1e6 : 0);
        free(ct);
    } else if (kind == 3) {
        double s = t_end > t_go ? (double)(t_end - t_go) / 1e9 : 0;
        J(",\"pubs_sent\":%" PRIu64 ",\"pubs_acked\":%" PRIu64 ",\"accepted_per_s\":%.0f"
          ",\"reconnects\":%" PRIu64,
          pubs_sent, pubs_acked, s > 0 ? (double)pubs_acked / s : 0, reconnects);
    } else
        J(",\"payload\":%d,\"pubs_sent\":%" PRIu64 ",\"pubs_acked\":%" PRIu64
          ",\"mb_sent\":%.1f,\"reconnects\":%" PRIu64 ",\"slow_sub_ready\":%" PRIu64,
          opt.payload, pubs_sent, pubs_acked, (double)bytes_sent / 1048576.0, reconnects,
          slow_ready);
    J("}\n");
#undef J
    child_say(js);
}

/* silent peers */
static void sil_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
    (void)h;
    (void)sug;
    static char rb[4096];
    *b = uv_buf_init(rb, sizeof rb);
}
static void sil_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    silent_t *p = (silent_t *)s;
    if (n < 0 && !p->closed) {
        p->closed = 1;
        p->t_closed = uv_hrtime();
        sil_closed++;
        uv_read_stop(s);
    }
}
static void sil_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}
static void sil_connected_cb(uv_connect_t *r, int status)
{
    silent_t *p = r->data;
    if (status < 0) {
        sil_failed++;
        return;
    }
    p->open = 1;
    sil_connected++;
    if (p->idx % 10 == 9) {
        /* half a ClientHello: a TLS record header announcing 512 bytes, and 96 of them */
        uv_buf_t b = uv_buf_init((char *)half_hello, sizeof half_hello);
        uv_write(&p->w, (uv_stream_t *)&p->tcp, &b, 1, sil_written);
    }
    uv_read_start((uv_stream_t *)&p->tcp, sil_alloc, sil_read);
}
static void sil_start_one(void)
{
    if (nsil >= sil_cap)
        return;
    silent_t *p = &sil[nsil];
    p->idx = nsil++;
    p->t0 = uv_hrtime();
    uv_tcp_init(loop, &p->tcp);
    struct sockaddr_in src, sa;
    char ip[32];
    snprintf(ip, sizeof ip, "127.0.0.%d", 2 + p->idx % opt.silent_src_ips);
    uv_ip4_addr(ip, 0, &src);
    uv_ip4_addr(opt.host, opt.port, &sa);
    p->req.data = p;
    if (uv_tcp_bind(&p->tcp, (struct sockaddr *)&src, 0) ||
        uv_tcp_connect(&p->req, &p->tcp, (struct sockaddr *)&sa, sil_connected_cb))
        sil_failed++;
}

static void atk_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_hrtime();
    if (atk_state == 0 && now > t_setup0 && now - t_setup0 > 60000000000ull)
        atk_set_ready(); /* set-up bounded: attack with what was stored */
    if (atk_state == 1) {
        /* wait for the go byte (blocking, out of any I/O callback; bounded by the parent) */
        char g;
        ssize_t r;
        do
            r = read(go_in, &g, 1);
        while (r < 0 && errno == EINTR);
        if (r != 1)
            _exit(0); /* the parent finished without an attack */
        close(go_in);
        atk_state = 2;
        t_go = now = uv_hrtime();
        if (kind == 0 && conns[0].st == S_READY)
            atk_subscribe_packet(&conns[0], 0);
        if ((kind == 2 || kind == 3) && conns[0].st == S_READY)
            attack_pump(&conns[0]);
    }
    if (atk_state != 2)
        return;
    double el = now > t_go ? (double)(now - t_go) / 1e9 : 0;
    if (el >= opt.attack_s) {
        atk_state = 3;
        t_end = now;
        atk_report();
        _exit(0); /* the broker sees every attacking connection close at once */
    }
    if (kind == 1) {
        int due = (int)(el * opt.silent_rate) + 1;
        while (nsil < due && nsil < sil_cap)
            sil_start_one();
    }
    if (kind != 1 && conns[0].st == S_FREE && now > last_reconnect + 100000000ull) {
        /* the broker closed the attacker: it comes back (at most 10 times a second) */
        last_reconnect = now;
        reconnects++;
        conns[0].sent = conns[0].acked = 0;
        conn_start(&conns[0]);
    }
}

void attack_on_ready(conn_t *c)
{
    if (c->role == R_SLOW) {
        char f[256];
        snprintf(f, sizeof f, "devices/%s/big/#", certs[atk_cert_idx].cn);
        size_t rl = 2 + 2 + strlen(f) + 1;
        uint8_t h[8];
        size_t k = 0;
        h[k++] = 0x82;
        k += put_varlen(h + k, rl);
        h[k++] = 0;
        h[k++] = 1;
        buf_put(&c->pout, h, k);
        put_str(&c->pout, f);
        uint8_t q = 1;
        buf_put(&c->pout, &q, 1);
        conn_flush(c);
        return;
    }
    if (atk_state == 2 && kind == 0)
        atk_subscribe_packet(c, (int)(subs_sent & 1)); /* after a reconnect */
    attack_pump(c);
}

void attack_on_suback(conn_t *c, const uint8_t *p, size_t n)
{
    if (c->role == R_SLOW) {
        /* the slow subscriber never reads again: the broker's queue for it fills */
        uv_read_stop((uv_stream_t *)&c->tcp);
        slow_ready = 1;
        if (conns[0].st == S_READY)
            atk_set_ready();
        return;
    }
    subacks++;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 3)
            granted++;
        else
            refused++;
    }
    if (atk_state == 2)
        atk_subscribe_packet(c, (int)(subs_sent & 1));
}

void attack_on_puback(conn_t *c)
{
    if (kind == 0 && atk_state == 0) {
        stored = c->acked;
        if (stored >= (uint64_t)opt.retained)
            atk_set_ready();
    }
    if ((kind == 2 || kind == 3) && atk_state == 2)
        pubs_acked++;
}

void attack_on_publish(conn_t *c)
{
    (void)c;
    rx_msgs++;
}

void attack_pump(conn_t *c)
{
    if (!atk_child || c->st != S_READY || c->role != R_ATK)
        return;
    if (kind == 0 && atk_state == 0) {
        /* set-up: --retained small retained messages, 200 unacknowledged at most */
        int per = (opt.retained + opt.filters - 1) / opt.filters;
        if (per < 1)
            per = 1;
        while (c->sent < (uint64_t)opt.retained && c->sent - c->acked < 200) {
            uint64_t i = c->sent;
            char t[256];
            snprintf(t, sizeof t, "devices/%s/%" PRIu64 "/x%04" PRIu64, certs[atk_cert_idx].cn,
                     i % (uint64_t)per, i / (uint64_t)per);
            uint8_t pl[16] = {0};
            memcpy(pl, &i, sizeof i);
            atk_publish(c, t, pl, sizeof pl, 1);
        }
        conn_flush(c);
        if (!opt.retained)
            atk_set_ready();
        return;
    }
    if (kind == 0 && atk_state == 0)
        return;
    if (kind == 3) {
        if (atk_state == 0)
            atk_set_ready();
        /* as fast as the broker takes them: --window unacknowledged 64-byte QoS 1 publishes,
         * written as one TLS record whenever the socket's queue is drained */
        while (atk_state == 2 && !c->writing && !c->cout.len && c->sent - c->acked < 64) {
            /* the pair's topic scheme, so that a subscriber to devices/+/t gets the flood too;
             * publisher index 0xffffffff: no latency sample */
            uint8_t pl[64] = {0};
            memset(pl + 8, 0xff, 4);
            char t[256];
            snprintf(t, sizeof t, "devices/%s/t", certs[atk_cert_idx].cn);
            do {
                atk_publish(c, t, pl, sizeof pl, 0);
                pubs_sent++;
            } while (c->sent - c->acked < 64);
            conn_flush(c);
        }
        return;
    }
    if (kind == 2) {
        if (atk_state == 0 && slow_ready)
            atk_set_ready();
        /* as fast as the broker takes them: 4 unacknowledged, the socket's queue drained */
        while (atk_state == 2 && !c->writing && !c->cout.len && c->st == S_READY &&
               c->sent - c->acked < 4) {
            char t[256];
            int retain = (int)(pubs_sent & 1);
            if (retain)
                fmt_topic(t, sizeof t, "ret/", (pubs_sent / 2) % (uint64_t)opt.ret_topics);
            else
                fmt_topic(t, sizeof t, "big/", 0);
            atk_publish(c, t, payload, (size_t)opt.payload, retain);
            pubs_sent++;
            bytes_sent += (uint64_t)opt.payload;
            conn_flush(c);
        }
    }
}

/* ---- arrivals child ------------------------------------------------------------------------ */

static uv_timer_t pace_timer;

static void pace_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_hrtime();
    int due = (int)((double)(now > m_start_ns ? now - m_start_ns : 0) / 1e9 * opt.arrive_rate) + 1;
    while (next_to_start < nconns && next_to_start < due)
        conn_start(&conns[next_to_start++]);
    now = uv_hrtime();
    for (int i = 0; i < next_to_start; i++) {
        conn_t *c = &conns[i];
        if ((c->st == S_TCP || c->st == S_TLS || c->st == S_MQTT) && now > c->t_start &&
            now - c->t_start > (uint64_t)(opt.arrive_timeout * 1e9))
            conn_fail(c, "no CONNACK within --arrive-timeout", 0);
    }
    if (phase == 3)
        uv_timer_stop(&pace_timer);
}

/* ---- parent -------------------------------------------------------------------------------- */

static int go_out[2] = {-1, -1}; /* parent: go pipes to the attacker, the arrivals */
static int res_in[2] = {-1, -1}; /* parent: result pipes */
static pid_t kids[2];            /* attacker, arrivals */
static uv_pipe_t res_pipe[2];
static char res_buf[2][4096];
static size_t res_len[2];
static int atk_ready, done[2], go_sent;
static uint64_t go_ns, atk_t0, atk_t1, arr_t1, rss_tick;
static long rss_base_kb, rss_max_kb, rss_go_kb, rss_atk_end_kb;
static double cpu_go, cpu_atk_end;

static void pin_child_common(int gin, int rout)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(3);
    go_in = gin;
    if (dup2(rout, 1) < 0)
        _exit(3);
    close(rout);
    mbedtls_ctr_drbg_reseed(&drbg, (const unsigned char *)"attack", 6);
    ws_rng ^= (uint64_t)getpid() << 32;
}

void attack_fork(void)
{
    kind = !strcmp(opt.attack, "subscribe") ? 0
           : !strcmp(opt.attack, "silent")  ? 1
           : !strcmp(opt.attack, "memory")  ? 2
                                            : 3;
    for (int i = 0; i < ncerts; i++)
        if (!strcmp(certs[i].name, opt.atk_cert))
            atk_cert_idx = i;
    if (atk_cert_idx < 0 || atk_cert_idx == sub_cert_idx)
        die("--atk-cert %s: no such device certificate in %s", opt.atk_cert, opt.certdir);
    for (int w = 0; w < 2; w++) {
        int gp[2], rp[2];
        pid_t pid = fork_child(gp, rp);
        if (pid == 0) {
            for (int k = 0; k < w; k++) {
                close(go_out[k]);
                close(res_in[k]);
            }
            pin_child_common(gp[0], rp[1]);
            npubs = nsubs = 0;
            total_target = 0;
            if (w == 0) {
                /* the attacker: lowest priority on loadgen's CPU */
                struct sched_param sp = {.sched_priority = 0};
                if (sched_setscheduler(0, SCHED_IDLE, &sp) && setpriority(PRIO_PROCESS, 0, 19))
                    fprintf(stderr, "loadgen: attacker: cannot lower its priority\n");
                atk_child = 1;
                nconns = kind == 1 ? 0 : kind == 2 ? 2 : 1;
                if (kind == 1) {
                    sil_cap = (int)(opt.silent_rate * opt.attack_s) + 1;
                    sil = calloc((size_t)sil_cap, sizeof *sil);
                    if (!sil)
                        die("out of memory");
                }
                if (kind == 2) {
                    payload = calloc(1, (size_t)opt.payload);
                    if (!payload)
                        die("out of memory");
                }
            } else {
                /* the arrivals: wait for the go byte, then a paced connect storm */
                char g;
                ssize_t r;
                do
                    r = read(go_in, &g, 1);
                while (r < 0 && errno == EINTR);
                if (r != 1)
                    _exit(0);
                close(go_in);
                storm_child = 1;
                storm_disc = 1;
                paced = 1;
                opt.scen = SC_STORM;
                opt.resume = 0;
                nconns = (int)(opt.arrive_rate * opt.attack_s);
                if (nconns < 1)
                    nconns = 1;
            }
            return;
        }
        go_out[w] = gp[1];
        res_in[w] = rp[0];
        kids[w] = pid;
    }
}

/* roles and certificates of the children's connections (main set them for a pub/sub run) */
void attack_setup_conns(void)
{
    if (paced) {
        /* new devices: every device certificate but the attacker's */
        int k = 0;
        for (int i = 0; i < nconns; i++) {
            int ci;
            do
                ci = pub_certs[k++ % npub_certs];
            while (ci == atk_cert_idx && npub_certs > 1);
            conns[i].cert = ci;
        }
        return;
    }
    for (int i = 0; i < nconns; i++) {
        conns[i].role = i == 0 ? R_ATK : R_SLOW;
        conns[i].cert = atk_cert_idx;
    }
}

static void res_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
    (void)h;
    (void)sug;
    static char cb[4096];
    *b = uv_buf_init(cb, sizeof cb);
}
static void res_line(int w, const char *line)
{
    if (w == 0 && !strcmp(line, "R")) {
        atk_ready = 1;
        vlog("attacker ready");
        return;
    }
    if (line[0] != '{' || done[w])
        return;
    done[w] = 1;
    uint64_t now = uv_hrtime();
    if (w == 0) {
        atk_t0 = json_u64(line, "t_start_ns");
        atk_t1 = json_u64(line, "t_end_ns");
        if (!atk_t0 || atk_t1 < atk_t0) {
            atk_t0 = go_ns;
            atk_t1 = now;
        }
        cpu_atk_end = broker_cpu();
        rss_atk_end_kb = broker_rss_kb();
        vlog("attack over: %.3f s", (double)(atk_t1 - atk_t0) / 1e9);
    } else {
        arr_t1 = json_u64(line, "t_end_ns");
        if (!arr_t1)
            arr_t1 = now;
        vlog("arrivals over");
    }
}
static void res_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    int w = s == (uv_stream_t *)&res_pipe[0] ? 0 : 1;
    if (n > 0) {
        for (ssize_t i = 0; i < n; i++) {
            char ch = b->base[i];
            if (ch == '\n') {
                res_buf[w][res_len[w]] = 0;
                res_line(w, res_buf[w]);
                if (w == 0 && res_buf[w][0] == 'R')
                    res_len[w] = 0; /* keep the JSON line only */
                else if (res_buf[w][0] != '{')
                    res_len[w] = 0;
                continue;
            }
            if (res_len[w] < sizeof res_buf[w] - 1 && !done[w])
                res_buf[w][res_len[w]++] = ch;
        }
        return;
    }
    if (n < 0) {
        if (!done[w]) {
            fprintf(stderr, "loadgen: the %s child ended without a result\n",
                    w ? "arrivals" : "attacker");
            done[w] = 1;
            res_buf[w][0] = 0;
            if (w == 0) {
                atk_t0 = go_ns ? go_ns : uv_hrtime();
                atk_t1 = uv_hrtime();
                cpu_atk_end = broker_cpu();
                rss_atk_end_kb = broker_rss_kb();
            } else
                arr_t1 = uv_hrtime();
        }
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, NULL);
    }
}

void attack_child_begin(void)
{
    if (paced) {
        uv_timer_init(loop, &pace_timer);
        uv_timer_start(&pace_timer, pace_tick, 1, 10);
        uv_unref((uv_handle_t *)&pace_timer);
        return;
    }
    if (atk_child) {
        for (size_t i = 0; i < sizeof half_hello; i++)
            half_hello[i] = (uint8_t)(i * 37 + 11);
        memcpy(half_hello, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
        t_setup0 = uv_hrtime();
        uv_timer_init(loop, &atk_timer);
        uv_timer_start(&atk_timer, atk_tick, 10, 10);
        if (kind == 1)
            atk_set_ready();
        return;
    }
    for (int w = 0; w < 2; w++) {
        uv_pipe_init(loop, &res_pipe[w], 0);
        if (uv_pipe_open(&res_pipe[w], res_in[w]) ||
            uv_read_start((uv_stream_t *)&res_pipe[w], res_alloc, res_read))
            die("cannot read the attack children's pipes");
    }
    rss_base_kb = rss_max_kb = broker_rss_kb();
}

static void send_go(void)
{
    go_ns = uv_hrtime();
    rss_go_kb = broker_rss_kb();
    cpu_go = broker_cpu();
    for (int w = 0; w < 2; w++) {
        if (go_out[w] >= 0 && write(go_out[w], "g", 1) != 1)
            fprintf(stderr, "loadgen: cannot start the %s child\n", w ? "arrivals" : "attacker");
        if (go_out[w] >= 0)
            close(go_out[w]);
        go_out[w] = -1;
    }
    go_sent = 1;
    storm_state = 1;
    vlog("attack started");
}

void attack_tick(uint64_t now)
{
    if (++rss_tick % 10 == 0) {
        long r = broker_rss_kb();
        if (r > rss_max_kb)
            rss_max_kb = r;
    }
    if (phase == 1 && !go_sent && now >= m_start_ns + (uint64_t)(opt.storm_delay * 1e9) &&
        (atk_ready || now >= m_start_ns + (uint64_t)((opt.storm_delay + 60) * 1e9)))
        send_go();
    if (go_sent && storm_state == 1 && done[0] && done[1]) {
        storm_t0 = atk_t0 > go_ns ? atk_t0 : go_ns;
        storm_t1 = atk_t1;
        storm_state = 2;
    }
}

int attack_over(uint64_t now)
{
    if (go_sent && now > go_ns &&
        now - go_ns > (uint64_t)((opt.attack_s + opt.arrive_timeout + 30) * 1e9))
        return 1; /* bounded: a child that never reports */
    if (storm_state != 2)
        return 0;
    uint64_t t = storm_t1 > arr_t1 ? storm_t1 : arr_t1;
    return now >= t + (uint64_t)(opt.storm_post * 1e9);
}

void finish_attack(char *js, size_t cap, int *np)
{
    int n = *np;
#define J(...) n += snprintf(js + n, cap - (size_t)n, __VA_ARGS__)
    for (int w = 0; w < 2; w++) {
        if (go_out[w] >= 0)
            close(go_out[w]); /* a child still waiting for the go byte exits */
        go_out[w] = -1;
    }
    if (storm_state != 2) {
        storm_t0 = go_ns ? go_ns : m_end_ns;
        storm_t1 = done[0] && atk_t1 ? atk_t1 : m_end_ns;
        if (!cpu_atk_end)
            cpu_atk_end = broker_cpu();
    }
    uint64_t *in = malloc((nrecs + 1) * sizeof *in), *base = malloc((nrecs + 1) * sizeof *base);
    if (!in || !base)
        die("out of memory");
    size_t nin = 0, nbase = 0;
    for (size_t i = 0; i < nrecs; i++) {
        if (recs[i].t >= storm_t0 && recs[i].t <= storm_t1)
            in[nin++] = recs[i].lat;
        else if (recs[i].t >= m_start_ns && recs[i].t < storm_t0)
            base[nbase++] = recs[i].lat;
    }
    qsort(in, nin, sizeof *in, u64cmp);
    qsort(base, nbase, sizeof *base, u64cmp);
    /* messages the pair published inside the window and never received */
    uint64_t lost = total_sent > total_delivered ? total_sent - total_delivered : 0;
    double win_s = (double)(storm_t1 - storm_t0) / 1e9;
    J(",\"attack\":\"%s\",\"attack_s\":%.3f,\"qos\":%d,\"size\":%d,\"rate_target\":%.0f",
      opt.attack, win_s, opt.qos, opt.size, opt.rate);
    J(",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"errors\":%d",
      total_sent, total_delivered, lost, n_failed);
    J(",\"lat_samples\":%zu,\"lat_expected\":%.0f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f"
      ",\"lat_max_ms\":%.3f",
      nin, win_s * opt.rate, pct_of(in, nin, 0.5) / 1000, pct_of(in, nin, 0.99) / 1000,
      nin ? in[nin - 1] / 1e6 : 0);
    J(",\"base_samples\":%zu,\"base_p50_ms\":%.3f,\"base_p99_ms\":%.3f", nbase,
      pct_of(base, nbase, 0.5) / 1000, pct_of(base, nbase, 0.99) / 1000);
    if (opt.broker_pid) {
        long r = broker_rss_kb();
        if (r > rss_max_kb)
            rss_max_kb = r;
        J(",\"broker_rss_base_mb\":%.1f,\"broker_rss_go_mb\":%.1f,\"broker_rss_max_mb\":%.1f"
          ",\"broker_rss_end_mb\":%.1f,\"attack_broker_cpu_util\":%.3f",
          rss_base_kb / 1024.0, rss_go_kb / 1024.0, rss_max_kb / 1024.0, rss_atk_end_kb / 1024.0,
          win_s > 0 ? (cpu_atk_end - cpu_go) / win_s : 0);
    }
    /* the arrivals, as their child measured them */
    const char *aj = res_buf[1];
    int have = done[1] && aj[0] == '{';
    double expect = (double)(int)(opt.arrive_rate * opt.attack_s);
    double ok = have ? json_num(aj, "ok") : 0;
    J(",\"arrive_rate\":%.1f,\"arrive_conns\":%.0f,\"arrive_ok\":%.0f,\"arrive_failed\":%.0f",
      opt.arrive_rate, expect, ok, expect - ok);
    if (have)
        J(",\"arrive_p50_ms\":%.2f,\"arrive_p99_ms\":%.2f,\"arrive_max_ms\":%.2f",
          json_num(aj, "connect_p50_ms"), json_num(aj, "connect_p99_ms"),
          json_num(aj, "connect_max_ms"));
    if (done[0] && res_buf[0][0] == '{')
        J(",\"attacker\":%s", res_buf[0]);
    else
        J(",\"attacker\":null");
    if (!have || !done[0] || res_buf[0][0] != '{')
        exit_code = exit_code ? exit_code : 1;
    for (int w = 0; w < 2; w++)
        if (!uv_is_closing((uv_handle_t *)&res_pipe[w]))
            uv_close((uv_handle_t *)&res_pipe[w], NULL);
    free(in);
    free(base);
    *np = n;
#undef J
}

void attack_reap(void)
{
    for (int w = 0; w < 2; w++) {
        if (kids[w] <= 0)
            continue;
        int st = 0;
        for (int i = 0; i < 150; i++) {
            if (waitpid(kids[w], &st, WNOHANG) == kids[w])
                break;
            if (i == 100)
                kill(kids[w], SIGTERM);
            if (i == 140)
                kill(kids[w], SIGKILL);
            usleep(100000);
        }
        kids[w] = 0;
    }
}
