/* loadgen_restart: fleet recovery after a broker restart (run-bench restart-recovery).
 *
 * Two processes, as storm-latency: the parent holds the latency pair (publisher + subscriber at
 * --rate, QoS 0); a forked child at SCHED_IDLE priority on the same CPU holds --conns devices.
 * The child connects the devices (the first connection of each certificate with a full
 * handshake, the others resume that certificate's ticket so that priming is cheap), keeps each
 * device's own session (ticket) from its last handshake, and subscribes each to its own topic
 * (prefix + "r" + index). --settle s after the last SUBACK it creates --restart-file F; whoever
 * drives the broker (run-bench) stops it, starts it again on the same port and writes the new
 * broker's PID into F.pid once it listens. Every connection the restart drops (devices and the
 * pair alike) reconnects after a random backoff in [0, --backoff) (a failed attempt: doubling,
 * up to 1 s, times a jitter of 0.5 .. 1.5), with at most --parallel handshakes in progress in the
 * child, offering its own ticket. A device has recovered at its SUBACK. The child reports (JSON
 * over the pipe): the recovery time from the new broker listening (F.pid seen) and from the first
 * dropped connection until the last device's SUBACK, resumed vs full handshakes, connection
 * attempts, and the new broker's CPU from its start until then (/proc/PID/stat). The parent reports
 * the pair's latency for messages published inside the recovery window and its own outage.
 */
#include "loadgen.h"

int restart_child;
static int rs_state; /* child: 0 priming, 1 restart asked, 2 recovering, 3 done */
static int n_sub;    /* devices currently subscribed */
static int n_rec_resumed, n_rec_full, n_attempts, n_lost;
static uint64_t t_asked, t_lost, t_listen, t_all, t_first_ready;
static int cursor;
static uint64_t *t_rec; /* child: each device's SUBACK time in the recovery */
static int n_trec;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t pair_skipped; /* parent: messages not published while the pair was down */
static uint64_t pair_lost_t;  /* parent: first pair connection lost */
static int pair_reconnects;

static double rnd01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static void schedule(conn_t *c, uint64_t now)
{
    double d;
    if (c->attempts == 0)
        d = opt.backoff * rnd01(); /* a live connection dropped: reconnect almost at once */
    else {
        double b = opt.backoff > 0 ? opt.backoff : 0.05;
        for (int i = 1; i < c->attempts && b < 1; i++)
            b *= 2;
        if (b > 1)
            b = 1;
        d = b * (0.5 + rnd01());
    }
    c->attempts++;
    c->retry = 1;
    c->t_retry = now + (uint64_t)(d * 1e9);
}

int restart_lost(conn_t *c)
{
    if (c->st == S_FREE || c->st == S_CLOSING)
        return 1;
    uint64_t now = uv_hrtime();
    if (restart_child) {
        if (rs_state < 1)
            return 0; /* priming: a failure is a failure */
        if (rs_state < 2) {
            rs_state = 2;
            t_lost = now;
            vlog("restart: first device connection lost");
        }
    } else {
        if (phase != 1 || (c->role != R_PUB && c->role != R_SUB))
            return 0;
        if (!pair_lost_t)
            pair_lost_t = now;
    }
    if (c->st == S_READY) {
        n_ready--;
        n_lost++;
        if (c->subacked && restart_child)
            n_sub--;
    }
    c->subacked = 0;
    conn_close(c);
    schedule(c, now);
    return 1;
}

/* start due reconnections while fewer than --parallel handshakes are in progress */
void restart_kick(void)
{
    uint64_t now = uv_hrtime();
    for (int k = 0; k < nconns && n_active_hs < opt.parallel; k++) {
        conn_t *c = &conns[cursor];
        cursor = cursor + 1 < nconns ? cursor + 1 : 0;
        if (c->retry && c->st == S_FREE && c->t_retry <= now) {
            c->retry = 0;
            n_attempts++;
            if (!restart_child)
                pair_reconnects++;
            conn_start(c);
        }
    }
}

static void read_pid_file(uint64_t now)
{
    char p[4200], b[32];
    snprintf(p, sizeof p, "%s.pid", opt.restart_file);
    FILE *f = fopen(p, "r");
    if (!f)
        return;
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = 0;
    int pid = atoi(b);
    if (pid <= 0)
        return;
    opt.broker_pid = pid;
    t_listen = now;
    vlog("restart: new broker %d listening", pid);
}

void restart_tick(uint64_t now)
{
    if (restart_child && rs_state >= 1 && rs_state < 3 && !t_listen && opt.restart_file)
        read_pid_file(now);
    restart_kick();
}

static void ask_restart(uv_timer_t *t)
{
    (void)t;
    if (rs_state != 0)
        return;
    rs_state = 1;
    t_asked = uv_hrtime();
    if (!opt.restart_file)
        return;
    char p[4200];
    snprintf(p, sizeof p, "%s.tmp", opt.restart_file);
    FILE *f = fopen(p, "w");
    if (!f || fprintf(f, "restart\n") < 0 || fclose(f) || rename(p, opt.restart_file))
        die("cannot create --restart-file %s", opt.restart_file);
    vlog("restart asked (%s)", opt.restart_file);
}

void restart_on_ready(conn_t *c)
{
    c->attempts = 0;
    if (restart_child) {
        if (c->role != R_DEV)
            return;
        if (rs_state >= 2) {
            if (c->resumed)
                n_rec_resumed++;
            else
                n_rec_full++;
            if (!t_first_ready)
                t_first_ready = uv_hrtime();
        }
        mqtt_subscribe(c, c->topic);
        conn_flush(c);
        return;
    }
    if (c->role == R_PUB && phase == 1) {
        /* the pair's publisher is back: what was in flight is lost, and what was due while it
         * was down is skipped (not sent in a burst) */
        uint64_t copies = c->sent * (uint64_t)nsubs;
        if (copies > c->delivered + c->lost_adj)
            c->lost_adj = copies - c->delivered;
        uint64_t due = rate_due(c);
        if (due > 1) {
            c->sent += due - 1;
            c->lost_adj += (due - 1) * (uint64_t)nsubs;
            total_sent += due - 1;
            pair_skipped += due - 1;
        }
    }
}

void restart_on_suback(conn_t *c)
{
    if (!restart_child || c->role != R_DEV)
        return;
    n_sub++;
    if (rs_state >= 2) {
        if (!t_rec && !(t_rec = malloc((size_t)nconns * sizeof *t_rec)))
            die("out of memory");
        if (n_trec < nconns)
            t_rec[n_trec++] = uv_hrtime();
    }
    c->lean = 1; /* hold only the socket until the restart (the session is kept in c->sess) */
}

void restart_progress(void)
{
    if (rs_state == 0) {
        if (n_sub >= nconns) {
            vlog("restart: %d devices subscribed; restart in %.1f s", n_sub, opt.settle);
            uv_timer_start(&settle_timer, ask_restart, (uint64_t)(opt.settle * 1000), 0);
        } else if (n_failed && n_sub + n_failed >= nconns && phase == 0) {
            m_end_ns = uv_hrtime();
            phase = 3;
            finish(); /* priming failed */
        }
        return;
    }
    if (rs_state == 2 && n_sub >= nconns) {
        rs_state = 3;
        t_all = uv_hrtime();
        cpu_end = broker_cpu();
        m_start_ns = t_listen ? t_listen : t_lost;
        m_end_ns = t_all;
        phase = 3;
        vlog("restart: all %d devices recovered", nconns);
        finish();
    }
}

/* finish(): the child's line (read by the parent), or the parent's with the pair's figures */
void finish_restart(char *js, size_t cap, int *np)
{
    int n = *np;
#define J(...) n += snprintf(js + n, cap - (size_t)n, __VA_ARGS__)
    if (restart_child) {
        uint64_t t0 = t_listen ? t_listen : t_lost;
        uint64_t end = t_all ? t_all : uv_hrtime();
        J(",\"conns\":%d,\"recovered\":%d,\"resumed\":%d,\"full\":%d,\"attempts\":%d,\"lost\":%d"
          ",\"errors\":%d,\"parallel\":%d,\"backoff_s\":%.3f",
          nconns, rs_state == 3 ? nconns : n_sub, n_rec_resumed, n_rec_full, n_attempts, n_lost,
          n_failed, opt.parallel, opt.backoff);
        J(",\"restart_seen\":%d,\"recovery_s\":%.3f,\"recovery_from_drop_s\":%.3f"
          ",\"down_s\":%.3f",
          t_listen != 0, t0 ? (double)(end - t0) / 1e9 : 0,
          t_lost ? (double)(end - t_lost) / 1e9 : 0,
          t_lost && t_listen > t_lost ? (double)(t_listen - t_lost) / 1e9 : 0);
        if (t_listen && opt.broker_pid) {
            double cpu = cpu_end > 0 ? cpu_end : broker_cpu();
            double rs = (double)(end - t_listen) / 1e9;
            J(",\"broker_pid\":%d,\"broker_cpu_s\":%.3f,\"broker_cpu_util\":%.3f"
              ",\"broker_cpu_ms_per_device\":%.3f",
              opt.broker_pid, cpu, rs > 0 ? cpu / rs : 0, cpu * 1000 / nconns);
        }
        if (n_trec && t0) {
            for (int i = 0; i < n_trec; i++)
                t_rec[i] = t_rec[i] > t0 ? t_rec[i] - t0 : 0;
            qsort(t_rec, (size_t)n_trec, sizeof *t_rec, u64cmp);
            J(",\"recovered_p50_s\":%.3f,\"recovered_p90_s\":%.3f,\"recovered_p99_s\":%.3f",
              pct_of(t_rec, (size_t)n_trec, 0.5) / 1e6, pct_of(t_rec, (size_t)n_trec, 0.9) / 1e6,
              pct_of(t_rec, (size_t)n_trec, 0.99) / 1e6);
        }
        J(",\"t_start_ns\":%" PRIu64 ",\"t_end_ns\":%" PRIu64 ",\"t_lost_ns\":%" PRIu64, t0, end,
          t_lost);
        if (rs_state != 3)
            exit_code = exit_code ? exit_code : 1;
        *np = n;
        return;
    }
    /* parent: the pair, with the child's window */
    if (storm_state == 1 && child_pid > 0)
        kill(child_pid, SIGTERM);
    if (storm_state != 2) {
        storm_t0 = storm_go_ns ? storm_go_ns : m_end_ns;
        storm_t1 = m_end_ns;
    }
    const char *cj = child_json;
    int have = child_json_len && storm_state == 2 && json_num(cj, "conns") >= 0;
    uint64_t t_drop = have ? json_u64(cj, "t_lost_ns") : 0;
    if (!t_drop || (pair_lost_t && pair_lost_t < t_drop))
        t_drop = pair_lost_t ? pair_lost_t : storm_t0;
    uint64_t *in = malloc((nrecs + 1) * sizeof *in), *base = malloc((nrecs + 1) * sizeof *base);
    if (!in || !base)
        die("out of memory");
    size_t nin = 0, nbase = 0;
    uint64_t gap = 0, prev = 0; /* longest time without a delivery to the pair's subscriber */
    for (size_t i = 0; i < nrecs; i++) {
        uint64_t at = recs[i].t + recs[i].lat;
        if (prev && at > prev && at - prev > gap && at >= t_drop - 1000000000ull)
            gap = at - prev;
        prev = at;
        if (recs[i].t >= storm_t0 && recs[i].t <= storm_t1)
            in[nin++] = recs[i].lat;
        else if (recs[i].t >= m_start_ns && recs[i].t < t_drop)
            base[nbase++] = recs[i].lat;
    }
    lat_dump_write();
    qsort(in, nin, sizeof *in, u64cmp);
    qsort(base, nbase, sizeof *base, u64cmp);
    J(",\"rate_target\":%.0f,\"qos\":%d,\"size\":%d", opt.rate, opt.qos, opt.size);
    J(",\"isolation\":\"devices in a forked SCHED_IDLE child on the same CPU\"");
    J(",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"pair_skipped\":%" PRIu64
      ",\"pair_reconnects\":%d,\"pair_errors\":%d",
      total_sent, total_delivered, pair_skipped, pair_reconnects, n_failed);
    J(",\"pair_outage_ms\":%.1f", gap / 1e6);
    J(",\"lat_samples\":%zu,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f", nin,
      pct_of(in, nin, 0.5) / 1000, pct_of(in, nin, 0.99) / 1000, nin ? in[nin - 1] / 1e6 : 0);
    J(",\"base_samples\":%zu,\"base_p50_ms\":%.3f,\"base_p99_ms\":%.3f", nbase,
      pct_of(base, nbase, 0.5) / 1000, pct_of(base, nbase, 0.99) / 1000);
    /* the devices, as the child measured them */
    static const char *const keys[] = {"conns",
                                       "recovered",
                                       "resumed",
                                       "full",
                                       "attempts",
                                       "errors",
                                       "restart_seen",
                                       "recovery_s",
                                       "recovery_from_drop_s",
                                       "recovered_p50_s",
                                       "recovered_p90_s",
                                       "recovered_p99_s",
                                       "down_s",
                                       "broker_cpu_s",
                                       "broker_cpu_util",
                                       "broker_cpu_ms_per_device"};
    for (size_t k = 0; have && k < sizeof keys / sizeof keys[0]; k++) {
        double v = json_num(cj, keys[k]);
        if (v >= 0)
            J(",\"%s\":%.3f", keys[k], v);
    }
    if (!have || json_num(cj, "recovered") < json_num(cj, "conns"))
        exit_code = exit_code ? exit_code : 1;
    free(in);
    free(base);
    *np = n;
#undef J
}
