/* config: directive table, defaults, relative paths, include_dir, refusals with file:line. */
#include "check.h"
#include "config.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool has(const struct diag *d, const char *frag)
{
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->msgs[i], frag))
            return true;
    fprintf(stderr, "  missing: %s\n", frag);
    return false;
}

static const char *BASE = "listener 8883\ncafile ca.crt\ncertfile s.crt\nkeyfile s.key\n"
                          "acl_file acl\n";

static void test_defaults_and_values(void)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "%s"
             "crlfile a.pem\ncrlfile /abs/b.pem\nverify_depth 3\ncert_identity san_uri\n"
             "crl_mode present\nprotocol websockets\n"
             "max_inflight_messages 0\nmax_queued_messages 7\npersistent_client_expiration 2d\n"
             "log_dest file /tmp/x.log\nlog_dest stderr\nlog_type error\nlog_type debug\n"
             "clientid_policy match\nrequire_certificate true\nallow_anonymous false\n"
             "use_identity_as_username true\nset_tcp_nodelay true\n"
             "plugin plug.so\nplugin_opt_ocsp_timeout_ms 500\n"
             "listener 8884 127.0.0.1\ncafile ca.crt\ncertfile s.crt\nkeyfile s.key\n",
             BASE);
    struct config c;
    struct diag d;
    diag_init(&d);
    int r = config_parse(text, strlen(text), "/etc/certmq/certmq.conf", &c, &d);
    for (size_t i = 0; i < d.count; i++)
        fprintf(stderr, "  %s\n", d.msgs[i]);
    CHECK_EQ_INT(r, 0);
    CHECK_EQ_INT(c.listener_count, 2);
    CHECK_EQ_STR(c.listeners[0].cafile, "/etc/certmq/ca.crt");
    CHECK_EQ_INT(c.listeners[0].crlfile_count, 2);
    CHECK_EQ_STR(c.listeners[0].crlfiles[1], "/abs/b.pem");
    CHECK_EQ_INT(c.listeners[0].verify_depth, 3);
    CHECK_EQ_INT(c.listeners[0].identity, CONFIG_ID_SAN_URI);
    CHECK_EQ_INT(c.listeners[0].crl_mode, CONFIG_CRL_PRESENT);
    CHECK_EQ_INT(c.listeners[0].protocol, CONFIG_PROTO_WEBSOCKETS);
    CHECK_EQ_STR(c.listeners[1].address, "127.0.0.1");
    CHECK_EQ_INT(c.listeners[1].verify_depth, 4);
    CHECK_EQ_INT(c.max_inflight_messages, 65535);
    CHECK_EQ_INT(c.max_queued_messages, 7);
    CHECK_EQ_INT(c.persistent_client_expiration, 2 * 86400);
    CHECK_EQ_INT(c.log_dests, LOGD_FILE | LOGD_STDERR);
    CHECK_EQ_INT(c.log_types, LOGL_ERR | LOGL_DEBUG);
    CHECK_EQ_INT(c.clientid_policy, CONFIG_CLIENTID_MATCH);
    CHECK_EQ_INT(c.plugin_count, 1);
    CHECK_EQ_STR(c.plugins[0].opt_keys[0], "ocsp_timeout_ms");
    CHECK_EQ_STR(c.plugins[0].opt_values[0], "500");
    CHECK_EQ_INT(c.max_keepalive, 65535);
    CHECK(c.session_tickets);
    CHECK_EQ_INT(c.sys_interval, 10);
    config_free(&c);
    diag_free(&d);
}

static void test_errors(void)
{
    const char *text = "cafile early.crt\n"          /* 1: before listener */
                       "listener 8883\n"             /* 2 */
                       "require_certificate false\n" /* 3 */
                       "allow_anonymous true\n"      /* 4 */
                       "password_file /etc/pw\n"     /* 5 */
                       "max_queued_messages -1\n"    /* 6 */
                       "tls_version tlsv1.3\n"       /* 7 */
                       "log_type everything\n"       /* 8 */
                       "retain_available yes\n"      /* 9 */
                       "no_such_thing 1\n"           /* 10 */
                       "plugin_opt_x 1\n"            /* 11: before plugin */
                       "listener 8883\n"             /* 12: duplicate */
                       "cert_identity serial\n";     /* 13 */
    struct config c;
    struct diag d;
    diag_init(&d);
    CHECK_EQ_INT(config_parse(text, strlen(text), "t.conf", &c, &d), -1);
    CHECK(has(&d, "t.conf:1: cafile must follow a 'listener' line"));
    CHECK(has(&d, "t.conf:3: require_certificate false: certmq only accepts"));
    CHECK(has(&d, "t.conf:4: allow_anonymous true: certmq only accepts"));
    CHECK(has(&d, "t.conf:5: password_file: certmq only accepts"));
    CHECK(has(&d, "t.conf:6: max_queued_messages: expected a whole number"));
    CHECK(has(&d, "t.conf:7: tls_version tlsv1.3 is not supported"));
    CHECK(has(&d, "t.conf:8: log_type: unknown type 'everything'"));
    CHECK(has(&d, "t.conf:9: retain_available: expected true or false"));
    CHECK(has(&d, "t.conf:10: unknown configuration key 'no_such_thing'"));
    CHECK(has(&d, "t.conf:11: plugin_opt_x before any 'plugin' line"));
    CHECK(has(&d, "t.conf:12: duplicate listener"));
    CHECK(has(&d, "t.conf:13: cert_identity: 'serial' is not one of"));
    CHECK(has(&d, "t.conf:2: listener 8883 needs cafile or capath"));
    CHECK(has(&d, "no acl_file configured"));
    CHECK_EQ_INT(c.listener_count, 0); /* freed and zeroed on failure */
    diag_free(&d);
}

static void test_include_dir(void)
{
    char dir[] = "/tmp/certmq-config-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512], sub[512];
    snprintf(sub, sizeof(sub), "%s/conf.d", dir);
    mkdir(sub, 0700);
    snprintf(path, sizeof(path), "%s/conf.d/10-limits.conf", dir);
    FILE *f = fopen(path, "w");
    fputs("max_queued_messages 42\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/conf.d/ignored.txt", dir);
    f = fopen(path, "w");
    fputs("garbage garbage\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    f = fopen(path, "w");
    fprintf(f, "%sinclude_dir conf.d\n", BASE);
    fclose(f);
    struct config c;
    struct diag d;
    diag_init(&d);
    CHECK_EQ_INT(config_load(path, &c, &d), 0);
    CHECK_EQ_INT(c.max_queued_messages, 42);
    char want[600];
    snprintf(want, sizeof(want), "%s/acl", dir);
    CHECK_EQ_STR(c.acl_file, want);
    config_free(&c);
    diag_free(&d);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
    test_defaults_and_values();
    test_errors();
    test_include_dir();
    return check_finish("config_test");
}
