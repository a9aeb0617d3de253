/* log: formats one line and writes it whole to each configured destination. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
    unsigned levels;
    unsigned dests;
    int fd;
    bool timestamps;
    bool syslog_open;
    bool journal; /* stderr is systemd's journal: priorities as <N> prefixes, no timestamps */
} L = {LOGL_DEFAULT, LOGD_STDERR, -1, true, false, false};

/* systemd sets JOURNAL_STREAM to the device:inode of the stream it connected; stderr may have
 * been redirected since (a shell wrapper), so it counts only if it is still that stream. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int log_configure(unsigned levels, unsigned dests, const char *file_path, bool timestamps)
{
    int fd = -1;
    if (dests & LOGD_FILE) {
        fd = open(file_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0)
            return -1;
    }
    if (L.fd >= 0)
        close(L.fd);
    L.fd = fd;
    L.levels = levels;
    L.dests = dests;
    L.timestamps = timestamps;
    L.journal = stderr_is_journal();
    if ((dests & LOGD_SYSLOG) && !L.syslog_open) {
        openlog("certmq", LOG_PID, LOG_DAEMON);
        L.syslog_open = true;
    }
    return 0;
}

void log_close(void)
{
    if (L.fd >= 0)
        close(L.fd);
    L.fd = -1;
    if (L.syslog_open)
        closelog();
    L.syslog_open = false;
}

bool log_enabled(enum log_level level)
{
    return (L.levels & level) != 0;
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOGL_ERR:
        return "error";
    case LOGL_WARN:
        return "warning";
    case LOGL_NOTICE:
        return "notice";
    case LOGL_DEBUG:
        return "debug";
    case LOGL_SUBSCRIBE:
        return "subscribe";
    case LOGL_UNSUBSCRIBE:
        return "unsubscribe";
    case LOGL_WEBSOCKETS:
        return "websockets";
    default:
        return "info";
    }
}

static int syslog_prio(enum log_level level)
{
    switch (level) {
    case LOGL_ERR:
        return LOG_ERR;
    case LOGL_WARN:
        return LOG_WARNING;
    case LOGL_NOTICE:
        return LOG_NOTICE;
    case LOGL_DEBUG:
        return LOG_DEBUG;
    default:
        return LOG_INFO;
    }
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!(L.levels & level) || !L.dests)
        return;
    char body[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);

    if (L.dests & LOGD_SYSLOG)
        syslog(syslog_prio(level), "%s", body);

    char line[1700];
    int n;
    if (L.timestamps) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03ldZ %s: %s\n", when, ts.tv_nsec / 1000000,
                     level_name(level), body);
    } else {
        n = snprintf(line, sizeof(line), "%s: %s\n", level_name(level), body);
    }
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if ((L.dests & LOGD_STDERR) && L.journal) {
        /* journald keeps its own timestamps and reads the level from the prefix */
        char jl[1700];
        int jn =
            snprintf(jl, sizeof(jl), "<%d>%s: %s\n", syslog_prio(level), level_name(level), body);
        if (jn > 0)
            write_all(STDERR_FILENO, jl, (size_t)jn < sizeof(jl) ? (size_t)jn : sizeof(jl) - 1);
    } else if (L.dests & LOGD_STDERR) {
        write_all(STDERR_FILENO, line, len);
    }
    if (L.dests & LOGD_STDOUT)
        write_all(STDOUT_FILENO, line, len);
    if ((L.dests & LOGD_FILE) && L.fd >= 0)
        write_all(L.fd, line, len);
}

bool log_due(int64_t *last, int64_t now, int64_t interval_ms)
{
    if (*last && now - *last < interval_ms)
        return false;
    *last = now ? now : 1; /* 0 is "never" */
    return true;
}
