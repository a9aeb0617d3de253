/* config: mosquitto.conf syntax into struct config, through one directive table.
 *
 * Each row names a key, its scope (global or per listener), its type and bounds, where its value
 * lives and its default; defaults are applied by walking the same table, so a key and its default
 * cannot drift apart. Keys certmq refuses (anything that would admit a client without a
 * certificate, or that Mbed TLS 2.28 cannot do) are rows too, with the reason. Every problem is
 * collected as file:line: reason. No side effects beyond reading the file(s): nothing here opens
 * sockets, loads certificates or logs. */
#include "config.h"

#include "log.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bounds on operator input: generous for real files, small enough that a runaway include or a
 * garbage file cannot make the loader slow or large. */
#define CONFIG__MAX_FILE (4u << 20)
#define CONFIG__MAX_LINE 4096
#define CONFIG__MAX_DEPTH 4   /* include_dir nesting below the main file */
#define CONFIG__MAX_FILES 256 /* files read in total: bounds include fan-out */
#define CONFIG__MAX_ARGS 8
#define CONFIG__MAX_LISTENERS 256
#define CONFIG__MAX_LIST 1024 /* crlfiles per listener, plugins, options per plugin */

enum config__type { T_BOOL, T_UINT, T_INT, T_STR, T_PATH, T_ENUM, T_FN, T_REFUSE };
enum config__scope { S_GLOBAL, S_LISTENER };
enum config__flags {
    F_NOSTORE = 1 << 0,     /* validated and accepted, nothing to store (mosquitto compatibility) */
    F_ONLY_TRUE = 1 << 1,   /* bool: "false" is refused with .why */
    F_ONLY_FALSE = 1 << 2,  /* bool: "true" is refused with .why */
    F_ZERO_IS_MAX = 1 << 3, /* 0 is stored as .max (mosquitto's "0 = unlimited") */
    F_REST = 1 << 4,        /* T_FN: the value is the rest of the line (paths may hold spaces) */
    F_PREFIX = 1 << 5,      /* the name is a prefix: plugin_opt_NAME */
};

struct config__enum {
    const char *name;
    int value;
};

/* One line, split: v[] are the whitespace-separated values after the key, rest[i] is the
 * original text from value i to the end of the line (for paths with spaces). */
struct config__args {
    const char *key;
    const char *v[CONFIG__MAX_ARGS];
    const char *rest[CONFIG__MAX_ARGS];
    int n; /* may exceed CONFIG__MAX_ARGS: only the first ones are kept */
};

struct config__parser {
    struct config *c;
    struct diag *d;
    const char *file; /* current file (owned by c->files) */
    int line;
    int depth;
    bool allow_include;
    bool log_type_seen, log_dest_seen; /* the first one replaces the default */
    char *dirs[CONFIG__MAX_DEPTH + 1]; /* [1..depth]: directories being included (loop guard) */
    size_t errors;
};

struct config__directive;
typedef void config__fn(struct config__parser *p, const struct config__directive *dr, void *base,
                        const struct config__args *a);

struct config__directive {
    const char *name;
    uint8_t type;
    uint8_t scope;
    uint8_t size; /* sizeof the field; 0 = no field */
    size_t off;
    int64_t min, max, def;
    unsigned flags;
    uint8_t max_args; /* T_FN without F_REST; 0 means 1 */
    const struct config__enum *names;
    const char *why;
    config__fn *fn;
};

#define GF(f)                                                                                      \
    .scope = S_GLOBAL, .size = sizeof(((struct config *)0)->f), .off = offsetof(struct config, f)
#define LF(f)                                                                                      \
    .scope = S_LISTENER, .size = sizeof(((struct config_listener *)0)->f),                         \
    .off = offsetof(struct config_listener, f)

static config__fn config__listener, config__crlfile, config__tls_version, config__subject_username,
    config__duration, config__log_dest, config__log_type, config__plugin, config__plugin_opt,
    config__include_dir;

static const struct config__enum protocols[] = {
    {"mqtt", CONFIG_PROTO_MQTT}, {"websockets", CONFIG_PROTO_WEBSOCKETS}, {NULL, 0}};
static const struct config__enum identities[] = {
    {"cn", CONFIG_ID_CN},           {"san_dns", CONFIG_ID_SAN_DNS},
    {"san_uri", CONFIG_ID_SAN_URI}, {"san_email", CONFIG_ID_SAN_EMAIL},
    {"subject", CONFIG_ID_SUBJECT}, {NULL, 0}};
static const struct config__enum crl_modes[] = {
    {"strict", CONFIG_CRL_STRICT}, {"present", CONFIG_CRL_PRESENT}, {NULL, 0}};
static const struct config__enum crl_expired[] = {
    {"reject", CONFIG_CRL_EXPIRED_REJECT}, {"warn", CONFIG_CRL_EXPIRED_WARN}, {NULL, 0}};
static const struct config__enum clientid_policies[] = {
    {"any", CONFIG_CLIENTID_ANY}, {"match", CONFIG_CLIENTID_MATCH}, {NULL, 0}};
static const struct config__enum revoked_sessions[] = {
    {"discard", CONFIG_REVOKED_DISCARD}, {"keep", CONFIG_REVOKED_KEEP}, {NULL, 0}};
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

static const char CERT_ONLY[] = "certmq only accepts clients that present a certificate";
static const char IDENTITY[] =
    "certmq always uses the certificate identity as the user name (see cert_identity)";
static const char TLS12[] = "not supported: Mbed TLS 2.28 in certmq speaks TLS 1.2 only";

/* The whole configuration language. Order only matters for the documentation's reading. */
static const struct config__directive table[] = {
    /* listener scope */
    {"listener", T_FN, .scope = S_GLOBAL, .max_args = 2, .fn = config__listener},
    {"cafile", T_PATH, LF(cafile)},
    {"capath", T_PATH, LF(capath)},
    {"certfile", T_PATH, LF(certfile)},
    {"keyfile", T_PATH, LF(keyfile)},
    {"crlfile", T_FN, .scope = S_LISTENER, .flags = F_REST, .fn = config__crlfile},
    {"crlpath", T_PATH, LF(crlpath)},
    {"tls_version", T_FN, .scope = S_LISTENER, .fn = config__tls_version},
    {"ciphers", T_STR, LF(ciphers)},
    {"protocol", T_ENUM, LF(protocol), .names = protocols},
    {"socket_domain", T_ENUM, LF(socket_domain), .names = socket_domains},
    {"verify_depth", T_UINT, LF(verify_depth), .min = 1, .max = 16, .def = 4},
    {"cert_identity", T_ENUM, LF(identity), .names = identities},
    {"crl_mode", T_ENUM, LF(crl_mode), .names = crl_modes},
    {"crl_expired", T_ENUM, LF(crl_expired), .names = crl_expired},
    {"require_certificate", T_BOOL, .scope = S_LISTENER, .flags = F_NOSTORE | F_ONLY_TRUE,
     .why = CERT_ONLY},
    {"use_identity_as_username", T_BOOL, .scope = S_LISTENER, .flags = F_NOSTORE | F_ONLY_TRUE,
     .why = IDENTITY},
    {"use_subject_as_username", T_FN, .scope = S_LISTENER, .fn = config__subject_username},
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
    {"max_inflight_messages", T_UINT, GF(max_inflight_messages), .max = 65535, .def = 20,
     .flags = F_ZERO_IS_MAX},
    {"max_queued_messages", T_UINT, GF(max_queued_messages), .min = 1, .max = 10000000,
     .def = 1000},
    {"max_queued_bytes", T_UINT, GF(max_queued_bytes), .max = INT64_MAX},
    {"message_size_limit", T_UINT, GF(message_size_limit), .max = 268435455},
    /* Bounded by default: a peer can make the broker buffer one packet per connection. */
    {"max_packet_size", T_UINT, GF(max_packet_size), .max = 268435460, .def = 16 << 20},
    {"max_keepalive", T_UINT, GF(max_keepalive), .max = 65535, .def = 65535},
    {"max_connections", T_INT, GF(max_connections), .min = -1, .max = INT32_MAX, .def = -1},
    {"max_connections_per_ip", T_UINT, GF(max_connections_per_ip), .max = 1000000},
    {"max_topic_length", T_UINT, GF(max_topic_length), .min = 1, .max = 65535, .def = 65535},
    /* Bounds the work and memory of every topic match and subscription node chain. */
    {"max_topic_levels", T_UINT, GF(max_topic_levels), .max = 32768, .def = 256},
    {"max_topic_alias", T_UINT, GF(max_topic_alias), .max = 65535, .def = 10},
    {"max_subscriptions_per_client", T_UINT, GF(max_subscriptions_per_client), .max = 10000000,
     .def = 10000},
    {"persistent_client_expiration", T_FN, GF(persistent_client_expiration),
     .fn = config__duration},
    {"allow_zero_length_clientid", T_BOOL, GF(allow_zero_length_clientid), .def = 1},
    {"retain_available", T_BOOL, GF(retain_available), .def = 1},
    {"max_retained_messages", T_UINT, GF(max_retained_messages), .max = 100000000, .def = 100000},
    {"queue_qos0_messages", T_BOOL, GF(queue_qos0_messages)},
    {"upgrade_outgoing_qos", T_BOOL, GF(upgrade_outgoing_qos)},
    {"clientid_policy", T_ENUM, GF(clientid_policy), .names = clientid_policies},
    {"tls_handshake_timeout", T_UINT, GF(tls_handshake_timeout_ms), .min = 100, .max = 600000,
     .def = 10000},
    {"max_handshakes", T_UINT, GF(max_handshakes), .min = 1, .max = 100000, .def = 64},
    {"connect_timeout", T_UINT, GF(connect_timeout_ms), .min = 100, .max = 600000, .def = 10000},
    {"revoked_session", T_ENUM, GF(revoked_session), .names = revoked_sessions},
    {"cert_expiry_warning_days", T_UINT, GF(cert_expiry_warning_days), .max = 3650, .def = 30},
    {"session_tickets", T_BOOL, GF(session_tickets), .def = 1},
    {"session_ticket_lifetime", T_UINT, GF(session_ticket_lifetime), .min = 60, .max = 604800,
     .def = 86400},
    {"log_dest", T_FN, GF(log_dests), .def = LOGD_STDERR, .flags = F_REST, .fn = config__log_dest},
    {"log_type", T_FN, GF(log_types), .def = LOGL_DEFAULT, .fn = config__log_type},
    {"log_timestamp", T_BOOL, GF(log_timestamp), .def = 1},
    {"connection_messages", T_BOOL, GF(connection_messages), .def = 1},
    {"sys_interval", T_UINT, GF(sys_interval), .max = 86400, .def = 10},
    {"pid_file", T_PATH, GF(pid_file)},
    {"user", T_STR, GF(user)},
    {"persistence", T_BOOL, GF(persistence)},
    {"persistence_location", T_PATH, GF(persistence_location)},
    {"plugin", T_FN, .scope = S_GLOBAL, .flags = F_REST, .fn = config__plugin},
    {"plugin_opt_", T_FN, .scope = S_GLOBAL, .flags = F_PREFIX | F_REST, .fn = config__plugin_opt},
    {"include_dir", T_FN, .scope = S_GLOBAL, .flags = F_REST, .fn = config__include_dir},
};

static void config__err(struct config__parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void config__err(struct config__parser *p, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_add(p->d, p->file, p->line, "%s", msg);
    p->errors++;
}

static void config__store(void *field, size_t size, int64_t v)
{
    /* Unsigned conversions are modular, so -1 lands as all ones in an int32_t field too. */
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;
    uint64_t u64 = (uint64_t)v;
    switch (size) {
    case 1:
        memcpy(field, &u8, 1);
        break;
    case 2:
        memcpy(field, &u16, 2);
        break;
    case 4:
        memcpy(field, &u32, 4);
        break;
    case 8:
        memcpy(field, &u64, 8);
        break;
    }
}

static void config__defaults(void *base, enum config__scope scope)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const struct config__directive *dr = &table[i];
        if (dr->scope != scope || !dr->size || dr->type == T_STR || dr->type == T_PATH)
            continue;
        if (dr->type == T_BOOL)
            *(bool *)((char *)base + dr->off) = dr->def != 0;
        else
            config__store((char *)base + dr->off, dr->size, dr->def);
    }
}

/* Relative paths are relative to the directory of the file that names them, not to the
 * broker's working directory, so a config tree can be moved as a whole. */
static char *config__resolve(const struct config__parser *p, const char *v)
{
    const char *slash = p->file ? strrchr(p->file, '/') : NULL;
    if (v[0] == '/' || !slash)
        return xstrdup(v);
    size_t dl = (size_t)(slash - p->file);
    size_t vl = strlen(v);
    char *out = xmalloc(dl + 1 + vl + 1);
    memcpy(out, p->file, dl);
    out[dl] = '/';
    memcpy(out + dl + 1, v, vl + 1);
    return out;
}

/* Strict decimal: optional '-', digits only, no overflow (strtoll would take " +7" and 0x). */
static bool config__number(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    if (neg)
        s++;
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned digit = (unsigned)(*s - '0');
        if (v > ((uint64_t)INT64_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static const struct config__enum *config__enum_find(const struct config__enum *names, const char *v)
{
    for (; names->name; names++)
        if (!strcmp(names->name, v))
            return names;
    return NULL;
}

static void config__enum_err(struct config__parser *p, const struct config__enum *names,
                             const char *key, const char *v)
{
    char opts[256] = "";
    size_t len = 0;
    for (const struct config__enum *e = names; e->name && len < sizeof(opts); e++)
        len += (size_t)snprintf(opts + len, sizeof(opts) - len, "%s%s", e == names ? "" : ", ",
                                e->name);
    config__err(p, "%s: '%s' is not one of %s", key, v, opts);
}

/* Reads "true"/"false" only, as mosquitto does; -1 after reporting anything else. */
static int config__bool(struct config__parser *p, const char *key, const char *v)
{
    if (!strcmp(v, "true"))
        return 1;
    if (!strcmp(v, "false"))
        return 0;
    config__err(p, "%s: expected true or false, not '%s'", key, v);
    return -1;
}

static void config__listener(struct config__parser *p, const struct config__directive *dr,
                             void *base, const struct config__args *a)
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

static void config__crlfile(struct config__parser *p, const struct config__directive *dr,
                            void *base, const struct config__args *a)
{
    struct config_listener *l = base;
    if (l->crlfile_count >= CONFIG__MAX_LIST) {
        config__err(p, "more than %d crlfile lines in one listener", CONFIG__MAX_LIST);
        return;
    }
    l->crlfiles = xrealloc(l->crlfiles, (l->crlfile_count + 1) * sizeof(char *));
    l->crlfiles[l->crlfile_count++] = config__resolve(p, a->rest[0]);
}

static void config__tls_version(struct config__parser *p, const struct config__directive *dr,
                                void *base, const struct config__args *a)
{
    struct config_listener *l = base;
    if (strcmp(a->v[0], "tlsv1.2") != 0) {
        config__err(p, "tls_version %s: %s", a->v[0], TLS12);
        return;
    }
    free(l->tls_version);
    l->tls_version = xstrdup(a->v[0]);
}

static void config__subject_username(struct config__parser *p, const struct config__directive *dr,
                                     void *base, const struct config__args *a)
{
    int b = config__bool(p, a->key, a->v[0]);
    if (b == 1)
        ((struct config_listener *)base)->identity = CONFIG_ID_SUBJECT;
    else if (b == 0)
        config__err(p, "%s false: %s", a->key, IDENTITY);
}

/* mosquitto's duration: a number and one of h d w m y (a month is 30 days, a year 365). */
static void config__duration(struct config__parser *p, const struct config__directive *dr,
                             void *base, const struct config__args *a)
{
    static const struct config__enum units[] = {{"h", 3600},        {"d", 86400},
                                                {"w", 7 * 86400},   {"m", 30 * 86400},
                                                {"y", 365 * 86400}, {NULL, 0}};
    const char *v = a->v[0];
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
                    "%s: expected a number followed by h, d, w, m or y (e.g. 14d, at most 136 "
                    "years), not '%s'",
                    a->key, v);
        return;
    }
    config__store((char *)base + dr->off, dr->size, n * u->value);
}

static void config__log_dest(struct config__parser *p, const struct config__directive *dr,
                             void *base, const struct config__args *a)
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

static void config__log_type(struct config__parser *p, const struct config__directive *dr,
                             void *base, const struct config__args *a)
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

static void config__plugin(struct config__parser *p, const struct config__directive *dr, void *base,
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

static void config__plugin_opt(struct config__parser *p, const struct config__directive *dr,
                               void *base, const struct config__args *a)
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

static bool config__read(struct config__parser *p, const char *path);

/* Byte order, not the locale's collation: the order files are read in must not depend on the
 * environment the broker happens to start in. */
static int config__name_cmp(const struct dirent **x, const struct dirent **y)
{
    return strcmp((*x)->d_name, (*y)->d_name);
}

static int config__conf_only(const struct dirent *e)
{
    size_t len = strlen(e->d_name);
    return e->d_name[0] != '.' && len > 5 && !strcmp(e->d_name + len - 5, ".conf");
}

static void config__include_dir(struct config__parser *p, const struct config__directive *dr,
                                void *base, const struct config__args *a)
{
    if (!p->allow_include) {
        config__err(p, "include_dir: only allowed in a file read from disk");
        return;
    }
    if (p->depth >= CONFIG__MAX_DEPTH) {
        config__err(p, "include_dir: nested more than %d levels deep", CONFIG__MAX_DEPTH);
        return;
    }
    char *dir = config__resolve(p, a->rest[0]);
    char *real = realpath(dir, NULL);
    struct dirent **list = NULL;
    int n = real ? scandir(real, &list, config__conf_only, config__name_cmp) : -1;
    if (n < 0) {
        config__err(p, "include_dir %s: %s", dir, strerror(errno));
        free(real);
        free(dir);
        return;
    }
    for (int i = 1; i <= p->depth && real; i++) {
        if (p->dirs[i] && !strcmp(p->dirs[i], real)) {
            config__err(p, "include_dir %s: already being read (include loop)", a->rest[0]);
            free(real);
            real = NULL;
        }
    }
    const char *file = p->file;
    int line = p->line;
    p->depth++;
    p->dirs[p->depth] = real;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (real) {
            size_t len = strlen(real) + 1 + strlen(list[i]->d_name) + 1;
            char *path = xmalloc(len);
            snprintf(path, len, "%s/%s", real, list[i]->d_name);
            /* Skip directories and FIFOs named *.conf: reading a FIFO would hang the loader. */
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
                config__read(p, path);
            free(path);
        }
        free(list[i]);
    }
    p->dirs[p->depth] = NULL;
    p->depth--;
    p->file = file;
    p->line = line;
    free(list);
    free(real);
    free(dir);
}

static const struct config__directive *config__lookup(const char *key)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const struct config__directive *dr = &table[i];
        if (dr->flags & F_PREFIX ? !strncmp(key, dr->name, strlen(dr->name))
                                 : !strcmp(key, dr->name))
            return dr;
    }
    return NULL;
}

/* The value count a directive accepts: strings and paths take the rest of the line. */
static bool config__arity_ok(struct config__parser *p, const struct config__directive *dr,
                             const struct config__args *a)
{
    bool rest = dr->type == T_STR || dr->type == T_PATH || (dr->flags & F_REST);
    int max = rest ? INT_MAX : dr->max_args ? dr->max_args : 1;
    if (a->n < 1) {
        if (dr->fn == config__listener)
            config__err(p, "usage: listener PORT [ADDRESS]");
        else
            config__err(p, "%s needs a value", a->key);
        return false;
    }
    if (a->n > max) {
        if (max == 1)
            config__err(p, "%s takes one value, got %d", a->key, a->n);
        else
            config__err(p, "%s takes at most %d values, got %d", a->key, max, a->n);
        return false;
    }
    return true;
}

static void config__number_line(struct config__parser *p, const struct config__directive *dr,
                                char *field, const struct config__args *a)
{
    int64_t v;
    if (!config__number(a->v[0], &v) || v < dr->min || v > dr->max) {
        config__err(p, "%s: expected a whole number from %lld to %lld%s, not '%s'", a->key,
                    (long long)dr->min, (long long)dr->max,
                    dr->flags & F_ZERO_IS_MAX ? " (0 = no limit)" : "", a->v[0]);
        return;
    }
    if (v == 0 && (dr->flags & F_ZERO_IS_MAX))
        v = dr->max;
    if (!(dr->flags & F_NOSTORE))
        config__store(field, dr->size, v);
}

static void config__directive(struct config__parser *p, const struct config__args *a)
{
    const struct config__directive *dr = config__lookup(a->key);
    if (!dr) {
        config__err(p, "unknown configuration key '%s'", a->key);
        return;
    }
    if (dr->type == T_REFUSE) { /* whatever the scope or value */
        config__err(p, "%s: %s", a->key, dr->why);
        return;
    }
    void *base = p->c;
    if (dr->scope == S_LISTENER) {
        if (!p->c->listener_count) {
            config__err(p, "%s must follow a 'listener' line (it is a per-listener key)", a->key);
            return;
        }
        base = &p->c->listeners[p->c->listener_count - 1];
    }
    if (!config__arity_ok(p, dr, a))
        return;
    char *field = (char *)base + dr->off;
    switch (dr->type) {
    case T_BOOL: {
        int b = config__bool(p, a->key, a->v[0]);
        if (b < 0)
            return;
        if ((b && (dr->flags & F_ONLY_FALSE)) || (!b && (dr->flags & F_ONLY_TRUE)))
            config__err(p, "%s %s: %s", a->key, a->v[0], dr->why);
        else if (!(dr->flags & F_NOSTORE))
            *(bool *)field = b;
        return;
    }
    case T_UINT:
    case T_INT:
        config__number_line(p, dr, field, a);
        return;
    case T_STR:
    case T_PATH:
        free(*(char **)field);
        *(char **)field = dr->type == T_PATH ? config__resolve(p, a->rest[0]) : xstrdup(a->rest[0]);
        return;
    case T_ENUM: {
        const struct config__enum *e = config__enum_find(dr->names, a->v[0]);
        if (!e)
            config__enum_err(p, dr->names, a->key, a->v[0]);
        else
            config__store(field, dr->size, e->value);
        return;
    }
    case T_FN:
        dr->fn(p, dr, base, a);
        return;
    }
}

/* Splits one trimmed, non-comment line into key and values and runs it. */
static void config__line(struct config__parser *p, const char *line)
{
    char buf[CONFIG__MAX_LINE];
    struct config__args a = {0};
    size_t len = strlen(line);
    memcpy(buf, line, len + 1);
    char *s = buf;
    int idx = -1; /* -1 = the key */
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        char *tok = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (*s)
            *s++ = '\0';
        if (idx < 0)
            a.key = tok;
        else if (idx < CONFIG__MAX_ARGS) {
            a.v[idx] = tok;
            a.rest[idx] = line + (tok - buf);
        }
        idx++;
    }
    a.n = idx;
    config__directive(p, &a);
}

static void config__parse_text(struct config__parser *p, const char *text, size_t len)
{
    char line[CONFIG__MAX_LINE];
    p->line = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - (text + i)) : len - i;
        const char *start = text + i;
        i += ll + 1;
        p->line++;
        if (ll >= sizeof(line)) {
            config__err(p, "line longer than %zu bytes", sizeof(line) - 1);
            continue;
        }
        if (memchr(start, '\0', ll)) {
            config__err(p, "line contains a NUL byte");
            continue;
        }
        memcpy(line, start, ll);
        line[ll] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        /* CRLF files from Windows editors are common; the \r is never part of a value. */
        while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
            line[--ll] = '\0';
        if (*s && *s != '#')
            config__line(p, s);
    }
}

/* Returns false when the file could not be read at all. */
static bool config__read(struct config__parser *p, const char *path)
{
    struct config *c = p->c;
    /* Every file name lives as long as the config: listeners point at it for diagnostics. */
    c->files = xrealloc(c->files, (c->file_count + 1) * sizeof(char *));
    c->files[c->file_count++] = xstrdup(path);
    p->file = c->files[c->file_count - 1];
    p->line = 0;
    if (c->file_count > CONFIG__MAX_FILES) {
        config__err(p, "more than %d configuration files", CONFIG__MAX_FILES);
        return false;
    }
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        config__err(p, "cannot read: %s", f ? "not a regular file" : strerror(errno));
        if (f)
            fclose(f);
        return false;
    }
    char *buf = xmalloc(CONFIG__MAX_FILE + 1);
    size_t n = fread(buf, 1, CONFIG__MAX_FILE + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad)
        config__err(p, "read error");
    else if (n > CONFIG__MAX_FILE)
        config__err(p, "file larger than %u bytes", CONFIG__MAX_FILE);
    else
        config__parse_text(p, buf, n);
    free(buf);
    return !bad && n <= CONFIG__MAX_FILE;
}

/* Checks that need the whole file: they are reported at the listener's line or file-wide. */
static void config__finish(struct config__parser *p)
{
    struct config *c = p->c;
    p->line = 0;
    if (!c->listener_count)
        config__err(p, "no listener configured (add 'listener 8883' with cafile, certfile and "
                       "keyfile)");
    if (!c->acl_file)
        config__err(p, "no acl_file configured: without one every device would be denied "
                       "everything");
    for (size_t i = 0; i < c->listener_count; i++) {
        const struct config_listener *l = &c->listeners[i];
        p->file = l->file;
        p->line = l->line;
        if (!l->cafile && !l->capath)
            config__err(p,
                        "listener %u needs cafile or capath (the CA that issues client "
                        "certificates)",
                        l->port);
        if (!l->certfile)
            config__err(p, "listener %u needs certfile (the server certificate)", l->port);
        if (!l->keyfile)
            config__err(p, "listener %u needs keyfile (the server's private key)", l->port);
    }
}

static void config__start(struct config *out, struct config__parser *p, struct diag *d)
{
    memset(out, 0, sizeof(*out));
    config__defaults(out, S_GLOBAL);
    memset(p, 0, sizeof(*p));
    p->c = out;
    p->d = d;
}

static int config__done(struct config__parser *p, const char *main_file, bool read_ok)
{
    p->file = main_file;
    /* A file that could not be read has no listeners: saying so again would only be noise. */
    if (read_ok)
        config__finish(p);
    if (p->errors) {
        config_free(p->c);
        return -1;
    }
    return 0;
}

int config_load(const char *path, struct config *out, struct diag *d)
{
    struct config__parser p;
    config__start(out, &p, d);
    p.allow_include = true;
    bool ok = config__read(&p, path);
    out->path = xstrdup(path);
    return config__done(&p, out->files[0], ok);
}

int config_parse(const char *text, size_t len, const char *fname, struct config *out,
                 struct diag *d)
{
    struct config__parser p;
    config__start(out, &p, d);
    out->files = xmalloc(sizeof(char *));
    out->files[0] = xstrdup(fname ? fname : "(config)");
    out->file_count = 1;
    p.file = out->files[0];
    config__parse_text(&p, text, len);
    return config__done(&p, out->files[0], true);
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < c->listener_count; i++) {
        struct config_listener *l = &c->listeners[i];
        free(l->address);
        free(l->cafile);
        free(l->capath);
        free(l->certfile);
        free(l->keyfile);
        for (size_t k = 0; k < l->crlfile_count; k++)
            free(l->crlfiles[k]);
        free(l->crlfiles);
        free(l->crlpath);
        free(l->tls_version);
        free(l->ciphers);
    }
    free(c->listeners);
    for (size_t i = 0; i < c->plugin_count; i++) {
        struct config_plugin *pl = &c->plugins[i];
        free(pl->path);
        for (size_t k = 0; k < pl->opt_count; k++) {
            free(pl->opt_keys[k]);
            free(pl->opt_values[k]);
        }
        free(pl->opt_keys);
        free(pl->opt_values);
    }
    free(c->plugins);
    free(c->acl_file);
    free(c->log_file);
    free(c->pid_file);
    free(c->user);
    free(c->persistence_location);
    free(c->path);
    for (size_t i = 0; i < c->file_count; i++)
        free(c->files[i]);
    free(c->files);
    memset(c, 0, sizeof(*c));
}
