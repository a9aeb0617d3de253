/* nats_match.h: NATS's own subject matching, written from its documentation for the subject
 * tests (unit and fuzz): tokens split on '.', `*` matches one token, `>` one or more trailing
 * tokens. Independent of the subject module it checks. */
#ifndef CERTMQ_NATS_MATCH_H
#define CERTMQ_NATS_MATCH_H

#include <stdbool.h>
#include <string.h>

static inline bool nats_match(const char *pat, const char *subj)
{
    for (;;) {
        const char *pd = strchr(pat, '.'), *sd = strchr(subj, '.');
        size_t pl = pd ? (size_t)(pd - pat) : strlen(pat);
        size_t sl = sd ? (size_t)(sd - subj) : strlen(subj);
        if (pl == 1 && pat[0] == '>')
            return true;
        if (!(pl == 1 && pat[0] == '*') && (pl != sl || memcmp(pat, subj, pl) != 0))
            return false;
        if (!pd || !sd)
            return !pd && !sd;
        pat = pd + 1;
        subj = sd + 1;
    }
}

#endif
