/* acl: the operator's ACL file (mosquitto syntax, plus `match` blocks and %{attr}) and its
 * evaluation.
 *
 * Parsing turns the file into rules grouped by user, patterns that apply to everyone, and
 * `match` blocks that apply to devices by their certificate attributes (certattr.h).
 * acl_compile_cert() builds one client's rule list at CONNECT (the user's rules, the patterns and
 * the rules of the blocks it satisfies, with %u = certificate identity, %c = client id and
 * %{attr} = certificate attribute substituted), so a check never scans the file.
 * Evaluation is pure: deny rules win, then any matching allow rule with the access bit,
 * otherwise deny. Never touches the filesystem except in acl_load(). */
#ifndef CERTMQ_ACL_H
#define CERTMQ_ACL_H

#include "certattr.h"
#include "diag.h"

#include <stdbool.h>
#include <stddef.h>

enum acl_access {
    ACL_READ = 1,  /* receive messages published on a topic */
    ACL_WRITE = 2, /* publish on a topic */
};

/* Largest ACL file accepted: anything bigger is surely not an ACL. */
#define ACL_MAX_FILE (16u << 20)

struct acl;
struct acl_client;

/* Parse text (fname is used in diagnostics). Returns NULL if any line is invalid, with every
 * problem added to d as file:line: reason. Warnings (valid but suspicious lines, e.g. topic
 * rules before any `user`, which in mosquitto apply only to anonymous clients) are added to
 * warn and do not fail the parse; warn may be NULL. */
struct acl *acl_parse(const char *text, size_t len, const char *fname, struct diag *d,
                      struct diag *warn);
/* Read and parse a file; unreadable file is an error in d. The read is consistent (see
 * fileread.h) but not held back for settling: for start-up and --test-config; reloads read with
 * fileread_stable() and call acl_parse(). */
struct acl *acl_load(const char *path, struct diag *d, struct diag *warn);
void acl_free(struct acl *a);
size_t acl_rule_count(const struct acl *a);

/* Compile the rules for one client. identity is the validated certificate identity (never
 * contains + # /). Patterns using %c are skipped when client_id contains '+', '#' or '/', since
 * substituting it could widen the rule. The result does not reference a or its strings. */
struct acl_client *acl_compile(const struct acl *a, const char *identity, const char *client_id);
/* The same for a certificate's attributes (NULL: none): `match` blocks whose conditions all hold
 * add their rules, and %{attr} in patterns is replaced by the attribute's one value. A pattern
 * whose value is missing, ambiguous or unusable as a topic level is skipped. */
struct acl_client *acl_compile_cert(const struct acl *a, const char *identity,
                                    const char *client_id, const struct certattrs *attrs);
void acl_client_free(struct acl_client *c);
/* Number of rules compiled for this client (its user's rules plus the usable patterns). */
size_t acl_client_rule_count(const struct acl_client *c);

/* May this client publish to (ACL_WRITE) or receive from (ACL_READ) the topic name? */
bool acl_check(const struct acl_client *c, const char *topic, size_t len, enum acl_access access);
/* May this client subscribe to the filter? True when some topic the filter matches could be
 * readable (each delivery is still checked with acl_check(ACL_READ)); false when the filter is
 * never readable: no read rule intersects it, or a deny rule covers all of it. */
bool acl_check_subscribe(const struct acl_client *c, const char *filter, size_t len);

/* Limits a `match` block may set for the devices it selects (`limit NAME VALUE`). */
enum acl_limit {
    ACL_LIMIT_CONNECTIONS = 0, /* max_connections_per_identity */
    ACL_LIMIT_RATE,            /* max_publish_rate_per_identity */
    ACL_LIMIT_BYTE_RATE,       /* max_publish_byte_rate_per_identity */
    ACL_LIMIT_SUBSCRIPTIONS,   /* max_subscriptions_per_identity */
    ACL_LIMIT_RETAINED,        /* max_retained_messages_per_identity */
    ACL_LIMIT_COUNT
};
/* The name of a limit in the file (and in certmq.conf, where it sets the default). */
const char *acl_limit_name(enum acl_limit k);
/* The limit k for a certificate with these attributes: when some block it satisfies sets it,
 * *v becomes the largest such value (0 = unlimited, the largest of all) and true is returned;
 * otherwise *v is left as it is (the configured default). */
bool acl_limit(const struct acl *a, const struct certattrs *attrs, enum acl_limit k, uint64_t *v);
/* Does any block set the limit k? (whatever its conditions) */
bool acl_limit_used(const struct acl *a, enum acl_limit k);

/* certmq --explain: what the file means for one device. print receives one line at a time: the
 * attributes, every rule that applies (file:line, substituted), every rule or match block that
 * does not and why, and, when topic is not NULL, whether publishing on it, receiving messages
 * on it and subscribing to it are allowed and by which line. client_id "" = not given. */
typedef void (*acl_print_fn)(void *ctx, const char *line);
void acl_explain(const struct acl *a, const char *identity, const char *client_id,
                 const struct certattrs *attrs, const char *topic, acl_print_fn print, void *ctx);

#endif
