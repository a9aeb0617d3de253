/* config: the configuration file (mosquitto syntax and key names) turned into plain values.
 *
 * One table row per directive (name, type, bounds, offset, default, global or per listener).
 * No side effects: nothing here opens sockets, reads certificates or touches the log. Files named
 * by the config (cafile, acl_file, ...) are checked by the modules that load them. */
#ifndef CERTMQ_CONFIG_H
#define CERTMQ_CONFIG_H

#include "broker.h"
#include "client.h"
#include "cluster.h"
#include "conn.h"
#include "diag.h"
#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_protocol { CONFIG_PROTO_MQTT = 0, CONFIG_PROTO_WEBSOCKETS = 1 };
/* socket_domain: which address family an address-less listener binds (ANY = both). */
enum config_socket_domain { CONFIG_SOCKET_ANY = 0, CONFIG_SOCKET_IPV4, CONFIG_SOCKET_IPV6 };

struct config_listener {
    uint16_t port; /* 0 = let the kernel choose (tests); the bound port is logged */
    char *address; /* NULL = all addresses */
    enum config_protocol protocol;
    enum config_socket_domain socket_domain;
    /* cafile ... crl_expired, written by the directive table; the strings are owned by the
     * config (crlfile may repeat; verify_depth default 4; cert_identity default cn). */
    struct tls_server_opts tls;
    /* proxy_protocol v2 and proxy_protocol_from (the networks are owned by the config). */
    struct conn_proxy_opts proxy;
    bool reuse_port;  /* SO_REUSEPORT: several processes share the port */
    const char *file; /* where the `listener` line is, for diagnostics */
    int line;
};

/* metrics_listener and its TLS settings: the Prometheus endpoint (off when address is NULL). */
struct config_metrics {
    char *address; /* numeric IPv4 or IPv6 address */
    uint16_t port; /* 0 = let the kernel choose (tests); the bound port is logged */
    bool loopback; /* the address is 127.0.0.0/8 or ::1 */
    bool require_certificate;
    char *cafile, *certfile, *keyfile;
    const char *file; /* where the metrics_listener line is, for diagnostics */
    int line;
};

struct config_plugin {
    char *path;
    char **opt_keys; /* plugin_opt_NAME -> "NAME" */
    char **opt_values;
    size_t opt_count;
};

struct config {
    struct config_listener *listeners;
    size_t listener_count;

    char *acl_file; /* required: without it every device is denied everything */

    /* The modules' own option structs, written directly by the directive table (config_keys.c:
     * one row per key, with its default and bounds). Values derived from other keys (the MQTT 5
     * receive maximum from max_inflight_messages, ...) are filled in once, after parsing. */
    struct broker_limits broker; /* max_inflight_messages, max_queued_*, max_topic_*, ... */
    struct client_opts client;   /* connect_timeout, max_packet_size, max_keepalive, ... */
    struct conn_env_opts conn;   /* tls_handshake_timeout, max_handshakes, ... */

    int32_t max_connections; /* default -1 = unlimited */

    bool session_tickets;             /* default true */
    uint32_t session_ticket_lifetime; /* seconds, default 86400 */
    char *tls_ticket_key_file;        /* NULL = random keys, rotated every lifetime */

    unsigned log_types; /* log.h LOGL_* mask */
    unsigned log_dests; /* log.h LOGD_* mask */
    char *log_file;
    bool log_timestamp;
    uint32_t sys_interval; /* seconds, default 10, 0 = no $SYS */
    uint64_t max_memory;   /* bytes of resident memory; 0 = 3/4 of what the process may use */

    struct config_metrics metrics;

    char *pid_file;
    char *user; /* mosquitto's `user`: stored; certmq itself does not change user */

    bool persistence;
    char *persistence_location;

    struct config_plugin *plugins;
    size_t plugin_count;

    struct cluster_opts cluster; /* cluster mode when cluster_nats is set (docs/cluster.md) */

    char *path;   /* the main config file */
    char **files; /* every file read (listeners point at these for diagnostics) */
    size_t file_count;
};

/* Parse a file into *out (zeroed first, defaults applied). Returns 0, or -1 with every problem
 * added to d as "file:line: reason" (out is then freed and zeroed). Semantic checks that need no
 * I/O happen here too: a listener needs cafile or capath, certfile and keyfile; at least one
 * listener; acl_file set; no duplicate port/address pair. */
int config_load(const char *path, struct config *out, struct diag *d);
/* Same from text (fname for diagnostics); used by tests and the fuzzer. */
int config_parse(const char *text, size_t len, const char *fname, struct config *out,
                 struct diag *d);
void config_free(struct config *c);

#endif
