/* cluster_link: one NATS connection (nats.c 3.4.1) served by certmq's loop.
 *
 * nats.c's own libuv adapter (nats/adapters/libuv.h) refuses an attach from another thread for
 * a connection that was never attached (NATS_ILLEGAL_STATE): exactly what happens when the
 * first connect fails and nats.c's reconnect thread succeeds later. So this adapter creates its
 * loop handles up front, on the loop thread, and keeps the socket state as "what is wanted":
 * calls from nats.c's threads record it under lock and wake the loop, which applies it. Calls on
 * the loop thread apply at once (a publish asking for write readiness costs no wake-up). No
 * message is ever handled off the loop: subscriptions are synchronous (cluster.c). */
#include "cluster_int.h"

#include "log.h"
#include "xmalloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

enum {
    EV_CONNECTED = 1u << 0,
    EV_DISCONNECTED = 1u << 1,
    EV_RECONNECTED = 1u << 2,
    EV_CLOSED = 1u << 3,
    EV_ERROR = 1u << 4,
};

/* Connect attempts per server and the pause between rounds: the first (blocking) attempt at
 * start-up costs at most CONNECT_TIMEOUT_MS per URL. */
#define CONNECT_TIMEOUT_MS 1000
#define RECONNECT_WAIT_MS 1000
/* A dead server (no TCP reset) is noticed after PING_INTERVAL_MS x MAX_PINGS_OUT. */
#define PING_INTERVAL_MS 5000
#define MAX_PINGS_OUT 2

static bool on_loop(const struct cluster_link *l)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &l->loop_thread) != 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void poll_close(struct cluster_link *l)
{
    if (l->poll) {
        uv_close((uv_handle_t *)l->poll, free_handle);
        l->poll = NULL;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct cluster_link *l = h->data;
    natsConnection *nc = l->nc;
    /* An error on the socket is nats.c's to see: a read reports it and starts reconnecting. */
    if (status < 0 || (events & UV_READABLE)) {
        natsConnection_ProcessReadEvent(nc);
        cluster__rx(l->c);
    }
    if (status == 0 && (events & UV_WRITABLE))
        natsConnection_ProcessWriteEvent(nc);
}

/* Loop thread: make the poll handle what nats.c last asked for. */
static void apply(struct cluster_link *l)
{
    uv_mutex_lock(&l->lock);
    bool att = l->pend_attach, det = l->pend_detach, ev = l->pend_events;
    natsSock sock = l->pend_sock;
    int want = l->want;
    if (att)
        l->nc = l->pend_nc;
    l->pend_attach = l->pend_detach = l->pend_events = false;
    uv_mutex_unlock(&l->lock);
    if (det) {
        poll_close(l);
        return;
    }
    if (att) {
        /* A reconnect brings a new socket: the old handle goes first, so no two handles ever
         * watch one descriptor number. */
        poll_close(l);
        l->poll = xmalloc(sizeof(*l->poll));
        if (uv_poll_init_socket(l->loop, l->poll, sock) != 0) {
            log_err("cluster: %s link: cannot poll the NATS socket", l->label);
            free(l->poll);
            l->poll = NULL;
            return;
        }
        l->poll->data = l;
    }
    if (l->poll && (att || ev)) {
        if (want)
            uv_poll_start(l->poll, want, on_poll);
        else
            uv_poll_stop(l->poll);
    }
}

static natsStatus request(struct cluster_link *l)
{
    if (on_loop(l))
        apply(l);
    else
        uv_async_send(&l->async);
    return NATS_OK;
}

static natsStatus ad_attach(void **user, void *loop, natsConnection *nc, natsSock sock)
{
    struct cluster_link *l = loop; /* the "loop" given to natsOptions_SetEventLoop */
    *user = l;
    uv_mutex_lock(&l->lock);
    l->pend_attach = true;
    l->pend_sock = sock;
    l->pend_nc = nc;
    l->want = UV_READABLE;
    uv_mutex_unlock(&l->lock);
    return request(l);
}

static natsStatus ad_events(struct cluster_link *l, int bit, bool add)
{
    uv_mutex_lock(&l->lock);
    l->want = add ? l->want | bit : l->want & ~bit;
    l->pend_events = true;
    uv_mutex_unlock(&l->lock);
    return request(l);
}

static natsStatus ad_read(void *user, bool add)
{
    return ad_events(user, UV_READABLE, add);
}

static natsStatus ad_write(void *user, bool add)
{
    return ad_events(user, UV_WRITABLE, add);
}

static natsStatus ad_detach(void *user)
{
    struct cluster_link *l = user;
    uv_mutex_lock(&l->lock);
    l->pend_detach = true;
    uv_mutex_unlock(&l->lock);
    return request(l);
}

/* ---- connection events (nats.c threads) -------------------------------------------------- */

static void post(struct cluster_link *l, unsigned ev, natsStatus err)
{
    uv_mutex_lock(&l->lock);
    if (!l->closing) {
        l->pend_status |= ev;
        if (err != NATS_OK)
            l->pend_err = err;
        uv_async_send(&l->async);
    }
    uv_mutex_unlock(&l->lock);
}

static void on_connected(natsConnection *nc, void *closure)
{
    post(closure, EV_CONNECTED, NATS_OK);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    post(closure, EV_DISCONNECTED, NATS_OK);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    post(closure, EV_RECONNECTED, NATS_OK);
}

static void on_closed(natsConnection *nc, void *closure)
{
    post(closure, EV_CLOSED, NATS_OK);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    post(closure, EV_ERROR, err);
}

static void log_up(struct cluster_link *l, const char *how)
{
    char url[256] = "?";
    if (l->nc)
        natsConnection_GetConnectedUrl(l->nc, url, sizeof(url));
    l->connected = true;
    log_notice("cluster: %s link %s to NATS at %s", l->label, how, url);
}

/* Loop thread: apply the adapter's pending state, then say what happened to the link. */
static void link_down(struct cluster_link *l)
{
    l->connected = false;
    cluster__link_event(l->c, l, false);
    log_warn("cluster: %s link to NATS lost; reconnecting (local delivery goes on, messages to "
             "and from other nodes wait or are lost meanwhile)",
             l->label);
}

static void on_async(uv_async_t *h)
{
    struct cluster_link *l = h->data;
    apply(l);
    uv_mutex_lock(&l->lock);
    unsigned ev = l->pend_status;
    natsStatus err = l->pend_err;
    l->pend_status = 0;
    l->pend_err = NATS_OK;
    uv_mutex_unlock(&l->lock);
    /* Events coalesced since the last wake-up: the link's state now says which came last. */
    bool up_last = !(ev & EV_DISCONNECTED) ||
                   (l->nc && natsConnection_Status(l->nc) == NATS_CONN_STATUS_CONNECTED);
    if ((ev & EV_DISCONNECTED) && up_last)
        link_down(l);
    if (ev & EV_CONNECTED)
        log_up(l, "connected");
    if (ev & EV_RECONNECTED)
        log_up(l, "reconnected");
    if (ev & (EV_CONNECTED | EV_RECONNECTED))
        cluster__link_event(l->c, l, true);
    if ((ev & EV_DISCONNECTED) && !up_last)
        link_down(l);
    if (ev & EV_ERROR)
        log_warn("cluster: %s link: NATS reports %s", l->label, natsStatus_GetText(err));
    if (ev & EV_CLOSED) {
        l->connected = false;
        log_notice("cluster: %s link closed", l->label);
    }
}

/* ---- options and life -------------------------------------------------------------------- */

static natsStatus set_auth(natsOptions *opts, const struct cluster_opts *o)
{
    natsStatus s = NATS_OK;
    if (o->user)
        s = natsOptions_SetUserInfo(opts, o->user, o->password);
    if (s == NATS_OK && o->creds)
        s = natsOptions_SetUserCredentialsFromFiles(opts, o->creds, NULL);
    if (s == NATS_OK && (o->tls_ca || o->tls_cert))
        s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK && o->tls_ca)
        s = natsOptions_LoadCATrustedCertificates(opts, o->tls_ca);
    if (s == NATS_OK && o->tls_cert)
        s = natsOptions_LoadCertificatesChain(opts, o->tls_cert, o->tls_key);
    return s;
}

static natsStatus make_opts(natsOptions *opts, struct cluster_link *l, const char *label,
                            const struct cluster_opts *o, bool noecho)
{
    char name[128];
    snprintf(name, sizeof(name), "certmq %s %s %s", o->name, o->node, label);
    natsStatus s = natsOptions_SetServers(opts, (const char **)o->urls, (int)o->url_count);
    /* Node i lists its nearest server first; keep that order. */
    if (s == NATS_OK)
        s = natsOptions_SetNoRandomize(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, CONNECT_TIMEOUT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, MAX_PINGS_OUT);
    /* No flusher thread: writes happen when the loop finds the socket writable. */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho(opts, noecho);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, l);
    if (s == NATS_OK)
        s = natsOptions_SetEventLoop(opts, l, ad_attach, ad_read, ad_write, ad_detach);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, l);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, l);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, l);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, on_error, l);
    return s == NATS_OK ? set_auth(opts, o) : s;
}

int cluster__link_open(struct cluster_link *l, struct cluster *c, const char *label,
                       uv_loop_t *loop, const struct cluster_opts *o, bool noecho)
{
    memset(l, 0, sizeof(*l));
    l->c = c;
    l->label = label;
    l->loop = loop;
    l->loop_thread = uv_thread_self();
    uv_mutex_init(&l->lock);
    uv_async_init(loop, &l->async, on_async);
    l->async.data = l;
    l->open = true;
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = make_opts(opts, l, label, o, noecho);
    if (s == NATS_OK)
        s = natsConnection_Connect(&l->nc, opts);
    natsOptions_Destroy(opts);
    if (s == NATS_OK) {
        log_up(l, "connected");
        return 0;
    }
    if (s == NATS_NOT_YET_CONNECTED) {
        log_warn("cluster: %s link: no NATS server reachable yet (%s); starting anyway, "
                 "retrying every %d ms",
                 label, o->urls[0], RECONNECT_WAIT_MS);
        return 0;
    }
    log_err("cluster: %s link: cannot use the NATS options: %s (%s)", label, natsStatus_GetText(s),
            nats_GetLastError(NULL));
    return -1;
}

void cluster__link_close(struct cluster_link *l)
{
    if (!l->open)
        return;
    uv_mutex_lock(&l->lock);
    l->closing = true;
    uv_mutex_unlock(&l->lock);
    if (l->nc)
        natsConnection_Close(l->nc);
    apply(l);
    poll_close(l);
    uv_close((uv_handle_t *)&l->async, NULL);
}

void cluster__link_free(struct cluster_link *l)
{
    natsConnection_Destroy(l->nc);
    l->nc = NULL;
}

void cluster__link_release(struct cluster_link *l)
{
    if (l->open)
        uv_mutex_destroy(&l->lock);
    l->open = false;
}

bool cluster__request(struct cluster_link *l, const char *inbox, const char *what, const char *subj,
                      const void *body, size_t len, char kind, uint64_t n)
{
    char reply[128];
    snprintf(reply, sizeof(reply), "%s.%c.%" PRIu64, inbox, kind, n);
    natsStatus s = natsConnection_PublishRequest(l->nc, subj, reply, body, (int)len);
    if (s != NATS_OK)
        log_warn("cluster: %s: cannot send to %s: %s", what, subj, natsStatus_GetText(s));
    return s == NATS_OK;
}

natsStatus cluster__reply_inbox(struct cluster_link *l, char **inbox, natsSubscription **sub)
{
    natsStatus s = natsInbox_Create(inbox);
    if (s == NATS_OK) {
        char subj[128];
        snprintf(subj, sizeof(subj), "%s.>", *inbox);
        s = natsConnection_SubscribeSync(sub, l->nc, subj);
    }
    return s;
}

bool cluster__reply_of(const char *subj, const char *inbox, char *kind, uint64_t *n)
{
    size_t il = strlen(inbox);
    if (strncmp(subj, inbox, il) != 0 || subj[il] != '.' || !subj[il + 1] || subj[il + 2] != '.')
        return false;
    *kind = subj[il + 1];
    *n = strtoull(subj + il + 3, NULL, 10);
    return true;
}

uint32_t cluster__replicas(const struct cluster_opts *o)
{
    if (o->retained_replicas)
        return o->retained_replicas;
    return o->url_count < 3 ? (uint32_t)o->url_count : 3;
}
