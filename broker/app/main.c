/* main: command line, configuration, and the loop's life. Knows every module only through
 * server. */
#include "config.h"
#include "explain.h"
#include "log.h"
#include "server.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

static void usage(FILE *f)
{
    fputs("usage: certmq -c FILE            run the broker in the foreground\n"
          "       certmq --test-config -c FILE  check config, certificates, keys, CRLs, ACL\n"
          "       certmq --explain -c FILE --cert CRT [--client-id ID] [--topic T]\n"
          "                                   what the ACL allows the device holding CRT\n"
          "       certmq --version | --help\n"
          "\n"
          "certmq accepts MQTT 3.1, 3.1.1 and 5.0 clients over mutual TLS only: every client\n"
          "needs a certificate from a configured CA; its identity (subject CN by default) is\n"
          "its user name for the ACL file. Config syntax: mosquitto.conf.\n",
          f);
}

static void print_diag(const struct diag *d)
{
    for (size_t i = 0; i < d->count; i++)
        fprintf(stderr, "%s\n", d->msgs[i]);
}

int main(int argc, char **argv)
{
    const char *path = NULL, *cert = NULL, *client_id = NULL, *topic = NULL;
    int test_only = 0, explain = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config-file")) && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--explain")) {
            explain = 1;
        } else if (!strcmp(argv[i], "--cert") && i + 1 < argc) {
            cert = argv[++i];
        } else if (!strcmp(argv[i], "--client-id") && i + 1 < argc) {
            client_id = argv[++i];
        } else if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
            topic = argv[++i];
        } else if (!strcmp(argv[i], "--test-config") || !strcmp(argv[i], "-t")) {
            test_only = 1;
        } else if (!strcmp(argv[i], "--version")) {
            char v[512];
            server_versions(v, sizeof(v));
            fputs(v, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "certmq: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (explain != (cert != NULL) || (!explain && (client_id || topic))) {
        fputs("certmq: --explain needs --cert, and --cert, --client-id, --topic need --explain\n",
              stderr);
        usage(stderr);
        return 2;
    }
    if (!path) {
        fputs("certmq: a configuration file is required (-c FILE)\n", stderr);
        usage(stderr);
        return 2;
    }

    struct config cfg;
    struct diag d;
    diag_init(&d);
    if (config_load(path, &cfg, &d) != 0) {
        print_diag(&d);
        fprintf(stderr, "certmq: %s: %zu problem(s), not starting\n", path, d.count);
        diag_free(&d);
        return 1;
    }
    if (explain) {
        int r = explain_run(&cfg, cert, client_id, topic, stdout, stderr);
        diag_free(&d);
        config_free(&cfg);
        return r;
    }
    if (test_only) {
        int r = server_check(&cfg, &d);
        print_diag(&d);
        if (r == 0 && cluster_enabled(&cfg.cluster))
            cluster_print_plan(&cfg.cluster, stdout);
        if (r == 0)
            printf("%s: configuration OK\n", path);
        diag_free(&d);
        config_free(&cfg);
        return r == 0 ? 0 : 1;
    }
    diag_free(&d);
    if (log_configure(cfg.log_types, cfg.log_dests, cfg.log_file, cfg.log_timestamp) != 0) {
        fprintf(stderr, "certmq: cannot open log file %s\n", cfg.log_file);
        config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
#ifdef __GLIBC__
    /* glibc raises its mmap threshold whenever a large block is freed; large arrays made later
     * (Mbed TLS's PSA key-slot slices, hash tables) then come from the heap, where calloc
     * touches every page. Held at its initial 128 KiB they stay mmapped, only their used pages
     * resident: ~100 bytes less per idle TLS 1.3 connection (docs/performance.md). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
    /* Every device is a descriptor (three over WSS: the socket and the lws bridge's pair); the
     * soft limit is often 1024 while the hard one allows far more. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open-file limit to %llu", (unsigned long long)rl.rlim_max);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        log_info("open-file limit %llu (about as many TLS connections, a third as many over WSS)",
                 (unsigned long long)rl.rlim_cur);

    uv_loop_t *loop = uv_default_loop();
    struct server *srv = server_start(loop, &cfg);
    if (!srv) {
        config_free(&cfg);
        log_err("not starting: see the errors above");
        log_close();
        uv_loop_close(loop);
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    server_free(srv);
    int busy = uv_loop_close(loop);
    log_notice("stopped%s", busy ? " (handles still open)" : "");
    log_close();
    return busy ? 1 : 0;
}
