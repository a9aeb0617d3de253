/* log: under systemd's journal (JOURNAL_STREAM names stderr) lines carry <N> priorities and no
 * timestamps; otherwise timestamps; a redirected stderr is not mistaken for the journal. */
#include "check.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fds[2];

static void capture(char *out, size_t n)
{
    ssize_t r = read(fds[0], out, n - 1);
    out[r > 0 ? r : 0] = '\0';
}

static void name_stderr_as_journal(void)
{
    struct stat st;
    char v[64];
    CHECK(fstat(STDERR_FILENO, &st) == 0);
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
}

int main(void)
{
    char got[512];
    int saved = dup(STDERR_FILENO);
    CHECK(pipe(fds) == 0);
    CHECK(dup2(fds[1], STDERR_FILENO) >= 0);

    name_stderr_as_journal();
    CHECK(log_configure(LOGL_DEFAULT, LOGD_STDERR, NULL, true) == 0);
    log_err("disk %s", "full");
    capture(got, sizeof(got));
    CHECK_EQ_STR(got, "<3>error: disk full\n");
    log_notice("hello");
    capture(got, sizeof(got));
    CHECK_EQ_STR(got, "<5>notice: hello\n");

    setenv("JOURNAL_STREAM", "1:2",
           1); /* the journal is some other stream: stderr was redirected */
    CHECK(log_configure(LOGL_DEFAULT, LOGD_STDERR, NULL, true) == 0);
    log_warn("w");
    capture(got, sizeof(got));
    CHECK(got[0] >= '0' && got[0] <= '9'); /* a timestamp first */
    CHECK(strstr(got, "Z warning: w\n") != NULL);

    unsetenv("JOURNAL_STREAM");
    CHECK(log_configure(LOGL_DEFAULT, LOGD_STDERR, NULL, false) == 0);
    log_info("plain");
    capture(got, sizeof(got));
    CHECK_EQ_STR(got, "info: plain\n");

    dup2(saved, STDERR_FILENO);
    return check_finish("log_test");
}
