/* config: mosquitto.conf syntax into struct config, through one directive table.
 *
 * Each row names a key, its scope (global or per listener), its type and bounds, and where its
 * value lives. Keys certmq refuses (anything that would admit a client without a certificate)
 * are rows too, with the reason. Every problem is collected as file:line: reason. No side
 * effects beyond reading the file(s). */
#include "config.h"

#include "log.h"
#include "xmalloc.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (4u << 20)
#define MAX_INCLUDE_DEPTH 8

enum type { T_BOOL, T_U32, T_U16, T_I32, T_U64, T_STR, T_PATH, T_ENUM, T_SPECIAL, T_REFUSE };
enum scope { S_GLOBAL, S_LISTENER };

struct directive {
    const char *name;
    uint8_t type;
    uint8_t scope;
    size_t off;
    int64_t min, max;
    const char *const *names; /* T_ENUM: value names, index = value */
    const char *why;          /* T_REFUSE: the reason; T_BOOL: when set, only "true" allowed */
    int special;
};

#define G(f) S_GLOBAL, offsetof(struct config, f)
#define L(f) S_LISTENER, offsetof(struct config_listener, f)

enum {
    SP_LISTENER = 1,
    SP_CRLFILE,
    SP_LOG_DEST,
    SP_LOG_TYPE,
    SP_PLUGIN,
    SP_INCLUDE_DIR,
    SP_DURATION,
    SP_NOOP_TRUE,
    SP_IDENTITY_SUBJECT,
    SP_MAX_INFLIGHT,
    SP_TLS_VERSION,
    SP_NOOP_FALSE,
};

static const char *const protocols[] = {"mqtt", "websockets", NULL};
static const char *const identities[] = {"cn", "san_dns", "san_uri", "san_email", "subject", NULL};
static const char *const crl_modes[] = {"strict", "present", NULL};
static const char *const crl_expired[] = {"reject", "warn", NULL};
static const char *const clientid_policies[] = {"any", "match", NULL};
static const char *const revoked_session[] = {"discard", "keep", NULL};

static const char CERT_ONLY[] = "certmq only accepts clients that present a certificate";

static const struct directive table[] = {
    {"listener", T_SPECIAL, S_GLOBAL, 0, 0, 0, NULL, NULL, SP_LISTENER},
    {"cafile", T_PATH, L(cafile), 0, 0, NULL, NULL, 0},
    {"capath", T_PATH, L(capath), 0, 0, NULL, NULL, 0},
    {"certfile", T_PATH, L(certfile), 0, 0, NULL, NULL, 0},
    {"keyfile", T_PATH, L(keyfile), 0, 0, NULL, NULL, 0},
    {"crlfile", T_SPECIAL, S_LISTENER, 0, 0, 0, NULL, NULL, SP_CRLFILE},
    {"crlpath", T_PATH, L(crlpath), 0, 0, NULL, NULL, 0},
    {"tls_version", T_SPECIAL, S_LISTENER, 0, 0, 0, NULL, NULL, SP_TLS_VERSION},
    {"ciphers", T_STR, L(ciphers), 0, 0, NULL, NULL, 0},
    {"protocol", T_ENUM, L(protocol), 0, 0, protocols, NULL, 0},
    {"verify_depth", T_U32, L(verify_depth), 1, 16, NULL, NULL, 0},
    {"cert_identity", T_ENUM, L(identity), 0, 0, identities, NULL, 0},
    {"crl_mode", T_ENUM, L(crl_mode), 0, 0, crl_modes, NULL, 0},
    {"crl_expired", T_ENUM, L(crl_expired), 0, 0, crl_expired, NULL, 0},
    {"require_certificate", T_SPECIAL, S_LISTENER, 0, 0, 0, NULL, CERT_ONLY, SP_NOOP_TRUE},
    {"use_identity_as_username", T_SPECIAL, S_LISTENER, 0, 0, 0, NULL,
     "certmq always uses the certificate identity as the user name", SP_NOOP_TRUE},
    {"use_subject_as_username", T_SPECIAL, S_LISTENER, 0, 0, 0, NULL, NULL, SP_IDENTITY_SUBJECT},
    {"allow_anonymous", T_SPECIAL, S_GLOBAL, 0, 0, 0, NULL, CERT_ONLY, SP_NOOP_TRUE},
    {"password_file", T_REFUSE, S_GLOBAL, 0, 0, 0, NULL, CERT_ONLY, 0},
    {"psk_file", T_REFUSE, S_GLOBAL, 0, 0, 0, NULL, CERT_ONLY, 0},
    {"psk_hint", T_REFUSE, S_LISTENER, 0, 0, 0, NULL, CERT_ONLY, 0},
    {"http_dir", T_REFUSE, S_LISTENER, 0, 0, 0, NULL,
     "certmq does not serve files over HTTP; WebSocket listeners carry MQTT only", 0},
    {"bind_address", T_REFUSE, S_GLOBAL, 0, 0, 0, NULL, "use 'listener PORT ADDRESS'", 0},
    {"port", T_REFUSE, S_GLOBAL, 0, 0, 0, NULL, "use 'listener PORT [ADDRESS]'", 0},
    {"per_listener_settings", T_SPECIAL, S_GLOBAL, 0, 0, 0, NULL,
     "per-listener ACL and authentication settings are not supported", SP_NOOP_FALSE},
    {"set_tcp_nodelay", T_BOOL, S_GLOBAL, 0, 0, 0, NULL, NULL, -1},
    {"acl_file", T_PATH, G(acl_file), 0, 0, NULL, NULL, 0},
    {"max_inflight_messages", T_SPECIAL, G(max_inflight_messages), 0, 65535, NULL, NULL,
     SP_MAX_INFLIGHT},
    {"max_queued_messages", T_U32, G(max_queued_messages), 1, 10000000, NULL, NULL, 0},
    {"max_queued_bytes", T_U64, G(max_queued_bytes), 0, INT64_MAX, NULL, NULL, 0},
    {"message_size_limit", T_U32, G(message_size_limit), 0, 268435455, NULL, NULL, 0},
    {"max_packet_size", T_U32, G(max_packet_size), 0, 268435460, NULL, NULL, 0},
    {"max_keepalive", T_U16, G(max_keepalive), 0, 65535, NULL, NULL, 0},
    {"max_connections", T_I32, G(max_connections), -1, INT32_MAX, NULL, NULL, 0},
    {"max_connections_per_ip", T_U32, G(max_connections_per_ip), 0, 1000000, NULL, NULL, 0},
    {"max_topic_length", T_U32, G(max_topic_length), 1, 65535, NULL, NULL, 0},
    {"max_topic_levels", T_U32, G(max_topic_levels), 0, 32768, NULL, NULL, 0},
    {"max_topic_alias", T_U32, G(max_topic_alias), 0, 65535, NULL, NULL, 0},
    {"max_subscriptions_per_client", T_U32, G(max_subscriptions_per_client), 0, 10000000, NULL,
     NULL, 0},
    {"persistent_client_expiration", T_SPECIAL, G(persistent_client_expiration), 0, 0, NULL, NULL,
     SP_DURATION},
    {"allow_zero_length_clientid", T_BOOL, G(allow_zero_length_clientid), 0, 0, NULL, NULL, 0},
    {"retain_available", T_BOOL, G(retain_available), 0, 0, NULL, NULL, 0},
    {"queue_qos0_messages", T_BOOL, G(queue_qos0_messages), 0, 0, NULL, NULL, 0},
    {"upgrade_outgoing_qos", T_BOOL, G(upgrade_outgoing_qos), 0, 0, NULL, NULL, 0},
    {"clientid_policy", T_ENUM, G(clientid_policy), 0, 0, clientid_policies, NULL, 0},
    {"tls_handshake_timeout", T_U32, G(tls_handshake_timeout_ms), 100, 600000, NULL, NULL, 0},
    {"max_handshakes", T_U32, G(max_handshakes), 1, 100000, NULL, NULL, 0},
    {"connect_timeout", T_U32, G(connect_timeout_ms), 100, 600000, NULL, NULL, 0},
    {"session_tickets", T_BOOL, G(session_tickets), 0, 0, NULL, NULL, 0},
    {"revoked_session", T_ENUM, G(revoked_session), 0, 0, revoked_session, NULL, 0},
    {"cert_expiry_warning_days", T_U32, G(cert_expiry_warning_days), 0, 3650, NULL, NULL, 0},
    {"session_ticket_lifetime", T_U32, G(session_ticket_lifetime), 60, 604800, NULL, NULL, 0},
    {"log_dest", T_SPECIAL, S_GLOBAL, 0, 0, 0, NULL, NULL, SP_LOG_DEST},
    {"log_type", T_SPECIAL, S_GLOBAL, 0, 0, 0, NULL, NULL, SP_LOG_TYPE},
    {"log_timestamp", T_BOOL, G(log_timestamp), 0, 0, NULL, NULL, 0},
    {"connection_messages", T_BOOL, G(connection_messages), 0, 0, NULL, NULL, 0},
    {"sys_interval", T_U32, G(sys_interval), 0, 86400, NULL, NULL, 0},
    {"pid_file", T_PATH, G(pid_file), 0, 0, NULL, NULL, 0},
    {"plugin", T_SPECIAL, S_GLOBAL, 0, 0, 0, NULL, NULL, SP_PLUGIN},
    {"include_dir", T_SPECIAL, S_GLOBAL, 0, 0, 0, NULL, NULL, SP_INCLUDE_DIR},
    {"persistence", T_BOOL, G(persistence), 0, 0, NULL, NULL, 0},
    {"persistence_location", T_PATH, G(persistence_location), 0, 0, NULL, NULL, 0},
    /* certmq writes every change durably at once; mosquitto's periodic save is meaningless. */
    {"autosave_interval", T_U32, S_GLOBAL, 0, 0, INT32_MAX, NULL, NULL, -1},
    {"autosave_on_changes", T_BOOL, S_GLOBAL, 0, 0, 0, NULL, NULL, -1},
    {"persistence_file", T_REFUSE, S_GLOBAL, 0, 0, 0, NULL,
     "certmq keeps its database as certmq.db inside persistence_location", 0},
};

struct parser {
    struct config *c;
    struct diag *d;
    const char *file;
    int line;
    int depth;
    bool allow_include;
    size_t errors;
};

static void err(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void err(struct parser *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_add(p->d, p->file, p->line, "%s", msg);
    p->errors++;
}

static void defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_inflight_messages = 20;
    c->max_queued_messages = 1000;
    c->max_keepalive = 65535;
    c->max_connections = -1;
    c->max_topic_length = 65535;
    /* Bounded by default: a peer can make the broker buffer up to one packet per connection. */
    c->max_packet_size = 16u << 20;
    c->max_subscriptions_per_client = 10000;
    c->max_topic_levels = 256; /* matching recurses per level: keep it bounded */
    c->max_topic_alias = 10;
    c->allow_zero_length_clientid = true;
    c->retain_available = true;
    c->tls_handshake_timeout_ms = 10000;
    c->max_handshakes = 64;
    c->connect_timeout_ms = 10000;
    c->session_tickets = true;
    c->cert_expiry_warning_days = 30;
    c->session_ticket_lifetime = 86400;
    c->log_types = LOGL_DEFAULT;
    c->log_timestamp = true;
    c->connection_messages = true;
    c->sys_interval = 10;
}

static char *resolve(const struct parser *p, const char *v)
{
    if (v[0] == '/' || !p->file)
        return xstrdup(v);
    const char *slash = strrchr(p->file, '/');
    if (!slash)
        return xstrdup(v);
    size_t dl = (size_t)(slash - p->file);
    char *out = xmalloc(dl + 1 + strlen(v) + 1);
    memcpy(out, p->file, dl);
    out[dl] = '/';
    strcpy(out + dl + 1, v);
    return out;
}

static bool parse_int(const char *v, int64_t min, int64_t max, int64_t *out)
{
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max)
        return false;
    *out = x;
    return true;
}

static int enum_index(const char *const *names, const char *v)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], v))
            return i;
    return -1;
}

static struct config_listener *cur_listener(struct parser *p)
{
    return p->c->listener_count ? &p->c->listeners[p->c->listener_count - 1] : NULL;
}

static void add_listener(struct parser *p, char **args, int n)
{
    int64_t port;
    if (n < 1 || n > 2 || !parse_int(args[0], 0, 65535, &port)) {
        err(p, "usage: listener PORT [ADDRESS] (PORT 0-65535)");
        return;
    }
    struct config *c = p->c;
    for (size_t i = 0; i < c->listener_count; i++) {
        const struct config_listener *o = &c->listeners[i];
        bool same_addr =
            (!o->address && n < 2) || (o->address && n == 2 && !strcmp(o->address, args[1]));
        if (port && o->port == port && same_addr) {
            err(p, "duplicate listener %s %s (first at %s:%d)", args[0], n == 2 ? args[1] : "",
                o->file, o->line);
            return;
        }
    }
    c->listeners = xrealloc(c->listeners, (c->listener_count + 1) * sizeof(*c->listeners));
    struct config_listener *l = &c->listeners[c->listener_count++];
    memset(l, 0, sizeof(*l));
    l->port = (uint16_t)port;
    l->address = n == 2 ? xstrdup(args[1]) : NULL;
    l->verify_depth = 4;
    l->file = p->file;
    l->line = p->line;
}

static void parse_file(struct parser *p, const char *path);

static void include_dir(struct parser *p, const char *dir)
{
    if (!p->allow_include) {
        err(p, "include_dir is not allowed here");
        return;
    }
    if (p->depth >= MAX_INCLUDE_DEPTH) {
        err(p, "include_dir nested more than %d deep", MAX_INCLUDE_DEPTH);
        return;
    }
    char *d = resolve(p, dir);
    struct dirent **list;
    int n = scandir(d, &list, NULL, alphasort);
    if (n < 0) {
        err(p, "include_dir %s: %s", d, strerror(errno));
        free(d);
        return;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list[i]->d_name);
        if (len > 5 && !strcmp(list[i]->d_name + len - 5, ".conf")) {
            char *f = xmalloc(strlen(d) + len + 2);
            sprintf(f, "%s/%s", d, list[i]->d_name);
            struct parser sub = *p;
            sub.depth++;
            sub.file = NULL;
            parse_file(&sub, f);
            p->errors += sub.errors;
            /* the file name is referenced by listeners defined there: keep it */
            free(f);
        }
        free(list[i]);
    }
    free(list);
    free(d);
}

static void special(struct parser *p, const struct directive *dr, char **args, int n, void *base)
{
    struct config *c = p->c;
    switch (dr->special) {
    case SP_LISTENER:
        add_listener(p, args, n);
        return;
    case SP_CRLFILE: {
        struct config_listener *l = base;
        l->crlfiles = xrealloc(l->crlfiles, (l->crlfile_count + 1) * sizeof(char *));
        l->crlfiles[l->crlfile_count++] = resolve(p, args[0]);
        return;
    }
    case SP_TLS_VERSION:
        if (strcmp(args[0], "tlsv1.2") != 0) {
            err(p, "tls_version %s is not supported: certmq (Mbed TLS 2.28) speaks TLS 1.2 only",
                args[0]);
            return;
        }
        free(((struct config_listener *)base)->tls_version);
        ((struct config_listener *)base)->tls_version = xstrdup(args[0]);
        return;
    case SP_NOOP_TRUE:
        if (!strcmp(dr->name, "allow_anonymous")) {
            if (strcmp(args[0], "false") != 0)
                err(p, "allow_anonymous %s: %s", args[0], dr->why);
        } else if (strcmp(args[0], "true") != 0) {
            err(p, "%s %s: %s", dr->name, args[0], dr->why);
        }
        return;
    case SP_NOOP_FALSE:
        if (strcmp(args[0], "false") != 0)
            err(p, "%s %s: %s", dr->name, args[0], dr->why);
        return;
    case SP_IDENTITY_SUBJECT:
        if (!strcmp(args[0], "true"))
            ((struct config_listener *)base)->identity = CONFIG_ID_SUBJECT;
        else if (strcmp(args[0], "false") != 0)
            err(p, "use_subject_as_username: expected true or false");
        return;
    case SP_MAX_INFLIGHT: {
        int64_t v;
        if (!parse_int(args[0], 0, 65535, &v)) {
            err(p, "max_inflight_messages: expected 0-65535 (0 = 65535)");
            return;
        }
        c->max_inflight_messages = v ? (uint32_t)v : 65535;
        return;
    }
    case SP_DURATION: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(args[0], &end, 10);
        unsigned long long mult = 1;
        if (*end && !end[1]) {
            switch (*end) {
            case 'h':
                mult = 3600;
                break;
            case 'd':
                mult = 86400;
                break;
            case 'w':
                mult = 7 * 86400;
                break;
            case 'm':
                mult = 30 * 86400;
                break;
            case 'y':
                mult = 365 * 86400;
                break;
            default:
                mult = 0;
            }
        } else if (*end) {
            mult = 0;
        }
        if (errno || end == args[0] || !mult || v * mult > UINT32_MAX) {
            err(p, "persistent_client_expiration: expected a number with suffix h, d, w, m or "
                   "y (e.g. 14d)");
            return;
        }
        c->persistent_client_expiration = (uint32_t)(v * mult);
        return;
    }
    case SP_LOG_DEST:
        if (!strcmp(args[0], "stderr"))
            c->log_dests |= LOGD_STDERR;
        else if (!strcmp(args[0], "stdout"))
            c->log_dests |= LOGD_STDOUT;
        else if (!strcmp(args[0], "syslog"))
            c->log_dests |= LOGD_SYSLOG;
        else if (!strcmp(args[0], "none"))
            c->log_dests = 0, c->log_file = (free(c->log_file), NULL);
        else if (!strcmp(args[0], "file")) {
            if (n < 2) {
                err(p, "log_dest file needs a path");
                return;
            }
            c->log_dests |= LOGD_FILE;
            free(c->log_file);
            c->log_file = resolve(p, args[1]);
        } else if (!strcmp(args[0], "topic") || !strcmp(args[0], "dlt")) {
            err(p, "log_dest %s is not supported by certmq", args[0]);
        } else {
            err(p, "log_dest: unknown destination '%s' (stderr, stdout, syslog, file PATH, none)",
                args[0]);
        }
        c->log_dests |= 1u << 31; /* marks "set explicitly" */
        return;
    case SP_LOG_TYPE: {
        static const char *const names[] = {"error",       "warning",    "notice",
                                            "information", "debug",      "subscribe",
                                            "unsubscribe", "websockets", NULL};
        if (!(c->log_types & (1u << 31)))
            c->log_types = 1u << 31; /* the first log_type replaces the default */
        if (!strcmp(args[0], "all"))
            c->log_types |= LOGL_ALL;
        else if (!strcmp(args[0], "none"))
            c->log_types = 1u << 31;
        else {
            int i = enum_index(names, args[0]);
            if (i < 0)
                err(p, "log_type: unknown type '%s'", args[0]);
            else
                c->log_types |= 1u << i;
        }
        return;
    }
    case SP_PLUGIN: {
        c->plugins = xrealloc(c->plugins, (c->plugin_count + 1) * sizeof(*c->plugins));
        struct config_plugin *pl = &c->plugins[c->plugin_count++];
        memset(pl, 0, sizeof(*pl));
        pl->path = resolve(p, args[0]);
        return;
    }
    case SP_INCLUDE_DIR:
        include_dir(p, args[0]);
        return;
    default:
        return;
    }
}

static void plugin_opt(struct parser *p, const char *key, char **args, int n)
{
    struct config *c = p->c;
    if (!c->plugin_count) {
        err(p, "%s before any 'plugin' line", key);
        return;
    }
    if (n < 1) {
        err(p, "%s needs a value", key);
        return;
    }
    struct config_plugin *pl = &c->plugins[c->plugin_count - 1];
    pl->opt_keys = xrealloc(pl->opt_keys, (pl->opt_count + 1) * sizeof(char *));
    pl->opt_values = xrealloc(pl->opt_values, (pl->opt_count + 1) * sizeof(char *));
    pl->opt_keys[pl->opt_count] = xstrdup(key + strlen("plugin_opt_"));
    pl->opt_values[pl->opt_count] = xstrdup(args[0]);
    pl->opt_count++;
}

static void directive(struct parser *p, char *key, char **args, int n, const char *rest)
{
    if (!strncmp(key, "plugin_opt_", 11) && key[11]) {
        plugin_opt(p, key, args, n);
        return;
    }
    const struct directive *dr = NULL;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (!strcmp(table[i].name, key))
            dr = &table[i];
    if (!dr) {
        err(p, "unknown configuration key '%s'", key);
        return;
    }
    if (dr->type == T_REFUSE) {
        err(p, "%s: %s", key, dr->why);
        return;
    }
    if (n < 1 && dr->special != SP_LISTENER) {
        err(p, "%s needs a value", key);
        return;
    }
    void *base = p->c;
    if (dr->scope == S_LISTENER) {
        base = cur_listener(p);
        if (!base) {
            err(p, "%s must follow a 'listener' line", key);
            return;
        }
    }
    bool multi = dr->special == SP_LISTENER || dr->special == SP_LOG_DEST;
    if (n > 1 && !multi && dr->type != T_STR && dr->type != T_PATH) {
        err(p, "%s takes one value", key);
        return;
    }
    char *field = (char *)base + dr->off;
    int64_t v;
    switch (dr->type) {
    case T_SPECIAL:
        special(p, dr, args, n, base);
        return;
    case T_BOOL:
        if (strcmp(args[0], "true") != 0 && strcmp(args[0], "false") != 0) {
            err(p, "%s: expected true or false, not '%s'", key, args[0]);
            return;
        }
        if (dr->special != -1)
            *(bool *)field = !strcmp(args[0], "true");
        return;
    case T_U16:
    case T_U32:
    case T_I32:
    case T_U64:
        if (!parse_int(args[0], dr->min, dr->max, &v)) {
            err(p, "%s: expected a whole number from %lld to %lld, not '%s'", key,
                (long long)dr->min, (long long)dr->max, args[0]);
            return;
        }
        if (dr->special == -1)
            return; /* accepted for compatibility, nothing to set */
        if (dr->type == T_U16)
            *(uint16_t *)field = (uint16_t)v;
        else if (dr->type == T_U32)
            *(uint32_t *)field = (uint32_t)v;
        else if (dr->type == T_I32)
            *(int32_t *)field = (int32_t)v;
        else
            *(uint64_t *)field = (uint64_t)v;
        return;
    case T_STR:
        free(*(char **)field);
        *(char **)field = xstrdup(rest);
        return;
    case T_PATH:
        free(*(char **)field);
        *(char **)field = resolve(p, rest);
        return;
    case T_ENUM: {
        int i = enum_index(dr->names, args[0]);
        if (i < 0) {
            char opts[256] = "";
            for (int k = 0; dr->names[k]; k++) {
                strncat(opts, k ? ", " : "", sizeof(opts) - strlen(opts) - 1);
                strncat(opts, dr->names[k], sizeof(opts) - strlen(opts) - 1);
            }
            err(p, "%s: '%s' is not one of %s", key, args[0], opts);
            return;
        }
        *(int *)field = i;
        return;
    }
    }
}

static void parse_text(struct parser *p, const char *text, size_t len)
{
    char line[4096];
    size_t i = 0;
    p->line = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        p->line++;
        size_t ll = j - i;
        if (ll >= sizeof(line)) {
            err(p, "line longer than %zu bytes", sizeof(line) - 1);
            i = j + 1;
            continue;
        }
        memcpy(line, text + i, ll);
        line[ll] = '\0';
        i = j + 1;
        if (memchr(line, '\0', ll)) {
            err(p, "line contains a NUL byte");
            continue;
        }
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t sl = strlen(s);
        while (sl && (s[sl - 1] == '\r' || s[sl - 1] == ' ' || s[sl - 1] == '\t'))
            s[--sl] = '\0';
        if (!*s || *s == '#')
            continue;
        char *key = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        char *rest = s;
        if (*s) {
            *s = '\0';
            rest = s + 1;
            while (*rest == ' ' || *rest == '\t')
                rest++;
        }
        char restcopy[4096];
        strcpy(restcopy, rest);
        char *args[8];
        int n = 0;
        char *tok = strtok(rest, " \t");
        while (tok && n < 8) {
            args[n++] = tok;
            tok = strtok(NULL, " \t");
        }
        directive(p, key, args, n, restcopy);
    }
}

static void parse_file(struct parser *p, const char *path)
{
    FILE *f = fopen(path, "rb");
    const char *file = xstrdup(path);
    /* Keep every file name alive with the config: listeners point at it for diagnostics. */
    struct config *c = p->c;
    c->files = xrealloc(c->files, (c->file_count + 1) * sizeof(char *));
    c->files[c->file_count++] = (char *)file;
    p->file = file;
    if (!f) {
        p->line = 0;
        err(p, "cannot open: %s", strerror(errno));
        return;
    }
    char *buf = xmalloc(MAX_FILE + 1);
    size_t n = fread(buf, 1, MAX_FILE + 1, f);
    fclose(f);
    if (n > MAX_FILE) {
        p->line = 0;
        err(p, "file larger than %u bytes", MAX_FILE);
    } else {
        parse_text(p, buf, n);
    }
    free(buf);
}

static void finish(struct parser *p)
{
    struct config *c = p->c;
    p->line = 0;
    if (!(c->log_dests & (1u << 31)))
        c->log_dests = LOGD_STDERR;
    c->log_dests &= ~(1u << 31);
    c->log_types &= ~(1u << 31);
    if (!c->listener_count)
        err(p, "no listener configured (add 'listener 8883' with cafile, certfile, keyfile)");
    if (!c->acl_file)
        err(p, "no acl_file configured: without one every device would be denied everything");
    for (size_t i = 0; i < c->listener_count; i++) {
        struct config_listener *l = &c->listeners[i];
        const char *f = p->file;
        int line = p->line;
        p->file = l->file;
        p->line = l->line;
        if (!l->cafile && !l->capath)
            err(p, "listener %u needs cafile or capath (the CA that issues client certificates)",
                l->port);
        if (!l->certfile)
            err(p, "listener %u needs certfile", l->port);
        if (!l->keyfile)
            err(p, "listener %u needs keyfile", l->port);
        p->file = f;
        p->line = line;
    }
}

static int done(struct parser *p, struct config *out)
{
    finish(p);
    if (p->errors) {
        config_free(out);
        return -1;
    }
    return 0;
}

int config_load(const char *path, struct config *out, struct diag *d)
{
    defaults(out);
    struct parser p = {out, d, NULL, 0, 0, true, 0};
    parse_file(&p, path);
    out->path = xstrdup(path);
    return done(&p, out);
}

int config_parse(const char *text, size_t len, const char *fname, struct config *out,
                 struct diag *d)
{
    defaults(out);
    out->files = xmalloc(sizeof(char *));
    out->files[0] = xstrdup(fname);
    out->file_count = 1;
    struct parser p = {out, d, out->files[0], 0, 0, false, 0};
    parse_text(&p, text, len);
    p.file = out->files[0];
    return done(&p, out);
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
    free(c->persistence_location);
    free(c->path);
    for (size_t i = 0; i < c->file_count; i++)
        free(c->files[i]);
    free(c->files);
    memset(c, 0, sizeof(*c));
}
