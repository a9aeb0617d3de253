/* old_minor: a plugin built against the frozen API 3.0 header (test/plugins/certmq_plugin_3_0.h),
 * to prove that certmq at a newer minor loads it and runs its hooks. Its hooks table is smaller
 * than certmq's; to prove that certmq reads nothing past the plugin's hooks->size, init also
 * writes junk into the bytes after it (where 3.1's tick hook sits in certmq's table): certmq
 * must treat that slot as NULL, or the first tick would call the junk. */
#include "certmq_plugin_3_0.h"

#include <string.h>

static const struct certmq_plugin_api *api;

static void connected(void *ud, const char *identity, const char *client_id, const char *address)
{
    api->log(CERTMQ_LOG_NOTICE, "old_minor: %s connected as %s from %s", identity, client_id,
             address);
}

static void disconnected(void *ud, const char *identity, const char *client_id)
{
    api->log(CERTMQ_LOG_NOTICE, "old_minor: %s (%s) disconnected", identity, client_id);
}

int certmq_plugin_version(void);
int certmq_plugin_init(const struct certmq_plugin_api *a, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h);

int certmq_plugin_version(void)
{
    return CERTMQ_PLUGIN_API_VERSION;
}

int certmq_plugin_init(const struct certmq_plugin_api *a, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h)
{
    api = a;
    h->size = sizeof(*h);
    h->connect = connected;
    h->disconnect = disconnected;
    /* Only because the host speaks a newer minor (checked first) is its table larger. */
    if (a->api_major == CERTMQ_PLUGIN_API_MAJOR && a->api_minor > CERTMQ_PLUGIN_API_MINOR)
        memset((char *)h + sizeof(*h), 0xA5, sizeof(void (*)(void *)));
    a->log(CERTMQ_LOG_NOTICE, "old_minor: ready (built for API %d.%d, certmq speaks %d.%d)",
           CERTMQ_PLUGIN_API_MAJOR, CERTMQ_PLUGIN_API_MINOR, a->api_major, a->api_minor);
    return 0;
}
