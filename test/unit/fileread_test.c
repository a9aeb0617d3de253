/* fileread: whole reads, errors, a file changing between the stats (a child process appending
 * all the time), and the settle rule (a file rewritten in place vs one written in one go). */
#include "check.h"
#include "fileread.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pause_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void put(const char *path, const char *text, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static void test_plain_and_errors(const char *path)
{
    char *data;
    size_t len;
    struct fileread_stamp st;
    put(path, "hello\n", O_TRUNC);
    CHECK_EQ_INT(fileread_stable(path, 100, FILEREAD_SETTLE_MS, &st, &data, &len), FILEREAD_OK);
    CHECK_EQ_INT(len, 6);
    CHECK_EQ_STR(data, "hello\n");
    CHECK_EQ_INT(st.size, 6);
    free(data);
    CHECK_EQ_INT(fileread_stable(path, 5, 0, NULL, &data, &len), FILEREAD_TOO_BIG);
    CHECK(data == NULL);
    CHECK_EQ_INT(fileread_stable("/tmp", 5, 0, NULL, &data, &len), FILEREAD_NOT_REGULAR);
    CHECK_EQ_INT(fileread_stable("/nonexistent/x", 5, 0, NULL, &data, &len), FILEREAD_ERR);
    CHECK_EQ_INT(errno, ENOENT);
    put(path, "", O_TRUNC);
    CHECK_EQ_INT(fileread_stable(path, 100, 0, NULL, &data, &len), FILEREAD_OK);
    CHECK_EQ_INT(len, 0);
    free(data);
}

/* A child appends a byte every ~50 us to an 8 MiB file: every read (milliseconds) races with it
 * (the size moves between the stat before and the stat after), so the helper must say UNSTABLE,
 * never hand out a snapshot whose length disagrees with what it stat'ed. */
static void test_changing_between_stats(const char *path)
{
    put(path, "x", O_TRUNC);
    CHECK(truncate(path, 8 << 20) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        int fd = open(path, O_WRONLY | O_APPEND);
        for (int i = 0; i < 20000; i++) {
            if (write(fd, "y", 1) != 1)
                break;
            struct timespec t = {0, 50000};
            nanosleep(&t, NULL);
        }
        _exit(0);
    }
    pause_ms(20);
    int unstable = 0, ok = 0;
    /* Until a race was seen (a loaded machine may deschedule the child for a while). */
    for (int i = 0; i < 500 && (i < 20 || !unstable); i++) {
        char *data;
        size_t len;
        struct fileread_stamp st;
        int r = fileread_stable(path, 64 << 20, 0, &st, &data, &len);
        if (r == FILEREAD_UNSTABLE) {
            unstable++;
            CHECK(data == NULL);
        } else {
            CHECK_EQ_INT(r, FILEREAD_OK);
            CHECK_EQ_INT(len, st.size);
            ok++;
            free(data);
        }
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    CHECK(unstable > 0);
    printf("changing file: %d unstable, %d consistent reads\n", unstable, ok);
}

/* Rewritten in place (created well before): held back until quiet for the settle time. Written
 * in one go (a fresh file, as after a rename into place): complete at once. */
static void test_settle(const char *path, const char *fresh)
{
    char *data;
    size_t len;
    put(path, "old\n", O_TRUNC);
    pause_ms(FILEREAD_WHOLE_MS * 3);
    put(path, "new, half", O_TRUNC);
    CHECK_EQ_INT(fileread_stable(path, 100, FILEREAD_SETTLE_MS, NULL, &data, &len),
                 FILEREAD_UNSTABLE);
    CHECK(data == NULL);
    CHECK_EQ_INT(fileread_stable(path, 100, 0, NULL, &data, &len), FILEREAD_OK);
    free(data);
    pause_ms(FILEREAD_SETTLE_MS + 20);
    CHECK_EQ_INT(fileread_stable(path, 100, FILEREAD_SETTLE_MS, NULL, &data, &len), FILEREAD_OK);
    CHECK_EQ_STR(data, "new, half");
    free(data);

    unlink(fresh);
    put(fresh, "whole\n", O_EXCL);
    CHECK(rename(fresh, path) == 0);
    CHECK_EQ_INT(fileread_stable(path, 100, FILEREAD_SETTLE_MS, NULL, &data, &len), FILEREAD_OK);
    CHECK_EQ_STR(data, "whole\n");
    free(data);
}

int main(void)
{
    char path[] = "/tmp/fileread_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char fresh[64];
    snprintf(fresh, sizeof(fresh), "%s.new", path);
    test_plain_and_errors(path);
    test_changing_between_stats(path);
    test_settle(path, fresh);
    unlink(path);
    unlink(fresh);
    return check_finish("fileread_test");
}
