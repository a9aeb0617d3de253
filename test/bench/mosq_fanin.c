/* mosq_fanin: an independent cross-check of loadgen's device-like fan-in, written with
 * libmosquitto (the client library many devices and gateways use; one TLS record per MQTT packet,
 * OpenSSL underneath). N publishers (one libmosquitto client each, certificates dev0..devN-1)
 * publish 64-byte messages to devices/<cn>/t as fast as an end-to-end window allows (at most W
 * messages per publisher published but not yet received by the subscriber; for QoS 1 also at most
 * W unacknowledged); one subscriber (certificate bench) receives devices/+/#. After a 1 s warm-up
 * it measures for --duration s: messages received, and the broker's CPU (utime+stime of
 * /proc/PID/stat of --broker-pid), the same way loadgen does. Prints one JSON line like loadgen's.
 *
 * usage: mosq_fanin --port P --cafile CA --certdir DIR --broker-pid PID [--host H] [--conns N]
 *                   [--window W] [--qos Q] [--size S] [--duration D] [--rate R]
 * (unknown options with a value are ignored, so run-bench can pass loadgen's common arguments) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXPUB 1000

static const char *host = "127.0.0.1", *cafile, *certdir = ".";
static int port = 8883, npubs = 50, window = 200, qos = 0, size = 64, broker_pid;
static double duration = 5, rate; /* rate: msg/s in total, 0 = as fast as the window allows */
static uint64_t pub_t0;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv[MAXPUB];
static uint64_t sent[MAXPUB], delivered[MAXPUB], acked[MAXPUB];
static atomic_int running = 1, n_connected, n_errors, subscribed;
static atomic_uint_fast64_t total_delivered;
static struct mosquitto *pubs[MAXPUB], *sub;
static int pub_idx[MAXPUB]; /* callback user data (NULL would mean the client itself) */
static atomic_int measuring;
static uint64_t *lat;
static size_t nlat, lat_cap;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double broker_cpu(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", broker_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)ud;
    if (rc) {
        fprintf(stderr, "mosq_fanin: connect refused %d\n", rc);
        n_errors++;
        return;
    }
    if (m == sub) {
        if (mosquitto_subscribe(m, NULL, "devices/+/#", qos) != MOSQ_ERR_SUCCESS)
            n_errors++;
    }
    n_connected++;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m, (void)ud, (void)mid;
    if (n < 1 || granted[0] > 2)
        n_errors++;
    else
        subscribed = 1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m, (void)ud;
    if (msg->payloadlen < 12)
        return;
    uint64_t t;
    uint32_t pi;
    memcpy(&t, msg->payload, 8);
    memcpy(&pi, (const char *)msg->payload + 8, 4);
    if (pi >= (uint32_t)npubs)
        return;
    if (measuring) {
        if (nlat == lat_cap) {
            lat_cap = lat_cap ? lat_cap * 2 : 1 << 20;
            lat = realloc(lat, lat_cap * sizeof *lat);
            if (!lat)
                abort();
        }
        lat[nlat++] = now_ns() - t;
    }
    total_delivered++;
    pthread_mutex_lock(&mu);
    delivered[pi]++;
    pthread_cond_signal(&cv[pi]);
    pthread_mutex_unlock(&mu);
}

static void on_publish(struct mosquitto *m, void *ud, int mid)
{
    (void)m, (void)mid;
    int i = *(const int *)ud;
    pthread_mutex_lock(&mu);
    acked[i]++;
    pthread_cond_signal(&cv[i]);
    pthread_mutex_unlock(&mu);
}

static void *pub_thread(void *arg)
{
    int i = (int)(intptr_t)arg;
    char topic[64];
    snprintf(topic, sizeof topic, "devices/dev%d/t", i);
    uint8_t *payload = calloc(1, (size_t)size);
    if (!payload)
        abort();
    uint32_t pi = (uint32_t)i;
    memcpy(payload + 8, &pi, 4);
    while (running) {
        if (rate > 0) {
            /* paced: publisher i's share of --rate, from the common start */
            double el = (double)(now_ns() - pub_t0) / 1e9;
            if ((double)sent[i] >= el * rate / npubs + 1) {
                usleep(500);
                continue;
            }
        }
        pthread_mutex_lock(&mu);
        while (running && (sent[i] - delivered[i] >= (uint64_t)window ||
                           (qos && sent[i] - acked[i] >= (uint64_t)window)))
            pthread_cond_wait(&cv[i], &mu);
        sent[i]++;
        pthread_mutex_unlock(&mu);
        if (!running)
            break;
        uint64_t t = now_ns();
        memcpy(payload, &t, 8);
        int rc = mosquitto_publish(pubs[i], NULL, topic, size, payload, qos, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            n_errors++;
            usleep(1000);
        }
    }
    free(payload);
    return NULL;
}

static struct mosquitto *client(const char *cert, int idx, void *ud)
{
    char id[64], crt[512], key[512];
    snprintf(id, sizeof id, "mq%d-%d", (int)getpid(), idx);
    snprintf(crt, sizeof crt, "%s/%s.crt", certdir, cert);
    snprintf(key, sizeof key, "%s/%s.key", certdir, cert);
    struct mosquitto *m = mosquitto_new(id, true, ud);
    if (!m) {
        fprintf(stderr, "mosq_fanin: mosquitto_new failed\n");
        exit(2);
    }
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1); /* as loadgen */
    if (mosquitto_tls_set(m, cafile, NULL, crt, key, NULL) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mosq_fanin: TLS setup with %s failed\n", crt);
        exit(2);
    }
    mosquitto_tls_insecure_set(m, true); /* server name: the cert is for localhost */
    mosquitto_max_inflight_messages_set(m, (unsigned)window);
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_publish_callback_set(m, on_publish);
    if (mosquitto_connect_async(m, host, port, 60) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mosq_fanin: connect to %s:%d failed\n", host, port);
        exit(2);
    }
    if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mosq_fanin: loop_start failed\n");
        exit(2);
    }
    return m;
}

static int u64cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(double p)
{
    if (!nlat)
        return 0;
    size_t k = (size_t)(p * (double)(nlat - 1));
    return (double)lat[k] / 1000.0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            break;
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = atoi(v);
        else if (!strcmp(a, "--cafile"))
            cafile = v;
        else if (!strcmp(a, "--certdir"))
            certdir = v;
        else if (!strcmp(a, "--broker-pid"))
            broker_pid = atoi(v);
        else if (!strcmp(a, "--conns"))
            npubs = atoi(v);
        else if (!strcmp(a, "--window"))
            window = atoi(v);
        else if (!strcmp(a, "--qos"))
            qos = atoi(v);
        else if (!strcmp(a, "--size"))
            size = atoi(v);
        else if (!strcmp(a, "--rate"))
            rate = atof(v);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
    }
    if (!cafile || npubs < 1 || npubs > MAXPUB || window < 1 || window > 60000 || qos < 0 ||
        qos > 1 || size < 12 || duration <= 0) {
        fprintf(stderr, "usage: mosq_fanin --port P --cafile CA --certdir DIR --broker-pid PID "
                        "[--conns N] [--window W] [--qos 0|1] [--size S>=12] [--duration D]\n");
        return 2;
    }
    mosquitto_lib_init();
    for (int i = 0; i < npubs; i++)
        pthread_cond_init(&cv[i], NULL);
    /* the subscriber first: its callbacks must be set before it connects */
    {
        char id[64], crt[512], key[512];
        snprintf(id, sizeof id, "mq%d-sub", (int)getpid());
        snprintf(crt, sizeof crt, "%s/bench.crt", certdir);
        snprintf(key, sizeof key, "%s/bench.key", certdir);
        sub = mosquitto_new(id, true, NULL);
        if (!sub)
            return 2;
        mosquitto_int_option(sub, MOSQ_OPT_TCP_NODELAY, 1);
        if (mosquitto_tls_set(sub, cafile, NULL, crt, key, NULL) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "mosq_fanin: TLS setup with %s failed\n", crt);
            return 2;
        }
        mosquitto_tls_insecure_set(sub, true);
        mosquitto_connect_callback_set(sub, on_connect);
        mosquitto_subscribe_callback_set(sub, on_subscribe);
        mosquitto_message_callback_set(sub, on_message);
        if (mosquitto_connect_async(sub, host, port, 60) != MOSQ_ERR_SUCCESS ||
            mosquitto_loop_start(sub) != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "mosq_fanin: subscriber connect failed\n");
            return 2;
        }
    }
    for (int i = 0; i < 200 && !subscribed; i++)
        usleep(50000);
    if (!subscribed) {
        fprintf(stderr, "mosq_fanin: subscriber not subscribed after 10 s\n");
        return 1;
    }
    for (int i = 0; i < npubs; i++) {
        char cert[32];
        snprintf(cert, sizeof cert, "dev%d", i);
        pub_idx[i] = i;
        pubs[i] = client(cert, i, &pub_idx[i]);
    }
    for (int i = 0; i < 600 && n_connected < npubs + 1; i++)
        usleep(50000);
    if (n_connected < npubs + 1) {
        fprintf(stderr, "mosq_fanin: %d of %d connected after 30 s\n", (int)n_connected, npubs + 1);
        return 1;
    }
    pthread_t th[MAXPUB];
    pub_t0 = now_ns();
    for (int i = 0; i < npubs; i++)
        pthread_create(&th[i], NULL, pub_thread, (void *)(intptr_t)i);
    usleep(1000000); /* warm-up */
    measuring = 1;
    uint64_t d0 = total_delivered, t0 = now_ns();
    double c0 = broker_cpu();
    usleep((useconds_t)(duration * 1e6));
    uint64_t d1 = total_delivered, t1 = now_ns();
    double c1 = broker_cpu();
    measuring = 0;
    running = 0;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < npubs; i++)
        pthread_cond_broadcast(&cv[i]);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < npubs; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < npubs; i++) {
        mosquitto_disconnect(pubs[i]);
        mosquitto_loop_stop(pubs[i], false);
        mosquitto_destroy(pubs[i]);
    }
    mosquitto_disconnect(sub);
    mosquitto_loop_stop(sub, false);
    qsort(lat, nlat, sizeof *lat, u64cmp); /* the subscriber thread has stopped */
    double dur = (double)(t1 - t0) / 1e9, cpu = c1 - c0;
    uint64_t n = d1 - d0;
    printf("{\"scenario\":\"fan-in\",\"client\":\"libmosquitto\",\"qos\":%d,\"size\":%d,"
           "\"publishers\":%d,\"subscribers\":1,\"rate_target\":%.0f,\"window\":%d,\"pipeline\":0,"
           "\"delivered\":%" PRIu64
           ",\"errors\":%d,\"duration_s\":%.3f,\"msgs_per_s\":%.1f,\"lat_p50_us\":%.1f,"
           "\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,\"broker_cpu_s\":%.3f,"
           "\"broker_cpu_us_per_msg\":%.3f}\n",
           qos, size, npubs, rate, window, n, (int)n_errors, dur, dur > 0 ? (double)n / dur : 0,
           pct_us(0.5), pct_us(0.99), pct_us(0.999), cpu, n ? cpu * 1e6 / (double)n : 0);
    mosquitto_destroy(sub);
    mosquitto_lib_cleanup();
    return 0;
}
