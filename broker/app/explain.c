/* explain: the operator's answer to "why can this device not publish": the certificate read as
 * the first listener's handshake would read it (identity under its cert_identity, attributes),
 * then the ACL file's rules for it and the verdict on one topic (acl_explain). Neither the
 * chain nor revocation is checked here: --test-config and the broker's log cover those. */
#include "explain.h"

#include "acl.h"
#include "tls.h"

static const char *const mode_names[] = {"cn", "san_dns", "san_uri", "san_email", "subject"};

static void print_line(void *ctx, const char *line)
{
    fprintf(ctx, "%s\n", line);
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
        uint64_t max = cfg->broker.max_connections_per_identity;
        bool from_acl = acl_limit(a, attrs, ACL_LIMIT_CONNECTIONS, &max);
        fprintf(out, "max_connections_per_identity: %llu%s (%s)\n", (unsigned long long)max,
                max ? "" : " = unlimited", from_acl ? "a match block's limit" : "certmq.conf");
        if (topic)
            fprintf(out, "(plugins may refuse further; the chain and CRLs are not checked here)\n");
    }
    acl_free(a);
    diag_free(&d);
    diag_free(&warn);
    certattrs_free(attrs);
    return r;
}
