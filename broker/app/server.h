/* server: the running broker process, wired from a config.
 *
 * Owns the loop's long-lived handles: listeners, signals (SIGHUP reload, SIGTERM/SIGINT stop),
 * the ACL file watch, the housekeeping tick and the $SYS publisher. The only module besides
 * main that knows every other module. */
#ifndef CERTMQ_SERVER_H
#define CERTMQ_SERVER_H

#include "config.h"
#include "diag.h"

#include <uv.h>

struct server;

/* Validate everything a start would load (certificates, keys, CRLs, ACL) without binding.
 * Every problem is added to d. Returns 0 when all is good. */
int server_check(const struct config *cfg, struct diag *d);

/* Load, bind and start. Takes ownership of *cfg (zeroes it). NULL on failure (logged). */
struct server *server_start(uv_loop_t *loop, struct config *cfg);
/* Begin a graceful stop; the loop runs dry afterwards. */
void server_stop(struct server *s);
/* After uv_run has returned. */
void server_free(struct server *s);
/* "certmq X.Y.Z" and the versions of the libraries the process runs with (Mbed TLS, libuv,
 * libwebsockets, SQLite: what the loaded libraries report, not the headers), one per line. */
void server_versions(char *out, size_t n);

#endif
