/* plugin: loading plugins (dlopen, API version check, options) and calling their hooks.
 *
 * The broker reaches plugins only through its policy slots (acl, observed message, connect,
 * disconnect), which plugin_policy() fills; conn through the certificate checker. A plugin that
 * fails to load or to initialise stops the start-up with a message naming it. */
#ifndef CERTMQ_PLUGIN_MOD_H
#define CERTMQ_PLUGIN_MOD_H

#include "config.h"
#include "buf.h"
#include "diag.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plugin_set;

/* Load every `plugin` of cfg. NULL with the reasons in d when one fails; an empty set when
 * there are none. */
/* What the server lends plugins through their api table (see certmq_plugin.h). */
struct plugin_server {
    void *broker;
    int (*disconnect)(void *broker, uint64_t conn_id, const char *reason);
    int (*cert_attr)(void *broker, uint64_t conn_id, const char *attr, size_t index,
                     const char **value, size_t *len);
};
struct plugin_set *plugin_load_all(const struct config *cfg, void *loop,
                                   const struct plugin_server *srv, struct diag *d);
/* For --test-config: every plugin file loads, is a certmq plugin and speaks a compatible API
 * version
 * (its init is not run: that may open files or connections). Problems go to d. */
void plugin_check_all(const struct config *cfg, struct diag *d);
/* Shutdown while the loop still runs: every plugin's cleanup is called (it closes its handles,
 * whose callbacks run before the loop ends); no hook is called after. */
void plugin_stop_all(struct plugin_set *p);
/* After the loop has ended: plugin_stop_all if not done yet, then unload. */
void plugin_free_all(struct plugin_set *p);
size_t plugin_count(const struct plugin_set *p);

/* The broker's policy slots for this set (p may be NULL: every slot empty). */
struct broker_policy;
void plugin_policy(struct plugin_set *p, struct broker_policy *out);
void plugin_reload(struct plugin_set *p);
/* The loop's tick (once a second). */
void plugin_tick(struct plugin_set *p);
/* Every plugin's metrics (API 3.2 metrics hook), appended in the Prometheus text format. */
void plugin_metrics(struct plugin_set *p, struct buf *out);

/* Certificate checks: true when some plugin has one; then every new connection goes through
 * the checker plugin_checker() fills in. */
struct conn_checker;
bool plugin_has_cert_check(const struct plugin_set *p);
void plugin_checker(struct plugin_set *p, struct conn_checker *out);

#endif
