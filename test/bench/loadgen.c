/* loadgen: MQTT 3.1.1 load generator over mutual TLS (Mbed TLS 2.28 client sessions over memory
 * buffers, one libuv loop). Self-contained: it does not use the broker's code.
 *
 * Scenarios: connect-storm, fan-in, fan-out, latency, idle, storm-latency, attack (one hostile
 * device while the fleet runs: loadgen_attack.c), restart (fleet recovery after a broker restart:
 * loadgen_restart.c). One JSON line of results
 * on stdout. --ws carries MQTT over WebSockets (RFC 6455) inside the TLS session.
 * Device-like by default: every MQTT packet (PUBLISH, and the subscribers' PUBACKs) is encrypted
 * and written as its own TLS record, as device clients do; --pipeline N is one busy gateway
 * (up to N packets per record and flush).
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

/* --- scenario state --------------------------------------------------------------------- */

int storm_round; /* storm --resume: 0 = priming, 1 = measured */
uint64_t m_start_ns, m_end_ns, last_deliv_ns, pub_stop_ns;
uint64_t total_sent, total_delivered, total_target;
double cpu_start, cpu_end;
long rss_start_kb, rss_end_kb;
int npubs, nsubs;
uv_timer_t tick_timer, hard_timer, rate_timer, settle_timer;
uv_signal_t sig_term, sig_int;
int exit_code;
uint64_t *lat_connect; /* per conn connect latency ns */
int next_to_start;

/* storm-latency: the parent holds the latency pair, a forked child runs the storm */
int storm_child;             /* this process is the storm child */
int storm_disc;              /* storm: DISCONNECT right after CONNACK */
pid_t child_pid;             /* parent: the storm child */
int go_fd = -1;              /* parent: write one byte to start the storm */
int storm_state;             /* parent: 0 waiting, 1 storm running, 2 storm over */
uint64_t storm_t0, storm_t1; /* storm window (CLOCK_MONOTONIC ns, both processes) */
uint64_t storm_go_ns;        /* when the parent told the child to go */
char child_json[2048];       /* the child's result line */
size_t child_json_len;
uv_pipe_t child_pipe;
uv_timer_t go_timer;
lat_rec_t *recs;
size_t nrecs, recs_cap;

static double pid_cpu(int pid)
{
    if (!pid)
        return 0;
    char p[64], b[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", pid);
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

double broker_cpu(void)
{
    return pid_cpu(opt.broker_pid) + pid_cpu(opt.broker_pid2);
}
long broker_rss_kb(void)
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

void finish_cb(uv_timer_t *t)
{
    (void)t;
    finish();
}
void close_all_cb(uv_timer_t *t)
{
    (void)t;
    close_all();
}

/* --- storm-latency: talking to the storm child -------------------------------------------- */

double json_num(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(js, k);
    return p ? strtod(p + strlen(k), NULL) : -1;
}
uint64_t json_u64(const char *js, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(js, k);
    return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

void on_go(uv_timer_t *t)
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

void on_child_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
    (void)h;
    (void)sug;
    static char cb[4096];
    *b = uv_buf_init(cb, sizeof cb);
}
void on_child_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
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

/* --- main ------------------------------------------------------------------------------- */

pid_t fork_child(int go[2], int res[2])
{
    if (pipe(go) || pipe(res))
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(go[1]);
        close(res[0]);
    } else {
        close(go[0]);
        close(res[1]);
    }
    return pid;
}

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
        npubs = conns_set ? opt.conns : 50;
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
    case SC_RESTART:
        npubs = 1;
        nsubs = 1;
        if (!rate_set)
            opt.rate = 1000;
        if (!conns_set)
            opt.conns = 5000;
        if (parallel_set)
            opt.storm_parallel = opt.parallel;
        if (opt.conns < 1 || opt.conns > 1000000)
            die("--conns 1 .. 1000000");
        if (!opt.restart_file)
            die("restart: --restart-file F is required");
        if (strlen(opt.restart_file) > 4000)
            die("--restart-file: at most 4000 bytes");
        break;
    case SC_ATTACK:
        npubs = 1;
        nsubs = 1;
        if (!rate_set)
            opt.rate = 1000;
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
            opt.window = opt.scen == SC_LATENCY || opt.scen == SC_STORMLAT ||
                                 opt.scen == SC_ATTACK || opt.scen == SC_RESTART
                             ? 50000
                             : 200;
        if (opt.window > 60000)
            opt.window = 60000; /* QoS 1 packet identifiers must stay unique */
        total_target = opt.count;
    }
    if (opt.pipeline < 0 || opt.pipeline > 4096)
        die("--pipeline 0 .. 4096");
    if (nconns < 1 || nconns > 1000000)
        die("bad connection count");
    if (!opt.timeout)
        opt.timeout = opt.scen == SC_IDLE || opt.scen == SC_STORM || opt.scen == SC_STORMLAT ||
                              opt.scen == SC_RESTART
                          ? 600
                          : opt.duration + 60;
    if (opt.scen == SC_ATTACK &&
        opt.timeout < opt.storm_delay + opt.attack_s + opt.arrive_timeout + 120)
        opt.timeout = opt.storm_delay + opt.attack_s + opt.arrive_timeout + 120;

    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int maxc = opt.scen == SC_STORMLAT && opt.storm_parallel > nconns ? opt.storm_parallel : nconns;
    if (opt.scen == SC_RESTART)
        maxc = opt.conns;
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
    if (opt.scen == SC_STORMLAT || opt.scen == SC_RESTART) {
        /* fork the storm child (restart: the devices' child) now, before any libuv state exists; it
         * waits for the go byte */
        int gp[2], rp[2];
        pid_t pid = fork_child(gp, rp);
        if (pid == 0) {
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
            if (opt.scen == SC_RESTART) {
                restart_child = 1;
                nconns = opt.conns;
            } else {
                storm_child = 1;
                storm_disc = 1;
                opt.scen = SC_STORM;
                opt.resume = 0; /* full handshakes */
                nconns = opt.storm;
            }
            opt.parallel = opt.storm_parallel;
            npubs = nsubs = 0;
            total_target = 0;
        } else {
            go_fd = gp[1];
            child_fd = rp[0];
            child_pid = pid;
        }
    }
    if (opt.scen == SC_ATTACK)
        attack_fork(); /* the attacker and the arrivals: children, before any libuv state */
    snprintf(client_prefix, sizeof client_prefix, "lg%d-", (int)getpid());

    loop = uv_default_loop();
    conns = calloc((size_t)nconns + 1, sizeof *conns);
    lat_connect = calloc((size_t)nconns + 1, sizeof *lat_connect);
    if (!conns || !lat_connect)
        die("out of memory");
    mbedtls_ssl_session *sessions = NULL;
    if ((opt.scen == SC_STORM && opt.resume) || restart_child) {
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
        else if (restart_child)
            c->role = R_DEV;
        else
            c->role = i < npubs ? R_PUB : R_SUB;
        c->cert = c->role == R_SUB ? sub_cert_idx : pub_certs[i % npub_certs];
        if (sessions) {
            c->sess = &sessions[i];
            mbedtls_ssl_session_init(c->sess);
        }
        if (c->role == R_PUB || c->role == R_DEV) {
            /* topic prefix with %u = the cert's CN, then "t" (a device's own: "r" + index) */
            size_t o = 0;
            for (const char *s = opt.prefix; *s && o < sizeof c->topic - 130; s++) {
                if (s[0] == '%' && s[1] == 'u') {
                    o += (size_t)snprintf(c->topic + o, sizeof c->topic - o, "%s",
                                          certs[c->cert].cn);
                    s++;
                } else
                    c->topic[o++] = *s;
            }
            if (c->role == R_DEV)
                snprintf(c->topic + o, sizeof c->topic - o, "r%d", i);
            else {
                c->topic[o++] = 't';
                c->topic[o] = 0;
            }
        }
    }

    if (atk_child || paced)
        attack_setup_conns();

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
    if (opt.scen == SC_ATTACK || paced)
        attack_child_begin();
    if (opt.scen == SC_STORM && opt.resume)
        vlog("priming round: %d full handshakes", nconns);
    /* pub/sub scenarios: open all their few connections at once, unless told otherwise (a
     * fleet of 1,000 devices opened at once is a connect storm, not the thing measured) */
    if (opt.scen != SC_STORM && opt.scen != SC_IDLE && !restart_child && !parallel_set &&
        opt.parallel < nconns)
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
    if (opt.scen == SC_ATTACK && !atk_child)
        attack_reap();
    if (phase != 3 && opt.scen != SC_IDLE) {
        fprintf(stderr, "loadgen: ended before results\n");
        return 3;
    }
    return exit_code;
}
