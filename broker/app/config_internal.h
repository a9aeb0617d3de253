/* config_internal: what config.c (the parser) and config_keys.c (the directive table and the
 * handlers of its special keys) share; nothing outside config includes it. */
#ifndef CERTMQ_CONFIG_INTERNAL_H
#define CERTMQ_CONFIG_INTERNAL_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on operator input: generous for real files, small enough that a runaway include or a
 * garbage file cannot make the loader slow or large. */
#define CONFIG__MAX_FILE (4u << 20)
#define CONFIG__MAX_LINE 4096
#define CONFIG__MAX_DEPTH 4   /* include_dir nesting below the main file */
#define CONFIG__MAX_FILES 256 /* files read in total: bounds include fan-out */
#define CONFIG__MAX_ARGS 8
#define CONFIG__MAX_LISTENERS 256
/* crlfiles and proxy_protocol_from networks per listener, plugins, options per plugin */
#define CONFIG__MAX_LIST 1024
/* Unsent output per connection before we stop reading its peer: a few large packets or many
 * coalesced small ones, yet bounded per device under a reconnect storm. Not a config key. */
#define CONFIG__CONN_BACKLOG (256 * 1024)

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

extern const struct config__directive config__table[];
extern const size_t config__table_len;

/* config.c */
void config__err(struct config__parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *config__resolve(const struct config__parser *p, const char *v);
bool config__number(const char *s, int64_t *out);
const struct config__enum *config__enum_find(const struct config__enum *names, const char *v);
void config__enum_err(struct config__parser *p, const struct config__enum *names, const char *key,
                      const char *v);
int config__bool(struct config__parser *p, const char *key, const char *v);
void config__store(void *field, size_t size, int64_t v);
/* Every key of scope at its default, in base (a struct config or config_listener). */
void config__defaults(void *base, enum config__scope scope);
config__fn config__include_dir;

/* config_keys.c */
config__fn config__listener, config__crlfile, config__tls_version, config__subject_username,
    config__proxy_from, config__duration, config__log_dest, config__log_type, config__plugin,
    config__plugin_opt, config__metrics_listener;

/* config_cluster.c */
config__fn config__cluster_nats;
void config__cluster_finish(struct config__parser *p);
void config__cluster_free(struct cluster_opts *o);

#endif
