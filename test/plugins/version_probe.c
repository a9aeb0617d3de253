/* version_probe: a plugin that declares an API version relative to the current header
 * (PROBE_MAJOR_DELTA, PROBE_MINOR_DELTA), or a pre-3.0 plain version (PROBE_LEGACY), so the
 * tests can show which ones certmq refuses and with what message. Its init only runs when
 * certmq accepted the version. */
#include "certmq_plugin.h"

int certmq_plugin_version(void);
int certmq_plugin_init(const struct certmq_plugin_api *a, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h);

int certmq_plugin_version(void)
{
#ifdef PROBE_LEGACY
    return PROBE_LEGACY;
#else
    return CERTMQ_PLUGIN_VERSION_OF(CERTMQ_PLUGIN_API_MAJOR + PROBE_MAJOR_DELTA,
                                    CERTMQ_PLUGIN_API_MINOR + PROBE_MINOR_DELTA);
#endif
}

int certmq_plugin_init(const struct certmq_plugin_api *a, const struct certmq_plugin_opts *o,
                       struct certmq_plugin_hooks *h)
{
    h->size = sizeof(*h);
    a->log(CERTMQ_LOG_NOTICE, "version_probe: loaded");
    return 0;
}
