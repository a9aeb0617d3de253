/* loadgen_report: progress through a scenario's phases, and the results as one JSON line. */
#include "loadgen.h"

/* --- progress and results --------------------------------------------------------------- */

void start_measuring(void)
{
    phase = 1;
    cpu_start = broker_cpu();
    m_start_ns = last_deliv_ns = uv_hrtime();
    vlog("measuring: %d publishers, %d subscribers", npubs, nsubs);
    if (opt.rate > 0)
        uv_timer_start(&rate_timer, on_rate, 1, 1);
    if (opt.scen == SC_STORMLAT || opt.scen == SC_RESTART)
        uv_timer_start(&go_timer, on_go, (uint64_t)(opt.storm_delay * 1000), 0);
    for (int i = 0; i < npubs; i++)
        pump(&conns[i]);
}

void stop_publishing(void)
{
    if (phase != 1)
        return;
    phase = 2;
    pub_stop_ns = uv_hrtime();
    uv_timer_stop(&rate_timer);
    vlog("publishing stopped: sent %" PRIu64 ", delivered %" PRIu64, total_sent, total_delivered);
}

void scenario_progress(void)
{
    if (atk_child)
        return; /* the attacker child drives itself (loadgen_attack.c) */
    if (restart_child) {
        restart_progress();
        return;
    }
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

void on_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_hrtime();
    if (opt.scen == SC_RESTART)
        restart_tick(now);
    if (opt.scen == SC_STORM || opt.scen == SC_IDLE || atk_child || restart_child)
        return;
    if (opt.scen == SC_ATTACK)
        attack_tick(now);
    if (phase == 1) {
        int over = opt.scen == SC_STORMLAT || opt.scen == SC_RESTART
                       ? storm_state == 2 && now >= storm_t1 + (uint64_t)(opt.storm_post * 1e9)
                   : opt.scen == SC_ATTACK ? attack_over(now)
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

void close_all(void)
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

void on_signal(uv_signal_t *s, int sig)
{
    (void)s;
    vlog("signal %d: closing", sig);
    close_all();
}

void on_hard_timeout(uv_timer_t *t)
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

double pct_of(const uint64_t *a, size_t n, double p)
{
    if (!n)
        return 0;
    return a[(size_t)(p * (double)(n - 1) + 0.5)] / 1000.0;
}

/* storm-latency: the pair's latency inside the storm window and before it, plus the child's line */
void finish_stormlat(char *js, size_t cap, int *np)
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
    lat_dump_write();
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

void finish(void)
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
        J(",\"handshakes_per_s\":%.1f,\"connect_p50_ms\":%.2f,\"connect_p99_ms\":%.2f"
          ",\"connect_max_ms\":%.2f",
          dur > 0 ? ok / dur : 0, pct_us(0.50) / 1000, pct_us(0.99) / 1000, pct_us(1.0) / 1000);
        if (opt.broker_pid)
            J(",\"broker_cpu_s\":%.3f,\"broker_cpu_ms_per_handshake\":%.3f,\"broker_cpu_util\":%."
              "3f",
              cpu, ok ? cpu * 1000 / ok : 0, dur > 0 ? cpu / dur : 0);
        if (storm_child)
            J(",\"t_start_ns\":%" PRIu64 ",\"t_end_ns\":%" PRIu64, m_start_ns, m_end_ns);
    } else if (opt.scen == SC_STORMLAT) {
        finish_stormlat(js, sizeof js, &n);
    } else if (opt.scen == SC_ATTACK) {
        finish_attack(js, sizeof js, &n);
    } else if (opt.scen == SC_RESTART) {
        finish_restart(js, sizeof js, &n);
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
        J(",\"window\":%d,\"pipeline\":%d", opt.window, opt.pipeline);
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

void storm_begin_round(void)
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

/* --lat-dump: every sample: publish time (ms from the start of publishing), latency (us), and
 * whether it fell in the storm (or restart) window. */
void lat_dump_write(void)
{
    if (!opt.lat_dump)
        return;
    FILE *f = fopen(opt.lat_dump, "w");
    if (!f)
        return;
    for (size_t i = 0; i < nrecs; i++)
        fprintf(f, "%.3f %.1f %d\n", (double)(recs[i].t - m_start_ns) / 1e6, recs[i].lat / 1000.0,
                recs[i].t >= storm_t0 && recs[i].t <= storm_t1);
    fclose(f);
}
