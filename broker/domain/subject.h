/* subject: MQTT topic names and filters as NATS subjects, and back; pure, no NATS.
 *
 * Layout: PREFIX.NS.QOS.PART.L1.L2...Ln. PREFIX is the caller's (one or more valid NATS
 * tokens, e.g. "cmq.prod"); NS is `t` for ordinary topics and `d` for topics whose first level
 * starts with `$`, so a filter whose first level is a wildcard (mapped into `t` only) can never
 * match a `$` topic [MQTT-4.7.2-1]; QOS (0-2) and PART (a decimal partition number) are for
 * JetStream streams, subscribers use `*` for both. Each MQTT level becomes exactly one token:
 * bytes in [A-Za-z0-9_-] stay as they are, every other byte becomes `=HH` (upper-case hex), and
 * an empty level is a bare `=`. A literal `=` is `=3D`, so the mapping is injective for every
 * byte sequence, and the decoder accepts only the canonical form, so decode(encode(x)) = x and
 * encode(decode(s)) = s. The same tokens are valid JetStream KV keys.
 *
 * Filters: `+` becomes `*`, a final `#` becomes `>`; since `a/#` also matches `a` and NATS's
 * `>` needs at least one token, such a filter needs a second subscription on the parent. */
#ifndef CERTMQ_SUBJECT_H
#define CERTMQ_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

enum subject_err {
    SUBJECT_TOO_LONG = -1, /* the result would not fit the caller's bound */
    SUBJECT_INVALID = -2,  /* not a valid filter / not a subject of this layout */
};

/* The subject of a topic (any byte sequence) published at qos in partition part, written
 * NUL-terminated to out (cap bytes, the bound on the result including the NUL). Returns the
 * length, or SUBJECT_TOO_LONG. */
int subject_from_topic(const char *prefix, const char *topic, size_t len, unsigned qos,
                       unsigned part, char *out, size_t cap);

/* The subjects to subscribe for a valid MQTT filter (no $share prefix): one, or two when the
 * filter ends in `/#` (the second, the parent, follows the first's NUL in out). Returns the
 * number of subjects and sets lens[]; SUBJECT_TOO_LONG or SUBJECT_INVALID otherwise. */
int subject_from_filter(const char *prefix, const char *filter, size_t len, char *out, size_t cap,
                        size_t lens[2]);

/* A cluster or node name: 1 to max bytes of [A-Za-z0-9_-] (one subject token, plain in logs); p
 * need not be NUL-terminated (names read back from JetStream). */
bool subject_name_ok(const char *p, size_t len, size_t max);

/* The topic of a subject produced by subject_from_topic with the same prefix, written to out (not
 * NUL-terminated; a topic is never longer than its subject). Returns its length and sets qos and
 * part (either may be NULL), or SUBJECT_INVALID for anything not in canonical form. */
int subject_to_topic(const char *prefix, const char *subj, size_t slen, char *out, size_t cap,
                     unsigned *qos, unsigned *part);

/* A NATS queue group name for the shared subscription $share/GROUP/FILTER: the pair encoded
 * like a topic, so distinct pairs never share a queue (NATS groups queue members by name across
 * subjects). NUL-terminated; returns the length or SUBJECT_TOO_LONG. */
int subject_queue_name(const char *group, size_t glen, const char *filter, size_t flen, char *out,
                       size_t cap);

#endif
