/* reason: the one table from internal reasons to MQTT codes and log text. */
#include "reason.h"

#include <stddef.h>

static const struct reason_info table[REASON_COUNT] = {
    [REASON_NONE] = {0x00, 0x00, false, "normal", "none"},
    /* MQTT 5 0x98 Administrative action: the broker ended it, not the protocol. */
    [REASON_REVOKED_CRL] = {0x00, 0x98, true, "certificate revoked", "revoked"},
    [REASON_REVOKED_PLUGIN] = {0x00, 0x98, true, "revoked by plugin", "revoked_by_plugin"},
    [REASON_CERT_EXPIRED] = {0x00, 0x98, true, "certificate expired", "expired"},
};

const struct reason_info *reason_info(enum reason r)
{
    if ((unsigned)r >= REASON_COUNT)
        r = REASON_NONE;
    return &table[r];
}
