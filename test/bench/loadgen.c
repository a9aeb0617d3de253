/* loadgen: MQTT 3.1.1 load generator over mutual TLS (Mbed TLS 2.28 client sessions over memory
 * buffers, one libuv loop). Self-contained: it does not use the broker's code.
 *
 * Scenarios: connect-storm, fan-in, fan-out, latency, idle, storm-latency. One JSON line of results
 * on stdout. --ws carries MQTT over WebSockets (RFC 6455) inside the TLS session.
 * Loopback only; every phase is bounded in time (--timeout) and in count.
 *
 * storm-latency runs in two processes: this one holds the latency pair (publisher + subscriber at
 * a fixed rate); a forked child, at SCHED_IDLE priority on the same CPU, runs the reconnect storm
 * (full handshakes) when told to, and reports its window back over a pipe. The kernel preempts
 * a SCHED_IDLE task as soon as a normal one wakes, so the pair's I/O is not queued behind the
 * child's ~7 ms Mbed TLS handshake computations.
 * Build: cc -O2 -std=c11 -o loadgen loadgen*.c -lmbedtls -lmbedx509 -lmbedcrypto -luv
 */
#include "loadgen.h"

/* ------------------------------------------------------------------------------------------ */
/* options */

/* ------------------------------------------------------------------------------------------ */
/* certificates */

typedef struct {
    char name[128], cn[128];
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_session sess; /* cached ticket per cert (idle --resume) */
    int have_sess;
} cert_t;

static cert_t *certs;
static int ncerts, sub_cert_idx = -1;
static int *pub_certs, npub_certs; /* certs other than the subscriber's */
static mbedtls_x509_crt cacrt;
static mbedtls_entropy_context entropy;
mbedtls_ctr_drbg_context drbg;

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_certs(void)
{
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)"lg",
                              2))
        die("drbg seed failed");
    mbedtls_x509_crt_init(&cacrt);
    if (mbedtls_x509_crt_parse_file(&cacrt, opt.cafile))
        die("cannot parse --cafile %s", opt.cafile);
    DIR *d = opendir(opt.certdir);
    if (!d)
        die("cannot open --certdir %s", opt.certdir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || l > 120 || strcmp(e->d_name + l - 4, ".crt"))
            continue;
        char kp[4096];
        snprintf(kp, sizeof kp, "%s/%.*s.key", opt.certdir, (int)(l - 4), e->d_name);
        if (access(kp, R_OK))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                die("out of memory");
        }
        names[n] = strndup(e->d_name, l - 4);
        n++;
    }
    closedir(d);
    if (!n)
        die("no NAME.crt + NAME.key pairs in %s", opt.certdir);
    qsort(names, n, sizeof *names, name_cmp);
    certs = calloc(n, sizeof *certs);
    pub_certs = calloc(n, sizeof *pub_certs);
    if (!certs || !pub_certs)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        cert_t *c = &certs[i];
        char p[4096];
        snprintf(c->name, sizeof c->name, "%s", names[i]);
        free(names[i]);
        mbedtls_x509_crt_init(&c->crt);
        mbedtls_pk_init(&c->key);
        snprintf(p, sizeof p, "%s/%s.crt", opt.certdir, c->name);
        if (mbedtls_x509_crt_parse_file(&c->crt, p))
            die("cannot parse %s", p);
        snprintf(p, sizeof p, "%s/%s.key", opt.certdir, c->name);
        if (mbedtls_pk_parse_keyfile(&c->key, p, NULL))
            die("cannot parse %s", p);
        for (const mbedtls_x509_name *nm = &c->crt.subject; nm; nm = nm->next)
            if (nm->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) == 0 &&
                nm->val.len < sizeof c->cn) {
                memcpy(c->cn, nm->val.p, nm->val.len);
                c->cn[nm->val.len] = 0;
            }
        if (!c->cn[0])
            die("%s has no subject CN", c->name);
        mbedtls_ssl_config_init(&c->conf);
        if (mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT,
                                        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT))
            die("ssl config");
        mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        mbedtls_ssl_conf_ca_chain(&c->conf, &cacrt, NULL);
        mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &drbg);
        mbedtls_ssl_conf_session_tickets(&c->conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
        mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                     MBEDTLS_SSL_MINOR_VERSION_3);
        if (mbedtls_ssl_conf_own_cert(&c->conf, &c->crt, &c->key))
            die("own cert %s", c->name);
        mbedtls_ssl_session_init(&c->sess);
        if (!strcmp(c->name, opt.sub_cert))
            sub_cert_idx = (int)i;
        else
            pub_certs[npub_certs++] = (int)i;
    }
    ncerts = (int)n;
    free(names);
    if (!npub_certs)
        die("certdir holds only the subscriber cert %s", opt.sub_cert);
}

/* ------------------------------------------------------------------------------------------ */
/* connections */

static uv_loop_t *loop;
static conn_t *conns;
static int nconns;
int n_failed;
static int n_started, n_ready, n_closed, n_active_hs, n_resumed;
static char client_prefix[32];

/* latency samples (ns), reservoir beyond the cap */
#define SAMPLE_CAP (4u << 20)
static uint64_t *samples;
static size_t nsamples;
static uint64_t nseen;

static void sample_add(uint64_t v)
{
    if (!samples) {
        samples = malloc(SAMPLE_CAP * sizeof *samples);
        if (!samples)
            die("out of memory");
    }
    nseen++;
    if (nsamples < SAMPLE_CAP) {
        samples[nsamples++] = v;
    } else {
        uint64_t r = ((uint64_t)rand() << 31 ^ (uint64_t)rand()) % nseen;
        if (r < SAMPLE_CAP)
            samples[r] = v;
    }
}
static int u64cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static double pct_us(double p)
{
    if (!nsamples)
        return 0;
    size_t i = (size_t)(p * (double)(nsamples - 1) + 0.5);
    return samples[i] / 1000.0;
}

static void pump(conn_t *c);
static void scenario_progress(void);
static void start_more(void);
int phase; /* 0 setup, 1 measuring, 2 draining, 3 done, 4 idle settling, 5 storm reconnect */

static int bio_send(void *ctx, const unsigned char *b, size_t n)
{
    conn_t *c = ctx;
    buf_put(&c->cout, b, n);
    return (int)n;
}
static int bio_recv(void *ctx, unsigned char *b, size_t n)
{
    conn_t *c = ctx;
    if (!c->cin.len)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > c->cin.len)
        n = c->cin.len;
    memcpy(b, c->cin.p + c->cin.off, n);
    buf_consume(&c->cin, n);
    return (int)n;
}

static void on_write(uv_write_t *r, int status);

/* hand queued ciphertext to the socket: uv_try_write first, uv_write the rest */
static void sock_flush(conn_t *c)
{
    if (!c->cout.len || c->writing || c->st == S_FREE)
        return;
    uv_buf_t b = uv_buf_init((char *)c->cout.p + c->cout.off, (unsigned)c->cout.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n > 0)
        buf_consume(&c->cout, (size_t)n);
    else if (n != UV_EAGAIN && n < 0) {
        conn_fail(c, "write", n);
        return;
    }
    if (!c->cout.len)
        return;
    wreq_t *w = malloc(sizeof *w);
    if (!w)
        die("out of memory");
    w->c = c;
    w->data = malloc(c->cout.len);
    if (!w->data)
        die("out of memory");
    memcpy(w->data, c->cout.p + c->cout.off, c->cout.len);
    b = uv_buf_init((char *)w->data, (unsigned)c->cout.len);
    buf_consume(&c->cout, c->cout.len);
    c->writing = 1;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write)) {
        free(w->data);
        free(w);
        c->writing = 0;
        conn_fail(c, "uv_write", 0);
    }
}

static void on_write(uv_write_t *r, int status)
{
    wreq_t *w = (wreq_t *)r;
    conn_t *c = w->c;
    free(w->data);
    free(w);
    c->writing = 0;
    if (status < 0) {
        if (c->st != S_CLOSING && c->st != S_FREE)
            conn_fail(c, "write", status);
        return;
    }
    sock_flush(c);
    if (c->role == R_PUB && c->st == S_READY)
        pump(c);
}

/* encrypt the queued MQTT bytes (coalesced: up to 16 KB per record) and send them; with --ws
 * they first become one masked binary frame */
void conn_flush(conn_t *c)
{
    buf_t *src = &c->pout;
    if (opt.ws) {
        /* what was queued in this loop turn, in frames of at most 16 KB like the TLS records
         * (MQTT packets need not align with frames: MQTT 3.1.1 section 6) */
        while (c->ws_state == 2 && c->pout.len) {
            size_t k = c->pout.len < 16384 ? c->pout.len : 16384;
            ws_frame(c, 2, c->pout.p + c->pout.off, k);
            buf_consume(&c->pout, k);
        }
        src = &c->wout;
    }
    while (c->ssl_live && src->len) {
        int r = mbedtls_ssl_write(&c->ssl, src->p + src->off, src->len);
        if (r > 0)
            buf_consume(src, (size_t)r);
        else if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ)
            break;
        else {
            conn_fail(c, "ssl_write", r);
            return;
        }
    }
    sock_flush(c);
}

static void free_tls(conn_t *c)
{
    if (c->ssl_live) {
        mbedtls_ssl_free(&c->ssl);
        c->ssl_live = 0;
    }
    buf_free(&c->cin);
    buf_free(&c->pout);
    buf_free(&c->min);
    buf_free(&c->wout);
    buf_free(&c->win);
}

static void on_closed(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    free_tls(c);
    buf_free(&c->cout);
    c->st = S_FREE;
    n_closed++;
    if (phase == 0)
        start_more();
    scenario_progress();
}

void conn_close(conn_t *c)
{
    if (c->st == S_FREE || c->st == S_CLOSING)
        return;
    if (c->st == S_TCP || c->st == S_TLS || c->st == S_MQTT)
        n_active_hs--;
    c->st = S_CLOSING;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void conn_fail(conn_t *c, const char *why, int code)
{
    if (c->st == S_FREE || c->st == S_CLOSING)
        return;
    if (!c->failed) {
        c->failed = 1;
        n_failed++;
        char eb[128] = "";
        if (code < 0 && code > -0x8000 && code < -0x1000)
            mbedtls_strerror(code, eb, sizeof eb);
        else if (code < 0)
            snprintf(eb, sizeof eb, "%s", uv_strerror(code));
        if (n_failed <= 5 || opt.verbose)
            fprintf(stderr, "loadgen: conn %d (%s): %s failed %d %s\n", c->idx, certs[c->cert].name,
                    why, code, eb);
    }
    conn_close(c);
}

/* graceful: MQTT DISCONNECT, close_notify, then close */
static void shutdown_cb(uv_shutdown_t *r, int status)
{
    (void)status;
    conn_t *c = r->data;
    free(r);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}
static void conn_disconnect(conn_t *c)
{
    if (c->st == S_FREE || c->st == S_CLOSING)
        return;
    if (c->st == S_READY && c->ssl_live) {
        static const uint8_t disc[2] = {0xE0, 0};
        buf_put(&c->pout, disc, 2);
        conn_flush(c);
        if (opt.ws && c->ws_state == 2 && c->ssl_live) {
            static const uint8_t normal[2] = {0x03, 0xE8}; /* 1000 */
            ws_frame(c, 8, normal, 2);
            c->ws_state = 3;
            conn_flush(c);
        }
        if (c->ssl_live)
            mbedtls_ssl_close_notify(&c->ssl);
        sock_flush(c);
    }
    if (c->st == S_FREE || c->st == S_CLOSING)
        return;
    if (c->st == S_TCP || c->st == S_TLS || c->st == S_MQTT)
        n_active_hs--;
    c->st = S_CLOSING;
    uv_shutdown_t *r = malloc(sizeof *r);
    if (!r)
        die("out of memory");
    r->data = c;
    if (uv_shutdown(r, (uv_stream_t *)&c->tcp, shutdown_cb)) {
        free(r);
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

/* --- MQTT encoding ---------------------------------------------------------------------- */

static size_t put_varlen(uint8_t *p, size_t v)
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
static void put_str(buf_t *b, const char *s)
{
    size_t l = strlen(s);
    uint8_t h[2] = {(uint8_t)(l >> 8), (uint8_t)l};
    buf_put(b, h, 2);
    buf_put(b, s, l);
}

void mqtt_connect(conn_t *c)
{
    char cid[64];
    snprintf(cid, sizeof cid, "%s%c%d", client_prefix, "sPSi"[c->role], c -> idx);
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

static void mqtt_subscribe(conn_t *c, const char *filter)
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

static void mqtt_publish(conn_t *c, uint32_t seq)
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

/* --- scenario state --------------------------------------------------------------------- */

static int storm_round; /* storm --resume: 0 = priming, 1 = measured */
static uint64_t m_start_ns, m_end_ns, last_deliv_ns, pub_stop_ns;
static uint64_t total_sent, total_delivered, total_target;
static double cpu_start, cpu_end;
static long rss_start_kb, rss_end_kb;
static int npubs, nsubs;
static uv_timer_t tick_timer, hard_timer, rate_timer, settle_timer;
static uv_signal_t sig_term, sig_int;
static int exit_code;
static uint64_t *lat_connect; /* per conn connect latency ns */
static int next_to_start;

/* storm-latency: the parent holds the latency pair, a forked child runs the storm */
static int storm_child;             /* this process is the storm child */
static int storm_disc;              /* storm: DISCONNECT right after CONNACK */
static pid_t child_pid;             /* parent: the storm child */
static int go_fd = -1;              /* parent: write one byte to start the storm */
static int storm_state;             /* parent: 0 waiting, 1 storm running, 2 storm over */
static uint64_t storm_t0, storm_t1; /* storm window (CLOCK_MONOTONIC ns, both processes) */
static uint64_t storm_go_ns;        /* when the parent told the child to go */
static char child_json[2048];       /* the child's result line */
static size_t child_json_len;
static uv_pipe_t child_pipe;
static uv_timer_t go_timer;
typedef struct {
    uint64_t t, lat; /* publish time, latency (ns) */
} lat_rec_t;
static lat_rec_t *recs;
static size_t nrecs, recs_cap;

static double broker_cpu(void)
{
    if (!opt.broker_pid)
        return 0;
    char p[64], b[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", opt.broker_pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    char *s = strrchr(b, ')');
    if (!s)
        return 0;
    unsigned long ut = 0, st = 0;
    /* fields after ')': state(3) ... utime(14) stime(15) */
    if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
static long broker_rss_kb(void)
{
    if (!opt.broker_pid)
        return 0;
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", opt.broker_pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    long v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static void finish(void);
static void close_all(void);
static void finish_cb(uv_timer_t *t)
{
    (void)t;
    finish();
}
static void close_all_cb(uv_timer_t *t)
{
    (void)t;
    close_all();
}

/* --- connection setup ------------------------------------------------------------------- */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
    (void)h;
    (void)sug;
    static char rbuf[65536];
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void drive_handshake(conn_t *c)
{
    int r;
    while ((r = mbedtls_ssl_handshake(&c->ssl)) != 0) {
        if (c->ssl.handshake && c->ssl.handshake->resume)
            c->resumed = 1;
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
            sock_flush(c);
            return;
        }
        conn_fail(c, "handshake", r);
        return;
    }
    if (c->resumed)
        n_resumed++;
    /* keep the session for a later resumption */
    if (opt.resume) {
        if (c->role == R_STORM && c->sess) {
            mbedtls_ssl_session_free(c->sess);
            mbedtls_ssl_session_init(c->sess);
            mbedtls_ssl_get_session(&c->ssl, c->sess);
        } else if (c->role != R_STORM && !certs[c->cert].have_sess) {
            if (!mbedtls_ssl_get_session(&c->ssl, &certs[c->cert].sess))
                certs[c->cert].have_sess = 1;
        }
    }
    c->st = S_MQTT;
    if (opt.ws)
        ws_send_upgrade(c); /* MQTT CONNECT follows the 101 response */
    else
        mqtt_connect(c);
    conn_flush(c);
}

static void start_tls(conn_t *c)
{
    mbedtls_ssl_init(&c->ssl);
    if (mbedtls_ssl_setup(&c->ssl, &certs[c->cert].conf)) {
        conn_fail(c, "ssl_setup", 0);
        return;
    }
    c->ssl_live = 1;
    if (opt.servername)
        mbedtls_ssl_set_hostname(&c->ssl, opt.servername);
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    if (opt.resume) {
        if (c->role == R_STORM && c->sess && c->sess->ticket_len)
            mbedtls_ssl_set_session(&c->ssl, c->sess);
        else if (c->role != R_STORM && certs[c->cert].have_sess)
            mbedtls_ssl_set_session(&c->ssl, &certs[c->cert].sess);
    }
    c->st = S_TLS;
    drive_handshake(c);
}

static void on_connect(uv_connect_t *r, int status)
{
    conn_t *c = r->data;
    if (c->st == S_CLOSING || c->st == S_FREE)
        return;
    if (status < 0) {
        conn_fail(c, "connect", status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) {
        conn_fail(c, "read_start", 0);
        return;
    }
    start_tls(c);
}

static void conn_start(conn_t *c)
{
    memset(&c->cin, 0, sizeof c->cin);
    c->ws_state = 0;
    c->st = S_TCP;
    c->failed = c->resumed = c->subacked = c->lean = 0;
    c->writing = 0;
    n_started++;
    n_active_hs++;
    c->t_start = uv_hrtime();
    uv_tcp_init(loop, &c->tcp);
    if (opt.src_ips > 0) {
        struct sockaddr_in src;
        char ip[32];
        snprintf(ip, sizeof ip, "127.0.0.%d", 1 + c->idx % opt.src_ips);
        uv_ip4_addr(ip, 0, &src);
        int e = uv_tcp_bind(&c->tcp, (struct sockaddr *)&src, 0);
        if (e) {
            conn_fail(c, "bind", e);
            return;
        }
    }
    struct sockaddr_in sa;
    uv_ip4_addr(opt.host, opt.port, &sa);
    c->creq.data = c;
    int e = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, on_connect);
    if (e)
        conn_fail(c, "connect", e);
}

/* start more connections while fewer than --parallel are in progress */
static void start_more(void)
{
    while (next_to_start < nconns && n_active_hs < opt.parallel)
        conn_start(&conns[next_to_start++]);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = (conn_t *)s;
    if (nread < 0) {
        if (c->st == S_READY && (phase >= 2 || c->role == R_STORM || c->role == R_IDLE) &&
            nread == UV_EOF)
            conn_close(c);
        else
            conn_fail(c, "read", (int)nread);
        return;
    }
    if (!nread || c->lean)
        return; /* lean idle connections: TLS state freed, nothing expected */
    buf_put(&c->cin, b->base, (size_t)nread);
    if (c->st == S_TLS) {
        drive_handshake(c);
        if (c->st != S_MQTT && c->st != S_READY)
            return;
    }
    static uint8_t plain[65536];
    for (;;) {
        if (!c->ssl_live)
            return;
        int r = mbedtls_ssl_read(&c->ssl, plain, sizeof plain);
        if (r > 0) {
            if (opt.ws)
                ws_input(c, plain, (size_t)r);
            else
                on_plain(c, plain, (size_t)r);
            if (c->st == S_CLOSING || c->st == S_FREE)
                return;
            if (c->lean)
                break;
            continue;
        }
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
            if (phase >= 2)
                conn_close(c);
            else
                conn_fail(c, "peer closed", r);
            return;
        }
        conn_fail(c, "ssl_read", r);
        return;
    }
    conn_flush(c);
    if (c->lean) {
        free_tls(c); /* idle: hold only the socket, the load generator's memory stays small */
        return;
    }
    if (c->role == R_PUB && c->st == S_READY)
        pump(c);
    if (c->role == R_SUB) {
        for (int i = 0; i < npubs; i++)
            if (conns[i].want_pump) {
                conns[i].want_pump = 0;
                pump(&conns[i]);
            }
        scenario_progress();
    }
}

/* --- MQTT decoding ---------------------------------------------------------------------- */

static void on_ready(conn_t *c)
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
    start_more();
    scenario_progress();
}

static void handle_packet(conn_t *c, uint8_t type, const uint8_t *p, size_t n)
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
        if (n < 3 || p[2] == 0x80) {
            conn_fail(c, "SUBSCRIBE refused", 0);
            return;
        }
        c->subacked = 1;
        scenario_progress();
        return;
    case 4: /* PUBACK */
        c->acked++;
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
        if (q == 1) {
            uint8_t a[4] = {0x40, 2, (uint8_t)(pid >> 8), (uint8_t)pid};
            buf_put(&c->pout, a, 4);
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
                if (opt.scen == SC_STORMLAT) {
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

static uint64_t pub_allowed(conn_t *c)
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

static void pump_n(conn_t *c, uint64_t want)
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
    for (uint64_t i = 0; i < want; i++)
        mqtt_publish(c, (uint32_t)c->sent++);
    total_sent += want;
    conn_flush(c);
}

static uint64_t rate_due(conn_t *c)
{
    double per_pub = opt.rate / npubs;
    double el = (double)(uv_hrtime() - m_start_ns) / 1e9;
    uint64_t due = (uint64_t)(el * per_pub) + 1;
    return due > c->sent ? due - c->sent : 0;
}

static void pump(conn_t *c)
{
    if (opt.rate > 0)
        pump_n(c, rate_due(c));
    else
        pump_n(c, UINT64_MAX);
}

static void on_rate(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < npubs; i++)
        pump(&conns[i]);
}

/* --- storm-latency: talking to the storm child -------------------------------------------- */

static double json_num(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(js, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}
static uint64_t json_u64(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(js, k);
    return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static void on_go(uv_timer_t *t)
{
    (void)t;
    if (go_fd < 0 || storm_state)
        return;
    storm_go_ns = uv_hrtime();
    if (write(go_fd, "g", 1) != 1)
        die("cannot start the storm child");
    close(go_fd);
    go_fd = -1;
    storm_state = 1;
    vlog("storm started");
}

static void on_child_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
    (void)h;
    (void)sug;
    static char cb[4096];
    *b = uv_buf_init(cb, sizeof cb);
}
static void on_child_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) {
        size_t room = sizeof child_json - 1 - child_json_len;
        size_t k = (size_t)n < room ? (size_t)n : room;
        memcpy(child_json + child_json_len, b->base, k);
        child_json_len += k;
        child_json[child_json_len] = 0;
        if (storm_state != 2 && memchr(child_json, '\n', child_json_len)) {
            storm_t0 = json_u64(child_json, "t_start_ns");
            storm_t1 = json_u64(child_json, "t_end_ns");
            if (!storm_t0 || storm_t1 < storm_t0) {
                storm_t0 = storm_go_ns;
                storm_t1 = uv_hrtime();
            }
            storm_state = 2;
            vlog("storm over: %.3f s", (double)(storm_t1 - storm_t0) / 1e9);
        }
        return;
    }
    if (n < 0) {
        if (storm_state != 2) {
            fprintf(stderr, "loadgen: the storm child ended without a result\n");
            storm_t0 = storm_go_ns ? storm_go_ns : uv_hrtime();
            storm_t1 = uv_hrtime();
            storm_state = 2;
        }
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, NULL);
    }
}

/* --- progress and results --------------------------------------------------------------- */

static void start_measuring(void)
{
    phase = 1;
    cpu_start = broker_cpu();
    m_start_ns = last_deliv_ns = uv_hrtime();
    vlog("measuring: %d publishers, %d subscribers", npubs, nsubs);
    if (opt.rate > 0)
        uv_timer_start(&rate_timer, on_rate, 1, 1);
    if (opt.scen == SC_STORMLAT)
        uv_timer_start(&go_timer, on_go, (uint64_t)(opt.storm_delay * 1000), 0);
    for (int i = 0; i < npubs; i++)
        pump(&conns[i]);
}

static void stop_publishing(void)
{
    if (phase != 1)
        return;
    phase = 2;
    pub_stop_ns = uv_hrtime();
    uv_timer_stop(&rate_timer);
    vlog("publishing stopped: sent %" PRIu64 ", delivered %" PRIu64, total_sent, total_delivered);
}

static void storm_begin_round(void);

static void scenario_progress(void)
{
    switch (opt.scen) {
    case SC_STORM:
        if (n_ready + n_failed + 0 >= nconns && phase == 0) {
            if (storm_round == 0 && opt.resume) {
                /* priming round done: disconnect everyone, then reconnect with tickets */
                phase = 5;
                for (int i = 0; i < nconns; i++)
                    conn_disconnect(&conns[i]);
            } else {
                m_end_ns = uv_hrtime();
                cpu_end = broker_cpu();
                phase = 3;
                finish();
            }
        } else if (phase == 5 && n_closed >= nconns) {
            storm_begin_round();
        }
        return;
    case SC_IDLE:
        if (phase == 0 && n_ready + n_failed >= nconns) {
            phase = 4;
            m_end_ns = uv_hrtime();
            uv_timer_start(&settle_timer, finish_cb, (uint64_t)(opt.settle * 1000), 0);
        }
        return;
    default:
        if (phase == 0) {
            int ok = n_ready == nconns;
            for (int i = npubs; ok && i < nconns; i++)
                ok = conns[i].subacked;
            if (ok)
                start_measuring();
            else if (n_failed)
                finish();
        } else if (phase == 2 && total_delivered >= total_sent * (uint64_t)nsubs) {
            m_end_ns = uv_hrtime();
            cpu_end = broker_cpu();
            phase = 3;
            finish();
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_hrtime();
    if (opt.scen == SC_STORM || opt.scen == SC_IDLE)
        return;
    if (phase == 1) {
        int over = opt.scen == SC_STORMLAT
                       ? storm_state == 2 && now >= storm_t1 + (uint64_t)(opt.storm_post * 1e9)
                       : (double)(now - m_start_ns) / 1e9 >= opt.duration;
        if (over || (total_target && total_sent >= total_target))
            stop_publishing();
        else if (now - last_deliv_ns > 1000000000ull) {
            /* nothing delivered for 1 s: count what is in transit as lost and go on */
            for (int i = 0; i < npubs; i++) {
                conn_t *c = &conns[i];
                uint64_t copies = c->sent * (uint64_t)nsubs;
                if (copies > c->delivered + c->lost_adj)
                    c->lost_adj = copies - c->delivered;
                c->acked = c->sent;
                pump(c);
            }
            last_deliv_ns = now;
        }
    }
    if (phase == 2) {
        now = uv_hrtime();
        /* drain: wait for the last deliveries, at most 3 s after the last progress */
        if (now - last_deliv_ns > 3000000000ull || now - pub_stop_ns > 30000000000ull) {
            m_end_ns = last_deliv_ns > pub_stop_ns ? last_deliv_ns : pub_stop_ns;
            cpu_end = broker_cpu();
            phase = 3;
            finish();
        } else
            scenario_progress();
    }
}

static void close_all(void)
{
    for (int i = 0; i < nconns; i++)
        conn_close(&conns[i]);
    uv_timer_stop(&tick_timer);
    uv_timer_stop(&hard_timer);
    uv_timer_stop(&rate_timer);
    uv_timer_stop(&settle_timer);
    uv_timer_stop(&go_timer);
    uv_signal_stop(&sig_term);
    uv_signal_stop(&sig_int);
    if (go_fd >= 0) {
        close(go_fd); /* the storm child, still waiting, exits */
        go_fd = -1;
    }
}

static void on_signal(uv_signal_t *s, int sig)
{
    (void)s;
    vlog("signal %d: closing", sig);
    close_all();
}

static void on_hard_timeout(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "loadgen: --timeout reached (ready %d/%d, failed %d)\n", n_ready, nconns,
            n_failed);
    exit_code = 3;
    if (opt.scen == SC_IDLE && phase != 3) {
        close_all();
        return;
    }
    if (phase < 3) {
        m_end_ns = uv_hrtime();
        cpu_end = broker_cpu();
        phase = 3;
        finish();
    } else
        close_all();
}

static int u64cmp(const void *a, const void *b);
static double pct_of(const uint64_t *a, size_t n, double p)
{
    if (!n)
        return 0;
    return a[(size_t)(p * (double)(n - 1) + 0.5)] / 1000.0;
}

/* storm-latency: the pair's latency inside the storm window and before it, plus the child's line */
static void finish_stormlat(char *js, size_t cap, int *np)
{
    int n = *np;
#undef J
#define J(...) n += snprintf(js + n, cap - (size_t)n, __VA_ARGS__)
    if (storm_state == 1 && child_pid > 0)
        kill(child_pid, SIGTERM); /* finishing early (timeout): stop the storm */
    if (storm_state != 2) {
        storm_t0 = storm_go_ns ? storm_go_ns : m_end_ns;
        storm_t1 = m_end_ns;
    }
    uint64_t *in = malloc((nrecs + 1) * sizeof *in), *base = malloc((nrecs + 1) * sizeof *base);
    if (!in || !base)
        die("out of memory");
    size_t nin = 0, nbase = 0;
    uint64_t gap_max = 0; /* loadgen's own stall check: the pair's publish times should be ~1 ms
                             apart (rate timer); a longer gap is time this process did not run */
    for (size_t i = 0; i < nrecs; i++) {
        if (recs[i].t >= storm_t0 && recs[i].t <= storm_t1) {
            if (nin && i && recs[i].t > recs[i - 1].t && recs[i].t - recs[i - 1].t > gap_max)
                gap_max = recs[i].t - recs[i - 1].t;
            in[nin++] = recs[i].lat;
        } else if (recs[i].t >= m_start_ns && recs[i].t < storm_t0)
            base[nbase++] = recs[i].lat;
    }
    if (opt.lat_dump) {
        /* every sample: publish time (ms from the start of publishing), latency (us), in storm */
        FILE *f = fopen(opt.lat_dump, "w");
        if (f) {
            for (size_t i = 0; i < nrecs; i++)
                fprintf(f, "%.3f %.1f %d\n", (double)(recs[i].t - m_start_ns) / 1e6,
                        recs[i].lat / 1000.0, recs[i].t >= storm_t0 && recs[i].t <= storm_t1);
            fclose(f);
        }
    }
    qsort(in, nin, sizeof *in, u64cmp);
    qsort(base, nbase, sizeof *base, u64cmp);
    uint64_t lost = total_sent > total_delivered ? total_sent - total_delivered : 0;
    J(",\"storm\":%d,\"parallel\":%d,\"ws\":%d,\"qos\":%d,\"size\":%d,\"rate_target\":%.0f",
      opt.storm, opt.storm_parallel, opt.ws, opt.qos, opt.size, opt.rate);
    J(",\"isolation\":\"storm in a forked SCHED_IDLE child on the same CPU\"");
    J(",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"errors\":%d",
      total_sent, total_delivered, lost, n_failed);
    J(",\"lat_samples\":%zu,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f"
      ",\"lat_max_us\":%.1f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f",
      nin, pct_of(in, nin, 0.5), pct_of(in, nin, 0.99), pct_of(in, nin, 0.999),
      nin ? in[nin - 1] / 1000.0 : 0, pct_of(in, nin, 0.5) / 1000, pct_of(in, nin, 0.99) / 1000,
      nin ? in[nin - 1] / 1e6 : 0);
    J(",\"lg_pub_gap_max_ms\":%.2f", gap_max / 1e6);
    J(",\"base_samples\":%zu,\"base_p50_us\":%.1f,\"base_p99_us\":%.1f,\"base_max_us\":%.1f", nbase,
      pct_of(base, nbase, 0.5), pct_of(base, nbase, 0.99), nbase ? base[nbase - 1] / 1000.0 : 0);
    /* the storm, as the child measured it */
    const char *cj = child_json;
    int have = child_json_len && storm_state == 2 && json_num(cj, "conns") >= 0;
    double sok = have ? json_num(cj, "ok") : 0, serr = have ? json_num(cj, "errors") : opt.storm;
    J(",\"storm_ok\":%.0f,\"storm_failed\":%.0f,\"storm_errors\":%.0f,\"storm_s\":%.3f"
      ",\"handshakes_per_s\":%.1f",
      sok, opt.storm - sok, serr, (double)(storm_t1 - storm_t0) / 1e9,
      have ? json_num(cj, "handshakes_per_s") : 0);
    if (have) {
        J(",\"storm_connect_p50_ms\":%.2f,\"storm_connect_p99_ms\":%.2f",
          json_num(cj, "connect_p50_ms"), json_num(cj, "connect_p99_ms"));
        if (opt.broker_pid)
            J(",\"storm_broker_cpu_s\":%.3f,\"broker_cpu_ms_per_handshake\":%.3f"
              ",\"storm_broker_cpu_util\":%.3f",
              json_num(cj, "broker_cpu_s"), json_num(cj, "broker_cpu_ms_per_handshake"),
              json_num(cj, "broker_cpu_util"));
    }
    if (!have || sok < opt.storm || n_failed)
        exit_code = exit_code ? exit_code : 1;
    free(in);
    free(base);
    *np = n;
#undef J
}

static void finish(void)
{
    if (m_end_ns < m_start_ns)
        m_end_ns = m_start_ns;
    double dur = (double)(m_end_ns - m_start_ns) / 1e9;
    double cpu = cpu_end - cpu_start;
    char js[8192];
    int n = 0;
#define J(...) n += snprintf(js + n, sizeof js - (size_t)n, __VA_ARGS__)
    J("{\"scenario\":\"%s\"", scen_names[opt.scen]);
    if (opt.scen == SC_STORM) {
        /* connect latency over the measured round */
        nsamples = 0;
        nseen = 0;
        for (int i = 0; i < nconns; i++)
            if (lat_connect[i])
                sample_add(lat_connect[i]);
        qsort(samples, nsamples, sizeof *samples, u64cmp);
        int ok = n_ready;
        J(",\"conns\":%d,\"resume\":%d,\"ok\":%d,\"resumed\":%d,\"errors\":%d,\"duration_s\":%.3f",
          nconns, opt.resume, ok, n_resumed, n_failed, dur);
        J(",\"handshakes_per_s\":%.1f,\"connect_p50_ms\":%.2f,\"connect_p99_ms\":%.2f",
          dur > 0 ? ok / dur : 0, pct_us(0.50) / 1000, pct_us(0.99) / 1000);
        if (opt.broker_pid)
            J(",\"broker_cpu_s\":%.3f,\"broker_cpu_ms_per_handshake\":%.3f,\"broker_cpu_util\":%."
              "3f",
              cpu, ok ? cpu * 1000 / ok : 0, dur > 0 ? cpu / dur : 0);
        if (storm_child)
            J(",\"t_start_ns\":%" PRIu64 ",\"t_end_ns\":%" PRIu64, m_start_ns, m_end_ns);
    } else if (opt.scen == SC_STORMLAT) {
        finish_stormlat(js, sizeof js, &n);
    } else if (opt.scen == SC_IDLE) {
        rss_end_kb = broker_rss_kb();
        cpu_end = broker_cpu();
        J(",\"conns\":%d,\"ok\":%d,\"resumed\":%d,\"errors\":%d,\"connect_s\":%.3f", nconns,
          n_ready, n_resumed, n_failed, dur);
        if (opt.broker_pid)
            J(",\"broker_rss_before_kb\":%ld,\"broker_rss_after_kb\":%ld,\"broker_rss_per_conn_b\":"
              "%.0f"
              ",\"broker_cpu_s\":%.3f",
              rss_start_kb, rss_end_kb,
              n_ready ? (double)(rss_end_kb - rss_start_kb) * 1024.0 / n_ready : 0,
              cpu_end - cpu_start);
    } else {
        qsort(samples, nsamples, sizeof *samples, u64cmp);
        uint64_t lost = total_sent * (uint64_t)nsubs > total_delivered
                            ? total_sent * (uint64_t)nsubs - total_delivered
                            : 0;
        J(",\"qos\":%d,\"size\":%d,\"publishers\":%d,\"subscribers\":%d,\"rate_target\":%.0f",
          opt.qos, opt.size, npubs, nsubs, opt.rate);
        J(",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64
          ",\"errors\":%d,\"duration_s\":%.3f",
          total_sent, total_delivered, lost, n_failed, dur);
        J(",\"msgs_per_s\":%.1f,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,\"lat_"
          "max_us\":%.1f",
          dur > 0 ? (double)total_delivered / dur : 0, pct_us(0.5), pct_us(0.99), pct_us(0.999),
          nsamples ? samples[nsamples - 1] / 1000.0 : 0);
        if (opt.broker_pid)
            J(",\"broker_cpu_s\":%.3f,\"broker_cpu_us_per_msg\":%.3f", cpu,
              total_delivered ? cpu * 1e6 / (double)total_delivered : 0);
    }
    J("}");
    printf("%s\n", js);
    fflush(stdout);
    if (n_failed && !exit_code)
        exit_code = 1;
    if (opt.scen == SC_IDLE && phase != 3) {
        /* ready: hold the connections until SIGTERM or --hold */
        phase = 3;
        fprintf(stderr, "loadgen: READY %d connections held\n", n_ready);
        uv_timer_stop(&hard_timer);
        uv_timer_start(&hard_timer, close_all_cb, (uint64_t)(opt.hold * 1000), 0);
        return;
    }
    phase = 3;
    for (int i = 0; i < nconns; i++)
        conn_disconnect(&conns[i]);
    uv_timer_stop(&tick_timer);
    uv_timer_stop(&rate_timer);
    uv_timer_stop(&settle_timer);
    uv_timer_stop(&go_timer);
    if (go_fd >= 0) {
        close(go_fd);
        go_fd = -1;
    }
    uv_signal_stop(&sig_term);
    uv_signal_stop(&sig_int);
    /* the hard timer stays armed until every close completes; give it 5 s */
    uv_timer_stop(&hard_timer);
    uv_timer_start(&hard_timer, close_all_cb, 5000, 0);
    uv_unref((uv_handle_t *)&hard_timer);
}

static void storm_begin_round(void)
{
    storm_round = 1;
    phase = 0;
    n_ready = n_failed = n_closed = n_active_hs = n_resumed = 0;
    next_to_start = 0;
    memset(lat_connect, 0, (size_t)nconns * sizeof *lat_connect);
    cpu_start = broker_cpu();
    m_start_ns = uv_hrtime();
    start_more();
}

/* --- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct lg_set set;
    lg_options(argc, argv, &set);
    int conns_set = set.conns, rate_set = set.rate, parallel_set = set.parallel;

    switch (opt.scen) {
    case SC_STORM:
    case SC_IDLE:
        npubs = 0;
        nsubs = 0;
        nconns = opt.conns;
        break;
    case SC_FANIN:
        npubs = conns_set ? opt.conns : 4;
        nsubs = 1;
        break;
    case SC_FANOUT:
        npubs = 1;
        nsubs = opt.subs;
        break;
    case SC_LATENCY:
        npubs = 1;
        nsubs = 1;
        if (!rate_set)
            opt.rate = 10000;
        break;
    case SC_STORMLAT:
        npubs = 1;
        nsubs = 1;
        if (!rate_set)
            opt.rate = 1000;
        if (parallel_set)
            opt.storm_parallel = opt.parallel;
        if (opt.storm < 1 || opt.storm > 1000000)
            die("--storm 1 .. 1000000");
        if (opt.storm_delay < 0 || opt.storm_delay > 600 || opt.storm_post < 0 ||
            opt.storm_post > 600)
            die("--storm-delay and --storm-post: 0 .. 600 s");
        break;
    }
    if (strchr(opt.ws_path, '\r') || strchr(opt.ws_path, '\n') || opt.ws_path[0] != '/' ||
        strlen(opt.ws_path) > 200)
        die("--ws-path must start with / (at most 200 bytes)");
    if (opt.scen != SC_STORM && opt.scen != SC_IDLE) {
        nconns = npubs + nsubs;
        if (!opt.window)
            opt.window = opt.scen == SC_LATENCY || opt.scen == SC_STORMLAT ? 50000 : 100;
        if (opt.window > 60000)
            opt.window = 60000; /* QoS 1 packet identifiers must stay unique */
        total_target = opt.count;
    }
    if (nconns < 1 || nconns > 1000000)
        die("bad connection count");
    if (!opt.timeout)
        opt.timeout = opt.scen == SC_IDLE || opt.scen == SC_STORM || opt.scen == SC_STORMLAT
                          ? 600
                          : opt.duration + 60;

    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int maxc = opt.scen == SC_STORMLAT && opt.storm_parallel > nconns ? opt.storm_parallel : nconns;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && (rlim_t)maxc + 64 > rl.rlim_cur)
        die("--conns %d exceeds the open-file limit %lu", maxc, (unsigned long)rl.rlim_cur);
    signal(SIGPIPE, SIG_IGN);

    load_certs();
    if (opt.scen != SC_STORM && opt.scen != SC_IDLE && sub_cert_idx < 0)
        die("no subscriber cert %s.crt in %s (--sub-cert)", opt.sub_cert, opt.certdir);
    static char filt[256];
    if (!opt.sub_filter) {
        /* the prefix with %u replaced by '+', then '#' */
        size_t o = 0;
        for (const char *s = opt.prefix; *s && o < sizeof filt - 4; s++) {
            if (s[0] == '%' && s[1] == 'u') {
                filt[o++] = '+';
                s++;
            } else
                filt[o++] = *s;
        }
        filt[o++] = '#';
        filt[o] = 0;
        opt.sub_filter = filt;
    }
    int child_fd = -1;
    if (opt.scen == SC_STORMLAT) {
        /* fork the storm child now, before any libuv state exists; it waits for the go byte */
        int gp[2], rp[2];
        if (pipe(gp) || pipe(rp))
            die("pipe: %s", strerror(errno));
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            close(gp[1]);
            close(rp[0]);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() == 1)
                _exit(3);
            /* lowest priority: the pair's process preempts this one whenever it has work */
            struct sched_param sp = {.sched_priority = 0};
            if (sched_setscheduler(0, SCHED_IDLE, &sp) && setpriority(PRIO_PROCESS, 0, 19))
                fprintf(stderr, "loadgen: storm child: cannot lower its priority\n");
            char g;
            ssize_t r;
            do
                r = read(gp[0], &g, 1);
            while (r < 0 && errno == EINTR);
            if (r != 1)
                _exit(0); /* the parent finished without a storm */
            close(gp[0]);
            if (dup2(rp[1], 1) < 0)
                _exit(3);
            close(rp[1]);
            mbedtls_ctr_drbg_reseed(&drbg, (const unsigned char *)"storm", 5);
            ws_rng ^= (uint64_t)getpid() << 32;
            storm_child = 1;
            storm_disc = 1;
            opt.scen = SC_STORM;
            opt.resume = 0; /* full handshakes */
            opt.parallel = opt.storm_parallel;
            nconns = opt.storm;
            npubs = nsubs = 0;
            total_target = 0;
        } else {
            close(gp[0]);
            close(rp[1]);
            go_fd = gp[1];
            child_fd = rp[0];
            child_pid = pid;
        }
    }
    snprintf(client_prefix, sizeof client_prefix, "lg%d-", (int)getpid());

    loop = uv_default_loop();
    conns = calloc((size_t)nconns, sizeof *conns);
    lat_connect = calloc((size_t)nconns, sizeof *lat_connect);
    if (!conns || !lat_connect)
        die("out of memory");
    mbedtls_ssl_session *sessions = NULL;
    if (opt.scen == SC_STORM && opt.resume) {
        sessions = calloc((size_t)nconns, sizeof *sessions);
        if (!sessions)
            die("out of memory");
    }
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->idx = i;
        if (opt.scen == SC_STORM)
            c->role = R_STORM;
        else if (opt.scen == SC_IDLE)
            c->role = R_IDLE;
        else
            c->role = i < npubs ? R_PUB : R_SUB;
        c->cert = c->role == R_SUB ? sub_cert_idx : pub_certs[i % npub_certs];
        if (sessions) {
            c->sess = &sessions[i];
            mbedtls_ssl_session_init(c->sess);
        }
        if (c->role == R_PUB) {
            /* topic prefix with %u = the cert's CN, then "t" */
            size_t o = 0;
            for (const char *s = opt.prefix; *s && o < sizeof c->topic - 130; s++) {
                if (s[0] == '%' && s[1] == 'u') {
                    o += (size_t)snprintf(c->topic + o, sizeof c->topic - o, "%s",
                                          certs[c->cert].cn);
                    s++;
                } else
                    c->topic[o++] = *s;
            }
            c->topic[o++] = 't';
            c->topic[o] = 0;
        }
    }

    uv_timer_init(loop, &tick_timer);
    uv_timer_init(loop, &hard_timer);
    uv_timer_init(loop, &rate_timer);
    uv_timer_init(loop, &settle_timer);
    uv_timer_init(loop, &go_timer);
    if (child_fd >= 0) {
        uv_pipe_init(loop, &child_pipe, 0);
        if (uv_pipe_open(&child_pipe, child_fd) ||
            uv_read_start((uv_stream_t *)&child_pipe, on_child_alloc, on_child_read))
            die("cannot read the storm child's pipe");
    }
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_timer_start(&tick_timer, on_tick, 10, 10);
    uv_timer_start(&hard_timer, on_hard_timeout, (uint64_t)(opt.timeout * 1000), 0);

    rss_start_kb = broker_rss_kb();
    cpu_start = broker_cpu();
    m_start_ns = uv_hrtime();
    if (opt.scen == SC_STORM && opt.resume)
        vlog("priming round: %d full handshakes", nconns);
    /* pub/sub scenarios: open all their few connections at once */
    if (opt.scen != SC_STORM && opt.scen != SC_IDLE && opt.parallel < nconns)
        opt.parallel = nconns;
    start_more();
    uv_run(loop, UV_RUN_DEFAULT);
    if (child_pid > 0) {
        /* the storm child ends on its own (it has finished, or saw go_fd closed); bounded wait */
        int st = 0;
        for (int i = 0; i < 150; i++) {
            if (waitpid(child_pid, &st, WNOHANG) == child_pid)
                break;
            if (i == 100)
                kill(child_pid, SIGTERM);
            if (i == 140)
                kill(child_pid, SIGKILL);
            usleep(100000);
        }
    }
    if (phase != 3 && opt.scen != SC_IDLE) {
        fprintf(stderr, "loadgen: ended before results\n");
        return 3;
    }
    return exit_code;
}
