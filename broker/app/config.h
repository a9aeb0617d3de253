/* config: the configuration file (mosquitto syntax and key names) turned into plain values.
 *
 * One table row per directive (name, type, bounds, offset, default, global or per listener).
 * No side effects: nothing here opens sockets, reads certificates or touches the log. Files named
 * by the config (cafile, acl_file, ...) are checked by the modules that load them. */
#ifndef CERTMQ_CONFIG_H
#define CERTMQ_CONFIG_H

#include "diag.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_protocol { CONFIG_PROTO_MQTT = 0, CONFIG_PROTO_WEBSOCKETS = 1 };
enum config_identity {
    CONFIG_ID_CN = 0,
    CONFIG_ID_SAN_DNS,
    CONFIG_ID_SAN_URI,
    CONFIG_ID_SAN_EMAIL,
    CONFIG_ID_SUBJECT
};
enum config_crl_mode { CONFIG_CRL_STRICT = 0, CONFIG_CRL_PRESENT = 1 };
enum config_crl_expired { CONFIG_CRL_EXPIRED_REJECT = 0, CONFIG_CRL_EXPIRED_WARN = 1 };
enum config_clientid_policy { CONFIG_CLIENTID_ANY = 0, CONFIG_CLIENTID_MATCH = 1 };
enum config_revoked_session { CONFIG_REVOKED_DISCARD = 0, CONFIG_REVOKED_KEEP = 1 };
/* socket_domain: which address family an address-less listener binds (ANY = both). */
enum config_socket_domain { CONFIG_SOCKET_ANY = 0, CONFIG_SOCKET_IPV4, CONFIG_SOCKET_IPV6 };

struct config_listener {
    uint16_t port; /* 0 = let the kernel choose (tests); the bound port is logged */
    char *address; /* NULL = all addresses */
    enum config_protocol protocol;
    enum config_socket_domain socket_domain;
    char *cafile, *capath, *certfile, *keyfile;
    char **crlfiles; /* crlfile may repeat */
    size_t crlfile_count;
    char *crlpath;
    char *tls_version;     /* "tlsv1.2" (only TLS 1.2 exists in Mbed TLS 2.28) */
    char *ciphers;         /* OpenSSL-style names, colon separated; NULL = certmq's default set */
    unsigned verify_depth; /* max chain length below the root, default 4 */
    enum config_identity identity; /* cert_identity */
    enum config_crl_mode crl_mode;
    enum config_crl_expired crl_expired;
    const char *file; /* where the `listener` line is, for diagnostics */
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

    /* Limits a client can push against. 0 means unlimited only where the docs say so. */
    uint32_t max_inflight_messages;        /* default 20 */
    uint32_t max_queued_messages;          /* default 1000 */
    uint64_t max_queued_bytes;             /* default 0 = unlimited (bounded by messages) */
    uint32_t message_size_limit;           /* payload bytes, default 0 = MQTT max (268435455) */
    uint32_t max_packet_size;              /* whole packet, default 0 = MQTT max */
    uint16_t max_keepalive;                /* default 65535 */
    int32_t max_connections;               /* default -1 = unlimited */
    uint32_t max_connections_per_ip;       /* default 0 = unlimited */
    uint32_t max_topic_length;             /* default 65535 */
    uint32_t max_topic_levels;             /* default 0 = unlimited */
    uint32_t max_topic_alias;              /* MQTT 5 inbound topic aliases, default 10 */
    uint32_t max_subscriptions_per_client; /* default 10000, 0 = unlimited */
    uint32_t max_retained_messages;        /* default 100000, 0 = unlimited */
    uint32_t persistent_client_expiration; /* seconds, default 0 = never */
    bool allow_zero_length_clientid;       /* default true */
    bool retain_available;                 /* default true */
    bool queue_qos0_messages;              /* default false */
    bool upgrade_outgoing_qos;             /* default false */
    enum config_clientid_policy clientid_policy;

    /* Time limits on connections that are not yet MQTT sessions. */
    uint32_t tls_handshake_timeout_ms; /* default 10000 */
    uint32_t max_handshakes;           /* handshakes in progress at once, default 64 */
    uint32_t connect_timeout_ms;       /* TLS done, no CONNECT yet, default 10000 */

    enum config_revoked_session revoked_session; /* default discard */
    uint32_t cert_expiry_warning_days;           /* default 30, 0 = off */

    bool session_tickets;             /* default true */
    uint32_t session_ticket_lifetime; /* seconds, default 86400 */

    unsigned log_types; /* log.h LOGL_* mask */
    unsigned log_dests; /* log.h LOGD_* mask */
    char *log_file;
    bool log_timestamp;
    bool connection_messages; /* default true */
    uint32_t sys_interval;    /* seconds, default 10, 0 = no $SYS */

    char *pid_file;
    char *user; /* mosquitto's `user`: stored; certmq itself does not change user */

    bool persistence;
    char *persistence_location;

    struct config_plugin *plugins;
    size_t plugin_count;

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
