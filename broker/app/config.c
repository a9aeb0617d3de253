/* config: mosquitto.conf syntax into struct config, through one directive table.
 *
 * Each row names a key, its scope (global or per listener), its type and bounds, where its value
 * lives and its default; defaults are applied by walking the same table, so a key and its default
 * cannot drift apart. Keys certmq refuses (anything that would admit a client without a
 * certificate, or that Mbed TLS 2.28 cannot do) are rows too, with the reason. Every problem is
 * collected as file:line: reason. No side effects beyond reading the file(s): nothing here opens
 * sockets, loads certificates or logs. */
#include "config_internal.h"

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

/* One diagnostic: a key, an excerpt of the value and the reason; longer ones are cut. */
#define CONFIG__DIAG_MAX 600
/* The list of an enum's names in "not one of ..." messages. */
#define CONFIG__ENUM_LIST_MAX 256

void config__err(struct config__parser *p, const char *fmt, ...)
{
    char msg[CONFIG__DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    diag_add(p->d, p->file, p->line, "%s", msg);
    p->errors++;
}

void config__store(void *field, size_t size, int64_t v)
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

void config__defaults(void *base, enum config__scope scope)
{
    for (size_t i = 0; i < config__table_len; i++) {
        const struct config__directive *dr = &config__table[i];
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
char *config__resolve(const struct config__parser *p, const char *v)
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
bool config__number(const char *s, int64_t *out)
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

const struct config__enum *config__enum_find(const struct config__enum *names, const char *v)
{
    for (; names->name; names++)
        if (!strcmp(names->name, v))
            return names;
    return NULL;
}

void config__enum_err(struct config__parser *p, const struct config__enum *names, const char *key,
                      const char *v)
{
    char opts[CONFIG__ENUM_LIST_MAX] = "";
    size_t len = 0;
    for (const struct config__enum *e = names; e->name && len < sizeof(opts); e++)
        len += (size_t)snprintf(opts + len, sizeof(opts) - len, "%s%s", e == names ? "" : ", ",
                                e->name);
    config__err(p, "%s: '%s' is not one of %s", key, v, opts);
}

/* Reads "true"/"false" only, as mosquitto does; -1 after reporting anything else. */
int config__bool(struct config__parser *p, const char *key, const char *v)
{
    if (!strcmp(v, "true"))
        return 1;
    if (!strcmp(v, "false"))
        return 0;
    config__err(p, "%s: expected true or false, not '%s'", key, v);
    return -1;
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

void config__include_dir(struct config__parser *p, const struct config__directive *dr, void *base,
                         const struct config__args *a)
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
    for (size_t i = 0; i < config__table_len; i++) {
        const struct config__directive *dr = &config__table[i];
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
/* A scraper from another host must prove who it is: the metrics show the fleet's identities'
 * health and the broker's load. Loopback needs nothing (whoever is on the host can read more). */
static void config__finish_metrics(struct config__parser *p)
{
    const struct config_metrics *m = &p->c->metrics;
    bool tls_keys = m->cafile || m->certfile || m->keyfile;
    if (!m->address) {
        if (m->require_certificate || tls_keys) {
            p->line = 0;
            config__err(p, "metrics_require_certificate / metrics_cafile / metrics_certfile / "
                           "metrics_keyfile without metrics_listener");
        }
        return;
    }
    p->file = m->file;
    p->line = m->line;
    if (m->require_certificate && (!m->cafile || !m->certfile || !m->keyfile))
        config__err(p, "metrics_require_certificate true needs metrics_cafile (the CA of the "
                       "scrapers' certificates), metrics_certfile and metrics_keyfile");
    else if (!m->require_certificate && tls_keys)
        config__err(p, "metrics_cafile / metrics_certfile / metrics_keyfile need "
                       "metrics_require_certificate true");
    else if (!m->loopback && !m->require_certificate)
        config__err(p,
                    "metrics_listener %s: not a loopback address; scrapers from other hosts "
                    "must present certificates: set metrics_require_certificate true with "
                    "metrics_cafile, metrics_certfile and metrics_keyfile, or listen on "
                    "127.0.0.1",
                    m->address);
}

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
    config__cluster_finish(p);
    if (c->tls_ticket_key_file && !c->session_tickets)
        config__err(p, "tls_ticket_key_file is set but session_tickets is false: remove one");
    for (size_t i = 0; i < c->listener_count; i++) {
        const struct config_listener *l = &c->listeners[i];
        p->file = l->file;
        p->line = l->line;
        if (!l->tls.cafile && !l->tls.capath)
            config__err(p,
                        "listener %u needs cafile or capath (the CA that issues client "
                        "certificates)",
                        l->port);
        if (!l->tls.certfile)
            config__err(p, "listener %u needs certfile (the server certificate)", l->port);
        if (!l->tls.keyfile)
            config__err(p, "listener %u needs keyfile (the server's private key)", l->port);
        if (l->proxy.v2 && !l->proxy.from_count)
            config__err(p,
                        "listener %u: proxy_protocol v2 needs proxy_protocol_from (the addresses "
                        "of the proxies that may send the header: from anywhere else a header "
                        "could claim any device's address)",
                        l->port);
        if (!l->proxy.v2 && l->proxy.from_count)
            config__err(p,
                        "listener %u: proxy_protocol_from without proxy_protocol v2 (add "
                        "'proxy_protocol v2' or remove proxy_protocol_from)",
                        l->port);
    }
    config__finish_metrics(p);
}

static void config__start(struct config *out, struct config__parser *p, struct diag *d)
{
    memset(out, 0, sizeof(*out));
    config__defaults(out, S_GLOBAL);
    memset(p, 0, sizeof(*p));
    p->c = out;
    p->d = d;
}

/* Options that follow from other keys, computed in this one place. */
static void config__derive(struct config *c)
{
    /* The MQTT 5 inbound window we announce matches the outbound one (0 was stored as the
     * maximum, see F_ZERO_IS_MAX). */
    uint32_t inflight = c->broker.session.max_inflight;
    c->client.connect.receive_maximum =
        inflight ? (uint16_t)(inflight > UINT16_MAX ? UINT16_MAX : inflight) : UINT16_MAX;
    c->client.connect.retain_available = c->broker.retain_available;
    c->client.connect.persistent_client_expiration = c->broker.persistent_client_expiration;
    c->conn.max_backlog = CONFIG__CONN_BACKLOG;
    c->cluster.durable = c->persistence; /* the same contract cluster-wide: durable, then acked */
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
    config__derive(p->c);
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
        /* The option struct is the module's const view; the strings are the config's. */
        free((void *)l->tls.cafile);
        free((void *)l->tls.capath);
        free((void *)l->tls.certfile);
        free((void *)l->tls.keyfile);
        for (size_t k = 0; k < l->tls.crlfile_count; k++)
            free((void *)l->tls.crlfiles[k]);
        free((void *)l->tls.crlfiles);
        free((void *)l->tls.crlpath);
        free((void *)l->tls.tls_version);
        free((void *)l->tls.min_tls_version);
        free((void *)l->tls.ciphers);
        free((void *)l->proxy.from);
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
    config__cluster_free(&c->cluster);
    free(c->acl_file);
    free(c->tls_ticket_key_file);
    free(c->log_file);
    free(c->metrics.address);
    free(c->metrics.cafile);
    free(c->metrics.certfile);
    free(c->metrics.keyfile);
    free(c->pid_file);
    free(c->user);
    free(c->persistence_location);
    free(c->path);
    for (size_t i = 0; i < c->file_count; i++)
        free(c->files[i]);
    free(c->files);
    memset(c, 0, sizeof(*c));
}
