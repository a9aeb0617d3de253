/* prom: see prom.h. Numbers are printed with snprintf into a small stack buffer and appended;
 * a scrape costs a few hundred appends, never one per message or connection. */
#include "prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void put(struct buf *out, const char *s)
{
    buf_append(out, s, strlen(s));
}

void prom_family(struct buf *out, const char *name, enum prom_type type, const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    put(out, "# HELP ");
    put(out, name);
    put(out, " ");
    /* HELP text escapes backslash and newline; ours are constants without either, but a
     * plugin's are not. */
    for (const char *p = help; *p; p++)
        put(out, *p == '\\' ? "\\\\" : *p == '\n' ? "\\n" : (char[]){*p, 0});
    put(out, "\n# TYPE ");
    put(out, name);
    put(out, " ");
    put(out, types[type]);
    put(out, "\n");
}

static void label_value(struct buf *out, const char *v)
{
    for (const char *p = v; *p; p++)
        put(out, *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : (char[]){*p, 0});
}

/* name{a="x",b="y",le="z"} with any of them absent. */
static void series(struct buf *out, const char *name, const char *suffix,
                   const struct prom_labels *l, const char *le)
{
    put(out, name);
    if (suffix)
        put(out, suffix);
    bool any = false;
    for (int i = 0; l && i < 2 && l->name[i]; i++) {
        put(out, any ? "," : "{");
        put(out, l->name[i]);
        put(out, "=\"");
        label_value(out, l->value[i] ? l->value[i] : "");
        put(out, "\"");
        any = true;
    }
    if (le) {
        put(out, any ? ",le=\"" : "{le=\"");
        put(out, le);
        put(out, "\"");
        any = true;
    }
    put(out, any ? "} " : " ");
}

static void u64_line(struct buf *out, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64 "\n", v);
    put(out, num);
}

static void double_line(struct buf *out, double v)
{
    char num[40];
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN\n");
    else if (isinf(v))
        snprintf(num, sizeof(num), v > 0 ? "+Inf\n" : "-Inf\n");
    else
        snprintf(num, sizeof(num), "%.15g\n", v);
    put(out, num);
}

void prom_u64(struct buf *out, const char *name, const struct prom_labels *l, uint64_t v)
{
    series(out, name, NULL, l, NULL);
    u64_line(out, v);
}

void prom_double(struct buf *out, const char *name, const struct prom_labels *l, double v)
{
    series(out, name, NULL, l, NULL);
    double_line(out, v);
}

void prom_hist(struct buf *out, const char *name, const struct prom_labels *l, const struct hist *h,
               double scale)
{
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i < h->n; i++) {
        cum += h->counts[i];
        snprintf(le, sizeof(le), "%g", (double)h->bounds[i] / scale);
        series(out, name, "_bucket", l, le);
        u64_line(out, cum);
    }
    cum += h->counts[h->n];
    series(out, name, "_bucket", l, "+Inf");
    u64_line(out, cum);
    series(out, name, "_sum", l, NULL);
    double_line(out, (double)h->sum / scale);
    series(out, name, "_count", l, NULL);
    u64_line(out, cum);
}

bool prom_name_valid(const char *s, bool label)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
        if (!alpha && (p == s || c < '0' || c > '9'))
            return false;
    }
    return true;
}
