/* memwatch: resident memory from /proc/self/statm against a budget. */
#include "memwatch.h"

#include <stdio.h>
#include <unistd.h>

/* Back under the budget only below this share of it (per mille), so a broker hovering at the
 * limit does not switch refusals on and off every second. */
#define MEMWATCH_RESUME_PERMILLE 900
/* The default budget: this share (per mille) of what the process may use, leaving room for
 * the page cache, the TLS library and the kernel's socket buffers. */
#define MEMWATCH_DEFAULT_PERMILLE 750

static uint64_t read_u64(const char *path, const char *fmt)
{
    unsigned long long v = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, fmt, &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

uint64_t memwatch_available(void)
{
    uint64_t total = read_u64("/proc/meminfo", "MemTotal: %llu kB") * 1024;
    /* cgroup v2 says "max" when unlimited (fscanf then reads nothing); v1 a huge number. */
    uint64_t cg = read_u64("/sys/fs/cgroup/memory.max", "%llu");
    if (!cg)
        cg = read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes", "%llu");
    if (cg && (!total || cg < total))
        total = cg;
    return total;
}

void memwatch_init(struct memwatch *w, uint64_t limit)
{
    w->limit = limit ? limit : memwatch_available() / 1000 * MEMWATCH_DEFAULT_PERMILLE;
    w->rss = 0;
    w->over = false;
}

bool memwatch_check(struct memwatch *w)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return false;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2 || !w->limit)
        return false;
    w->rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    bool over = w->over ? w->rss >= w->limit / 1000 * MEMWATCH_RESUME_PERMILLE : w->rss >= w->limit;
    bool changed = over != w->over;
    w->over = over;
    return changed;
}
