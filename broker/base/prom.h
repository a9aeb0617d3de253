/* prom: the Prometheus text exposition format 0.0.4, written into a buf. Knows nothing of where
 * the numbers come from. A family is announced once (HELP, TYPE) and then gets its samples;
 * label values are escaped (\\, \", \n), names are the caller's constants (checked in tests),
 * except prom_name_valid() for names that come from elsewhere (plugins). */
#ifndef CERTMQ_PROM_H
#define CERTMQ_PROM_H

#include "buf.h"
#include "hist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

/* At most two labels per sample: every certmq metric needs no more. NULL names end the list. */
struct prom_labels {
    const char *name[2];
    const char *value[2];
};

void prom_family(struct buf *out, const char *name, enum prom_type type, const char *help);
/* name{labels} value; labels may be NULL. */
void prom_u64(struct buf *out, const char *name, const struct prom_labels *l, uint64_t v);
void prom_double(struct buf *out, const char *name, const struct prom_labels *l, double v);
/* name_bucket{labels,le="..."} (cumulative, "+Inf" last), name_sum, name_count; values in the
 * histogram's unit divided by scale (e.g. 1e9 for nanoseconds to seconds). */
void prom_hist(struct buf *out, const char *name, const struct prom_labels *l, const struct hist *h,
               double scale);
/* [a-zA-Z_:][a-zA-Z0-9_:]* (metric names) or, with label true, [a-zA-Z_][a-zA-Z0-9_]*. */
bool prom_name_valid(const char *s, bool label);

#endif
