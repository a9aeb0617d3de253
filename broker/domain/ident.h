/* ident: what each certificate identity holds across its sessions, for per-device quotas.
 *
 * One entry per identity that has a session or retained messages; it goes away when both
 * counts are back to zero. A certificate shared by a fleet is one identity: its quota is the
 * fleet's. */
#ifndef CERTMQ_IDENT_H
#define CERTMQ_IDENT_H

#include <stddef.h>
#include <stdint.h>

struct ident {
    uint32_t sessions;       /* online or offline (the entry lives while any exists) */
    uint32_t persistent;     /* ...of them, those that outlive their connection */
    uint32_t online;         /* ...of them, those with a client connected now */
    uint64_t retained_bytes; /* topic + payload of the retained messages it set */
};

struct ident_table;

struct ident_table *ident_table_new(void);
void ident_table_free(struct ident_table *t);
/* The entry for name, created empty when missing. The pointer stays valid until ident_put
 * finds it empty. */
struct ident *ident_get(struct ident_table *t, const char *name);
/* The entry for name, or NULL. */
struct ident *ident_find(const struct ident_table *t, const char *name);
/* Call after lowering a count: frees the entry when it holds nothing any more. */
void ident_put(struct ident_table *t, struct ident *i);
size_t ident_count(const struct ident_table *t);

#endif
