/* ident: what each certificate identity holds across its sessions, for per-device quotas.
 *
 * One entry per identity that has a session or retained messages; it goes away when both
 * counts are back to zero, unless its publish-rate meters are running: then it stays until
 * ident_sweep finds them refilled, so that a device cannot get a full bucket by reconnecting.
 * A certificate shared by a fleet is one identity: its quota is the fleet's. */
#ifndef CERTMQ_IDENT_H
#define CERTMQ_IDENT_H

#include "quota.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ident {
    uint32_t sessions;       /* online or offline (the entry lives while any exists) */
    uint32_t persistent;     /* ...of them, those that outlive their connection */
    uint32_t online;         /* ...of them, those with a client connected now */
    uint32_t subscriptions;  /* held by its sessions */
    uint32_t retained;       /* retained messages it set */
    uint64_t retained_bytes; /* topic + payload of those */
    /* The limits in force, resolved from its latest client's certificate at CONNECT and on
     * ACL reloads; the meters live as long as the entry, so reconnecting refills nothing. */
    struct quota_limits lim;
    struct quota_meter meter;
    int64_t rate_logged; /* ms: the last log line about its rate */
};

struct ident_table;

struct ident_table *ident_table_new(void);
void ident_table_free(struct ident_table *t);
/* The entry for name, created empty when missing. The pointer stays valid until ident_put
 * finds it empty. */
struct ident *ident_get(struct ident_table *t, const char *name);
/* The entry for name, or NULL. */
struct ident *ident_find(const struct ident_table *t, const char *name);
/* Call after lowering a count: frees the entry when it holds nothing any more (an entry whose
 * meters ran is kept for ident_sweep). */
void ident_put(struct ident_table *t, struct ident *i);
/* Frees the entries kept only for their meters for which rested(ctx, entry) is true. Walks the
 * table only while such entries exist. */
void ident_sweep(struct ident_table *t, bool (*rested)(void *ctx, const struct ident *i),
                 void *ctx);
size_t ident_count(const struct ident_table *t);

#endif
