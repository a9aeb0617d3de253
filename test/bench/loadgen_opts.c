/* loadgen_opts: the command line: scenario names, option defaults, usage, parsing and the
 * checks on single values (the scenario's own checks stay in main). */
#include "loadgen.h"

const char *const scen_names[] = {"connect-storm", "fan-in",        "fan-out", "latency",
                                  "idle",          "storm-latency", "attack",  "restart"};

struct lg_opts opt = {
    .host = "127.0.0.1",
    .port = 8883,
    .prefix = "devices/%u/",
    .sub_cert = "bench",
    .qos = 0,
    .size = 64,
    .conns = 1000,
    .pubs = 4,
    .subs = 100,
    .parallel = 32,
    .window = 0,
    .src_ips = 0,
    .keepalive = 0,
    .resume = 0,
    .lean = 1,
    .duration = 10,
    .rate = 0,
    .timeout = 0,
    .hold = 3600,
    .settle = 2,
    .count = 0,
    .broker_pid = 0,
    .ws_path = "/",
    .storm = 2000,
    .storm_parallel = 200,
    .storm_delay = 1,
    .storm_post = 0.5,
    .atk_cert = "dev1",
    .flood_filter = "+/+/+/",
    .flood_all = "#",
    .attack_s = 20,
    .arrive_rate = 5,
    .arrive_timeout = 15,
    .silent_rate = 100,
    .retained = 20000,
    .filters = 5000,
    .copies = 1000,
    .payload = 1048000,
    .ret_topics = 256,
    .silent_src_ips = 8,
    .backoff = 0.25,
};

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void vlog(const char *fmt, ...)
{
    if (!opt.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: loadgen SCENARIO [options]\n"
        "  SCENARIO: connect-storm | fan-in | fan-out | latency | idle | storm-latency | attack |\n"
        "    restart\n"
        "  --host H (127.0.0.1) --port P (8883) --cafile F --certdir D (NAME.crt + NAME.key)\n"
        "  --sub-cert NAME (bench: subscriber identity, reads devices/#) --sub-filter F\n"
        "  --topic-prefix P (devices/%%u/, %%u = cert CN; publishers use P + \"t\")\n"
        "  --qos 0|1 --size B (64, min 16) --duration S (10) --count M (0 = no limit)\n"
        "  --conns N (connect-storm/idle: 1000; fan-in publishers: 50) --subs S (fan-out: 100)\n"
        "  --rate R (msg/s total; latency: 10000) --window W (per publisher in flight end to end;\n"
        "    fan-in/fan-out: 200)\n"
        "  --pipeline N  one busy gateway: up to N MQTT packets per TLS record (default 0: "
        "device-\n"
        "    like, every packet its own TLS record, as mosquitto_pub, libmosquitto, paho write)\n"
        "  --parallel C (32 handshakes in progress) --resume --src-ips K --keepalive S (0)\n"
        "  --no-lean (idle: keep TLS state) --settle S (idle: 2) --hold S (idle: 3600)\n"
        "  --broker-pid PID (read broker CPU/RSS from /proc) --timeout S --servername N -v\n"
        "  --sub-port P (subscribers on another node) --broker-pid2 PID (its CPU counted too)\n"
        "  --ws (MQTT over WebSockets inside TLS) --ws-path P (/)\n"
        "  storm-latency: the latency pair (--rate 1000, --qos 0) runs alone for --storm-delay S "
        "(1),\n"
        "    then --storm N (2000) devices connect with full handshakes, --parallel C (200) at a\n"
        "    time, CONNECT, CONNACK, DISCONNECT; publishing stops --storm-post S (0.5) after the "
        "storm\n"
        "  --lat-dump FILE (storm-latency: every sample: ms since start, latency us, in storm "
        "0/1)\n"
        "  attack: the latency pair (--rate 1000, --qos 0) alone for --storm-delay S, then for\n"
        "    --attack-s S (20) one device (--atk-cert dev1) attacks while new devices arrive at\n"
        "    --arrive-rate R/s (5; each fails after --arrive-timeout S, 15). --attack KIND:\n"
        "    subscribe: --retained N (20000) retained messages, then SUBSCRIBEs of --filters N\n"
        "      (5000) filters --flood-filter P (+/+/+/) + xNNNN and of --copies N (1000) x\n"
        "      --flood-all F (#), alternately, each after the previous SUBACK\n"
        "    silent: TCP connections that send nothing (every 10th: half a ClientHello), at\n"
        "      --silent-rate R/s (100) from 127.0.0.2 .. 127.0.0.(1+K), --silent-src-ips K (8)\n"
        "    memory: a subscriber (QoS 1) that never reads; --payload B (1048000) QoS 1\n"
        "      publishes to it, alternating with retained ones on --ret-topics N (256) topics\n"
        "    flood: QoS 1 64-byte publishes to devices/<cert>/t as fast as the broker\n"
        "      acknowledges them (64 unacknowledged, pipelined); reports the accepted rate\n"
        "  restart: the latency pair (--rate 1000, --qos 0) alone for --storm-delay S, then "
        "--conns\n"
        "    N (5000) devices connect (--src-ips K, --parallel C (200) in progress; the first of\n"
        "    each certificate with a full handshake, the others resume its ticket) and subscribe\n"
        "    to their own topic; after --settle S (2) loadgen creates --restart-file F and waits\n"
        "    for the broker's restart (F.pid: the new broker's PID, written when it listens).\n"
        "    Every lost connection reconnects after a random backoff in [0, --backoff S (0.25))\n"
        "    (failed attempts: doubling, up to 1 s), resuming with its own ticket; recovered =\n"
        "    CONNACK + SUBACK again\n");
    exit(2);
}

void lg_options(int argc, char **argv, struct lg_set *set)
{
    if (argc < 2)
        usage();
    int si = -1;
    for (int i = 0; i < NSCEN; i++)
        if (!strcmp(argv[1], scen_names[i]))
            si = i;
    if (si < 0)
        usage();
    opt.scen = (enum scen)si;
    memset(set, 0, sizeof(*set));
    /* Every option: its name, where it goes and how it is read. */
    enum kind { K_STR, K_INT, K_DBL, K_U64, K_ON, K_OFF };
    const struct {
        const char *name;
        enum kind kind;
        void *dst;
        int *given; /* set when the option appears (scenario defaults depend on it) */
    } table[] = {
        {"--host", K_STR, &opt.host, NULL},
        {"--port", K_INT, &opt.port, NULL},
        {"--cafile", K_STR, &opt.cafile, NULL},
        {"--certdir", K_STR, &opt.certdir, NULL},
        {"--topic-prefix", K_STR, &opt.prefix, NULL},
        {"--sub-cert", K_STR, &opt.sub_cert, NULL},
        {"--sub-filter", K_STR, &opt.sub_filter, NULL},
        {"--servername", K_STR, &opt.servername, NULL},
        {"--qos", K_INT, &opt.qos, NULL},
        {"--size", K_INT, &opt.size, NULL},
        {"--duration", K_DBL, &opt.duration, NULL},
        {"--count", K_U64, &opt.count, NULL},
        {"--conns", K_INT, &opt.conns, &set->conns},
        {"--subs", K_INT, &opt.subs, NULL},
        {"--rate", K_DBL, &opt.rate, &set->rate},
        {"--window", K_INT, &opt.window, NULL},
        {"--pipeline", K_INT, &opt.pipeline, NULL},
        {"--parallel", K_INT, &opt.parallel, &set->parallel},
        {"--ws", K_ON, &opt.ws, NULL},
        {"--ws-path", K_STR, &opt.ws_path, NULL},
        {"--storm", K_INT, &opt.storm, NULL},
        {"--storm-delay", K_DBL, &opt.storm_delay, NULL},
        {"--storm-post", K_DBL, &opt.storm_post, NULL},
        {"--lat-dump", K_STR, &opt.lat_dump, NULL},
        {"--resume", K_ON, &opt.resume, NULL},
        {"--src-ips", K_INT, &opt.src_ips, NULL},
        {"--keepalive", K_INT, &opt.keepalive, NULL},
        {"--no-lean", K_OFF, &opt.lean, NULL},
        {"--settle", K_DBL, &opt.settle, NULL},
        {"--hold", K_DBL, &opt.hold, NULL},
        {"--broker-pid", K_INT, &opt.broker_pid, NULL},
        {"--broker-pid2", K_INT, &opt.broker_pid2, NULL},
        {"--sub-port", K_INT, &opt.sub_port, NULL},
        {"--timeout", K_DBL, &opt.timeout, NULL},
        {"-v", K_ON, &opt.verbose, NULL},
        {"--attack", K_STR, &opt.attack, NULL},
        {"--atk-cert", K_STR, &opt.atk_cert, NULL},
        {"--flood-filter", K_STR, &opt.flood_filter, NULL},
        {"--flood-all", K_STR, &opt.flood_all, NULL},
        {"--attack-s", K_DBL, &opt.attack_s, NULL},
        {"--arrive-rate", K_DBL, &opt.arrive_rate, NULL},
        {"--arrive-timeout", K_DBL, &opt.arrive_timeout, NULL},
        {"--silent-rate", K_DBL, &opt.silent_rate, NULL},
        {"--retained", K_INT, &opt.retained, NULL},
        {"--filters", K_INT, &opt.filters, NULL},
        {"--copies", K_INT, &opt.copies, NULL},
        {"--payload", K_INT, &opt.payload, NULL},
        {"--ret-topics", K_INT, &opt.ret_topics, NULL},
        {"--silent-src-ips", K_INT, &opt.silent_src_ips, NULL},
        {"--restart-file", K_STR, &opt.restart_file, NULL},
        {"--backoff", K_DBL, &opt.backoff, NULL},
    };
    for (int i = 2; i < argc; i++) {
        size_t k = 0;
        while (k < sizeof(table) / sizeof(table[0]) && strcmp(argv[i], table[k].name))
            k++;
        if (k == sizeof(table) / sizeof(table[0]))
            usage();
        if (table[k].given)
            *table[k].given = 1;
        if (table[k].kind == K_ON || table[k].kind == K_OFF) {
            *(int *)table[k].dst = table[k].kind == K_ON;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        switch (table[k].kind) {
        case K_STR:
            *(const char **)table[k].dst = v;
            break;
        case K_INT:
            *(int *)table[k].dst = atoi(v);
            break;
        case K_DBL:
            *(double *)table[k].dst = atof(v);
            break;
        default:
            *(uint64_t *)table[k].dst = strtoull(v, NULL, 10);
            break;
        }
    }
    if (!opt.cafile || !opt.certdir)
        die("--cafile and --certdir are required");
    if (opt.qos < 0 || opt.qos > 1)
        die("--qos must be 0 or 1");
    if (opt.size < 16 || opt.size > 1 << 20)
        die("--size must be 16 .. 1048576 (the payload carries a timestamp)");
    if (opt.keepalive < 0 || opt.keepalive > 65535)
        die("--keepalive 0 .. 65535");
    if (opt.src_ips < 0 || opt.src_ips > 254)
        die("--src-ips 0 .. 254");
    if (opt.parallel < 1)
        opt.parallel = 1;
    if (opt.duration <= 0 || opt.duration > 3600)
        die("--duration must be in (0, 3600]");
    if (opt.scen == SC_ATTACK) {
        if (!opt.attack || (strcmp(opt.attack, "subscribe") && strcmp(opt.attack, "silent") &&
                            strcmp(opt.attack, "memory") && strcmp(opt.attack, "flood")))
            die("--attack subscribe|silent|memory|flood");
        if (opt.attack_s <= 0 || opt.attack_s > 600 || opt.arrive_rate <= 0 ||
            opt.arrive_rate > 1000 || opt.arrive_timeout <= 0 || opt.arrive_timeout > 600 ||
            opt.silent_rate <= 0 || opt.silent_rate > 10000)
            die("--attack-s 0 .. 600, --arrive-rate 0 .. 1000, --arrive-timeout 0 .. 600, "
                "--silent-rate 0 .. 10000");
        if (opt.retained < 0 || opt.retained > 1000000 || opt.filters < 1 || opt.filters > 20000 ||
            opt.copies < 1 || opt.copies > 20000 || opt.payload < 16 || opt.payload > 16 << 20 ||
            opt.ret_topics < 1 || opt.ret_topics > 100000 || opt.silent_src_ips < 1 ||
            opt.silent_src_ips > 250)
            die("--retained 0 .. 1000000, --filters/--copies 1 .. 20000, --payload 16 .. 16 MiB, "
                "--ret-topics 1 .. 100000, --silent-src-ips 1 .. 250");
        if (strlen(opt.flood_filter) > 200 || strlen(opt.flood_all) > 200)
            die("--flood-filter/--flood-all: at most 200 bytes");
    }
    if (opt.backoff < 0 || opt.backoff > 60)
        die("--backoff 0 .. 60 s");
    if (strcmp(opt.host, "127.0.0.1") && strncmp(opt.host, "127.", 4))
        die("loopback only (--host 127.x.x.x)");
}
