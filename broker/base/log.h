/* log: leveled log lines to the destinations the operator configured.
 *
 * Logging is process-wide (like syslog itself, and like libwebsockets' log hook), so the sink
 * lives in log.c; it is configured once by main and on reload. Every line is one write, so
 * lines from a crash are never interleaved or half-buffered. */
#ifndef CERTMQ_LOG_H
#define CERTMQ_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* Bit values match mosquitto's log_type names (see config docs). */
enum log_level {
    LOGL_ERR = 1 << 0,
    LOGL_WARN = 1 << 1,
    LOGL_NOTICE = 1 << 2,
    LOGL_INFO = 1 << 3,
    LOGL_DEBUG = 1 << 4,
    LOGL_SUBSCRIBE = 1 << 5,
    LOGL_UNSUBSCRIBE = 1 << 6,
    LOGL_WEBSOCKETS = 1 << 7,
};
#define LOGL_ALL 0xff
#define LOGL_DEFAULT (LOGL_ERR | LOGL_WARN | LOGL_NOTICE | LOGL_INFO)

enum log_dest {
    LOGD_STDERR = 1 << 0,
    LOGD_STDOUT = 1 << 1,
    LOGD_SYSLOG = 1 << 2,
    LOGD_FILE = 1 << 3,
};

/* file_path is used when dests has LOGD_FILE; returns 0 or -1 (file cannot be opened, errno set).
 */
int log_configure(unsigned levels, unsigned dests, const char *file_path, bool timestamps);
void log_close(void);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Throttling a repeated log line: true (and *last = now) when nothing was logged within
 * interval_ms before now (ms); a *last of 0 means never. */
bool log_due(int64_t *last, int64_t now, int64_t interval_ms);

#define log_err(...) log_msg(LOGL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOGL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOGL_DEBUG))                                                               \
            log_msg(LOGL_DEBUG, __VA_ARGS__);                                                      \
    } while (0)

#endif
