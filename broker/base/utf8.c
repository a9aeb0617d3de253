/* utf8: the one UTF-8 validator (MQTT strings and payloads, certificate identities). */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

/* Well-formed UTF-8 without surrogates or overlongs; U+0000 only when allow_nul (payloads with
 * a payload format indicator of 1 are RFC 3629 text, where NUL is legal; MQTT strings forbid
 * it). ASCII runs are skipped eight bytes at a time because topics and ids are mostly ASCII:
 * ((w - 0x0101..) | w) & 0x8080.. is non-zero exactly when some byte is 0x00 or >= 0x80, so
 * the word test also stops at a NUL when NUL is not allowed. */
bool utf8_valid(const uint8_t *p, size_t len, bool allow_nul)
{
    size_t i = 0;
    while (i < len) {
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((allow_nul ? w : (w - 0x0101010101010101ull) | w) & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i == len)
            break;
        uint8_t c = p[i];
        if (c < 0x80) {
            if (c == 0 && !allow_nul)
                return false;
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            uint8_t d = p[i + k];
            if ((d & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
            return false; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}
