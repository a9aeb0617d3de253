/* plugin: dlopen'd extensions behind certmq_plugin.h. Hooks are called in load order; for the
 * ACL the first plugin that denies decides (each can only restrict). */
#include "plugin.h"

#include "certmq_plugin.h"
#include "log.h"
#include "xmalloc.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct loaded {
    void *dl;
    char *path;
    struct certmq_plugin_hooks hooks;
};

struct plugin_set {
    struct loaded *v;
    size_t n;
    struct certmq_plugin_api api; /* plugins keep a pointer to it */
};

typedef int (*init_fn)(const struct certmq_plugin_api *, const struct certmq_plugin_opts *,
                       struct certmq_plugin_hooks *);
static void *open_plugin(const char *path, struct diag *d, init_fn *init_out);

static void plugin_log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    enum log_level l = level == CERTMQ_LOG_ERR      ? LOGL_ERR
                       : level == CERTMQ_LOG_WARN   ? LOGL_WARN
                       : level == CERTMQ_LOG_NOTICE ? LOGL_NOTICE
                       : level == CERTMQ_LOG_DEBUG  ? LOGL_DEBUG
                                                    : LOGL_INFO;
    log_msg(l, "plugin: %s", line);
}

struct plugin_set *plugin_load_all(const struct config *cfg, void *loop, struct diag *d)
{
    struct plugin_set *s = xcalloc(1, sizeof(*s));
    s->v = xcalloc(cfg->plugin_count ? cfg->plugin_count : 1, sizeof(*s->v));
    s->api = (struct certmq_plugin_api){CERTMQ_PLUGIN_API_VERSION, loop, plugin_log};
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        const struct config_plugin *cp = &cfg->plugins[i];
        init_fn init;
        void *dl = open_plugin(cp->path, d, &init);
        if (!dl)
            continue;
        struct certmq_plugin_opts opts = {(const char *const *)cp->opt_keys,
                                          (const char *const *)cp->opt_values, cp->opt_count};
        struct loaded *l = &s->v[s->n];
        if (init(&s->api, &opts, &l->hooks) != 0) {
            diag_add(d, cp->path, 0, "plugin initialisation failed (see its log lines)");
            dlclose(dl);
            continue;
        }
        l->dl = dl;
        l->path = xstrdup(cp->path);
        s->n++;
        log_notice("plugin: loaded %s", cp->path);
    }
    if (s->n != cfg->plugin_count) {
        plugin_free_all(s);
        return NULL;
    }
    return s;
}

/* dlopen + symbols + version; returns the handle, or NULL with the reason in d. */
static void *open_plugin(const char *path, struct diag *d, init_fn *init_out)
{
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        diag_add(d, path, 0, "cannot load plugin: %s", dlerror());
        return NULL;
    }
    /* dlsym returns data pointers; copy them into function pointers (POSIX guarantees this). */
    void *vsym = dlsym(dl, "certmq_plugin_version"), *isym = dlsym(dl, "certmq_plugin_init");
    int (*version)(void) = NULL;
    memcpy(&version, &vsym, sizeof(version));
    memcpy(init_out, &isym, sizeof(*init_out));
    if (!vsym || !isym) {
        diag_add(d, path, 0,
                 "not a certmq plugin (certmq_plugin_version/certmq_plugin_init missing)");
        dlclose(dl);
        return NULL;
    }
    if (version() != CERTMQ_PLUGIN_API_VERSION) {
        diag_add(d, path, 0, "plugin API version %d, certmq speaks %d", version(),
                 CERTMQ_PLUGIN_API_VERSION);
        dlclose(dl);
        return NULL;
    }
    return dl;
}

void plugin_check_all(const struct config *cfg, struct diag *d)
{
    for (size_t i = 0; i < cfg->plugin_count; i++) {
        init_fn init;
        void *dl = open_plugin(cfg->plugins[i].path, d, &init);
        if (dl)
            dlclose(dl);
    }
}

void plugin_free_all(struct plugin_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].hooks.cleanup)
            s->v[i].hooks.cleanup(s->v[i].hooks.ud);
        dlclose(s->v[i].dl);
        free(s->v[i].path);
    }
    free(s->v);
    free(s);
}

size_t plugin_count(const struct plugin_set *s)
{
    return s ? s->n : 0;
}

bool plugin_acl(struct plugin_set *s, const char *identity, const char *client_id,
                const char *topic, int access)
{
    for (size_t i = 0; s && i < s->n; i++) {
        const struct certmq_plugin_hooks *h = &s->v[i].hooks;
        if (h->acl_check && h->acl_check(h->ud, identity, client_id, topic, access) != CERTMQ_ALLOW)
            return false; /* deny, or an error: fail closed */
    }
    return true;
}

void plugin_message(struct plugin_set *s, const char *identity, const char *topic,
                    const void *payload, size_t len, int qos, int retain)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.message)
            s->v[i].hooks.message(s->v[i].hooks.ud, identity, topic, payload, len, qos, retain);
}

void plugin_connect(struct plugin_set *s, const char *identity, const char *client_id,
                    const char *address)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.connect)
            s->v[i].hooks.connect(s->v[i].hooks.ud, identity, client_id, address);
}

void plugin_disconnect(struct plugin_set *s, const char *identity, const char *client_id)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.disconnect)
            s->v[i].hooks.disconnect(s->v[i].hooks.ud, identity, client_id);
}

void plugin_reload(struct plugin_set *s)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->v[i].hooks.reload)
            s->v[i].hooks.reload(s->v[i].hooks.ud);
}
