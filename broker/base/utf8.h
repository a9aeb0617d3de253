/* utf8: is a byte string well-formed UTF-8 (RFC 3629)?
 *
 * One validator for everything certmq reads as text: MQTT strings (no U+0000), MQTT payloads
 * marked as UTF-8 (U+0000 allowed) and identities taken from certificates. */
#ifndef CERTMQ_UTF8_H
#define CERTMQ_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* No surrogates, no overlong forms, nothing above U+10FFFF; U+0000 only when allow_nul. */
bool utf8_valid(const uint8_t *p, size_t len, bool allow_nul);

#endif
