/* jsreply: the few facts certmq needs from JetStream's replies; pure, no NATS.
 *
 * JetStream answers API requests and publishes with JSON (`{"stream":"KV_x","seq":7}`,
 * `{"type":"io.nats.jetstream.api.v1.stream_info_response",...,"state":{...,"last_seq":9}}`,
 * `{"error":{"code":400,"err_code":10058,"description":"..."}}`) and delivers a consumer's
 * messages with a reply subject that carries the stream and consumer sequences. Both come from
 * the network, so the parser checks the whole text as JSON (bounded depth and length), keeps only
 * the unsigned integers at the paths below and ignores everything else. */
#ifndef CERTMQ_JSREPLY_H
#define CERTMQ_JSREPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Objects and arrays nested deeper than this make a reply invalid. */
#define JSREPLY_MAX_DEPTH 16

struct jsreply {
    bool has_seq, has_last_seq, has_error, has_num_pending;
    uint64_t seq;         /* top-level "seq": a publish ack's stream sequence */
    uint64_t last_seq;    /* "state"."last_seq": a stream info's last sequence */
    uint64_t err_code;    /* "error"."err_code" (JetStream's own code), 0 when absent */
    uint64_t code;        /* "error"."code" (HTTP-like), 0 when absent */
    uint64_t num_pending; /* top-level "num_pending": a new consumer's messages to come */
};

/* Parse a JSON reply of len bytes (not NUL-terminated). 0, or -1 when it is not one complete,
 * valid JSON object (or nests deeper than JSREPLY_MAX_DEPTH). */
int jsreply_parse(const char *p, size_t len, struct jsreply *r);

/* The stream and consumer sequences of a push consumer's delivery, from its reply subject
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (or the longer form
 * with domain and account hash before the stream, 11 or 12 tokens). 0, or -1 when it is not
 * such a subject. */
int jsreply_ack_seqs(const char *subj, size_t len, uint64_t *sseq, uint64_t *cseq);
/* All of such a subject's numbers: the stream and consumer sequences, the message's time in the
 * stream (ns since the epoch) and how many messages the consumer has still to deliver. */
struct jsack {
    uint64_t sseq, cseq, ts_ns, pending;
};
int jsreply_ack_meta(const char *subj, size_t len, struct jsack *a);

#endif
