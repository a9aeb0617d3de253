/* explain: the operator's answer to "why can this device not publish": the certificate read as
 * the first listener's handshake would read it (identity under its cert_identity, attributes),
 * then the ACL file's rules for it and the verdict on one topic (acl_explain). Neither the
 * chain nor revocation is checked here: --test-config and the broker's log cover those. */
#include "explain.h"

#include "acl.h"
#include "quota.h"
#include "tls.h"

static const char *const mode_names[] = {"cn", "san_dns", "san_uri", "san_email", "subject"};

static void print_line(void *ctx, const char *line)
{
    fprintf(ctx, "%s\n", line);
}

/* Each per-identity limit in force for this certificate, and where it comes from. */
static void print_limits(const struct config *cfg, const struct acl *a,
                         const struct certattrs *attrs, FILE *out)
{
    const struct broker_limits *l = &cfg->broker;
    const uint64_t defaults[ACL_LIMIT_COUNT] = {
        [ACL_LIMIT_CONNECTIONS] = l->max_connections_per_identity,
        [ACL_LIMIT_RATE] = l->per_identity.rate,
        [ACL_LIMIT_BYTE_RATE] = l->per_identity.byte_rate,
        [ACL_LIMIT_SUBSCRIPTIONS] = l->per_identity.subscriptions,
        [ACL_LIMIT_RETAINED] = l->per_identity.retained,
    };
    for (int k = 0; k < ACL_LIMIT_COUNT; k++) {
        uint64_t v = defaults[k];
        bool from_acl = acl_limit(a, attrs, (enum acl_limit)k, &v);
        fprintf(out, "%s: %llu%s (%s)\n", acl_limit_name((enum acl_limit)k), (unsigned long long)v,
                v ? "" : " = unlimited", from_acl ? "a match block's limit" : "certmq.conf");
    }
    if (quota_rates_used(&l->per_identity, a))
        fprintf(out, "publish_rate_burst: %u s, rate_limit_action: %s\n", l->rate_burst_s,
                cfg->client.rate_disconnect ? "disconnect" : "refuse");
}

int explain_run(const struct config *cfg, const char *cert, const char *client_id,
                const char *topic, FILE *out, FILE *err)
{
    enum tls_identity_mode mode = cfg->listener_count ? cfg->listeners[0].tls.identity : TLS_ID_CN;
    char identity[TLS_IDENTITY_MAX + 1], why[300];
    const char *idwhy = NULL;
    struct certattrs *attrs = NULL;
    if (tls_cert_file_read(cert, mode, identity, sizeof(identity), &idwhy, &attrs, why,
                           sizeof(why)) != 0) {
        fprintf(err, "certmq: %s\n", why);
        return 1;
    }
    struct diag d, warn;
    diag_init(&d);
    diag_init(&warn);
    struct acl *a = acl_load(cfg->acl_file, &d, &warn);
    for (size_t i = 0; i < d.count; i++)
        fprintf(err, "%s\n", d.msgs[i]);
    for (size_t i = 0; i < warn.count; i++)
        fprintf(err, "warning: %s\n", warn.msgs[i]);
    int r = a ? 0 : 1;
    if (a) {
        fprintf(out, "certificate: %s\n", cert);
        if (identity[0])
            fprintf(out, "identity: %s (cert_identity %s)\n", identity, mode_names[mode]);
        else
            fprintf(out, "identity: none: a handshake refuses this certificate (%s)\n", idwhy);
        fprintf(out, "client id: %s\n", client_id ? client_id : "(not given: %c rules skipped)");
        /* Without an identity no device can connect; the rules are still shown for it. */
        acl_explain(a, identity, client_id ? client_id : "", attrs, topic, print_line, out);
        print_limits(cfg, a, attrs, out);
        if (topic)
            fprintf(out, "(plugins may refuse further; the chain and CRLs are not checked here)\n");
    }
    acl_free(a);
    diag_free(&d);
    diag_free(&warn);
    certattrs_free(attrs);
    return r;
}
