/* notify: tells the service manager where the broker is (systemd's Type=notify protocol):
 * ready once every listener is open, reloading while a SIGHUP reload runs, stopping on
 * shutdown. Outside systemd (no NOTIFY_SOCKET) and in builds without libsystemd it does
 * nothing, so the broker behaves the same when started by hand. */
#ifndef CERTMQ_NOTIFY_H
#define CERTMQ_NOTIFY_H

/* status: one line shown by `systemctl status` */
void notify_ready(const char *status);
void notify_reloading(void);
void notify_stopping(void);

#endif
