/* notify: sd_notify messages for systemd (see notify.h). */
#include "notify.h"

#include <stdio.h>
#include <time.h>

#ifdef CERTMQ_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

void notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status ? status : "running");
}

void notify_reloading(void)
{
    /* MONOTONIC_USEC lets systemd (253+, Type=notify-reload) tell this reload from an older
     * one; older versions ignore it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}
#else
void notify_ready(const char *status)
{
    (void)status;
}

void notify_reloading(void) {}

void notify_stopping(void) {}
#endif
