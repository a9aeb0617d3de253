/* persist: the SQLite store behind persistent sessions and retained messages.
 *
 * Every change is one prepared statement inside a transaction that stays open until
 * persist_commit(), so a loop turn with a thousand publishes costs one fsync. WAL journal with
 * synchronous=FULL: a commit that returned is on disk even after power loss, and the database
 * is never left half-written by a crash. The database is opened with an exclusive lock, so a
 * second broker on the same directory is refused instead of corrupting it. */
#include "persist.h"

#include "buf.h"
#include "hist.h"
#include "log.h"
#include "session.h"
#include "xmalloc.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 1

enum {
    S_INS_MSG,
    S_INS_QUEUE,
    S_SENT,
    S_RELEASED,
    S_DEL_QUEUE,
    S_CLR_QUEUE,
    S_CLR_Q2,
    S_INS_Q2,
    S_DEL_Q2,
    S_SAVE_SESSION,
    S_DEL_SESSION,
    S_DEL_SUBS,
    S_INS_SUB,
    S_DEL_SUB,
    S_SET_RETAINED,
    S_DEL_RETAINED,
    S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_INS_MSG] = "INSERT OR IGNORE INTO msgs(id, topic, payload, qos, retain, expiry_wall_ms, "
                  "props) VALUES(?,?,?,?,?,?,?)",
    [S_INS_QUEUE] = "INSERT OR REPLACE INTO queue(key, seq, msg_id, qos, retain, sub_ids, state, "
                    "packet_id) VALUES(?,?,?,?,?,?,0,0)",
    [S_SENT] = "UPDATE queue SET state=1, packet_id=? WHERE key=? AND seq=?",
    [S_RELEASED] = "UPDATE queue SET state=2 WHERE key=? AND seq=?",
    [S_DEL_QUEUE] = "DELETE FROM queue WHERE key=? AND seq=?",
    [S_CLR_QUEUE] = "DELETE FROM queue WHERE key=?",
    [S_CLR_Q2] = "DELETE FROM qos2_in WHERE key=?",
    [S_INS_Q2] = "INSERT OR IGNORE INTO qos2_in(key, packet_id) VALUES(?,?)",
    [S_DEL_Q2] = "DELETE FROM qos2_in WHERE key=? AND packet_id=?",
    [S_SAVE_SESSION] = "INSERT OR REPLACE INTO sessions(key, identity, client_id, expiry_s, "
                       "offline_wall_ms, version) VALUES(?,?,?,?,?,?)",
    [S_DEL_SESSION] = "DELETE FROM sessions WHERE key=?",
    [S_DEL_SUBS] = "DELETE FROM subs WHERE key=?",
    [S_INS_SUB] = "INSERT OR REPLACE INTO subs(key, filter, options, sub_id) VALUES(?,?,?,?)",
    [S_DEL_SUB] = "DELETE FROM subs WHERE key=? AND filter=?",
    [S_SET_RETAINED] = "INSERT OR REPLACE INTO retained(topic, msg_id) VALUES(?,?)",
    [S_DEL_RETAINED] = "DELETE FROM retained WHERE topic=?",
};

/* Migrations from version N-1 to N, applied in order; index 0 creates version 1. */
static const char *const migrations[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE msgs(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB, qos INTEGER, "
    "retain INTEGER, expiry_wall_ms INTEGER, props BLOB);"
    "CREATE TABLE retained(topic TEXT PRIMARY KEY, msg_id INTEGER NOT NULL);"
    "CREATE TABLE sessions(key BLOB PRIMARY KEY, identity TEXT NOT NULL, client_id TEXT NOT NULL, "
    "expiry_s INTEGER, offline_wall_ms INTEGER, version INTEGER);"
    "CREATE TABLE subs(key BLOB, filter TEXT, options INTEGER, sub_id INTEGER, "
    "PRIMARY KEY(key, filter));"
    "CREATE TABLE queue(key BLOB, seq INTEGER, msg_id INTEGER, qos INTEGER, retain INTEGER, "
    "sub_ids BLOB, state INTEGER, packet_id INTEGER, PRIMARY KEY(key, seq));"
    "CREATE TABLE qos2_in(key BLOB, packet_id INTEGER, PRIMARY KEY(key, packet_id));",
};

struct persist {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    bool in_tx;
    bool failed;
    int64_t wall_offset_ms; /* wall clock ms minus loop clock ms */
    char *path;
    struct session_store sstore;
    struct broker_store bstore;
    struct hist commit_ns; /* COMMIT (the fsync) per loop turn that changed something */
};

/* Commit latency (ns): a WAL fsync on SSD is ~0.1-2 ms, on a spinning or network disk 5-50. */
static const uint64_t commit_bounds[] = {100000,   250000,    500000,    1000000,
                                         2500000,  5000000,   10000000,  25000000,
                                         50000000, 100000000, 250000000, 1000000000};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *persist_sqlite_version(void)
{
    return sqlite3_libversion();
}

const struct hist *persist_commit_hist(const struct persist *p)
{
    return &p->commit_ns;
}

static bool exec(struct persist *p, const char *q)
{
    char *err = NULL;
    if (sqlite3_exec(p->db, q, NULL, NULL, &err) != SQLITE_OK) {
        log_err("persistence: %s: %s", p->path, err ? err : sqlite3_errmsg(p->db));
        sqlite3_free(err);
        return false;
    }
    return true;
}

static sqlite3_stmt *stmt(struct persist *p, int i)
{
    if (p->failed)
        return NULL;
    if (!p->in_tx) {
        if (!exec(p, "BEGIN IMMEDIATE")) {
            p->failed = true;
            return NULL;
        }
        p->in_tx = true;
    }
    sqlite3_reset(p->st[i]);
    sqlite3_clear_bindings(p->st[i]);
    return p->st[i];
}

static void run(struct persist *p, sqlite3_stmt *s)
{
    if (s && sqlite3_step(s) != SQLITE_DONE) {
        log_err("persistence: write failed: %s", sqlite3_errmsg(p->db));
        p->failed = true;
    }
}

static void bind_key(sqlite3_stmt *st, int col, const struct session *s)
{
    size_t len;
    const char *k = session_key(s, &len);
    sqlite3_bind_blob(st, col, k, (int)len, SQLITE_STATIC);
}

/* ---- message bodies ----------------------------------------------------------------------- */

static void put16(struct buf *b, const struct mqtt_bin *v)
{
    uint8_t l[2] = {(uint8_t)(v->len >> 8), (uint8_t)v->len};
    buf_append(b, l, 2);
    buf_append(b, v->p, v->len);
}

static void store_msg(struct persist *p, const struct msg *m)
{
    sqlite3_stmt *st = stmt(p, S_INS_MSG);
    if (!st)
        return;
    struct buf props;
    buf_init(&props);
    uint8_t pf[2] = {m->has_payload_format, m->payload_format};
    buf_append(&props, pf, 2);
    put16(&props, &m->content_type);
    put16(&props, &m->response_topic);
    put16(&props, &m->correlation_data);
    uint8_t ul[4] = {(uint8_t)(m->user_props_len >> 24), (uint8_t)(m->user_props_len >> 16),
                     (uint8_t)(m->user_props_len >> 8), (uint8_t)m->user_props_len};
    buf_append(&props, ul, 4);
    buf_append(&props, m->user_props, m->user_props_len);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)m->id);
    sqlite3_bind_text(st, 2, m->topic, m->topic_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, m->payload, (int)m->payload_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, m->qos);
    sqlite3_bind_int(st, 5, m->retain);
    sqlite3_bind_int64(st, 6, m->expiry_at ? m->expiry_at + p->wall_offset_ms : 0);
    sqlite3_bind_blob(st, 7, buf_head(&props), (int)buf_size(&props), SQLITE_TRANSIENT);
    run(p, st);
    buf_free(&props);
}

static bool get16(const uint8_t **q, const uint8_t *end, struct mqtt_bin *v)
{
    if (end - *q < 2)
        return false;
    v->len = (uint16_t)((*q)[0] << 8 | (*q)[1]);
    *q += 2;
    if (end - *q < v->len)
        return false;
    v->p = *q;
    *q += v->len;
    return true;
}

/* Columns from `first`: topic, payload, qos, retain, expiry_wall_ms, props, id. */
static struct msg *load_msg(struct persist *p, sqlite3_stmt *st, int first)
{
    struct mqtt_publish pub = {0};
    const char *topic = (const char *)sqlite3_column_text(st, first);
    pub.payload = sqlite3_column_blob(st, first + 1);
    pub.payload_len = (uint32_t)sqlite3_column_bytes(st, first + 1);
    pub.qos = (uint8_t)sqlite3_column_int(st, first + 2);
    pub.retain = sqlite3_column_int(st, first + 3);
    int64_t exp = sqlite3_column_int64(st, first + 4);
    const uint8_t *q = sqlite3_column_blob(st, first + 5);
    const uint8_t *end = q + sqlite3_column_bytes(st, first + 5);
    struct mqtt_props *pr = &pub.props;
    if (!topic || !q || end - q < 2)
        return NULL;
    if (q[0]) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT);
        pr->payload_format = q[1];
    }
    q += 2;
    if (!get16(&q, end, &pr->content_type) || !get16(&q, end, &pr->response_topic) ||
        !get16(&q, end, &pr->correlation_data) || end - q < 4)
        return NULL;
    if (pr->content_type.len)
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
    if (pr->response_topic.len)
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
    if (pr->correlation_data.len)
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
    uint32_t ul = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    q += 4;
    if ((uint32_t)(end - q) < ul)
        return NULL;
    pr->user_props = q;
    pr->user_props_len = ul;
    return msg_new(topic, strlen(topic), &pub, exp ? exp - p->wall_offset_ms : 0,
                   (uint64_t)sqlite3_column_int64(st, first + 6));
}

/* ---- session store ------------------------------------------------------------------------ */

static void st_enqueued(void *ctx, const struct session *s, const struct session_delivery *d)
{
    struct persist *p = ctx;
    store_msg(p, d->msg);
    sqlite3_stmt *st = stmt(p, S_INS_QUEUE);
    if (!st)
        return;
    bind_key(st, 1, s);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)d->seq);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)d->msg->id);
    sqlite3_bind_int(st, 4, d->qos);
    sqlite3_bind_int(st, 5, d->retain);
    sqlite3_bind_blob(st, 6, d->sub_ids, (int)(d->n_sub_ids * sizeof(uint32_t)), SQLITE_STATIC);
    run(p, st);
}

static void st_sent(void *ctx, const struct session *s, uint64_t seq, uint16_t id)
{
    struct persist *p = ctx;
    sqlite3_stmt *st = stmt(p, S_SENT);
    if (!st)
        return;
    sqlite3_bind_int(st, 1, id);
    bind_key(st, 2, s);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
    run(p, st);
}

static void st_seq(struct persist *p, int which, const struct session *s, uint64_t seq)
{
    sqlite3_stmt *st = stmt(p, which);
    if (!st)
        return;
    bind_key(st, 1, s);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    run(p, st);
}

static void st_released(void *ctx, const struct session *s, uint64_t seq)
{
    st_seq(ctx, S_RELEASED, s, seq);
}

static void st_removed(void *ctx, const struct session *s, uint64_t seq)
{
    st_seq(ctx, S_DEL_QUEUE, s, seq);
}

static void by_key(struct persist *p, int which, const struct session *s)
{
    sqlite3_stmt *st = stmt(p, which);
    if (!st)
        return;
    bind_key(st, 1, s);
    run(p, st);
}

static void st_cleared(void *ctx, const struct session *s)
{
    by_key(ctx, S_CLR_QUEUE, s);
    by_key(ctx, S_CLR_Q2, s);
}

static void st_qos2_in(void *ctx, const struct session *s, uint16_t id, bool add)
{
    struct persist *p = ctx;
    sqlite3_stmt *st = stmt(p, add ? S_INS_Q2 : S_DEL_Q2);
    if (!st)
        return;
    bind_key(st, 1, s);
    sqlite3_bind_int(st, 2, id);
    run(p, st);
}

static void st_session_saved(void *ctx, const struct session *s, int64_t offline_since)
{
    struct persist *p = ctx;
    sqlite3_stmt *st = stmt(p, S_SAVE_SESSION);
    if (!st)
        return;
    bind_key(st, 1, s);
    sqlite3_bind_text(st, 2, session_identity(s), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, session_client_id(s), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, session_expiry_s(s));
    sqlite3_bind_int64(st, 5, offline_since ? offline_since + p->wall_offset_ms : 0);
    sqlite3_bind_int(st, 6, session_version(s));
    run(p, st);
}

static void st_session_deleted(void *ctx, const struct session *s)
{
    by_key(ctx, S_DEL_SESSION, s);
    by_key(ctx, S_DEL_SUBS, s);
    by_key(ctx, S_CLR_QUEUE, s);
    by_key(ctx, S_CLR_Q2, s);
}

static void st_sub(void *ctx, const struct session *s, const char *filter, size_t len,
                   uint8_t options, uint32_t sub_id, bool add)
{
    struct persist *p = ctx;
    sqlite3_stmt *st = stmt(p, add ? S_INS_SUB : S_DEL_SUB);
    if (!st)
        return;
    bind_key(st, 1, s);
    sqlite3_bind_text(st, 2, filter, (int)len, SQLITE_STATIC);
    if (add) {
        sqlite3_bind_int(st, 3, options);
        sqlite3_bind_int64(st, 4, sub_id);
    }
    run(p, st);
}

static void st_retained(void *ctx, const struct msg *m)
{
    struct persist *p = ctx;
    if (m->payload_len == 0) {
        sqlite3_stmt *st = stmt(p, S_DEL_RETAINED);
        if (st) {
            sqlite3_bind_text(st, 1, m->topic, m->topic_len, SQLITE_STATIC);
            run(p, st);
        }
        return;
    }
    store_msg(p, m);
    sqlite3_stmt *st = stmt(p, S_SET_RETAINED);
    if (!st)
        return;
    sqlite3_bind_text(st, 1, m->topic, m->topic_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)m->id);
    run(p, st);
}

/* ---- open, load, commit ------------------------------------------------------------------- */

static int schema_version(struct persist *p)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(p->db, "SELECT value FROM meta WHERE key='schema_version'", -1, &st,
                           NULL) != SQLITE_OK)
        return 0;
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return v;
}

struct persist *persist_open(const char *dir, struct diag *d)
{
    struct persist *p = xcalloc(1, sizeof(*p));
    hist_init(&p->commit_ns, commit_bounds, sizeof(commit_bounds) / sizeof(commit_bounds[0]));
    size_t n = strlen(dir) + 16;
    p->path = xmalloc(n);
    snprintf(p->path, n, "%s/certmq.db", dir);
    int r = sqlite3_open_v2(p->path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    const char *why = NULL;
    char *err = NULL;
    if (r != SQLITE_OK) {
        why = sqlite3_errmsg(p->db);
    } else {
        sqlite3_busy_timeout(p->db, 0);
        r = sqlite3_exec(p->db,
                         "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; "
                         "PRAGMA synchronous=FULL; BEGIN IMMEDIATE; COMMIT;",
                         NULL, NULL, &err);
        if (r == SQLITE_BUSY || r == SQLITE_LOCKED)
            why = "the database is locked (is another certmq using this persistence_location?)";
        else if (r != SQLITE_OK)
            why = err ? err : sqlite3_errmsg(p->db);
    }
    if (!why) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(p->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK) {
            why = sqlite3_errmsg(p->db);
        } else {
            if (sqlite3_step(st) != SQLITE_ROW ||
                strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
                why = "the database is corrupt (PRAGMA quick_check failed)";
            sqlite3_finalize(st);
        }
    }
    if (!why) {
        int v = schema_version(p);
        int want = (int)(sizeof(migrations) / sizeof(migrations[0]));
        if (v > want) {
            why = "the database was written by a newer certmq (unknown schema version)";
        } else {
            for (; v < want && !why; v++) {
                char q[80];
                snprintf(q, sizeof(q),
                         "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', %d)",
                         v + 1);
                if (!exec(p, "BEGIN") || !exec(p, migrations[v]) || !exec(p, q) ||
                    !exec(p, "COMMIT"))
                    why = "cannot create or migrate the schema";
            }
        }
    }
    for (int i = 0; i < S_COUNT && !why; i++)
        if (sqlite3_prepare_v2(p->db, sql[i], -1, &p->st[i], NULL) != SQLITE_OK)
            why = sqlite3_errmsg(p->db);
    if (why) {
        diag_add(d, p->path, 0, "cannot use the persistence database: %s", why);
        sqlite3_free(err);
        persist_close(p);
        return NULL;
    }
    sqlite3_free(err);
    p->sstore = (struct session_store){p,          st_enqueued, st_sent,   st_released,
                                       st_removed, st_cleared,  st_qos2_in};
    p->bstore = (struct broker_store){p,      &p->sstore, st_session_saved, st_session_deleted,
                                      st_sub, st_retained};
    return p;
}

const struct broker_store *persist_store(struct persist *p)
{
    return &p->bstore;
}

int persist_commit(struct persist *p)
{
    if (!p->in_tx)
        return 0;
    p->in_tx = false;
    uint64_t t0 = mono_ns();
    bool ok = !p->failed && exec(p, "COMMIT");
    hist_observe(&p->commit_ns, mono_ns() - t0);
    if (!ok) {
        exec(p, "ROLLBACK");
        p->failed = false;
        log_err("persistence: a transaction failed and was rolled back; acknowledged state "
                "since the last commit is in memory only");
        return -1;
    }
    return 0;
}

void persist_vacuum(struct persist *p)
{
    exec(p, "DELETE FROM msgs WHERE id NOT IN (SELECT msg_id FROM queue) AND "
            "id NOT IN (SELECT msg_id FROM retained)");
}

static int load_sessions(struct persist *p, struct broker *b, int64_t now_ms, int64_t wall_ms)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(p->db,
                           "SELECT key, identity, client_id, expiry_s, offline_wall_ms, version "
                           "FROM sessions",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 1);
        const char *cid = (const char *)sqlite3_column_text(st, 2);
        uint32_t exp = (uint32_t)sqlite3_column_int64(st, 3);
        int64_t off = sqlite3_column_int64(st, 4);
        int64_t gone = off ? wall_ms - off : 0; /* 0: it was online when the broker stopped */
        if (exp != UINT32_MAX && gone >= (int64_t)exp * 1000)
            continue; /* expired while the broker was down: purged below */
        broker_restore_session(b, id, cid, exp, (uint8_t)sqlite3_column_int(st, 5),
                               now_ms - (gone > 0 ? gone : 0));
        n++;
    }
    sqlite3_finalize(st);
    return n;
}

/* The loaders below restore one table each, after the sessions they hang off, and return how
 * many rows they restored for the log line. Only unreadable sessions stop the load: a table whose
 * query cannot be prepared is skipped, its rows are then lost rather than the broker. */
static size_t load_subs(struct persist *p, struct broker *b)
{
    sqlite3_stmt *st;
    size_t subs = 0;
    if (sqlite3_prepare_v2(p->db,
                           "SELECT s.identity, s.client_id, b.filter, b.options, b.sub_id "
                           "FROM subs b JOIN sessions s ON s.key = b.key",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct session *s = broker_find(b, (const char *)sqlite3_column_text(st, 0),
                                        (const char *)sqlite3_column_text(st, 1));
        if (s) {
            broker_restore_sub(b, s, (const char *)sqlite3_column_text(st, 2),
                               (uint8_t)sqlite3_column_int(st, 3),
                               (uint32_t)sqlite3_column_int64(st, 4));
            subs++;
        }
    }
    sqlite3_finalize(st);
    return subs;
}

static size_t load_queue(struct persist *p, struct broker *b)
{
    sqlite3_stmt *st;
    size_t queued = 0;
    if (sqlite3_prepare_v2(p->db,
                           "SELECT s.identity, s.client_id, q.seq, q.qos, q.retain, q.sub_ids, "
                           "q.state, q.packet_id, m.topic, m.payload, m.qos, m.retain, "
                           "m.expiry_wall_ms, m.props, m.id FROM queue q JOIN sessions s ON "
                           "s.key = q.key JOIN msgs m ON m.id = q.msg_id ORDER BY q.key, q.seq",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct session *s = broker_find(b, (const char *)sqlite3_column_text(st, 0),
                                        (const char *)sqlite3_column_text(st, 1));
        struct msg *m = s ? load_msg(p, st, 8) : NULL;
        if (!m)
            continue;
        struct session_delivery dl = {.seq = (uint64_t)sqlite3_column_int64(st, 2),
                                      .msg = m,
                                      .qos = (uint8_t)sqlite3_column_int(st, 3),
                                      .retain = sqlite3_column_int(st, 4)};
        int nb = sqlite3_column_bytes(st, 5);
        if (nb > 0 && (size_t)nb <= sizeof(dl.sub_ids)) {
            memcpy(dl.sub_ids, sqlite3_column_blob(st, 5), (size_t)nb);
            dl.n_sub_ids = (uint8_t)(nb / sizeof(uint32_t));
        }
        int state = sqlite3_column_int(st, 6);
        session_restore(s, &dl, state ? (uint16_t)sqlite3_column_int(st, 7) : 0, state == 2);
        msg_unref(m);
        queued++;
    }
    sqlite3_finalize(st);
    return queued;
}

static void load_qos2_in(struct persist *p, struct broker *b)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(p->db,
                           "SELECT s.identity, s.client_id, q.packet_id FROM qos2_in q "
                           "JOIN sessions s ON s.key = q.key",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct session *s = broker_find(b, (const char *)sqlite3_column_text(st, 0),
                                        (const char *)sqlite3_column_text(st, 1));
        if (s)
            session_qos2_in_add(s, (uint16_t)sqlite3_column_int(st, 2));
    }
    sqlite3_finalize(st);
}

static size_t load_retained(struct persist *p, struct broker *b, int64_t now_ms)
{
    sqlite3_stmt *st;
    size_t retained = 0;
    if (sqlite3_prepare_v2(p->db,
                           "SELECT m.topic, m.payload, m.qos, m.retain, m.expiry_wall_ms, "
                           "m.props, m.id FROM retained r JOIN msgs m ON m.id = r.msg_id",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct msg *m = load_msg(p, st, 0);
        if (m && (!m->expiry_at || m->expiry_at > now_ms)) {
            broker_restore_retained(b, m);
            retained++;
        }
        msg_unref(m);
    }
    sqlite3_finalize(st);
    return retained;
}

static void load_next_msg_id(struct persist *p, struct broker *b)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(p->db, "SELECT max(id) FROM msgs", -1, &st, NULL) != SQLITE_OK)
        return;
    if (sqlite3_step(st) == SQLITE_ROW)
        broker_set_next_msg_id(b, (uint64_t)sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
}

/* Purge what expired while the broker was down, and what hung off it. */
static void purge_expired(struct persist *p, int64_t wall_ms)
{
    char q[256];
    snprintf(q, sizeof(q),
             "DELETE FROM sessions WHERE expiry_s < 4294967295 AND offline_wall_ms > 0 AND "
             "offline_wall_ms + expiry_s * 1000 <= %lld",
             (long long)wall_ms);
    exec(p, q);
    exec(p, "DELETE FROM subs WHERE key NOT IN (SELECT key FROM sessions)");
    exec(p, "DELETE FROM queue WHERE key NOT IN (SELECT key FROM sessions)");
    exec(p, "DELETE FROM qos2_in WHERE key NOT IN (SELECT key FROM sessions)");
    persist_vacuum(p);
}

int persist_load(struct persist *p, struct broker *b, int64_t now_ms, int64_t wall_now,
                 struct diag *d)
{
    int64_t wall_ms = wall_now * 1000;
    p->wall_offset_ms = wall_ms - now_ms;
    int sessions = load_sessions(p, b, now_ms, wall_ms);
    if (sessions < 0) {
        diag_add(d, p->path, 0, "cannot read sessions: %s", sqlite3_errmsg(p->db));
        return -1;
    }
    size_t subs = load_subs(p, b);
    size_t queued = load_queue(p, b);
    load_qos2_in(p, b);
    size_t retained = load_retained(p, b, now_ms);
    load_next_msg_id(p, b);
    purge_expired(p, wall_ms);
    log_notice("persistence: %s: restored %d session(s), %zu subscription(s), %zu queued or "
               "in-flight message(s), %zu retained message(s)",
               p->path, sessions, subs, queued, retained);
    return 0;
}

void persist_close(struct persist *p)
{
    if (!p)
        return;
    if (p->db)
        persist_commit(p);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(p->st[i]);
    sqlite3_close(p->db);
    free(p->path);
    free(p);
}
