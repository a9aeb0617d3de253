/* listener: one bound, listening TCP socket on the loop.
 *
 * Knows neither TLS nor MQTT: it reports each pending connection to its owner, who accepts it
 * (or refuses it over a connection limit). */
#ifndef CERTMQ_LISTENER_H
#define CERTMQ_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct listener;

/* Bind address:port (address NULL = all, IPv6 dual-stack first, else IPv4) and listen.
 * reuse_port: SO_REUSEPORT, so that several processes (each with the option) listen on the same
 * port and the kernel spreads new connections over them. Returns NULL with *err set to a libuv
 * error code. */
struct listener *listener_open(uv_loop_t *loop, const char *address, uint16_t port, bool reuse_port,
                               void (*on_conn)(void *ud, uv_stream_t *server), void *ud, int *err);
/* The port actually bound (useful with port 0). */
uint16_t listener_port(const struct listener *l);
const char *listener_address(const struct listener *l);
void listener_set_user(struct listener *l, void *ud);
void listener_close(struct listener *l);

#endif
