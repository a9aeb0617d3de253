/* loadgen_opts: the command line: scenario names, option defaults, usage, parsing and the
 * checks on single values (the scenario's own checks stay in main). */
#include "loadgen.h"

const char *const scen_names[] = {"connect-storm", "fan-in", "fan-out",
                                  "latency",       "idle",   "storm-latency"};

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
        "  SCENARIO: connect-storm | fan-in | fan-out | latency | idle | storm-latency\n"
        "  --host H (127.0.0.1) --port P (8883) --cafile F --certdir D (NAME.crt + NAME.key)\n"
        "  --sub-cert NAME (bench: subscriber identity, reads devices/#) --sub-filter F\n"
        "  --topic-prefix P (devices/%%u/, %%u = cert CN; publishers use P + \"t\")\n"
        "  --qos 0|1 --size B (64, min 16) --duration S (10) --count M (0 = no limit)\n"
        "  --conns N (connect-storm/idle: 1000; fan-in publishers: 4) --subs S (fan-out: 100)\n"
        "  --rate R (msg/s total; latency: 10000) --window W (per publisher in flight end to end)\n"
        "  --parallel C (32 handshakes in progress) --resume --src-ips K --keepalive S (0)\n"
        "  --no-lean (idle: keep TLS state) --settle S (idle: 2) --hold S (idle: 3600)\n"
        "  --broker-pid PID (read broker CPU/RSS from /proc) --timeout S --servername N -v\n"
        "  --ws (MQTT over WebSockets inside TLS) --ws-path P (/)\n"
        "  storm-latency: the latency pair (--rate 1000, --qos 0) runs alone for --storm-delay S "
        "(1),\n"
        "    then --storm N (2000) devices connect with full handshakes, --parallel C (200) at a\n"
        "    time, CONNECT, CONNACK, DISCONNECT; publishing stops --storm-post S (0.5) after the "
        "storm\n"
        "  --lat-dump FILE (storm-latency: every sample: ms since start, latency us, in storm "
        "0/1)\n");
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
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "--host"))
            opt.host = ARG();
        else if (!strcmp(a, "--port"))
            opt.port = atoi(ARG());
        else if (!strcmp(a, "--cafile"))
            opt.cafile = ARG();
        else if (!strcmp(a, "--certdir"))
            opt.certdir = ARG();
        else if (!strcmp(a, "--topic-prefix"))
            opt.prefix = ARG();
        else if (!strcmp(a, "--sub-cert"))
            opt.sub_cert = ARG();
        else if (!strcmp(a, "--sub-filter"))
            opt.sub_filter = ARG();
        else if (!strcmp(a, "--servername"))
            opt.servername = ARG();
        else if (!strcmp(a, "--qos"))
            opt.qos = atoi(ARG());
        else if (!strcmp(a, "--size"))
            opt.size = atoi(ARG());
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(ARG());
        else if (!strcmp(a, "--count"))
            opt.count = strtoull(ARG(), NULL, 10);
        else if (!strcmp(a, "--conns")) {
            opt.conns = atoi(ARG());
            set->conns = 1;
        } else if (!strcmp(a, "--subs"))
            opt.subs = atoi(ARG());
        else if (!strcmp(a, "--rate")) {
            opt.rate = atof(ARG());
            set->rate = 1;
        } else if (!strcmp(a, "--window"))
            opt.window = atoi(ARG());
        else if (!strcmp(a, "--parallel")) {
            opt.parallel = atoi(ARG());
            set->parallel = 1;
        } else if (!strcmp(a, "--ws"))
            opt.ws = 1;
        else if (!strcmp(a, "--ws-path"))
            opt.ws_path = ARG();
        else if (!strcmp(a, "--storm"))
            opt.storm = atoi(ARG());
        else if (!strcmp(a, "--storm-delay"))
            opt.storm_delay = atof(ARG());
        else if (!strcmp(a, "--storm-post"))
            opt.storm_post = atof(ARG());
        else if (!strcmp(a, "--lat-dump"))
            opt.lat_dump = ARG();
        else if (!strcmp(a, "--resume"))
            opt.resume = 1;
        else if (!strcmp(a, "--src-ips"))
            opt.src_ips = atoi(ARG());
        else if (!strcmp(a, "--keepalive"))
            opt.keepalive = atoi(ARG());
        else if (!strcmp(a, "--no-lean"))
            opt.lean = 0;
        else if (!strcmp(a, "--settle"))
            opt.settle = atof(ARG());
        else if (!strcmp(a, "--hold"))
            opt.hold = atof(ARG());
        else if (!strcmp(a, "--broker-pid"))
            opt.broker_pid = atoi(ARG());
        else if (!strcmp(a, "--timeout"))
            opt.timeout = atof(ARG());
        else if (!strcmp(a, "-v"))
            opt.verbose = 1;
        else
            usage();
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
    if (strcmp(opt.host, "127.0.0.1") && strncmp(opt.host, "127.", 4))
        die("loopback only (--host 127.x.x.x)");
}
