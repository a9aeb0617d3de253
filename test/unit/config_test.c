/* config: directive table, defaults, relative paths, include_dir, refusals with file:line. */
#include "check.h"
#include "config.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* True when some diagnostic contains frag; prints what it got otherwise, so a failure says why. */
static bool has(const struct diag *d, const char *frag)
{
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->msgs[i], frag))
            return true;
    fprintf(stderr, "  missing: %s\n  got:\n", frag);
    for (size_t i = 0; i < d->count; i++)
        fprintf(stderr, "    %s\n", d->msgs[i]);
    return false;
}

static const char BASE[] = "listener 8883\ncafile ca.crt\ncertfile s.crt\nkeyfile s.key\n"
                           "acl_file acl\n";

/* Parses BASE followed by extra as t.conf (extra starts at line 6). */
static int parse_with(const char *extra, struct config *c, struct diag *d)
{
    char text[4096];
    snprintf(text, sizeof(text), "%s%s", BASE, extra);
    diag_init(d);
    return config_parse(text, strlen(text), "t.conf", c, d);
}

/* Expects extra (after BASE) to fail with frag among the problems. */
static void refused(const char *extra, const char *frag)
{
    struct config c;
    struct diag d;
    CHECK_EQ_INT(parse_with(extra, &c, &d), -1);
    CHECK(has(&d, frag));
    CHECK_EQ_INT(c.listener_count, 0); /* freed and zeroed on failure */
    CHECK(c.listeners == NULL);
    diag_free(&d);
}

/* Expects extra (after BASE) to parse; the caller inspects and frees c. */
static bool accepted(const char *extra, struct config *c)
{
    struct diag d;
    int r = parse_with(extra, c, &d);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "  unexpected: %s\n", d.msgs[i]);
    diag_free(&d);
    CHECK_EQ_INT(r, 0);
    return r == 0;
}

static void test_defaults(void)
{
    struct config c;
    if (!accepted("", &c))
        return;
    const struct config_listener *l = &c.listeners[0];
    CHECK_EQ_INT(c.listener_count, 1);
    CHECK_EQ_INT(l->port, 8883);
    CHECK(l->address == NULL);
    CHECK_EQ_INT(l->protocol, CONFIG_PROTO_MQTT);
    CHECK_EQ_INT(l->socket_domain, CONFIG_SOCKET_ANY);
    CHECK_EQ_INT(l->tls.verify_depth, 4);
    CHECK_EQ_INT(l->tls.identity, TLS_ID_CN);
    CHECK_EQ_INT(l->tls.crl_strict, true);
    CHECK_EQ_INT(l->tls.crl_expired_warn, false);
    CHECK_EQ_INT(l->tls.crlfile_count, 0);
    CHECK(l->tls.tls_version == NULL && l->tls.ciphers == NULL);
    CHECK_EQ_STR(l->file, "t.conf");
    CHECK_EQ_INT(l->line, 1);
    CHECK_EQ_INT(c.broker.session.max_inflight, 20);
    CHECK_EQ_INT(c.broker.session.max_queued, 1000);
    CHECK_EQ_INT(c.broker.session.max_queued_bytes, 8 << 20);
    CHECK_EQ_INT(c.client.message_size_limit, 0);
    CHECK_EQ_INT(c.client.connect.max_packet_size, 1 << 20);
    CHECK_EQ_INT(c.client.connect.max_topic_alias_broker, 10);
    CHECK_EQ_INT(c.client.packet_timeout_ms, 60000);
    CHECK(c.broker.max_retained_bytes == 256 << 20);
    CHECK(c.broker.max_retained_bytes_per_identity == 16 << 20);
    CHECK_EQ_INT(c.broker.max_persistent_sessions_per_identity, 64);
    CHECK(c.max_memory == 0);
    CHECK_EQ_INT(c.client.connect.max_keepalive, 65535);
    CHECK_EQ_INT(c.max_connections, -1);
    CHECK_EQ_INT(c.conn.max_per_ip, 0);
    CHECK_EQ_INT(c.broker.max_topic_length, 65535);
    CHECK_EQ_INT(c.broker.max_topic_levels, 256);
    CHECK_EQ_INT(c.client.connect.max_topic_alias, 10);
    CHECK_EQ_INT(c.broker.max_subscriptions_per_client, 10000);
    CHECK_EQ_INT(c.broker.max_retained_messages, 100000);
    CHECK_EQ_INT(c.broker.persistent_client_expiration, 7 * 86400);
    CHECK(c.client.connect.allow_zero_length_clientid);
    CHECK(c.broker.retain_available);
    CHECK(!c.broker.session.queue_qos0_offline);
    CHECK(!c.broker.upgrade_outgoing_qos);
    CHECK_EQ_INT(c.client.connect.clientid_match, false);
    CHECK_EQ_INT(c.conn.handshake_timeout_ms, 10000);
    CHECK_EQ_INT(c.conn.hello_timeout_ms, 3000);
    CHECK_EQ_INT(c.conn.max_pending_per_ip, 64);
    CHECK_EQ_INT(c.conn.max_handshakes, 64);
    CHECK_EQ_INT(c.client.connect_timeout_ms, 10000);
    CHECK(c.client.discard_revoked);
    CHECK_EQ_INT(c.conn.cert_expiry_warning_days, 30);
    CHECK(c.session_tickets);
    CHECK_EQ_INT(c.session_ticket_lifetime, 86400);
    CHECK(c.tls_ticket_key_file == NULL); /* random keys, as before the option existed */
    CHECK_EQ_INT(c.log_types, LOGL_DEFAULT);
    CHECK_EQ_INT(c.log_dests, LOGD_STDERR);
    CHECK(c.log_file == NULL);
    CHECK(c.log_timestamp);
    CHECK(c.client.connection_messages);
    CHECK_EQ_INT(c.sys_interval, 10);
    CHECK(!c.persistence);
    CHECK(c.pid_file == NULL && c.user == NULL && c.persistence_location == NULL);
    CHECK_EQ_INT(c.plugin_count, 0);
    CHECK_EQ_STR(c.acl_file, "acl");
    config_free(&c);
}

static void test_values(void)
{
    struct config c;
    const char *extra = "crlfile a.pem\ncrlfile /abs/b.pem\nverify_depth 16\n"
                        "cert_identity san_uri\ncrl_mode present\ncrl_expired warn\n"
                        "protocol websockets\nsocket_domain ipv6\ntls_version tlsv1.2\n"
                        "ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\n"
                        "require_certificate true\nuse_identity_as_username true\n"
                        "allow_anonymous false\nper_listener_settings false\n"
                        "set_tcp_nodelay true\nautosave_interval 1800\nautosave_on_changes false\n"
                        "max_inflight_messages 0\nmax_queued_messages 7\n"
                        "max_queued_bytes 9000000000\nmessage_size_limit 268435455\n"
                        "max_packet_size 0\nmax_keepalive 60\nmax_connections 100\n"
                        "max_connections_per_ip 5\nmax_topic_length 1024\nmax_topic_levels 0\n"
                        "max_subscriptions_per_client 0\nmax_topic_alias 0\n"
                        "persistent_client_expiration 2d\nallow_zero_length_clientid false\n"
                        "retain_available false\nqueue_qos0_messages true\n"
                        "upgrade_outgoing_qos true\nclientid_policy match\n"
                        "tls_handshake_timeout 5000\nmax_handshakes 8\nconnect_timeout 3000\n"
                        "tls_hello_timeout 700\nmax_pending_per_ip 0\n"
                        "revoked_session keep\ncert_expiry_warning_days 0\n"
                        "session_tickets false\nsession_ticket_lifetime 60\n"
                        "log_timestamp false\nconnection_messages false\nsys_interval 0\n"
                        "pid_file run/certmq.pid\nuser certmq\npersistence true\n"
                        "persistence_location data\n"
                        "listener 8884 127.0.0.1\ncafile ca.crt\ncertfile s.crt\nkeyfile s.key\n"
                        "use_subject_as_username true\n";
    if (!accepted(extra, &c))
        return;
    const struct config_listener *l = &c.listeners[0];
    CHECK_EQ_INT(c.listener_count, 2);
    CHECK_EQ_INT(l->tls.crlfile_count, 2);
    CHECK_EQ_STR(l->tls.crlfiles[0], "a.pem");
    CHECK_EQ_STR(l->tls.crlfiles[1], "/abs/b.pem");
    CHECK_EQ_INT(l->tls.verify_depth, 16);
    CHECK_EQ_INT(l->tls.identity, TLS_ID_SAN_URI);
    CHECK_EQ_INT(l->tls.crl_strict, false);
    CHECK_EQ_INT(l->tls.crl_expired_warn, true);
    CHECK_EQ_INT(l->protocol, CONFIG_PROTO_WEBSOCKETS);
    CHECK_EQ_INT(l->socket_domain, CONFIG_SOCKET_IPV6);
    CHECK_EQ_STR(l->tls.tls_version, "tlsv1.2");
    CHECK_EQ_STR(l->tls.ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256");
    CHECK_EQ_INT(c.listeners[1].port, 8884);
    CHECK_EQ_STR(c.listeners[1].address, "127.0.0.1");
    CHECK_EQ_INT(c.listeners[1].tls.identity, TLS_ID_SUBJECT);
    CHECK_EQ_INT(c.listeners[1].tls.verify_depth, 4); /* defaults per listener */
    CHECK_EQ_INT(c.listeners[1].protocol, CONFIG_PROTO_MQTT);
    CHECK_EQ_INT(c.listeners[1].line, 57);
    CHECK_EQ_INT(c.broker.session.max_inflight, 65535);
    CHECK_EQ_INT(c.broker.session.max_queued, 7);
    CHECK(c.broker.session.max_queued_bytes == 9000000000ull);
    CHECK_EQ_INT(c.client.message_size_limit, 268435455);
    CHECK_EQ_INT(c.client.connect.max_packet_size, 0);
    CHECK_EQ_INT(c.client.connect.max_keepalive, 60);
    CHECK_EQ_INT(c.max_connections, 100);
    CHECK_EQ_INT(c.conn.max_per_ip, 5);
    CHECK_EQ_INT(c.broker.max_topic_length, 1024);
    CHECK_EQ_INT(c.broker.max_topic_levels, 0);
    CHECK_EQ_INT(c.broker.max_subscriptions_per_client, 0);
    CHECK_EQ_INT(c.client.connect.max_topic_alias, 0);
    CHECK_EQ_INT(c.broker.persistent_client_expiration, 2 * 86400);
    CHECK(!c.client.connect.allow_zero_length_clientid);
    CHECK(!c.broker.retain_available);
    CHECK(c.broker.session.queue_qos0_offline);
    CHECK(c.broker.upgrade_outgoing_qos);
    CHECK_EQ_INT(c.client.connect.clientid_match, true);
    CHECK_EQ_INT(c.conn.handshake_timeout_ms, 5000);
    CHECK_EQ_INT(c.conn.hello_timeout_ms, 700);
    CHECK_EQ_INT(c.conn.max_pending_per_ip, 0);
    CHECK_EQ_INT(c.conn.max_handshakes, 8);
    CHECK_EQ_INT(c.client.connect_timeout_ms, 3000);
    CHECK(!c.client.discard_revoked);
    CHECK_EQ_INT(c.conn.cert_expiry_warning_days, 0);
    CHECK(!c.session_tickets);
    CHECK_EQ_INT(c.session_ticket_lifetime, 60);
    CHECK(!c.log_timestamp);
    CHECK(!c.client.connection_messages);
    CHECK_EQ_INT(c.sys_interval, 0);
    CHECK_EQ_STR(c.pid_file, "run/certmq.pid");
    CHECK_EQ_STR(c.user, "certmq");
    CHECK(c.persistence);
    CHECK_EQ_STR(c.persistence_location, "data");
    config_free(&c);
}

static void test_durations(void)
{
    static const struct {
        const char *v;
        long long secs;
    } ok[] = {{"12h", 12 * 3600},  {"2w", 14 * 86400}, {"1m", 30 * 86400},
              {"1y", 365 * 86400}, {"0d", 0},          {"136y", 136LL * 365 * 86400},
              {"never", 0}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char line[64];
        struct config c;
        snprintf(line, sizeof(line), "persistent_client_expiration %s\n", ok[i].v);
        if (accepted(line, &c)) {
            CHECK_EQ_INT(c.broker.persistent_client_expiration, ok[i].secs);
            config_free(&c);
        }
    }
    static const char *const bad[] = {
        "14", "14x", "d", "-1d", "137y", "1.5d", "99999999999999999999d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[96];
        snprintf(line, sizeof(line), "persistent_client_expiration %s\n", bad[i]);
        refused(
            line,
            "t.conf:6: persistent_client_expiration: expected never, or a number followed by h");
    }
}

static void test_paths(void)
{
    const char *text = "listener 8883\ncafile ca.crt\ncapath cas\ncertfile /abs/s.crt\n"
                       "keyfile ../keys/s key.pem\ncrlfile crl.pem\ncrlpath crls\n"
                       "acl_file acl\nlog_dest file log/certmq.log\npid_file certmq.pid\n"
                       "persistence_location db\nplugin plugins/ocsp.so\n"
                       "tls_ticket_key_file keys/ticket.key\n";
    struct config c;
    struct diag d;
    diag_init(&d);
    CHECK_EQ_INT(config_parse(text, strlen(text), "/etc/certmq/certmq.conf", &c, &d), 0);
    diag_free(&d);
    if (!c.listener_count)
        return;
    const struct config_listener *l = &c.listeners[0];
    CHECK_EQ_STR(l->tls.cafile, "/etc/certmq/ca.crt");
    CHECK_EQ_STR(l->tls.capath, "/etc/certmq/cas");
    CHECK_EQ_STR(l->tls.certfile, "/abs/s.crt");
    CHECK_EQ_STR(l->tls.keyfile, "/etc/certmq/../keys/s key.pem"); /* paths keep inner spaces */
    CHECK_EQ_STR(l->tls.crlfiles[0], "/etc/certmq/crl.pem");
    CHECK_EQ_STR(l->tls.crlpath, "/etc/certmq/crls");
    CHECK_EQ_STR(c.acl_file, "/etc/certmq/acl");
    CHECK_EQ_STR(c.log_file, "/etc/certmq/log/certmq.log");
    CHECK_EQ_INT(c.log_dests, LOGD_FILE);
    CHECK_EQ_STR(c.pid_file, "/etc/certmq/certmq.pid");
    CHECK_EQ_STR(c.persistence_location, "/etc/certmq/db");
    CHECK_EQ_STR(c.plugins[0].path, "/etc/certmq/plugins/ocsp.so");
    CHECK_EQ_STR(c.tls_ticket_key_file, "/etc/certmq/keys/ticket.key");
    config_free(&c);
}

static void test_refusals(void)
{
    const char *cert = "certmq only accepts clients that present a certificate";
    char frag[160];
    static const char *const cert_only[] = {"psk_hint hint\n", "psk_file f\n",
                                            "password_file /etc/pw\n"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(frag, sizeof(frag), ": %s", cert);
        refused(cert_only[i], frag);
    }
    refused("allow_anonymous true\n", "t.conf:6: allow_anonymous true: certmq only accepts");
    refused("require_certificate false\n", "t.conf:6: require_certificate false: certmq only");
    refused("use_identity_as_username false\n",
            "t.conf:6: use_identity_as_username false: certmq always uses the certificate");
    refused("use_subject_as_username false\n",
            "t.conf:6: use_subject_as_username false: certmq always uses the certificate");
    refused("tls_version tlsv1.1\n", "t.conf:6: tls_version tlsv1.1: not supported: use tlsv1.2");
    refused("min_tls_version sslv3\n", "t.conf:6: min_tls_version sslv3: not supported");
    refused("http_dir /www\n", "t.conf:6: http_dir: not supported: WebSocket listeners");
    refused("websockets_log_level 255\n", "t.conf:6: websockets_log_level: not supported");
    refused("bind_address 0.0.0.0\n", "t.conf:6: bind_address: not supported: use 'listener");
    refused("port 1883\n", "t.conf:6: port: not supported: use 'listener PORT [ADDRESS]'");
    refused("per_listener_settings true\n", "t.conf:6: per_listener_settings true: not supported");
    refused("log_dest topic\n", "t.conf:6: log_dest topic: not supported");
    refused("persistence_file x.db\n", "t.conf:6: persistence_file: not supported");
    refused("no_such_thing 1\n", "t.conf:6: unknown configuration key 'no_such_thing'");
}

/* max_retained_messages bounds the retained store; 0 lifts the bound. */
static void test_retained_limit(void)
{
    struct config c;
    struct diag d;
    CHECK_EQ_INT(parse_with("max_retained_messages 3\n", &c, &d), 0);
    CHECK_EQ_INT(c.broker.max_retained_messages, 3);
    config_free(&c);
    diag_free(&d);
    CHECK_EQ_INT(parse_with("max_retained_messages 0\n", &c, &d), 0);
    CHECK_EQ_INT(c.broker.max_retained_messages, 0);
    config_free(&c);
    diag_free(&d);
}

/* Per-identity rates, subscriptions and retained count: unlimited by default, one-second
 * burst, refused publishes; bounds and typos refused with the exact message. */
static void test_identity_limits(void)
{
    struct config c;
    if (accepted("", &c)) {
        const struct quota_limits *q = &c.broker.per_identity;
        CHECK(q->rate == 0 && q->byte_rate == 0 && q->subscriptions == 0 && q->retained == 0);
        CHECK_EQ_INT(c.broker.rate_burst_s, 1);
        CHECK(!c.client.rate_disconnect);
        config_free(&c);
    }
    if (accepted("max_publish_rate_per_identity 50\n"
                 "max_publish_byte_rate_per_identity 1000000000000\n"
                 "publish_rate_burst 5\nrate_limit_action disconnect\n"
                 "max_subscriptions_per_identity 20\nmax_retained_messages_per_identity 7\n",
                 &c)) {
        const struct quota_limits *q = &c.broker.per_identity;
        CHECK(q->rate == 50 && q->byte_rate == 1000000000000ULL && q->subscriptions == 20 &&
              q->retained == 7);
        CHECK_EQ_INT(c.broker.rate_burst_s, 5);
        CHECK(c.client.rate_disconnect);
        config_free(&c);
    }
    if (accepted("rate_limit_action refuse\n", &c)) {
        CHECK(!c.client.rate_disconnect);
        config_free(&c);
    }
    refused("max_publish_rate_per_identity 10000001\n",
            "t.conf:6: max_publish_rate_per_identity: expected a whole number from 0 to 10000000, "
            "not '10000001'");
    refused("max_publish_rate_per_identity -1\n",
            "t.conf:6: max_publish_rate_per_identity: expected a whole number from 0 to 10000000, "
            "not '-1'");
    refused("max_publish_byte_rate_per_identity 1000000000001\n",
            "t.conf:6: max_publish_byte_rate_per_identity: expected a whole number from 0 to "
            "1000000000000, not '1000000000001'");
    refused("publish_rate_burst 0\n",
            "t.conf:6: publish_rate_burst: expected a whole number from 1 to 3600, not '0'");
    refused("publish_rate_burst 3601\n",
            "t.conf:6: publish_rate_burst: expected a whole number from 1 to 3600, not '3601'");
    refused("rate_limit_action drop\n",
            "t.conf:6: rate_limit_action: 'drop' is not one of refuse, disconnect");
    refused("max_subscriptions_per_identity 1k\n",
            "t.conf:6: max_subscriptions_per_identity: expected a whole number from 0 to "
            "10000000, not '1k'");
    refused("max_retained_messages_per_identity 100000001\n",
            "t.conf:6: max_retained_messages_per_identity: expected a whole number from 0 to "
            "100000000, not '100000001'");
}

/* proxy_protocol v2 needs the proxies' networks (and they need it); several per line, spaces or
 * commas, lines accumulate; typos in a network are refused with the reason. reuse_port is off
 * by default. */
static void test_front_door(void)
{
    struct config c;
    if (accepted("", &c)) {
        CHECK(!c.listeners[0].proxy.v2);
        CHECK_EQ_INT(c.listeners[0].proxy.from_count, 0);
        CHECK(!c.listeners[0].reuse_port);
        config_free(&c);
    }
    if (accepted("proxy_protocol v2\nproxy_protocol_from 127.0.0.0/8, 10.0.0.1\n"
                 "proxy_protocol_from 2001:db8::/32\nreuse_port true\n",
                 &c)) {
        const struct config_listener *l = &c.listeners[0];
        CHECK(l->proxy.v2);
        CHECK(l->reuse_port);
        CHECK_EQ_INT(l->proxy.from_count, 3);
        CHECK_EQ_INT(l->proxy.from[0].bits, 8);
        CHECK_EQ_INT(l->proxy.from[1].bits, 32);
        CHECK_EQ_INT(l->proxy.from[2].len, 16);
        config_free(&c);
    }
    refused("proxy_protocol v2\n", "t.conf:1: listener 8883: proxy_protocol v2 needs "
                                   "proxy_protocol_from");
    refused("proxy_protocol_from 127.0.0.1\n",
            "t.conf:1: listener 8883: proxy_protocol_from without proxy_protocol v2");
    refused("proxy_protocol v1\nproxy_protocol_from ::1\n",
            "t.conf:6: proxy_protocol: 'v1' is not one of v2");
    refused("proxy_protocol v2\nproxy_protocol_from 10.1.2.3/8\n",
            "t.conf:7: proxy_protocol_from 10.1.2.3/8: address bits are set beyond the prefix");
    refused("proxy_protocol v2\nproxy_protocol_from 127.0.0.1 haproxy\n",
            "t.conf:7: proxy_protocol_from haproxy: not an IPv4 or IPv6 address");
    refused("proxy_protocol v2\nproxy_protocol_from ,\n",
            "t.conf:7: proxy_protocol_from needs at least one network");
    refused("reuse_port yes\n", "t.conf:6: reuse_port: expected true or false, not 'yes'");
}

static void test_bad_values(void)
{
    refused("max_queued_messages -1\n",
            "t.conf:6: max_queued_messages: expected a whole number from 1 to 10000000, not '-1'");
    refused("max_queued_messages 12abc\n", "t.conf:6: max_queued_messages: expected a whole");
    refused("max_queued_bytes 99999999999999999999\n", "t.conf:6: max_queued_bytes: expected");
    refused("max_keepalive 65536\n", "t.conf:6: max_keepalive: expected a whole number");
    refused(
        "max_retained_messages -5\n",
        "t.conf:6: max_retained_messages: expected a whole number from 0 to 100000000, not '-5'");
    refused("max_keepalive +5\n", "t.conf:6: max_keepalive: expected a whole number");
    refused("max_connections -2\n", "t.conf:6: max_connections: expected a whole number from -1");
    refused("verify_depth 0\n", "t.conf:6: verify_depth: expected a whole number from 1 to 16");
    refused("verify_depth 17\n", "t.conf:6: verify_depth: expected a whole number from 1 to 16");
    refused("session_ticket_lifetime 59\n", "t.conf:6: session_ticket_lifetime: expected");
    refused("tls_ticket_key_file k\nsession_tickets false\n",
            "tls_ticket_key_file is set but session_tickets is false");
    refused("max_inflight_messages lots\n", "t.conf:6: max_inflight_messages: expected");
    refused("retain_available yes\n", "t.conf:6: retain_available: expected true or false");
    refused("retain_available\n", "t.conf:6: retain_available needs a value");
    refused("retain_available true false\n", "t.conf:6: retain_available takes one value, got 2");
    refused("acl_file\n", "t.conf:6: acl_file needs a value");
    refused("cert_identity serial\n",
            "t.conf:6: cert_identity: 'serial' is not one of cn, san_dns, san_uri, san_email");
    refused("protocol mqtts\n", "t.conf:6: protocol: 'mqtts' is not one of mqtt, websockets");
    refused("socket_domain ipx\n", "t.conf:6: socket_domain: 'ipx' is not one of ipv4, ipv6");
    refused("log_type everything\n", "t.conf:6: log_type: 'everything' is not one of error");
    refused("log_dest file\n", "t.conf:6: log_dest file needs a path");
    refused("log_dest stderr now\n", "t.conf:6: log_dest stderr takes no further value");
    refused("listener 70000\ncafile c\ncertfile c\nkeyfile k\n",
            "t.conf:6: listener: port must be a whole number from 0 to 65535, not '70000'");
    refused("listener 1 a b\n", "t.conf:6: listener takes at most 2 values, got 3");
    refused("listener\n", "t.conf:6: usage: listener PORT [ADDRESS]");
    refused("plugin_opt_x 1\n", "t.conf:6: plugin_opt_x before any 'plugin' line");
    refused("plugin p.so\nplugin_opt_ 1\n", "t.conf:7: plugin_opt_: the option needs a name");
    refused("plugin p.so\nplugin_opt_a\n", "t.conf:7: plugin_opt_a needs a value");
    refused("include_dir conf.d\n", "t.conf:6: include_dir: only allowed in a file read");
}

/* Many problems in one file: every one is reported, each at its line, and out stays zeroed. */
static void test_many_errors(void)
{
    const char *text = "cafile early.crt\n"          /* 1: before listener */
                       "listener 8883\n"             /* 2: lacks cafile, certfile, keyfile */
                       "require_certificate false\n" /* 3 */
                       "max_queued_messages -1\n"    /* 4 */
                       "listener 8883\n"             /* 5: duplicate */
                       "listener 8884 ::1\n"         /* 6: lacks everything */
                       "listener 8884 ::1\n"         /* 7: duplicate */
                       "listener 8884\n"             /* 8: another address: fine */
                       "listener 0\r\n"              /* 9: port 0 never clashes, CRLF */
                       "listener 0\n";               /* 10 */
    struct config c;
    struct diag d;
    diag_init(&d);
    CHECK_EQ_INT(config_parse(text, strlen(text), "t.conf", &c, &d), -1);
    CHECK(has(&d, "t.conf:1: cafile must follow a 'listener' line"));
    CHECK(has(&d, "t.conf:2: listener 8883 needs cafile or capath"));
    CHECK(has(&d, "t.conf:2: listener 8883 needs certfile"));
    CHECK(has(&d, "t.conf:2: listener 8883 needs keyfile"));
    CHECK(has(&d, "t.conf:3: require_certificate false"));
    CHECK(has(&d, "t.conf:4: max_queued_messages"));
    CHECK(has(&d, "t.conf:5: duplicate listener 8883 (first at t.conf:2)"));
    CHECK(has(&d, "t.conf:6: listener 8884 needs cafile"));
    CHECK(has(&d, "t.conf:7: duplicate listener 8884 ::1 (first at t.conf:6)"));
    CHECK(has(&d, "t.conf:8: listener 8884 needs cafile"));
    CHECK(has(&d, "t.conf:9: listener 0 needs cafile"));
    CHECK(has(&d, "t.conf:10: listener 0 needs cafile"));
    CHECK(has(&d, "t.conf: no acl_file configured"));
    CHECK_EQ_INT(d.count, 21);
    CHECK_EQ_INT(c.listener_count, 0);
    CHECK(c.files == NULL && c.acl_file == NULL);
    diag_free(&d);

    diag_init(&d);
    CHECK_EQ_INT(config_parse("# nothing\n\n", 11, "e.conf", &c, &d), -1);
    CHECK(has(&d, "e.conf: no listener configured"));
    CHECK(has(&d, "e.conf: no acl_file configured"));
    diag_free(&d);
}

static void test_lexing(void)
{
    struct config c;
    const char *text = "# comment\r\n\r\n   \t\n  listener   8883\t 10.0.0.1  \r\n"
                       "\tcafile  ca.crt \r\ncertfile s.crt\nkeyfile s.key\nacl_file acl";
    struct diag d;
    diag_init(&d);
    CHECK_EQ_INT(config_parse(text, strlen(text), "t.conf", &c, &d), 0);
    diag_free(&d);
    if (c.listener_count) {
        CHECK_EQ_STR(c.listeners[0].address, "10.0.0.1");
        CHECK_EQ_STR(c.listeners[0].tls.cafile, "ca.crt");
        CHECK_EQ_INT(c.listeners[0].line, 4);
        CHECK_EQ_STR(c.acl_file, "acl"); /* last line without a newline */
        config_free(&c);
    }
    char big[5000];
    memset(big, 'x', sizeof(big) - 2);
    big[sizeof(big) - 2] = '\n';
    big[sizeof(big) - 1] = '\0';
    struct diag d2;
    diag_init(&d2);
    CHECK_EQ_INT(config_parse(big, strlen(big), "t.conf", &c, &d2), -1);
    CHECK(has(&d2, "t.conf:1: line longer than 4095 bytes"));
    diag_free(&d2);
    char nul[] = "sys_interval 1\0junk\n";
    diag_init(&d);
    CHECK_EQ_INT(config_parse(nul, sizeof(nul) - 1, "n.conf", &c, &d), -1);
    CHECK(has(&d, "n.conf:1: line contains a NUL byte"));
    diag_free(&d);
}

static void test_logging(void)
{
    struct config c;
    if (accepted("log_dest file a.log\nlog_dest stderr\nlog_dest syslog\nlog_dest file a.log\n"
                 "log_type error\nlog_type debug\nlog_type subscribe\n",
                 &c)) {
        CHECK_EQ_INT(c.log_dests, LOGD_FILE | LOGD_STDERR | LOGD_SYSLOG);
        CHECK_EQ_STR(c.log_file, "a.log");
        CHECK_EQ_INT(c.log_types, LOGL_ERR | LOGL_DEBUG | LOGL_SUBSCRIBE);
        config_free(&c);
    }
    if (accepted("log_dest stdout\nlog_dest none\nlog_type all\n", &c)) {
        CHECK_EQ_INT(c.log_dests, 0);
        CHECK_EQ_INT(c.log_types, LOGL_ALL);
        config_free(&c);
    }
    if (accepted("log_dest none\nlog_dest stdout\nlog_type none\n", &c)) {
        CHECK_EQ_INT(c.log_dests, LOGD_STDOUT);
        CHECK_EQ_INT(c.log_types, 0);
        config_free(&c);
    }
    if (accepted("log_dest file my logs/a b c d e f g h i j.log\n", &c)) {
        CHECK_EQ_STR(c.log_file, "my logs/a b c d e f g h i j.log");
        config_free(&c);
    }
    refused("log_dest file a.log\nlog_dest file b.log\n",
            "t.conf:7: log_dest file: only one log file is supported");
}

static void test_plugins(void)
{
    struct config c;
    if (!accepted("plugin /usr/lib/certmq/ocsp.so\nplugin_opt_timeout_ms 500\n"
                  "plugin_opt_url http://ocsp.example/a b\nplugin audit.so\nplugin_opt_level 2\n",
                  &c))
        return;
    CHECK_EQ_INT(c.plugin_count, 2);
    CHECK_EQ_STR(c.plugins[0].path, "/usr/lib/certmq/ocsp.so");
    CHECK_EQ_INT(c.plugins[0].opt_count, 2);
    CHECK_EQ_STR(c.plugins[0].opt_keys[0], "timeout_ms");
    CHECK_EQ_STR(c.plugins[0].opt_values[0], "500");
    CHECK_EQ_STR(c.plugins[0].opt_keys[1], "url");
    CHECK_EQ_STR(c.plugins[0].opt_values[1], "http://ocsp.example/a b");
    CHECK_EQ_STR(c.plugins[1].path, "audit.so");
    CHECK_EQ_INT(c.plugins[1].opt_count, 1);
    CHECK_EQ_STR(c.plugins[1].opt_keys[0], "level");
    config_free(&c);
}

/* metrics_listener: off by default; ADDRESS:PORT, IPv6 in brackets, loopback known; another
 * address only with the three TLS files and metrics_require_certificate, which come together. */
static void test_metrics(void)
{
    struct config c;
    if (accepted("", &c)) {
        CHECK(c.metrics.address == NULL);
        CHECK(!c.metrics.require_certificate);
        config_free(&c);
    }
    if (accepted("metrics_listener 127.0.0.1:9100\n", &c)) {
        CHECK_EQ_STR(c.metrics.address, "127.0.0.1");
        CHECK_EQ_INT(c.metrics.port, 9100);
        CHECK(c.metrics.loopback);
        CHECK_EQ_INT(c.metrics.line, 6);
        config_free(&c);
    }
    if (accepted("metrics_listener [::1]:0\n", &c)) {
        CHECK_EQ_STR(c.metrics.address, "::1");
        CHECK(c.metrics.loopback);
        config_free(&c);
    }
    if (accepted("metrics_listener 0.0.0.0:9100\nmetrics_require_certificate true\n"
                 "metrics_cafile ca\nmetrics_certfile crt\nmetrics_keyfile key\n",
                 &c)) {
        CHECK(!c.metrics.loopback);
        CHECK(c.metrics.require_certificate);
        CHECK(c.metrics.cafile && c.metrics.certfile && c.metrics.keyfile);
        config_free(&c);
    }
    refused("metrics_listener 0.0.0.0:9100\n",
            "t.conf:6: metrics_listener 0.0.0.0: not a loopback");
    refused("metrics_listener [2001:db8::1]:9100\n", "not a loopback address");
    refused("metrics_listener 127.0.0.1\n", "expected ADDRESS:PORT");
    refused("metrics_listener ::1:9100\n", "expected ADDRESS:PORT");
    refused("metrics_listener 127.0.0.1:65536\n", "expected ADDRESS:PORT");
    refused("metrics_listener 127.0.0.1:-1\n", "expected ADDRESS:PORT");
    refused("metrics_listener host.example:9100\n", "not a numeric IP address");
    refused("metrics_listener 127.0.0.0/8:9100\n", "not a numeric IP address");
    refused("metrics_listener 127.0.0.1:9100\nmetrics_require_certificate true\n",
            "needs metrics_cafile");
    refused("metrics_listener 127.0.0.1:9100\nmetrics_keyfile k\n",
            "need metrics_require_certificate true");
    refused("metrics_require_certificate true\n", "without metrics_listener");
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static void test_include_dir(void)
{
    char dir[] = "/tmp/certmq-config-test-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    char sub[256], path[600], want[700];
    snprintf(sub, sizeof(sub), "%s/conf.d", dir);
    CHECK_EQ_INT(mkdir(sub, 0700), 0);
    write_file(sub, "20-b.conf",
               "max_queued_messages 43\nlistener 8884\ncafile ca2.crt\n"
               "certfile s.crt\nkeyfile s.key\n");
    write_file(sub, "10-a.conf", "max_queued_messages 42\nsys_interval 3\n");
    write_file(sub, "ignored.txt", "garbage garbage\n");
    snprintf(path, sizeof(path), "%s/dir.conf", sub);
    CHECK_EQ_INT(mkdir(path, 0700), 0); /* a directory named *.conf is skipped */
    write_file(dir, "main.conf",
               "listener 8883\ncafile ca.crt\ncertfile s.crt\nkeyfile s.key\n"
               "acl_file acl\ninclude_dir conf.d\n");
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    struct config c;
    struct diag d;
    diag_init(&d);
    CHECK_EQ_INT(config_load(path, &c, &d), 0);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "  unexpected: %s\n", d.msgs[i]);
    diag_free(&d);
    CHECK_EQ_INT(c.broker.session.max_queued, 43); /* 20-b.conf is read after 10-a.conf */
    CHECK_EQ_INT(c.sys_interval, 3);
    CHECK_EQ_STR(c.path, path);
    snprintf(want, sizeof(want), "%s/acl", dir);
    CHECK_EQ_STR(c.acl_file, want);
    CHECK_EQ_INT(c.listener_count, 2);
    if (c.listener_count == 2) {
        /* Paths in an included file are relative to that file's directory. */
        snprintf(want, sizeof(want), "%s/ca2.crt", sub);
        CHECK(strstr(c.listeners[1].tls.cafile, "conf.d/ca2.crt") != NULL);
        CHECK(strstr(c.listeners[1].file, "conf.d/20-b.conf") != NULL);
        CHECK_EQ_INT(c.listeners[1].line, 2);
    }
    config_free(&c);

    /* Errors inside an included file carry that file's name and line. */
    write_file(sub, "30-bad.conf", "\nmax_keepalive forever\n");
    diag_init(&d);
    CHECK_EQ_INT(config_load(path, &c, &d), -1);
    CHECK(has(&d, "conf.d/30-bad.conf:2: max_keepalive: expected a whole number"));
    CHECK_EQ_INT(d.count, 1);
    CHECK_EQ_INT(c.listener_count, 0);
    diag_free(&d);

    /* An included directory that includes itself is a loop, reported once and not followed. */
    write_file(sub, "30-bad.conf", "include_dir .\n");
    diag_init(&d);
    CHECK_EQ_INT(config_load(path, &c, &d), -1);
    CHECK(has(&d, "conf.d/30-bad.conf:1: include_dir .: already being read (include loop)"));
    diag_free(&d);

    /* Deep nesting stops at the limit: a/x.conf includes b, b includes c, ... */
    write_file(sub, "30-bad.conf", "include_dir n1\n");
    static const char *const chain[] = {"n1", "n1/n2", "n1/n2/n3", "n1/n2/n3/n4"};
    static const char *const next[] = {"include_dir n2\n", "include_dir n3\n", "include_dir n4\n",
                                       "include_dir .\n"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", sub, chain[i]);
        CHECK_EQ_INT(mkdir(path, 0700), 0);
        write_file(path, "x.conf", next[i]);
    }
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    diag_init(&d);
    CHECK_EQ_INT(config_load(path, &c, &d), -1);
    CHECK(has(&d, "n3/x.conf:1: include_dir: nested more than 4 levels deep"));
    diag_free(&d);

    /* A missing directory and a missing main file are reported, not crashed on. */
    write_file(sub, "30-bad.conf", "include_dir nowhere\n");
    diag_init(&d);
    CHECK_EQ_INT(config_load(path, &c, &d), -1);
    CHECK(has(&d, "30-bad.conf:1: include_dir "));
    CHECK(has(&d, "nowhere: No such file or directory"));
    diag_free(&d);
    snprintf(path, sizeof(path), "%s/absent.conf", dir);
    diag_init(&d);
    CHECK_EQ_INT(config_load(path, &c, &d), -1);
    CHECK(has(&d, "absent.conf: cannot read: No such file or directory"));
    CHECK_EQ_INT(d.count, 1); /* no "no listener" noise for a file that was never read */
    diag_free(&d);
    rm_rf(dir);
}

/* Cluster keys: off without cluster_nats, URLs in order over lines, the keys that go together. */
static void test_cluster(void)
{
    struct config c;
    if (accepted("", &c)) {
        CHECK(!cluster_enabled(&c.cluster));
        CHECK_EQ_INT(c.cluster.partitions, 1);
        CHECK_EQ_INT(c.cluster.max_subject, 4000);
        CHECK_EQ_INT(c.cluster.ack_timeout_s, 15);
        config_free(&c);
    }
    if (accepted("cluster_name prod\nnode_name node-1\n"
                 "cluster_nats nats://a:4222 tls://b:4222\ncluster_nats nats://c\n"
                 "cluster_nats_user u\ncluster_nats_password p w\ncluster_partitions 8\n"
                 "cluster_nats_tls_cert n.crt\ncluster_nats_tls_key n.key\n",
                 &c)) {
        CHECK(cluster_enabled(&c.cluster));
        CHECK_EQ_INT(c.cluster.url_count, 3);
        CHECK_EQ_STR(c.cluster.urls[1], "tls://b:4222");
        CHECK_EQ_STR(c.cluster.urls[2], "nats://c");
        CHECK_EQ_STR(c.cluster.password, "p w");
        CHECK_EQ_INT(c.cluster.partitions, 8);
        CHECK_EQ_STR(c.cluster.tls_cert, "n.crt");
        config_free(&c);
    }
    refused("node_name x\n", "node_name is set but cluster_nats is not");
    refused("cluster_nats nats://a\nnode_name n\n", "cluster mode needs cluster_name");
    refused("cluster_nats nats://a\ncluster_name c\n", "cluster mode needs node_name");
    refused("cluster_nats nats://a\ncluster_name c.d\nnode_name n\n", "needs cluster_name");
    refused("cluster_nats http://a\n", "t.conf:6: cluster_nats: 'http://a' is not a NATS URL");
    refused("cluster_nats nats://a\ncluster_name c\nnode_name n\ncluster_nats_user u\n",
            "cluster_nats_user and cluster_nats_password go together");
    refused("cluster_nats nats://a\ncluster_name c\nnode_name n\ncluster_nats_user u\n"
            "cluster_nats_password p\ncluster_nats_creds f\n",
            "use one way to authenticate");
    refused("cluster_nats nats://a\ncluster_name c\nnode_name n\ncluster_nats_tls_key k\n",
            "cluster_nats_tls_cert and cluster_nats_tls_key go together");
    refused("cluster_partitions 0\n", "cluster_partitions: expected a whole number from 1");
    refused("cluster_max_subject_length 10\n", "cluster_max_subject_length: expected");
    refused("cluster_ack_timeout 0\n", "cluster_ack_timeout: expected a whole number from 1");
    refused("cluster_ack_timeout 301\n", "cluster_ack_timeout: expected a whole number from 1");
}

int main(void)
{
    test_defaults();
    test_values();
    test_durations();
    test_paths();
    test_refusals();
    test_retained_limit();
    test_identity_limits();
    test_front_door();
    test_bad_values();
    test_many_errors();
    test_lexing();
    test_logging();
    test_plugins();
    test_include_dir();
    test_cluster();
    test_metrics();
    return check_finish("config_test");
}
