/* sessrec: what a cluster node keeps in JetStream so that another node can carry on after it
 * dies; pure, no NATS.
 *
 * A session record is written by the owner of a persistent session's epoch whenever the session
 * changes (connected, disconnected, subscribed, gone) to <prefix>.rec.<H>.<epoch>; a node that
 * finds the previous owner dead reads the record of that owner's epoch and rebuilds the session
 * from it. A heartbeat is written by every node once a second to <prefix>.node.<node>; its
 * checkpoint bounds how far back the stream of QoS >= 1 messages must be replayed for the
 * sessions that were online on it. Layouts, integers big-endian:
 *
 *   record:    u8 version (1) | u8 flags (bit 0: a device was connected; bit 1: the session
 *              is gone) | u64 epoch | u64 since (ms since the epoch: every message the session
 *              was still owed when the record was written reached this node at or after it)
 *              | u16 len + node | u16 len + identity | u16 len + client id
 *              | u32 len + one handover chunk (handover.h: the header and the subscriptions;
 *              empty when gone) | the will, when the session has one (never when gone):
 *              u32 will delay (s) | u16 len + topic | envelope (envelope.h, the rest)
 *   heartbeat: u8 version (1) | u64 started (ms) | u64 checkpoint (ms: every message owed to a
 *              connected session of the node reached it at or after it)
 *
 * Both are read from the network: the decoders check every length and string. */
#ifndef CERTMQ_SESSREC_H
#define CERTMQ_SESSREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSREC_VERSION 1
#define SESSREC_ONLINE 1
#define SESSREC_GONE 2
#define SESSREC_BEAT_LEN 17

struct sessrec {
    uint8_t flags;
    uint64_t epoch;
    int64_t since_ms;
    const char *node, *identity, *client_id; /* not NUL-terminated: lengths below */
    size_t node_len, identity_len, client_id_len;
    const uint8_t *chunk; /* the handover chunk; checked when it is decoded */
    size_t chunk_len;
    bool has_will;
    uint32_t will_delay_s;
    const char *will_topic; /* not checked: the topic rules are the broker's */
    size_t will_topic_len;
    const uint8_t *will_env; /* checked when it is decoded */
    size_t will_env_len;
};

/* Bytes sessrec_encode needs for r with a chunk of r->chunk_len bytes. */
size_t sessrec_size(const struct sessrec *r);
/* Encode r into out (cap bytes): the length, or 0 when it does not fit. */
size_t sessrec_encode(const struct sessrec *r, uint8_t *out, size_t cap);
/* Decode p: 0 and *r borrowing p, or -1 when it is not a valid record (names: 1 to 64 bytes of
 * [A-Za-z0-9_-] for the node; identity and client id valid UTF-8, identity not empty). */
int sessrec_decode(const uint8_t *p, size_t len, struct sessrec *r);

void sessrec_beat_encode(int64_t started_ms, int64_t ckpt_ms, uint8_t out[SESSREC_BEAT_LEN]);
int sessrec_beat_decode(const uint8_t *p, size_t len, int64_t *started_ms, int64_t *ckpt_ms);

#endif
