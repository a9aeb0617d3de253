/* listener: bind + listen + hand pending connections to the owner. */
#include "listener.h"

#include "log.h"
#include "xmalloc.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* libuv 1.44 has no UV_TCP_REUSEPORT (it came with 1.49): make and bind the socket here, with
 * the options uv_tcp_bind would set (SO_REUSEADDR; dual-stack IPv6), then hand it to libuv. */
static int bind_reuse_port(uv_tcp_t *tcp, const struct sockaddr_storage *ss)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int on = 1, off = 0;
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        (ss->ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0) ||
        bind(fd, (const struct sockaddr *)ss, len) != 0) {
        int r = uv_translate_sys_error(errno);
        close(fd);
        return r;
    }
    int r = uv_tcp_open(tcp, fd);
    if (r != 0)
        close(fd);
    return r;
}

struct listener *listener_open(uv_loop_t *loop, const char *address, uint16_t port, bool reuse_port,
                               void (*on_conn)(void *ud, uv_stream_t *server), void *ud, int *err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int r = resolve(address, port, &ss);
    if (r == 0 && !address) {
        /* All addresses: try dual-stack IPv6, fall back to IPv4 where IPv6 is off. */
        struct listener *l = listener_open(loop, "::", port, reuse_port, on_conn, ud, err);
        if (l)
            return l;
        return listener_open(loop, "0.0.0.0", port, reuse_port, on_conn, ud, err);
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
    r = reuse_port ? bind_reuse_port(&l->tcp, &ss)
                   : uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
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
