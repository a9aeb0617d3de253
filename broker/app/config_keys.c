/* config_keys: every key certmq knows, in one table (type, bounds, default, where the value
 * lives, or why the key is refused), and the handlers of the keys that need more than a store. */
#include "config_internal.h"

#include "log.h"
#include "xmalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct config__enum protocols[] = {
    {"mqtt", CONFIG_PROTO_MQTT}, {"websockets", CONFIG_PROTO_WEBSOCKETS}, {NULL, 0}};
static const struct config__enum identities[] = {
    {"cn", TLS_ID_CN},           {"san_dns", TLS_ID_SAN_DNS},
    {"san_uri", TLS_ID_SAN_URI}, {"san_email", TLS_ID_SAN_EMAIL},
    {"subject", TLS_ID_SUBJECT}, {NULL, 0}};
/* Enums that land in a bool of the module's options: the value is the bool. */
static const struct config__enum crl_modes[] = {{"strict", 1}, {"present", 0}, {NULL, 0}};
static const struct config__enum tls13_resumptions[] = {{"psk_dhe_ke", 0}, {"any", 1}, {NULL, 0}};
static const struct config__enum crl_expired[] = {{"reject", 0}, {"warn", 1}, {NULL, 0}};
static const struct config__enum clientid_policies[] = {{"any", 0}, {"match", 1}, {NULL, 0}};
static const struct config__enum rate_actions[] = {{"refuse", 0}, {"disconnect", 1}, {NULL, 0}};
static const struct config__enum revoked_sessions[] = {{"discard", 1}, {"keep", 0}, {NULL, 0}};
/* Version 1 (text) is not offered: HAProxy sends v2 just as well, and one parser is less to
 * get wrong before TLS. */
static const struct config__enum proxy_versions[] = {{"v2", 1}, {NULL, 0}};
static const struct config__enum socket_domains[] = {
    {"ipv4", CONFIG_SOCKET_IPV4}, {"ipv6", CONFIG_SOCKET_IPV6}, {NULL, 0}};
static const struct config__enum log_dests[] = {{"stderr", LOGD_STDERR},
                                                {"stdout", LOGD_STDOUT},
                                                {"syslog", LOGD_SYSLOG},
                                                {"file", LOGD_FILE},
                                                {"none", 0},
                                                {NULL, 0}};
static const struct config__enum log_types[] = {{"error", LOGL_ERR},
                                                {"warning", LOGL_WARN},
                                                {"notice", LOGL_NOTICE},
                                                {"information", LOGL_INFO},
                                                {"debug", LOGL_DEBUG},
                                                {"subscribe", LOGL_SUBSCRIBE},
                                                {"unsubscribe", LOGL_UNSUBSCRIBE},
                                                {"websockets", LOGL_WEBSOCKETS},
                                                {"all", LOGL_ALL},
                                                {"none", 0},
                                                {NULL, 0}};

/* Durations in seconds, for bounds and mosquitto's duration units. */
#define HOUR_S 3600
#define DAY_S (24 * HOUR_S)
#define WEEK_S (7 * DAY_S)
/* MQTT's largest remaining length; a whole packet adds at most 5 bytes of fixed header. */
#define MQTT_MAX_REMAINING 268435455

static const char CERT_ONLY[] = "certmq only accepts clients that present a certificate";
static const char IDENTITY[] =
    "certmq always uses the certificate identity as the user name (see cert_identity)";
static const char TLS12[] = "not supported: certmq's TLS 1.3 cipher suites are not configurable "
                            "(AES-128-CCM, AES-GCM and ChaCha20-Poly1305 are on)";

/* The whole configuration language. Order only matters for the documentation's reading. */
const struct config__directive config__table[] = {
    /* listener scope */
    {"listener", T_FN, .scope = S_GLOBAL, .max_args = 2, .fn = config__listener},
    {"cafile", T_PATH, LF(tls.cafile)},
    {"capath", T_PATH, LF(tls.capath)},
    {"certfile", T_PATH, LF(tls.certfile)},
    {"keyfile", T_PATH, LF(tls.keyfile)},
    {"crlfile", T_FN, .scope = S_LISTENER, .flags = F_REST, .fn = config__crlfile},
    {"crlpath", T_PATH, LF(tls.crlpath)},
    {"tls_version", T_FN, .scope = S_LISTENER, .fn = config__tls_version},
    {"min_tls_version", T_FN, .scope = S_LISTENER, .fn = config__tls_version},
    {"ciphers", T_STR, LF(tls.ciphers)},
    {"protocol", T_ENUM, LF(protocol), .names = protocols},
    {"socket_domain", T_ENUM, LF(socket_domain), .names = socket_domains},
    {"verify_depth", T_UINT, LF(tls.verify_depth), .min = 1, .max = 16, .def = 4},
    {"cert_identity", T_ENUM, LF(tls.identity), .names = identities},
    {"crl_mode", T_ENUM, LF(tls.crl_strict), .names = crl_modes, .def = 1},
    {"tls13_resumption", T_ENUM, LF(tls.tls13_psk_ke), .names = tls13_resumptions},
    {"crl_expired", T_ENUM, LF(tls.crl_expired_warn), .names = crl_expired},
    {"require_certificate", T_BOOL, .scope = S_LISTENER, .flags = F_NOSTORE | F_ONLY_TRUE,
     .why = CERT_ONLY},
    {"use_identity_as_username", T_BOOL, .scope = S_LISTENER, .flags = F_NOSTORE | F_ONLY_TRUE,
     .why = IDENTITY},
    {"use_subject_as_username", T_FN, .scope = S_LISTENER, .fn = config__subject_username},
    /* Behind a load balancer: the device's address from a PROXY v2 header, accepted only from
     * the proxies' own addresses (anyone else could claim any address). */
    {"proxy_protocol", T_ENUM, LF(proxy.v2), .names = proxy_versions},
    {"proxy_protocol_from", T_FN, .scope = S_LISTENER, .flags = F_REST, .fn = config__proxy_from},
    /* Several certmq processes on one port (the kernel spreads connections over them). */
    {"reuse_port", T_BOOL, LF(reuse_port)},
    /* refused anywhere: they would admit a client without a certificate, or cannot work */
    {"allow_anonymous", T_BOOL, .scope = S_GLOBAL, .flags = F_NOSTORE | F_ONLY_FALSE,
     .why = CERT_ONLY},
    {"password_file", T_REFUSE, .why = CERT_ONLY},
    {"psk_file", T_REFUSE, .why = CERT_ONLY},
    {"psk_hint", T_REFUSE, .why = CERT_ONLY},
    {"http_dir", T_REFUSE,
     .why = "not supported: WebSocket listeners carry MQTT only, certmq serves no files"},
    {"websockets_log_level", T_REFUSE,
     .why = "not supported: libwebsockets messages are logged with 'log_type websockets'"},
    {"bind_address", T_REFUSE, .why = "not supported: use 'listener PORT ADDRESS'"},
    {"port", T_REFUSE, .why = "not supported: use 'listener PORT [ADDRESS]'"},
    {"ciphers_tls1.3", T_REFUSE, .why = TLS12},
    {"dhparamfile", T_REFUSE, .why = "not supported: certmq uses ECDHE key exchange only"},
    {"tls_engine", T_REFUSE, .why = "not supported: certmq uses Mbed TLS, not OpenSSL engines"},
    {"tls_keyform", T_REFUSE, .why = "not supported: keyfile is always a PEM or DER file"},
    {"auth_plugin", T_REFUSE, .why = "not supported: use 'plugin PATH' (see docs/plugins.md)"},
    {"connection", T_REFUSE, .why = "not supported: certmq has no bridge"},
    {"persistence_file", T_REFUSE,
     .why = "not supported: the database is always certmq.db inside persistence_location"},
    {"per_listener_settings", T_BOOL, .scope = S_GLOBAL, .flags = F_NOSTORE | F_ONLY_FALSE,
     .why = "not supported: one ACL file and one authentication (the certificate) for all "
            "listeners"},
    /* accepted without effect: certmq always behaves that way */
    {"set_tcp_nodelay", T_BOOL, .scope = S_GLOBAL, .flags = F_NOSTORE},
    {"autosave_interval", T_UINT, .scope = S_GLOBAL, .flags = F_NOSTORE, .max = INT32_MAX},
    {"autosave_on_changes", T_BOOL, .scope = S_GLOBAL, .flags = F_NOSTORE},
    /* global */
    {"acl_file", T_PATH, GF(acl_file)},
    {"max_inflight_messages", T_UINT, GF(broker.session.max_inflight), .max = 65535, .def = 20,
     .flags = F_ZERO_IS_MAX},
    {"max_queued_messages", T_UINT, GF(broker.session.max_queued), .min = 1, .max = 10000000,
     .def = 1000},
    /* One slow or offline device must not pin memory by the gigabyte: a few minutes of a
     * busy device's traffic. */
    {"max_queued_bytes", T_UINT, GF(broker.session.max_queued_bytes), .max = INT64_MAX,
     .def = 8 << 20},
    {"message_size_limit", T_UINT, GF(client.message_size_limit), .max = MQTT_MAX_REMAINING},
    /* Every connection may make the broker buffer one packet: 1 MiB, like fleet brokers
     * (EMQX 1 MB; AWS IoT Core 128 KB), not MQTT's 256 MB. */
    {"max_packet_size", T_UINT, GF(client.connect.max_packet_size), .max = MQTT_MAX_REMAINING + 5,
     .def = 1 << 20},
    {"max_keepalive", T_UINT, GF(client.connect.max_keepalive), .max = 65535, .def = 65535},
    {"max_connections", T_INT, GF(max_connections), .min = -1, .max = INT32_MAX, .def = -1},
    {"max_connections_per_ip", T_UINT, GF(conn.max_per_ip), .max = 1000000},
    /* Connections of one address before their CONNECT (accepted, handshaking, checked, waiting
     * for CONNECT): as many as the default max_handshakes, so a site behind one NAT address can
     * reconnect a burst of devices at once, while one address alone cannot make the broker hold
     * thousands of sockets in the costly states. */
    {"max_pending_per_ip", T_UINT, GF(conn.max_pending_per_ip), .max = 1000000, .def = 64},
    {"max_topic_length", T_UINT, GF(broker.max_topic_length), .min = 1, .max = 65535, .def = 65535},
    /* Bounds the work and memory of every topic match and subscription node chain. */
    {"max_topic_levels", T_UINT, GF(broker.max_topic_levels), .max = 32768, .def = 256},
    {"max_topic_alias", T_UINT, GF(client.connect.max_topic_alias), .max = 65535, .def = 10},
    /* mosquitto's name; each alias we set holds its topic for the connection's life. */
    {"max_topic_alias_broker", T_UINT, GF(client.connect.max_topic_alias_broker), .max = 65535,
     .def = 10},
    {"max_subscriptions_per_client", T_UINT, GF(broker.max_subscriptions_per_client),
     .max = 10000000, .def = 10000},
    /* Abandoned persistent sessions (a device replaced, a client id never used again) hold
     * their queues: a week by default, "never" restores mosquitto's behaviour. */
    {"persistent_client_expiration", T_FN, GF(broker.persistent_client_expiration), .def = WEEK_S,
     .fn = config__duration},
    {"allow_zero_length_clientid", T_BOOL, GF(client.connect.allow_zero_length_clientid), .def = 1},
    {"retain_available", T_BOOL, GF(broker.retain_available), .def = 1},
    {"max_retained_messages", T_UINT, GF(broker.max_retained_messages), .max = 100000000,
     .def = 100000},
    /* Retained messages live until cleared: bounded in bytes overall, and per identity so one
     * device cannot fill the store for everyone. */
    {"max_retained_bytes", T_UINT, GF(broker.max_retained_bytes), .max = INT64_MAX,
     .def = 256 << 20},
    {"max_retained_bytes_per_identity", T_UINT, GF(broker.max_retained_bytes_per_identity),
     .max = INT64_MAX, .def = 16 << 20},
    /* A persistent session keeps a queue after its connection: a device needs a handful, not
     * thousands (sessions that end with their connection are bounded by the connections). */
    {"max_persistent_sessions_per_identity", T_UINT,
     GF(broker.max_persistent_sessions_per_identity), .max = 10000000, .def = 64},
    /* One certificate, many simultaneous clients: bounded per identity when set (ACL match
     * blocks may raise or lower it per kind of device). */
    {"max_connections_per_identity", T_UINT, GF(broker.max_connections_per_identity),
     .max = 10000000},
    /* Per identity across its connections, overridable per match block like the one above:
     * one chatty or compromised device cannot take the broker from the rest of the fleet. */
    {"max_publish_rate_per_identity", T_UINT, GF(broker.per_identity.rate), .max = QUOTA_MAX_RATE},
    {"max_publish_byte_rate_per_identity", T_UINT, GF(broker.per_identity.byte_rate),
     .max = QUOTA_MAX_BYTE_RATE},
    /* A second's worth absorbs a device's normal jitter (a reading sent late, then two at
     * once) without letting a flood through for long. */
    {"publish_rate_burst", T_UINT, GF(broker.rate_burst_s), .min = 1, .max = QUOTA_MAX_BURST_S,
     .def = 1},
    {"rate_limit_action", T_ENUM, GF(client.rate_disconnect), .names = rate_actions},
    {"max_subscriptions_per_identity", T_UINT, GF(broker.per_identity.subscriptions),
     .max = 10000000},
    {"max_retained_messages_per_identity", T_UINT, GF(broker.per_identity.retained),
     .max = 100000000},
    {"queue_qos0_messages", T_BOOL, GF(broker.session.queue_qos0_offline)},
    {"upgrade_outgoing_qos", T_BOOL, GF(broker.upgrade_outgoing_qos)},
    {"clientid_policy", T_ENUM, GF(client.connect.clientid_match), .names = clientid_policies},
    /* From accept to a complete ClientHello, which real clients send at once: a silent peer is
     * dropped after this, holding nothing but its socket meanwhile (see conn.h). */
    {"tls_hello_timeout", T_UINT, GF(conn.hello_timeout_ms), .min = 100, .max = 600000,
     .def = 3000},
    {"tls_handshake_timeout", T_UINT, GF(conn.handshake_timeout_ms), .min = 100, .max = 600000,
     .def = 10000},
    {"max_handshakes", T_UINT, GF(conn.max_handshakes), .min = 1, .max = 100000, .def = 64},
    {"connect_timeout", T_UINT, GF(client.connect_timeout_ms), .min = 100, .max = 600000,
     .def = 10000},
    /* A half-sent packet pins its buffer (up to max_packet_size) whatever the keep-alive: a
     * minute is a 1 MiB packet at 17 KB/s. */
    {"packet_timeout", T_UINT, GF(client.packet_timeout_ms), .min = 1000, .max = 3600000,
     .def = 60000},
    {"revoked_session", T_ENUM, GF(client.discard_revoked), .names = revoked_sessions, .def = 1},
    {"cert_expiry_warning_days", T_UINT, GF(conn.cert_expiry_warning_days), .max = 3650, .def = 30},
    {"session_tickets", T_BOOL, GF(session_tickets), .def = 1},
    {"session_ticket_lifetime", T_UINT, GF(session_ticket_lifetime), .min = 60, .max = WEEK_S,
     .def = DAY_S},
    /* Keys that survive a restart (nginx's ssl_session_ticket_key): see tls_ticket.h. */
    {"tls_ticket_key_file", T_PATH, GF(tls_ticket_key_file)},
    {"log_dest", T_FN, GF(log_dests), .def = LOGD_STDERR, .flags = F_REST, .fn = config__log_dest},
    {"log_type", T_FN, GF(log_types), .def = LOGL_DEFAULT, .fn = config__log_type},
    {"log_timestamp", T_BOOL, GF(log_timestamp), .def = 1},
    {"connection_messages", T_BOOL, GF(client.connection_messages), .def = 1},
    {"sys_interval", T_UINT, GF(sys_interval), .max = DAY_S, .def = 10},
    /* Beyond it new work is refused instead of the broker growing until the kernel kills it
     * (and every session with it); 0 = three quarters of the machine's or cgroup's memory. */
    {"max_memory", T_UINT, GF(max_memory), .max = INT64_MAX},
    /* The Prometheus endpoint: off by default, loopback unless scrapers present certificates
     * (config.c checks the pairing). */
    {"metrics_listener", T_FN, .scope = S_GLOBAL, .fn = config__metrics_listener},
    {"metrics_require_certificate", T_BOOL, GF(metrics.require_certificate)},
    {"metrics_cafile", T_PATH, GF(metrics.cafile)},
    {"metrics_certfile", T_PATH, GF(metrics.certfile)},
    {"metrics_keyfile", T_PATH, GF(metrics.keyfile)},
    {"pid_file", T_PATH, GF(pid_file)},
    {"user", T_STR, GF(user)},
    {"persistence", T_BOOL, GF(persistence)},
    {"persistence_location", T_PATH, GF(persistence_location)},
    {"plugin", T_FN, .scope = S_GLOBAL, .flags = F_REST, .fn = config__plugin},
    {"plugin_opt_", T_FN, .scope = S_GLOBAL, .flags = F_PREFIX | F_REST, .fn = config__plugin_opt},
    {"include_dir", T_FN, .scope = S_GLOBAL, .flags = F_REST, .fn = config__include_dir},
    /* cluster mode (docs/cluster.md); checked together in config_cluster.c */
    {"cluster_name", T_STR, GF(cluster.name)},
    {"node_name", T_STR, GF(cluster.node)},
    {"cluster_nats", T_FN, .scope = S_GLOBAL, .max_args = CONFIG__MAX_ARGS,
     .fn = config__cluster_nats},
    {"cluster_nats_user", T_STR, GF(cluster.user)},
    {"cluster_nats_password", T_STR, GF(cluster.password)},
    {"cluster_nats_creds", T_PATH, GF(cluster.creds)},
    {"cluster_nats_tls_ca", T_PATH, GF(cluster.tls_ca)},
    {"cluster_nats_tls_cert", T_PATH, GF(cluster.tls_cert)},
    {"cluster_nats_tls_key", T_PATH, GF(cluster.tls_key)},
    /* JetStream streams for QoS 1/2 (several Raft groups share the load); not used yet. */
    {"cluster_partitions", T_UINT, GF(cluster.partitions), .min = 1, .max = 1024, .def = 1},
    /* Copies of the retained bucket's stream JetStream keeps; 0 = min(3, cluster_nats URLs).
     * Used only when the bucket is created: an existing bucket keeps its own. */
    {"cluster_retained_replicas", T_UINT, GF(cluster.retained_replicas), .min = 0, .max = 5,
     .def = 0},
    /* A stopping node stays on NATS this long (at most) while the devices it disconnected
     * claim their persistent sessions on other nodes, so none is lost with it. */
    {"cluster_drain_timeout", T_UINT, GF(cluster.drain_s), .min = 0, .max = 3600, .def = 10},
    /* Devices connected to a node that died never said goodbye: the node that rebuilds their
     * sessions publishes the wills they had set. */
    {"cluster_dead_node_wills", T_BOOL, GF(cluster.dead_wills), .def = 1},
    /* nats-server refuses protocol lines over its max_control_line (4 KB by default) and drops
     * the connection: topics whose subject would be longer stay on this node. */
    {"cluster_max_subject_length", T_UINT, GF(cluster.max_subject), .min = 256, .max = 16 << 20,
     .def = 4000},
    /* How long a QoS >= 1 publish's PUBACK/PUBREC waits for JetStream to store it (persistence
     * true), sending it again meanwhile: covers a stream leader's election (measured up to 7 s). */
    {"cluster_ack_timeout", T_UINT, GF(cluster.ack_timeout_s), .min = 1, .max = 300, .def = 15},
};
const size_t config__table_len = sizeof(config__table) / sizeof(config__table[0]);

void config__listener(struct config__parser *p, const struct config__directive *dr, void *base,
                      const struct config__args *a)
{
    struct config *c = p->c;
    int64_t port;
    if (!config__number(a->v[0], &port) || port < 0 || port > 65535) {
        config__err(p, "listener: port must be a whole number from 0 to 65535, not '%s'", a->v[0]);
        return;
    }
    const char *addr = a->n > 1 ? a->v[1] : NULL;
    /* Port 0 lets the kernel choose, so two of them never clash. */
    for (size_t i = 0; port && i < c->listener_count; i++) {
        const struct config_listener *o = &c->listeners[i];
        bool same = addr ? o->address && !strcmp(o->address, addr) : !o->address;
        if (o->port == port && same) {
            config__err(p, "duplicate listener %s%s%s (first at %s:%d)", a->v[0], addr ? " " : "",
                        addr ? addr : "", o->file, o->line);
            return;
        }
    }
    if (c->listener_count >= CONFIG__MAX_LISTENERS) {
        config__err(p, "more than %d listeners", CONFIG__MAX_LISTENERS);
        return;
    }
    c->listeners = xrealloc(c->listeners, (c->listener_count + 1) * sizeof(*c->listeners));
    struct config_listener *l = &c->listeners[c->listener_count++];
    memset(l, 0, sizeof(*l));
    config__defaults(l, S_LISTENER);
    l->port = (uint16_t)port;
    l->address = addr ? xstrdup(addr) : NULL;
    l->file = p->file;
    l->line = p->line;
}

void config__crlfile(struct config__parser *p, const struct config__directive *dr, void *base,
                     const struct config__args *a)
{
    struct config_listener *l = base;
    if (l->tls.crlfile_count >= CONFIG__MAX_LIST) {
        config__err(p, "more than %d crlfile lines in one listener", CONFIG__MAX_LIST);
        return;
    }
    /* The config owns the strings behind the module's const view of them. */
    char **v = xrealloc((void *)l->tls.crlfiles, (l->tls.crlfile_count + 1) * sizeof(char *));
    v[l->tls.crlfile_count++] = config__resolve(p, a->rest[0]);
    l->tls.crlfiles = (const char *const *)v;
}

void config__tls_version(struct config__parser *p, const struct config__directive *dr, void *base,
                         const struct config__args *a)
{
    struct config_listener *l = base;
    /* Whether this build's Mbed TLS speaks 1.3 is the tls module's to say (tls_ctx_new). */
    if (strcmp(a->v[0], "tlsv1.2") != 0 && strcmp(a->v[0], "tlsv1.3") != 0) {
        config__err(p, "%s %s: not supported: use tlsv1.2 or tlsv1.3", dr->name, a->v[0]);
        return;
    }
    const char **slot =
        !strcmp(dr->name, "tls_version") ? &l->tls.tls_version : &l->tls.min_tls_version;
    free((void *)*slot);
    *slot = xstrdup(a->v[0]);
}

void config__subject_username(struct config__parser *p, const struct config__directive *dr,
                              void *base, const struct config__args *a)
{
    int b = config__bool(p, a->key, a->v[0]);
    if (b == 1)
        ((struct config_listener *)base)->tls.identity = TLS_ID_SUBJECT;
    else if (b == 0)
        config__err(p, "%s false: %s", a->key, IDENTITY);
}

/* Networks separated by spaces or commas; the line may repeat and accumulates. */
void config__proxy_from(struct config__parser *p, const struct config__directive *dr, void *base,
                        const struct config__args *a)
{
    struct config_listener *l = base;
    char *list = xstrdup(a->rest[0]), *save = NULL;
    size_t seen = 0;
    for (char *tok = strtok_r(list, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        seen++;
        if (l->proxy.from_count >= CONFIG__MAX_LIST) {
            config__err(p, "more than %d proxy_protocol_from networks in one listener",
                        CONFIG__MAX_LIST);
            break;
        }
        struct cidr net;
        const char *why = "";
        if (cidr_parse(tok, &net, &why) != 0) {
            config__err(p, "%s %s: %s", a->key, tok, why);
            continue;
        }
        struct cidr *v = xrealloc((void *)l->proxy.from, (l->proxy.from_count + 1) * sizeof(*v));
        v[l->proxy.from_count++] = net;
        l->proxy.from = v;
    }
    if (!seen)
        config__err(p, "%s needs at least one network (ADDRESS or ADDRESS/BITS)", a->key);
    free(list);
}

/* mosquitto's duration: a number and one of h d w m y (a month is 30 days, a year 365). */
void config__duration(struct config__parser *p, const struct config__directive *dr, void *base,
                      const struct config__args *a)
{
    static const struct config__enum units[] = {{"h", HOUR_S},      {"d", DAY_S},
                                                {"w", WEEK_S},      {"m", 30 * DAY_S},
                                                {"y", 365 * DAY_S}, {NULL, 0}};
    const char *v = a->v[0];
    if (!strcmp(v, "never")) {
        config__store((char *)base + dr->off, dr->size, 0);
        return;
    }
    size_t len = strlen(v);
    char digits[32];
    int64_t n;
    const struct config__enum *u = len ? config__enum_find(units, v + len - 1) : NULL;
    if (u && len - 1 < sizeof(digits)) {
        memcpy(digits, v, len - 1);
        digits[len - 1] = '\0';
    }
    if (!u || len - 1 >= sizeof(digits) || !config__number(digits, &n) || n < 0 ||
        n > (int64_t)(UINT32_MAX / (uint32_t)u->value)) {
        config__err(p,
                    "%s: expected never, or a number followed by h, d, w, m or y (e.g. 14d, at "
                    "most 136 years), not '%s'",
                    a->key, v);
        return;
    }
    config__store((char *)base + dr->off, dr->size, n * u->value);
}

void config__log_dest(struct config__parser *p, const struct config__directive *dr, void *base,
                      const struct config__args *a)
{
    struct config *c = p->c;
    const struct config__enum *e = config__enum_find(log_dests, a->v[0]);
    if (!e) {
        if (!strcmp(a->v[0], "topic") || !strcmp(a->v[0], "dlt"))
            config__err(p, "log_dest %s: not supported (use stderr, stdout, syslog or file)",
                        a->v[0]);
        else
            config__enum_err(p, log_dests, a->key, a->v[0]);
        return;
    }
    if (e->value == LOGD_FILE && a->n < 2) {
        config__err(p, "log_dest file needs a path");
        return;
    }
    if (e->value != LOGD_FILE && a->n > 1) {
        config__err(p, "log_dest %s takes no further value", a->v[0]);
        return;
    }
    if (!p->log_dest_seen || !e->value) { /* the first one replaces the default; none clears */
        c->log_dests = 0;
        free(c->log_file);
        c->log_file = NULL;
        p->log_dest_seen = true;
    }
    if (e->value == LOGD_FILE) {
        char *path = config__resolve(p, a->rest[1]);
        if (c->log_file && strcmp(c->log_file, path) != 0) {
            config__err(p, "log_dest file: only one log file is supported (already %s)",
                        c->log_file);
            free(path);
            return;
        }
        free(c->log_file);
        c->log_file = path;
    }
    c->log_dests |= (unsigned)e->value;
}

void config__log_type(struct config__parser *p, const struct config__directive *dr, void *base,
                      const struct config__args *a)
{
    struct config *c = p->c;
    const struct config__enum *e = config__enum_find(log_types, a->v[0]);
    if (!e) {
        config__enum_err(p, log_types, a->key, a->v[0]);
        return;
    }
    if (!p->log_type_seen || !e->value) {
        c->log_types = 0;
        p->log_type_seen = true;
    }
    c->log_types |= (unsigned)e->value;
}

/* ADDRESS:PORT with a numeric address; IPv6 in brackets ([::1]:9100). */
void config__metrics_listener(struct config__parser *p, const struct config__directive *dr,
                              void *base, const struct config__args *a)
{
    struct config_metrics *m = &p->c->metrics;
    const char *v = a->v[0];
    const char *colon = strrchr(v, ':');
    char addr[CIDR_TEXT_MAX];
    size_t alen = colon ? (size_t)(colon - v) : 0;
    if (alen > 1 && v[0] == '[' && v[alen - 1] == ']') {
        v++;
        alen -= 2;
    } else if (alen && memchr(v, ':', alen)) {
        alen = 0; /* an IPv6 address without brackets: its port is ambiguous */
    }
    int64_t port;
    struct cidr net;
    const char *why = "";
    if (!alen || alen >= sizeof(addr) || !config__number(colon + 1, &port) || port < 0 ||
        port > 65535) {
        config__err(p,
                    "metrics_listener: expected ADDRESS:PORT (e.g. 127.0.0.1:9100 or "
                    "[::1]:9100), not '%s'",
                    a->v[0]);
        return;
    }
    memcpy(addr, v, alen);
    addr[alen] = '\0';
    if (cidr_parse(addr, &net, &why) != 0 || strchr(addr, '/')) {
        config__err(p, "metrics_listener: '%s' is not a numeric IP address", addr);
        return;
    }
    static const uint8_t v4_loopback = 127;
    static const uint8_t v6_loopback[16] = {[15] = 1};
    free(m->address);
    m->address = xstrdup(addr);
    m->port = (uint16_t)port;
    m->loopback = net.len == 4 ? net.addr[0] == v4_loopback
                               : memcmp(net.addr, v6_loopback, sizeof(v6_loopback)) == 0;
    m->file = p->file;
    m->line = p->line;
}

void config__plugin(struct config__parser *p, const struct config__directive *dr, void *base,
                    const struct config__args *a)
{
    struct config *c = p->c;
    if (c->plugin_count >= CONFIG__MAX_LIST) {
        config__err(p, "more than %d plugins", CONFIG__MAX_LIST);
        return;
    }
    c->plugins = xrealloc(c->plugins, (c->plugin_count + 1) * sizeof(*c->plugins));
    struct config_plugin *pl = &c->plugins[c->plugin_count++];
    memset(pl, 0, sizeof(*pl));
    pl->path = config__resolve(p, a->rest[0]);
}

void config__plugin_opt(struct config__parser *p, const struct config__directive *dr, void *base,
                        const struct config__args *a)
{
    struct config *c = p->c;
    const char *name = a->key + strlen(dr->name);
    if (!*name) {
        config__err(p, "%s: the option needs a name (plugin_opt_NAME VALUE)", a->key);
        return;
    }
    if (!c->plugin_count) {
        config__err(p, "%s before any 'plugin' line (options belong to the plugin above them)",
                    a->key);
        return;
    }
    struct config_plugin *pl = &c->plugins[c->plugin_count - 1];
    if (pl->opt_count >= CONFIG__MAX_LIST) {
        config__err(p, "more than %d options for one plugin", CONFIG__MAX_LIST);
        return;
    }
    pl->opt_keys = xrealloc(pl->opt_keys, (pl->opt_count + 1) * sizeof(char *));
    pl->opt_values = xrealloc(pl->opt_values, (pl->opt_count + 1) * sizeof(char *));
    pl->opt_keys[pl->opt_count] = xstrdup(name);
    pl->opt_values[pl->opt_count] = xstrdup(a->rest[0]);
    pl->opt_count++;
}
