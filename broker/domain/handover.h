/* handover: a session as it moves from one cluster node to another; pure, no NATS.
 *
 * When a device's session is taken over by another node, the node that held it sends
 * everything the device is still owed — its subscriptions, the messages in flight (with their
 * packet ids, so the device's acknowledgements still match) and queued, the incoming QoS 2 ids
 * awaiting PUBREL — as one or more chunks, each small enough for one NATS message. Layout,
 * integers big-endian:
 *
 *   chunk:  u8 version (1) | u8 flags (bit 0: last chunk; bit 1: last chunk of the first part)
 *           | u32 index (0, 1, ...) | records
 *   record: u8 kind, then by kind
 *     'H' (once, first in chunk 0): u8 MQTT version | u8 persistent (0/1) | u32 expiry s;
 *         chunk 0 without any record: there is no session to hand over
 *     'S' u16 len + filter | u8 options | u32 subscription id
 *     'D' u16 packet id (0: queued) | u8 flags: QoS (bits 0-1), retain (2), released (3) |
 *         u8 n (0-4) + n × u32 subscription ids | u16 len + topic | u32 len + envelope
 *         (envelope.h; topic and envelope empty when released: only the PUBREL is owed)
 *     'Q' u16 packet id
 *     'R' u64 ms (wall clock): the sender was still replaying the session's messages from the
 *         stream from then on (cluster_replay.c); the receiver goes on with it
 *
 * A session is handed over in two parts, so that the receiving node holds the subscriptions'
 * interest before the sender lets go of them: the first part is the header and the
 * subscriptions, the second (chunk indexes going on) the deliveries and QoS 2 ids.
 *
 * Chunks arrive from the network, so the decoder checks a whole chunk (lengths, kinds, UTF-8,
 * envelopes) before it reports any record of it. */
#ifndef CERTMQ_HANDOVER_H
#define CERTMQ_HANDOVER_H

#include "envelope.h"
#include "session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HANDOVER_VERSION 1
#define HANDOVER_CHUNK_HEAD 6

/* Builds the chunks of one session; each full chunk goes to flush (last on the final one). */
struct handover_writer {
    uint8_t *buf;
    size_t len, cap, limit;
    uint32_t index;
    uint64_t dropped; /* records larger than a chunk may be: not sent */
    const char *node; /* for the envelopes */
    int64_t now;      /* the clock of the messages' expiry */
    void (*flush)(void *ctx, const uint8_t *p, size_t len, bool last);
    void *ctx;
};

/* limit: the largest chunk (a NATS message's payload), at least 256 bytes. The first chunk
 * gets index first (the second part goes on from the first's). */
void handover_begin(struct handover_writer *w, size_t limit, uint32_t first, const char *node,
                    int64_t now, void (*flush)(void *ctx, const uint8_t *p, size_t len, bool last),
                    void *ctx);
void handover_header(struct handover_writer *w, uint8_t version, bool persistent,
                     uint32_t expiry_s);
void handover_sub(struct handover_writer *w, const char *filter, uint8_t options, uint32_t sub_id);
/* The header and every subscription of s: the first part of a handover, a session record. */
void handover_session(struct handover_writer *w, const struct session *s);
/* A delivery of the session (session_foreach_delivery); shared-group ones are not sent. */
void handover_delivery(struct handover_writer *w, const struct session_delivery *d, uint16_t id,
                       bool released);
void handover_qos2_in(struct handover_writer *w, uint16_t id);
void handover_replay(struct handover_writer *w, int64_t since_ms);
/* Chunk flags. */
#define HANDOVER_LAST 1 /* nothing follows */
#define HANDOVER_PART 2 /* the first part is complete: the second is to be asked for */
/* Flush the last chunk with flags how (HANDOVER_LAST or HANDOVER_PART) and free the buffer. */
void handover_end(struct handover_writer *w, uint8_t how);

/* One decoded delivery; pointers borrow the chunk. */
struct handover_delivery {
    uint16_t id;
    uint8_t qos;
    bool retain, released;
    uint8_t n_sub_ids;
    uint32_t sub_ids[SESSION_MAX_SUB_IDS];
    const char *topic;
    size_t topic_len;
    struct envelope env; /* valid when !released */
};

/* What a decoded chunk reports, in order; any slot may be NULL. */
struct handover_visitor {
    void (*header)(void *ctx, uint8_t version, bool persistent, uint32_t expiry_s);
    void (*sub)(void *ctx, const char *filter, size_t len, uint8_t options, uint32_t sub_id);
    void (*delivery)(void *ctx, const struct handover_delivery *d);
    void (*qos2_in)(void *ctx, uint16_t id);
    void (*replay)(void *ctx, int64_t since_ms);
};

/* Decode one chunk: 0 and the records reported to v (*index and *flags set), or -1 when the
 * chunk is not valid (nothing reported). */
int handover_decode(const uint8_t *p, size_t len, const struct handover_visitor *v, void *ctx,
                    uint32_t *index, uint8_t *flags);

#endif
