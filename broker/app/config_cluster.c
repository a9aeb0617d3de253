/* config_cluster: the cluster keys' handlers and the checks between them (the rows are in
 * config_keys.c). Part of the config module: no I/O, every problem reported as file:line. */
#include "config_internal.h"

#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

#define MAX_URLS 32

static bool config__url_ok(const char *u)
{
    const char *host = NULL;
    if (!strncmp(u, "nats://", 7))
        host = u + 7;
    else if (!strncmp(u, "tls://", 6))
        host = u + 6;
    return host && *host && *host != ':' && *host != '/' && !strpbrk(u, " \t,");
}

/* cluster_nats URL...: several per line and several lines, in fail-over order. */
void config__cluster_nats(struct config__parser *p, const struct config__directive *dr, void *base,
                          const struct config__args *a)
{
    struct cluster_opts *o = &p->c->cluster;
    for (int i = 0; i < a->n && i < CONFIG__MAX_ARGS; i++) {
        if (!config__url_ok(a->v[i])) {
            config__err(p,
                        "cluster_nats: '%s' is not a NATS URL (nats://HOST:PORT or "
                        "tls://HOST:PORT)",
                        a->v[i]);
            continue;
        }
        if (o->url_count >= MAX_URLS) {
            config__err(p, "cluster_nats: more than %d URLs", MAX_URLS);
            return;
        }
        o->urls = xrealloc(o->urls, (o->url_count + 1) * sizeof(char *));
        o->urls[o->url_count++] = xstrdup(a->v[i]);
    }
}

static bool config__name_ok(const char *s, size_t max)
{
    return subject_name_ok(s, strlen(s), max);
}

/* Any key but cluster_nats given: which one (for the message), or NULL. */
static const char *config__cluster_key_set(const struct cluster_opts *o)
{
    const struct {
        const char *key;
        const char *v;
    } keys[] = {{"cluster_name", o->name},
                {"node_name", o->node},
                {"cluster_nats_user", o->user},
                {"cluster_nats_password", o->password},
                {"cluster_nats_creds", o->creds},
                {"cluster_nats_tls_ca", o->tls_ca},
                {"cluster_nats_tls_cert", o->tls_cert},
                {"cluster_nats_tls_key", o->tls_key}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        if (keys[i].v)
            return keys[i].key;
    return NULL;
}

void config__cluster_finish(struct config__parser *p)
{
    const struct cluster_opts *o = &p->c->cluster;
    const char *k = config__cluster_key_set(o);
    if (!o->url_count) {
        if (k)
            config__err(p,
                        "%s is set but cluster_nats is not: cluster mode needs the NATS "
                        "server URLs (cluster_nats nats://HOST:PORT ...)",
                        k);
        return;
    }
    if (!o->name || !config__name_ok(o->name, CLUSTER_NAME_MAX))
        config__err(p,
                    "cluster mode needs cluster_name: 1 to %d characters of A-Z a-z 0-9 _ - "
                    "(the same on every node)",
                    CLUSTER_NAME_MAX);
    if (!o->node || !config__name_ok(o->node, CLUSTER_NODE_MAX))
        config__err(p,
                    "cluster mode needs node_name: 1 to %d characters of A-Z a-z 0-9 _ - "
                    "(different on every node)",
                    CLUSTER_NODE_MAX);
    if (!o->user != !o->password)
        config__err(p, "cluster_nats_user and cluster_nats_password go together");
    if (o->creds && o->user)
        config__err(p, "cluster_nats_creds and cluster_nats_user: use one way to authenticate");
    if (!o->tls_cert != !o->tls_key)
        config__err(p, "cluster_nats_tls_cert and cluster_nats_tls_key go together");
}

void config__cluster_free(struct cluster_opts *o)
{
    for (size_t i = 0; i < o->url_count; i++)
        free(o->urls[i]);
    free(o->urls);
    free(o->name);
    free(o->node);
    free(o->user);
    free(o->password);
    free(o->creds);
    free(o->tls_ca);
    free(o->tls_cert);
    free(o->tls_key);
}
