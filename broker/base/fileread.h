/* fileread: read a whole operator file (ACL, CA, certificate, key, CRL) only when it is not
 * being written.
 *
 * A reload triggered by SIGHUP or a file watch can run while a tool rewrites the file in place
 * (open, truncate, write in pieces). Loading what is there at that moment loads an empty file or
 * a prefix: an ACL prefix without its trailing deny rules widens access. So a read is accepted
 * only when it is consistent and the file has settled:
 *   - consistent: fstat before and after reading (size, mtime and ctime with ns, device, inode)
 *     agree, the path still names the same inode, and exactly st_size bytes were read; otherwise
 *     the read is tried again, up to FILEREAD_TRIES times with a FILEREAD_PAUSE_US pause between
 *     tries (the caller is an event loop: a few milliseconds at most);
 *   - settled: a file changed in place (last written more than FILEREAD_WHOLE_MS after its
 *     creation) must not have been modified in the last settle_ms. A file written in one go and
 *     renamed into place (the recommended way) is complete the moment it appears, so it is never
 *     held back. Without a birth time (file system without statx btime) every recently modified
 *     file is held back.
 * A file that fails either test is FILEREAD_UNSTABLE: not an error, the caller keeps what it has
 * and tries again later (the loop's next debounce tick). Knows no loop: libc only. */
#ifndef CERTMQ_FILEREAD_H
#define CERTMQ_FILEREAD_H

#include <stddef.h>
#include <stdint.h>

/* Reads per call: one, plus two more if the first raced with a writer; a writer still active
 * after that is left to the next reload attempt rather than to a longer stall of the loop. */
#define FILEREAD_TRIES 3
/* Pause before a repeated read only (the first read never waits): a writer doing a few
 * write() calls finishes within it; three tries block the loop ~2 ms at most. */
#define FILEREAD_PAUSE_US 1000
/* Quiet time a file changed in place needs before a reload trusts it. Longer than the pauses of
 * tools that write in a few steps (tens of ms), shorter than the loop's debounce (200 ms), so a
 * reload after a normal debounce never waits for it. */
#define FILEREAD_SETTLE_MS 100
/* A file last written within this time of its creation was written in one go (a temporary file
 * filled and renamed into place) rather than rewritten in place. Small, so that a file created
 * and then soon truncated and rewritten in place still counts as rewritten. */
#define FILEREAD_WHOLE_MS 10

enum fileread_status {
    FILEREAD_OK = 0,
    FILEREAD_UNSTABLE = 1,     /* being written: try again later; not an error */
    FILEREAD_ERR = -1,         /* open/read failed; errno says why */
    FILEREAD_TOO_BIG = -2,     /* larger than max */
    FILEREAD_NOT_REGULAR = -3, /* a directory, device, FIFO, ... */
};

/* What identifies one version of a file. btime_ns is -1 when the file system does not say. */
struct fileread_stamp {
    uint64_t dev, ino, size;
    int64_t mtime_ns, ctime_ns, btime_ns;
};

/* Read path (at most max bytes) into *data (NUL-terminated, *len bytes without the NUL; the
 * caller frees it). settle_ms 0 skips the settle test (start-up, --test-config: nothing to keep
 * instead). stamp, when not NULL, receives the version read. On anything but FILEREAD_OK *data
 * is NULL. */
int fileread_stable(const char *path, size_t max, uint32_t settle_ms, struct fileread_stamp *stamp,
                    char **data, size_t *len);
/* Short text for a status ("being written", "too large", ...); FILEREAD_ERR gives strerror. */
const char *fileread_strerror(int status, int err);

#endif
