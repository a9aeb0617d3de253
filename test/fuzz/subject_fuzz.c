/* subject fuzz target. The input is used three ways: as a topic (any bytes), which must survive
 * encode -> decode unchanged; as a subject from another node, which the decoder must either
 * reject or decode to a topic that encodes back to exactly that subject (canonical form); and,
 * when it is a valid filter, as a filter whose subjects must match the encoded topic exactly
 * when topic_matches says so. Any disagreement aborts. */
#include "../unit/nats_match.h"
#include "subject.h"
#include "topic.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX "cmq.f"
#define MAXLEN 4096

static char enc[3 * MAXLEN + 64], dec[3 * MAXLEN + 64], enc2[3 * MAXLEN + 64];

static void fuzz__require(bool ok)
{
    if (!ok)
        abort();
}

static void fuzz__topic(const char *t, size_t len)
{
    int n = subject_from_topic(PREFIX, t, len, 2, 11, enc, sizeof(enc));
    fuzz__require(n > 0 && strlen(enc) == (size_t)n);
    unsigned q, p;
    int m = subject_to_topic(PREFIX, enc, (size_t)n, dec, sizeof(dec), &q, &p);
    fuzz__require(m == (int)len && memcmp(dec, t, len) == 0 && q == 2 && p == 11);
    fuzz__require(!strpbrk(enc, " \t\r\n*>") && !strstr(enc, ".."));
}

static void fuzz__subject(const char *s, size_t len)
{
    unsigned q, p;
    int m = subject_to_topic(PREFIX, s, len, dec, sizeof(dec), &q, &p);
    if (m < 0)
        return;
    int n = subject_from_topic(PREFIX, dec, (size_t)m, q, p, enc2, sizeof(enc2));
    fuzz__require(n == (int)len && memcmp(enc2, s, len) == 0);
}

/* Input "FILTER NUL TOPIC": the subjects must agree with topic_matches. */
static void fuzz__filter(const char *d, size_t size)
{
    const char *nul = memchr(d, '\0', size);
    if (!nul)
        return;
    size_t fl = (size_t)(nul - d), tl = size - fl - 1;
    const char *t = nul + 1;
    if (!topic_filter_valid(d, fl) || !topic_name_valid(t, tl))
        return;
    size_t lens[2];
    int n = subject_from_filter(PREFIX, d, fl, enc, sizeof(enc), lens);
    fuzz__require(n == 1 || n == 2);
    if (subject_from_topic(PREFIX, t, tl, 0, 0, dec, sizeof(dec)) < 0)
        abort();
    bool a = nats_match(enc, dec), b = n == 2 && nats_match(enc + lens[0] + 1, dec);
    fuzz__require(!(a && b));
    fuzz__require((a || b) == topic_matches(d, fl, t, tl));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAXLEN)
        return 0;
    fuzz__topic((const char *)data, size);
    fuzz__subject((const char *)data, size);
    fuzz__filter((const char *)data, size);
    return 0;
}
