/* reason: why certmq refuses or ends a connection, named once.
 *
 * Every refusal and every disconnect that certmq decides carries one of these. The table in
 * reason.c maps each to the MQTT 3.1.1 CONNACK return code, the MQTT 5 reason code and the text
 * that goes into the log (and into an MQTT 5 Reason String), so no module writes a raw reason
 * code of its own. Plain data, libc only: the transport (a certificate verdict) and the MQTT
 * engine share it. */
#ifndef CERTMQ_REASON_H
#define CERTMQ_REASON_H

#include <stdbool.h>
#include <stdint.h>

enum reason {
    REASON_NONE = 0,
    /* Trust verdicts on a connected device (conn_untrust): no will, session per policy. */
    REASON_REVOKED_CRL,    /* the device's certificate or one of its CAs is on a current CRL */
    REASON_REVOKED_PLUGIN, /* a certificate-check plugin (OCSP) says revoked */
    REASON_CERT_EXPIRED,   /* a certificate of the chain passed its notAfter */
    REASON_COUNT
};

struct reason_info {
    uint8_t v3;         /* MQTT 3.1.1 CONNACK return code (refusals only; 0 = not a refusal) */
    uint8_t v5;         /* MQTT 5 CONNACK / DISCONNECT reason code */
    bool untrusted;     /* a trust verdict: the will is not published */
    const char *text;   /* log text and MQTT 5 Reason String */
    const char *metric; /* $SYS / metrics label */
};

/* Never NULL: an out-of-range value maps to REASON_NONE's row. */
const struct reason_info *reason_info(enum reason r);

#endif
