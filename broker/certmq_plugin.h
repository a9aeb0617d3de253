/* certmq_plugin.h: the public, versioned interface for certmq plugins.
 *
 * A plugin is a shared object loaded with `plugin PATH` and configured with
 * `plugin_opt_NAME VALUE` lines. It exports two functions:
 *
 *   int certmq_plugin_version(void);    returns CERTMQ_PLUGIN_API_VERSION it was built against
 *   int certmq_plugin_init(const struct certmq_plugin_api *api,
 *                          const struct certmq_plugin_opts *opts,
 *                          struct certmq_plugin_hooks *hooks);   0 = ready, else refused
 *
 * certmq refuses to start when a plugin cannot be loaded, speaks another API version, or its
 * init fails; a hook that returns an error fails closed (the operation is denied). Everything
 * runs on the broker's single event loop: hooks must not block. The loop is available as a
 * `uv_loop_t *` for timers and I/O.
 *
 * Hooks can only restrict what certmq's own checks allow: the ACL file, the certificate policy
 * and identity are always applied first. */
#ifndef CERTMQ_PLUGIN_H
#define CERTMQ_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define CERTMQ_PLUGIN_API_VERSION 1

enum certmq_access { CERTMQ_ACCESS_READ = 1, CERTMQ_ACCESS_WRITE = 2 };
enum certmq_decision { CERTMQ_ALLOW = 0, CERTMQ_DENY = 1 };
enum certmq_log_level {
    CERTMQ_LOG_ERR = 1,
    CERTMQ_LOG_WARN = 2,
    CERTMQ_LOG_NOTICE = 4,
    CERTMQ_LOG_INFO = 8,
    CERTMQ_LOG_DEBUG = 16
};

struct certmq_plugin_opts {
    const char *const *keys; /* plugin_opt_NAME -> "NAME" */
    const char *const *values;
    size_t count;
};

/* What certmq gives a plugin. */
struct certmq_plugin_api {
    int version;
    void *loop; /* uv_loop_t * */
    void (*log)(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
};

/* What a plugin gives certmq; any hook may be NULL. ud is passed back to every hook. */
struct certmq_plugin_hooks {
    void *ud;
    /* A client's CONNECT was accepted (identity from its certificate). */
    void (*connect)(void *ud, const char *identity, const char *client_id, const char *address);
    void (*disconnect)(void *ud, const char *identity, const char *client_id);
    /* After the ACL file allowed it: return CERTMQ_ALLOW or CERTMQ_DENY (anything else denies).
     * Called for every publish (write) and every delivery (read). */
    int (*acl_check)(void *ud, const char *identity, const char *client_id, const char *topic,
                     int access);
    /* A message was accepted from a client (after every check). */
    void (*message)(void *ud, const char *identity, const char *topic, const void *payload,
                    size_t len, int qos, int retain);
    /* SIGHUP. */
    void (*reload)(void *ud);
    /* At shutdown, before the plugin is unloaded. */
    void (*cleanup)(void *ud);
};

#endif
