/* pidfile: the `pid_file` an init system or operator reads to signal the broker. */
#ifndef CERTMQ_PIDFILE_H
#define CERTMQ_PIDFILE_H

/* Write our pid to path (NULL: nothing). A failure is logged, not fatal: the broker runs on. */
void pidfile_write(const char *path);
/* Remove it at a clean exit (NULL: nothing). */
void pidfile_remove(const char *path);

#endif
