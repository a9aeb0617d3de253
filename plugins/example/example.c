/* example: a minimal certmq plugin, built and tested with the broker.
 *
 * plugin_opt_deny_level WORD   deny publishing and receiving on any topic with the level WORD
 *                              (e.g. "secret" denies devices/a/secret/x), whatever the ACL says
 * plugin_opt_log_messages true log every accepted message (topic, identity, size)
 *
 * It shows the whole contract: version check, options, hooks that can only restrict, logging
 * through the broker, cleanup. */
#include "certmq_plugin.h"

#include <stdlib.h>
#include <string.h>

struct example {
    const struct certmq_plugin_api *api;
    char *deny_level;
    int log_messages;
    unsigned long messages;
};

static int has_level(const char *topic, const char *level)
{
    size_t n = strlen(level);
    for (const char *p = topic; p; p = strchr(p, '/')) {
        if (*p == '/')
            p++;
        if (!strncmp(p, level, n) && (p[n] == '/' || p[n] == '\0'))
            return 1;
    }
    return 0;
}

static int acl_check(void *ud, const char *identity, const char *client_id, const char *topic,
                     int access)
{
    struct example *x = ud;
    if (x->deny_level && has_level(topic, x->deny_level)) {
        x->api->log(CERTMQ_LOG_INFO, "example: %s denied on %s", identity, topic);
        return CERTMQ_DENY;
    }
    return CERTMQ_ALLOW;
}

static void message(void *ud, const char *identity, const char *topic, const void *payload,
                    size_t len, int qos, int retain)
{
    struct example *x = ud;
    x->messages++;
    if (x->log_messages)
        x->api->log(CERTMQ_LOG_NOTICE, "example: message #%lu from %s on %s (%zu bytes, q%d)",
                    x->messages, identity, topic, len, qos);
}

static void connected(void *ud, const char *identity, const char *client_id, const char *addr)
{
    struct example *x = ud;
    x->api->log(CERTMQ_LOG_NOTICE, "example: %s connected as %s from %s", identity, client_id,
                addr);
}

static void cleanup(void *ud)
{
    struct example *x = ud;
    x->api->log(CERTMQ_LOG_NOTICE, "example: unloading after %lu messages", x->messages);
    free(x->deny_level);
    free(x);
}

int certmq_plugin_version(void);
int certmq_plugin_init(const struct certmq_plugin_api *api, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h);

int certmq_plugin_version(void)
{
    return CERTMQ_PLUGIN_API_VERSION;
}

int certmq_plugin_init(const struct certmq_plugin_api *api, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h)
{
    struct example *x = calloc(1, sizeof(*x));
    if (!x)
        return -1;
    x->api = api;
    for (size_t i = 0; i < o->count; i++) {
        if (!strcmp(o->keys[i], "deny_level")) {
            if (!o->values[i][0] || strpbrk(o->values[i], "/+#")) {
                api->log(CERTMQ_LOG_ERR, "example: deny_level must be one topic level");
                free(x->deny_level);
                free(x);
                return -1;
            }
            free(x->deny_level);
            x->deny_level = strdup(o->values[i]);
        } else if (!strcmp(o->keys[i], "log_messages")) {
            x->log_messages = !strcmp(o->values[i], "true");
        } else {
            api->log(CERTMQ_LOG_ERR, "example: unknown option plugin_opt_%s", o->keys[i]);
            free(x->deny_level);
            free(x);
            return -1;
        }
    }
    h->ud = x;
    h->acl_check = acl_check;
    h->message = message;
    h->connect = connected;
    h->cleanup = cleanup;
    api->log(CERTMQ_LOG_NOTICE, "example: ready (deny_level %s)",
             x->deny_level ? x->deny_level : "none");
    return 0;
}
