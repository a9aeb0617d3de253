/* connect: the CONNECT decision as a pure function; see connect.h. The order of the checks is
 * the order the client sees them: an unsupported authentication method first, then the client
 * id, the keep-alive, the will topic. */
#include "connect.h"

#include <string.h>

static bool has(const struct mqtt_props *pr, enum mqtt_prop_id id)
{
    return (pr->present & MQTT_PROP_BIT(id)) != 0;
}

/* The client id, or why it is refused. An empty id is allowed only where MQTT allows one (not
 * 3.1; 3.1.1 only with a clean session) and the configuration does. */
static enum reason decide_client_id(const struct connect_request *req, struct connect_result *out)
{
    const struct mqtt_connect *k = req->k;
    if (k->client_id.len == 0) {
        bool ok = req->lim->allow_zero_length_clientid && (k->clean || k->version == MQTT_V5) &&
                  k->version != MQTT_V31;
        if (!ok)
            return REASON_CLIENTID_EMPTY;
        out->client_id.p = (const uint8_t *)req->auto_id;
        out->client_id.len = (uint16_t)strlen(req->auto_id);
        out->assign_id = true;
    } else {
        out->client_id = k->client_id;
        if (memchr(k->client_id.p, 0, k->client_id.len))
            return REASON_CLIENTID_NUL;
    }
    if (req->lim->clientid_match &&
        (strlen(req->identity) != out->client_id.len ||
         memcmp(out->client_id.p, req->identity, out->client_id.len) != 0))
        return REASON_CLIENTID_MISMATCH;
    return REASON_NONE;
}

/* The keep-alive: over max_keepalive (or none where one is required) an MQTT 5 client is told
 * ours in CONNACK, an older one refused. */
static enum reason decide_keepalive(const struct connect_request *req, struct connect_result *out)
{
    uint16_t ka = req->k->keepalive, max = req->lim->max_keepalive;
    out->keepalive = ka;
    if (max < 65535 && (ka == 0 || ka > max)) {
        if (req->k->version != MQTT_V5)
            return REASON_KEEPALIVE_TOO_LONG;
        out->keepalive = max;
        out->server_keepalive = true;
    }
    return REASON_NONE;
}

/* MQTT 5 sessions last as long as the client asks (0 = end with the connection), but no longer
 * than persistent_client_expiration, which the CONNACK then says; 3.1.1 persistent sessions as
 * long as the configuration says. Abandoned sessions must not hold memory forever. */
static void decide_session(const struct connect_request *req, struct connect_result *out)
{
    const struct mqtt_connect *k = req->k;
    uint32_t pce = req->lim->persistent_client_expiration;
    if (k->version == MQTT_V5) {
        out->expiry_s = has(&k->props, MQTT_PROP_SESSION_EXPIRY) ? k->props.session_expiry : 0;
        out->persistent = out->expiry_s > 0;
        if (pce && out->expiry_s > pce) {
            out->expiry_s = pce;
            out->connack.present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
            out->connack.session_expiry = pce;
        }
    } else {
        out->persistent = !k->clean;
        out->expiry_s = pce ? pce : UINT32_MAX;
    }
}

/* What an MQTT 5 CONNACK tells the client about us. */
static void connack_props(const struct connect_request *req, struct connect_result *out)
{
    const struct connect_limits *l = req->lim;
    struct mqtt_props *pr = &out->connack;
    if (req->k->version != MQTT_V5)
        return;
    pr->present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM) |
                   MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) |
                   MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) |
                   MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
                   MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE);
    pr->receive_maximum = l->receive_maximum;
    pr->retain_available = l->retain_available;
    pr->sub_id_available = 1;
    pr->wildcard_sub_available = 1;
    pr->shared_sub_available = 1;
    if (l->max_topic_alias) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        pr->topic_alias_maximum = l->max_topic_alias;
    }
    if (l->max_packet_size) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
        pr->maximum_packet_size = l->max_packet_size;
    }
    if (out->server_keepalive) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE);
        pr->server_keepalive = out->keepalive;
    }
    if (out->assign_id) {
        pr->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
        pr->assigned_client_id = out->client_id;
    }
}

enum reason connect_decide(const struct connect_request *req, struct connect_result *out)
{
    const struct mqtt_connect *k = req->k;
    memset(out, 0, sizeof(*out));
    out->no_problem_info =
        has(&k->props, MQTT_PROP_REQUEST_PROBLEM_INFO) && !k->props.request_problem_info;
    if (has(&k->props, MQTT_PROP_AUTH_METHOD))
        return REASON_ENHANCED_AUTH;
    enum reason r = decide_client_id(req, out);
    if (r == REASON_NONE)
        r = decide_keepalive(req, out);
    if (r != REASON_NONE)
        return r;
    /* A will topic that is no topic name is a malformed CONNECT, not a refusal. */
    if (k->will && !req->topic_ok(req->topic_ctx, (const char *)k->will_topic.p, k->will_topic.len))
        return REASON_WILL_TOPIC_INVALID;
    if (has(&k->props, MQTT_PROP_MAXIMUM_PACKET_SIZE))
        out->peer_max_packet = k->props.maximum_packet_size;
    /* Each alias we set keeps its topic in memory: the client's maximum (up to 65,535) is
     * not ours to honour in full. */
    if (has(&k->props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
        out->out_alias_max = k->props.topic_alias_maximum < req->lim->max_topic_alias_broker
                                 ? k->props.topic_alias_maximum
                                 : req->lim->max_topic_alias_broker;
    if (has(&k->props, MQTT_PROP_RECEIVE_MAXIMUM))
        out->receive_window = k->props.receive_maximum;
    decide_session(req, out);
    connack_props(req, out);
    return REASON_NONE;
}

uint64_t connect_keepalive_limit_ms(uint16_t keepalive_s)
{
    return (uint64_t)keepalive_s * CONNECT_KEEPALIVE_GRACE_MS_PER_S;
}
