/* fileread: consistent, settled reads of operator files (see fileread.h). */
#include "fileread.h"

#include "xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL

static int64_t ts_ns(const struct statx_timestamp *t)
{
    return (int64_t)t->tv_sec * NS_PER_S + t->tv_nsec;
}

/* statx rather than stat: it gives the birth time, which tells a file written in one go from
 * one rewritten in place. fd >= 0 stats the open file, else path. */
static int stamp_of(int fd, const char *path, struct fileread_stamp *s, bool *regular)
{
    struct statx x;
    int r = fd >= 0 ? statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &x)
                    : statx(AT_FDCWD, path, 0, STATX_BASIC_STATS | STATX_BTIME, &x);
    if (r != 0)
        return -1;
    s->dev = ((uint64_t)x.stx_dev_major << 32) | x.stx_dev_minor;
    s->ino = x.stx_ino;
    s->size = x.stx_size;
    s->mtime_ns = ts_ns(&x.stx_mtime);
    s->ctime_ns = ts_ns(&x.stx_ctime);
    s->btime_ns = (x.stx_mask & STATX_BTIME) ? ts_ns(&x.stx_btime) : -1;
    if (regular)
        *regular = S_ISREG(x.stx_mode);
    return 0;
}

static bool same(const struct fileread_stamp *a, const struct fileread_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* See fileread.h: a file written in one go (last written within FILEREAD_WHOLE_MS of its
 * creation) is settled; one changed in place is settled once quiet for settle_ms. An mtime in the
 * future (clock step, foreign file system) counts as settled: holding it back would block
 * reloads until the clock caught up. */
static bool settled(const struct fileread_stamp *s, uint32_t settle_ms)
{
    if (settle_ms == 0)
        return true;
    int64_t settle = (int64_t)settle_ms * NS_PER_MS;
    if (s->btime_ns >= 0 && s->mtime_ns - s->btime_ns < FILEREAD_WHOLE_MS * NS_PER_MS)
        return true;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t age = (int64_t)now.tv_sec * NS_PER_S + now.tv_nsec - s->mtime_ns;
    return age < 0 || age >= settle;
}

/* Everything up to EOF, at most max + 1 bytes (so a grown file is seen as too big). */
static char *read_all(int fd, size_t hint, size_t max, size_t *len)
{
    size_t cap = (hint < max ? hint : max) + 2, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 == cap) {
            if (n > max)
                break;
            cap = cap * 2 > max + 2 ? max + 2 : cap * 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* One attempt: FILEREAD_OK with *data set when the read was consistent, FILEREAD_UNSTABLE when
 * it raced with a writer, or an error. */
static int read_once(const char *path, size_t max, struct fileread_stamp *st, char **data,
                     size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FILEREAD_ERR;
    struct fileread_stamp before, after, named;
    bool regular = false;
    int status = FILEREAD_UNSTABLE;
    char *buf = NULL;
    if (stamp_of(fd, NULL, &before, &regular) != 0) {
        status = FILEREAD_ERR;
    } else if (!regular) {
        status = FILEREAD_NOT_REGULAR;
    } else if (before.size > max) {
        status = FILEREAD_TOO_BIG;
    } else if (!(buf = read_all(fd, (size_t)before.size, max, len))) {
        status = FILEREAD_ERR;
    } else if (stamp_of(fd, NULL, &after, NULL) == 0 && same(&before, &after) &&
               stamp_of(-1, path, &named, NULL) == 0 && same(&before, &named) &&
               *len == before.size) {
        status = FILEREAD_OK;
    } else if (*len > max) {
        status = FILEREAD_TOO_BIG;
    }
    int e = errno;
    close(fd);
    errno = e;
    if (status == FILEREAD_OK) {
        *st = before;
        *data = buf;
    } else {
        free(buf);
    }
    return status;
}

int fileread_stable(const char *path, size_t max, uint32_t settle_ms, struct fileread_stamp *stamp,
                    char **data, size_t *len)
{
    struct fileread_stamp st;
    *data = NULL;
    *len = 0;
    int status = FILEREAD_UNSTABLE;
    for (int i = 0; i < FILEREAD_TRIES && status == FILEREAD_UNSTABLE; i++) {
        if (i > 0) {
            struct timespec pause = {0, FILEREAD_PAUSE_US * 1000L};
            nanosleep(&pause, NULL);
        }
        status = read_once(path, max, &st, data, len);
    }
    /* Settling takes longer than the loop may wait: no retry here, the caller comes back. */
    if (status == FILEREAD_OK && !settled(&st, settle_ms)) {
        free(*data);
        *data = NULL;
        *len = 0;
        status = FILEREAD_UNSTABLE;
    }
    if (status == FILEREAD_OK && stamp)
        *stamp = st;
    return status;
}

const char *fileread_strerror(int status, int err)
{
    switch (status) {
    case FILEREAD_OK:
        return "ok";
    case FILEREAD_UNSTABLE:
        return "still being written";
    case FILEREAD_TOO_BIG:
        return "file too large";
    case FILEREAD_NOT_REGULAR:
        return "not a regular file";
    default:
        return strerror(err);
    }
}
