/* listener: bind + listen + hand pending connections to the owner. */
#include "listener.h"

#include "log.h"
#include "xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct listener {
    uv_tcp_t tcp;
    void (*on_conn)(void *ud, uv_stream_t *server);
    void *ud;
    char address[64];
    uint16_t port;
    uint64_t accept_errors, last_logged_ms;
};

static void connection_cb(uv_stream_t *s, int status)
{
    struct listener *l = s->data;
    if (status < 0) {
        /* Out of descriptors, typically: libuv sheds the connection. Say so, at most every 10 s. */
        l->accept_errors++;
        uint64_t now = uv_now(s->loop);
        if (!l->last_logged_ms || now - l->last_logged_ms >= 10000) {
            l->last_logged_ms = now;
            log_err("listener %s:%u: cannot accept connections: %s (%llu refused so far; raise "
                    "the open-file limit, ulimit -n)",
                    l->address, l->port, uv_strerror(status), (unsigned long long)l->accept_errors);
        }
        return;
    }
    l->on_conn(l->ud, s);
}

static int resolve(const char *address, uint16_t port, struct sockaddr_storage *ss)
{
    if (!address)
        address = "::";
    if (uv_ip4_addr(address, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(address, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return UV_EINVAL;
}

struct listener *listener_open(uv_loop_t *loop, const char *address, uint16_t port,
                               void (*on_conn)(void *ud, uv_stream_t *server), void *ud, int *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int r = resolve(address, port, &ss);
    if (r == 0 && !address) {
        /* All addresses: try dual-stack IPv6, fall back to IPv4 where IPv6 is off. */
        struct listener *l = listener_open(loop, "::", port, on_conn, ud, err);
        if (l)
            return l;
        return listener_open(loop, "0.0.0.0", port, on_conn, ud, err);
    }
    if (r != 0) {
        *err = r;
        return NULL;
    }
    struct listener *l = xcalloc(1, sizeof(*l));
    l->on_conn = on_conn;
    l->ud = ud;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, 1024, connection_cb);
    if (r != 0) {
        *err = r;
        uv_close((uv_handle_t *)&l->tcp, (uv_close_cb)free);
        return NULL;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, l->address, sizeof(l->address));
        l->port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, l->address, sizeof(l->address));
        l->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    }
    return l;
}

uint16_t listener_port(const struct listener *l)
{
    return l->port;
}

const char *listener_address(const struct listener *l)
{
    return l->address;
}

void listener_set_user(struct listener *l, void *ud)
{
    l->ud = ud;
}

void listener_close(struct listener *l)
{
    if (l)
        uv_close((uv_handle_t *)&l->tcp, (uv_close_cb)free);
}
