/* persist: durable sessions, subscriptions, queued and in-flight messages and retained messages
 * in an embedded SQLite database.
 *
 * Changes are written as they happen inside one open transaction that persist_commit() ends;
 * the server commits once per loop turn, just before acknowledgements are written, so a PUBACK
 * or PUBREC never leaves before what it acknowledges is on disk (WAL, synchronous=FULL).
 * Knows the broker only through its store interfaces and restore calls. */
#ifndef CERTMQ_PERSIST_H
#define CERTMQ_PERSIST_H

#include "broker.h"
#include "conn.h"
#include "diag.h"
#include "hist.h"

#include <stdint.h>

struct persist;

/* Open or create DIR/certmq.db. A database that is corrupt, unreadable, locked by another
 * process or of an unknown schema version is refused with the reason in d. */
struct persist *persist_open(const char *dir, struct diag *d);
/* The SQLite version the process runs with. */
const char *persist_sqlite_version(void);
/* Restore everything into b (sessions with their subscriptions, queues and in-flight messages,
 * retained messages), dropping expired sessions and messages. now_ms is the loop clock,
 * wall_now the unix time. Returns 0, or -1 with the reason in d. */
int persist_load(struct persist *p, struct broker *b, int64_t now_ms, int64_t wall_now,
                 struct diag *d);
/* The interfaces to give to broker_set_store(). */
const struct broker_store *persist_store(struct persist *p);
/* Make everything written so far durable. Returns 0 or -1 (logged). */
int persist_commit(struct persist *p);
/* Time each persist_commit() that had something to commit took (ns), for metrics. */
const struct hist *persist_commit_hist(const struct persist *p);
/* Remove message bodies nothing refers to any more. */
void persist_vacuum(struct persist *p);
void persist_close(struct persist *p);

/* persist_run.c: the running server's use of it. Open DIR/certmq.db, restore it into b and have
 * every change committed once per loop turn of cenv before acknowledgements go out; NULL with
 * the reasons logged. */
struct persist *persist_start(const char *dir, struct broker *b, struct conn_env *cenv,
                              int64_t now_ms, int64_t wall_now);
/* On the server's tick: commit, and vacuum when *next_vacuum_ms has come (then moved on). */
void persist_tick(struct persist *p, uint64_t now_ms, uint64_t *next_vacuum_ms);
/* Detach from b and close (p may be NULL). */
void persist_stop(struct persist *p, struct broker *b);

#endif
