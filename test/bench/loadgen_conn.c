/* loadgen_conn: certificates, connections (TCP, Mbed TLS over memory buffers, writes) and
 * connection setup. */
#include "loadgen.h"

/* ------------------------------------------------------------------------------------------ */
/* certificates */

cert_t *certs;
int ncerts, sub_cert_idx = -1;
int *pub_certs, npub_certs; /* certs other than the subscriber's */
mbedtls_x509_crt cacrt;
mbedtls_entropy_context entropy;
mbedtls_ctr_drbg_context drbg;

int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void load_certs(void)
{
#if MBEDTLS_VERSION_MAJOR >= 3
    if (psa_crypto_init() != PSA_SUCCESS)
        die("psa_crypto_init failed");
#endif
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
#if MBEDTLS_VERSION_MAJOR >= 3
        if (mbedtls_pk_parse_keyfile(&c->key, p, NULL, mbedtls_ctr_drbg_random, &drbg))
#else
        if (mbedtls_pk_parse_keyfile(&c->key, p, NULL))
#endif
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
#if MBEDTLS_VERSION_MAJOR >= 3
        /* TLS 1.2 as under 2.28, so that figures compare; a TLS 1.3 client (tickets arrive
         * after the handshake) is still to be written (issue #17). */
        mbedtls_ssl_conf_min_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
        mbedtls_ssl_conf_max_tls_version(&c->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
        mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                     MBEDTLS_SSL_MINOR_VERSION_3);
#endif
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

uv_loop_t *loop;
conn_t *conns;
int nconns;
int n_failed;
int n_started, n_ready, n_closed, n_active_hs, n_resumed;
char client_prefix[32];

/* latency samples (ns), reservoir beyond the cap */
#define SAMPLE_CAP (4u << 20)
uint64_t *samples;
size_t nsamples;
uint64_t nseen;

void sample_add(uint64_t v)
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
int u64cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
double pct_us(double p)
{
    if (!nsamples)
        return 0;
    size_t i = (size_t)(p * (double)(nsamples - 1) + 0.5);
    return samples[i] / 1000.0;
}

int phase; /* 0 setup, 1 measuring, 2 draining, 3 done, 4 idle settling, 5 storm reconnect */

int bio_send(void *ctx, const unsigned char *b, size_t n)
{
    conn_t *c = ctx;
    buf_put(&c->cout, b, n);
    return (int)n;
}
int bio_recv(void *ctx, unsigned char *b, size_t n)
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

/* hand queued ciphertext to the socket: uv_try_write first, uv_write the rest */
void sock_flush(conn_t *c)
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

void on_write(uv_write_t *r, int status)
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
    if (c->role == R_ATK && c->st == S_READY)
        attack_pump(c);
}

/* encrypt the queued MQTT bytes and send them: whatever is queued becomes one record of up to
 * 16 KB (device-like mode calls this after every packet, so one packet per record; --pipeline N
 * after N packets); with --ws they first become one masked binary frame */
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

void free_tls(conn_t *c)
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

void on_closed(uv_handle_t *h)
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
    if (opt.scen == SC_RESTART && restart_lost(c))
        return; /* the broker restarted: reconnect after a backoff */
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
void shutdown_cb(uv_shutdown_t *r, int status)
{
    (void)status;
    conn_t *c = r->data;
    free(r);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}
void conn_disconnect(conn_t *c)
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

/* --- connection setup ------------------------------------------------------------------- */

void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
    (void)h;
    (void)sug;
    static char rbuf[65536];
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

void drive_handshake(conn_t *c)
{
    int r = mbedtls_ssl_handshake(&c->ssl);
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
        sock_flush(c);
        return;
    }
    if (r) {
        conn_fail(c, "handshake", r);
        return;
    }
    c->resumed = c->offered && !c->saw_cert;
    if (c->resumed)
        n_resumed++;
    /* restart: every device keeps its own session (ticket); its certificate's first one primes
     * the others' first connection */
    if (c->role == R_DEV && c->sess) {
        mbedtls_ssl_session_free(c->sess);
        mbedtls_ssl_session_init(c->sess);
        c->sess_ok = !mbedtls_ssl_get_session(&c->ssl, c->sess);
        if (!certs[c->cert].have_sess && !mbedtls_ssl_get_session(&c->ssl, &certs[c->cert].sess))
            certs[c->cert].have_sess = 1;
    }
    /* keep the session for a later resumption */
    if (opt.resume && c->role != R_DEV) {
        if (c->role == R_STORM && c->sess) {
            mbedtls_ssl_session_free(c->sess);
            mbedtls_ssl_session_init(c->sess);
            c->sess_ok = !mbedtls_ssl_get_session(&c->ssl, c->sess);
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

/* Called for each certificate of the server's chain: only in a full handshake. */
static int saw_cert(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    (void)crt;
    (void)depth;
    (void)flags;
    ((conn_t *)p)->saw_cert = 1;
    return 0;
}

void start_tls(conn_t *c)
{
    mbedtls_ssl_init(&c->ssl);
    if (mbedtls_ssl_setup(&c->ssl, &certs[c->cert].conf)) {
        conn_fail(c, "ssl_setup", 0);
        return;
    }
    c->ssl_live = 1;
    if (opt.servername)
        mbedtls_ssl_set_hostname(&c->ssl, opt.servername);
#if MBEDTLS_VERSION_MAJOR >= 3
    else /* as 2.28 did: the chain is verified, the name is not (3.6 wants that said) */
        mbedtls_ssl_set_hostname(&c->ssl, NULL);
#endif
    mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    mbedtls_ssl_set_verify(&c->ssl, saw_cert, c);
    const mbedtls_ssl_session *s = NULL;
    if (c->role == R_DEV)
        s = c->sess && c->sess_ok      ? c->sess
            : certs[c->cert].have_sess ? &certs[c->cert].sess
                                       : NULL;
    else if (opt.resume && c->role == R_STORM)
        s = c->sess && c->sess_ok ? c->sess : NULL;
    else if (opt.resume)
        s = certs[c->cert].have_sess ? &certs[c->cert].sess : NULL;
    c->offered = s && !mbedtls_ssl_set_session(&c->ssl, s);
    c->saw_cert = 0;
    c->st = S_TLS;
    drive_handshake(c);
}

void on_connect(uv_connect_t *r, int status)
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

void conn_start(conn_t *c)
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
    uv_ip4_addr(opt.host, c->role == R_SUB && opt.sub_port ? opt.sub_port : opt.port, &sa);
    c->creq.data = c;
    int e = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, on_connect);
    if (e)
        conn_fail(c, "connect", e);
}

/* start more connections while fewer than --parallel are in progress */
void start_more(void)
{
    if (paced)
        return; /* attack arrivals: a timer starts them */
    if (opt.scen == SC_RESTART)
        restart_kick(); /* reconnections due */
    while (next_to_start < nconns && n_active_hs < opt.parallel)
        conn_start(&conns[next_to_start++]);
}

void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    conn_t *c = (conn_t *)s;
    if (nread < 0) {
        if (c->st == S_READY &&
            (phase >= 2 || c->role == R_STORM || c->role == R_IDLE || c->role == R_ATK) &&
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
    if (c->role == R_ATK && c->st == S_READY)
        attack_pump(c);
    if (c->role == R_SUB) {
        for (int i = 0; i < npubs; i++)
            if (conns[i].want_pump) {
                conns[i].want_pump = 0;
                pump(&conns[i]);
            }
        scenario_progress();
    }
}
