/* loadgen.h: what loadgen.c (scenarios, connections, MQTT) and loadgen_ws.c (the WebSocket
 * client framing of --ws) share. A benchmark tool: one process, one loop. */
#ifndef LOADGEN_H
#define LOADGEN_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha1.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#define LG_SHA1 mbedtls_sha1
#else
#define LG_SHA1 mbedtls_sha1_ret
#endif
#include <mbedtls/x509_crt.h>

enum scen {
    SC_STORM,
    SC_FANIN,
    SC_FANOUT,
    SC_LATENCY,
    SC_IDLE,
    SC_STORMLAT,
    SC_ATTACK,
    SC_RESTART
};
struct lg_opts {
    enum scen scen;
    const char *host, *cafile, *certdir, *prefix, *sub_cert, *sub_filter, *servername, *ws_path;
    const char *lat_dump;
    int port, qos, size, conns, pubs, subs, parallel, window, src_ips, keepalive, resume, lean;
    int ws, storm, storm_parallel;
    int pipeline; /* 0: device-like, one MQTT packet per TLS record; N: up to N per record */
    double duration, rate, timeout, hold, settle, storm_delay, storm_post;
    uint64_t count;
    int broker_pid, verbose;
    /* cluster benchmarks: the subscribers' node (another port) and its process, whose CPU is
     * counted with broker_pid's */
    int sub_port, broker_pid2;
    /* attack: the hostile device's scenario, the new devices' arrival rate */
    const char *attack, *atk_cert, *flood_filter, *flood_all;
    double attack_s, arrive_rate, arrive_timeout, silent_rate;
    int retained, filters, copies, payload, ret_topics, silent_src_ips;
    /* restart: the file that asks for the broker's restart (FILE.pid: the new broker's PID) */
    const char *restart_file;
    double backoff;
};
extern struct lg_opts opt;
extern const char *const scen_names[];
#define NSCEN ((int)SC_RESTART + 1)
/* Options given explicitly (their defaults depend on the scenario). */
struct lg_set {
    int conns, rate, parallel;
};
void lg_options(int argc, char **argv, struct lg_set *set); /* exits on bad input */
extern mbedtls_ctr_drbg_context drbg;
extern int n_failed;
extern int phase; /* 0 setup, 1 measuring, 2 draining, 3 done, 4 idle settling, 5 storm reconnect */
extern uint64_t ws_rng;

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* fork a child with a go pipe (parent writes go[1], child reads go[0]) and a result pipe (child
 * writes res[1], parent reads res[0]); each side's unused ends are closed; dies on failure */
pid_t fork_child(int go[2], int res[2]);
void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------------------------------ */
/* growable byte buffer */

typedef struct {
    uint8_t *p;
    size_t off, len, cap; /* live bytes are p[off .. off+len) */
} buf_t;

static inline void buf_reserve(buf_t *b, size_t extra)
{
    if (b->off && b->off + b->len + extra > b->cap) {
        memmove(b->p, b->p + b->off, b->len);
        b->off = 0;
    }
    if (b->off + b->len + extra > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->off + b->len + extra)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np)
            die("out of memory");
        b->p = np;
        b->cap = nc;
    }
}
static inline void buf_put(buf_t *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->off + b->len, d, n);
    b->len += n;
}
static inline void buf_consume(buf_t *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (!b->len)
        b->off = 0;
}
static inline void buf_free(buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

enum role { R_STORM, R_PUB, R_SUB, R_IDLE, R_ATK, R_SLOW, R_DEV };
enum st { S_FREE, S_TCP, S_TLS, S_MQTT, S_READY, S_CLOSING };

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    int idx, role, cert, st, writing, resumed, lean, failed, subacked, want_pump;
    /* Whether a session was offered, and whether the server then sent its certificate (the
     * verify callback ran): offered and no certificate = resumed. Public API only, so the same
     * under Mbed TLS 2.28 and 3.6. */
    int offered, saw_cert;
    int sess_ok; /* *sess holds a session from an earlier handshake */
    mbedtls_ssl_context ssl;
    int ssl_live;
    int ws_state; /* --ws: 0 before the upgrade, 1 upgrade sent, 2 open, 3 close sent */
    buf_t cin, cout, pout, min;
    buf_t wout, win; /* --ws: framed plaintext to encrypt; unparsed WebSocket/HTTP input */
    char ws_key[28];
    uint64_t t_start, t_ready;
    uint16_t pid;
    mbedtls_ssl_session *sess; /* session to resume with (storm --resume) */
    char topic[256];
    /* publisher */
    uint64_t sent, acked, delivered, lost_adj;
    /* restart: reconnect at t_retry (ns) once closed; attempts since the last success */
    uint64_t t_retry;
    int retry, attempts;
} conn_t;

typedef struct {
    uv_write_t req;
    conn_t *c;
    uint8_t *data;
} wreq_t;

void conn_fail(conn_t *c, const char *why, int code);
void conn_flush(conn_t *c);
void conn_close(conn_t *c);
void mqtt_connect(conn_t *c);
/* decrypted MQTT bytes of c */
void on_plain(conn_t *c, const uint8_t *p, size_t n);

/* loadgen_ws.c */
void ws_frame(conn_t *c, uint8_t op, const uint8_t *d, size_t n);
void ws_send_upgrade(conn_t *c);
void ws_input(conn_t *c, const uint8_t *p, size_t n);

/* ---- shared run state and functions (loadgen*.c) ---- */
typedef struct {
    char name[128], cn[128];
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_session sess; /* cached ticket per cert (idle --resume) */
    int have_sess;
} cert_t;
typedef struct {
    uint64_t t, lat; /* publish time, latency (ns) */
} lat_rec_t;

extern cert_t *certs;
extern int ncerts, sub_cert_idx;
extern int *pub_certs, npub_certs;
extern mbedtls_x509_crt cacrt;
extern mbedtls_entropy_context entropy;
extern uv_loop_t *loop;
extern conn_t *conns;
extern int nconns;
extern int n_started, n_ready, n_closed, n_active_hs, n_resumed;
extern char client_prefix[32];
extern uint64_t *samples;
extern size_t nsamples;
extern uint64_t nseen;
extern int storm_round;
extern uint64_t m_start_ns, m_end_ns, last_deliv_ns, pub_stop_ns;
extern uint64_t total_sent, total_delivered, total_target;
extern double cpu_start, cpu_end;
extern long rss_start_kb, rss_end_kb;
extern int npubs, nsubs;
extern uv_timer_t tick_timer, hard_timer, rate_timer, settle_timer;
extern uv_signal_t sig_term, sig_int;
extern int exit_code;
extern uint64_t *lat_connect;
extern int next_to_start;
extern int storm_child;
extern int storm_disc;
extern pid_t child_pid;
extern int go_fd;
extern int storm_state;
extern uint64_t storm_t0, storm_t1;
extern uint64_t storm_go_ns;
extern char child_json[2048];
extern size_t child_json_len;
extern uv_pipe_t child_pipe;
extern uv_timer_t go_timer;
extern lat_rec_t *recs;
extern size_t nrecs, recs_cap;

int name_cmp(const void *a, const void *b);
void load_certs(void);
void sample_add(uint64_t v);
void lat_dump_write(void);
int u64cmp(const void *a, const void *b);
double pct_us(double p);
int bio_send(void *ctx, const unsigned char *b, size_t n);
int bio_recv(void *ctx, unsigned char *b, size_t n);
void sock_flush(conn_t *c);
void on_write(uv_write_t *r, int status);
void free_tls(conn_t *c);
void on_closed(uv_handle_t *h);
void shutdown_cb(uv_shutdown_t *r, int status);
void conn_disconnect(conn_t *c);
size_t put_varlen(uint8_t *p, size_t v);
void put_str(buf_t *b, const char *s);
void mqtt_subscribe(conn_t *c, const char *filter);
void mqtt_publish(conn_t *c, uint32_t seq);
double broker_cpu(void);
long broker_rss_kb(void);
void finish_cb(uv_timer_t *t);
void close_all_cb(uv_timer_t *t);
void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b);
void drive_handshake(conn_t *c);
void start_tls(conn_t *c);
void on_connect(uv_connect_t *r, int status);
void conn_start(conn_t *c);
void start_more(void);
void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
void on_ready(conn_t *c);
void handle_packet(conn_t *c, uint8_t type, const uint8_t *p, size_t n);
uint64_t pub_allowed(conn_t *c);
void pump_n(conn_t *c, uint64_t want);
uint64_t rate_due(conn_t *c);
void pump(conn_t *c);
void on_rate(uv_timer_t *t);
double json_num(const char *js, const char *key);
uint64_t json_u64(const char *js, const char *key);
void on_go(uv_timer_t *t);
void on_child_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b);
void on_child_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
void start_measuring(void);
void stop_publishing(void);
void scenario_progress(void);
void on_tick(uv_timer_t *t);
void close_all(void);
void on_signal(uv_signal_t *s, int sig);
void on_hard_timeout(uv_timer_t *t);
double pct_of(const uint64_t *a, size_t n, double p);
void finish_stormlat(char *js, size_t cap, int *np);
void finish(void);
void storm_begin_round(void);

/* loadgen_attack.c: attack scenarios (a hostile device in a forked child, new devices arriving at
 * a fixed rate in another, the latency pair in the parent) */
extern int atk_child; /* this process is the attacker child */
extern int paced;     /* arrivals child: connections start on a timer, not by start_more */
void attack_fork(void);
void attack_setup_conns(void);
void attack_child_begin(void);
void attack_on_ready(conn_t *c);
void attack_on_suback(conn_t *c, const uint8_t *p, size_t n);
void attack_on_puback(conn_t *c);
void attack_on_publish(conn_t *c);
void attack_pump(conn_t *c);
void attack_tick(uint64_t now);
int attack_over(uint64_t now);
void finish_attack(char *js, size_t cap, int *np);
void attack_reap(void);

/* loadgen_restart.c: fleet recovery after a broker restart (devices in a forked SCHED_IDLE child,
 * the latency pair in the parent; both reconnect) */
extern int restart_child;    /* this process is the devices' child */
int restart_lost(conn_t *c); /* a connection lost during the restart: 1 = handled (reconnects) */
void restart_tick(uint64_t now);
void restart_kick(void);
void restart_on_ready(conn_t *c);
void restart_on_suback(conn_t *c);
void restart_progress(void);
void finish_restart(char *js, size_t cap, int *np);

#endif
