/* tls_attrs: the attributes captured from real certificates issued by certs/certmq-pki (O, OU
 * twice, CN, serial as openssl prints it, SAN URI and DNS, issuer CN, policy OIDs), a plain
 * certificate (nothing but CN, serial, issuer) and a hostile one, then the ACL compiled from
 * them. */
#include "acl.h"
#include "check.h"
#include "pki_script.h"
#include "tls.h"

#include <mbedtls/x509_crt.h>
#include <stdlib.h>
#include <string.h>

#define S(x) x, strlen(x)

static struct certattrs *load(const char *dir, const char *name)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    char path[512];
    snprintf(path, sizeof(path), "%s/pki/issued/%s.crt", dir, name);
    struct certattrs *a = NULL;
    if (mbedtls_x509_crt_parse_file(&crt, path) == 0)
        a = tls_attrs_from_der(crt.raw.p, crt.raw.len);
    mbedtls_x509_crt_free(&crt);
    CHECK(a != NULL);
    return a;
}

static bool value_is(const struct certattrs *a, enum certattr k, size_t i, const char *want)
{
    const char *v;
    size_t n;
    return certattrs_value(a, k, i, &v, &n) && n == strlen(want) && !memcmp(v, want, n);
}

/* The serial of a certificate as `openssl x509 -serial` prints it. */
static void openssl_serial(const char *dir, const char *name, char *out, size_t cap)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "openssl x509 -in %s/pki/issued/%s.crt -noout -serial", dir, name);
    FILE *f = popen(cmd, "r");
    out[0] = '\0';
    if (f && fgets(out, (int)cap, f)) {
        memmove(out, out + 7, strlen(out + 7) + 1); /* "serial=" */
        out[strcspn(out, "\n")] = '\0';
    }
    if (f)
        pclose(f);
}

int main(void)
{
    char dir[] = "/tmp/certmq-tls-attrs-XXXXXX";
    if (pki_script_run(dir, "P() { \"$OLDPWD/../../certs/certmq-pki\" -d pki \"$@\"; }\n"
                            "P init --cn 'Acme Gateway CA'\n"
                            "P device gw7 --o Acme --ou gateways --ou east "
                            "--policy 1.3.6.1.4.1.99999.1.2 --policy 1.2.3 "
                            "--san URI:urn:acme:device:gateway:0007 --san DNS:gw7.acme.example\n"
                            "P device plain\n"
                            "P device evil --ou 'a+b' --cn 'x'\n") != 0)
        return 1;
    struct certattrs *gw = load(dir, "gw7");
    CHECK(value_is(gw, CERTATTR_O, 0, "Acme"));
    CHECK_EQ_INT(certattrs_count(gw, CERTATTR_OU), 2);
    CHECK(value_is(gw, CERTATTR_OU, 0, "gateways") || value_is(gw, CERTATTR_OU, 1, "gateways"));
    CHECK(value_is(gw, CERTATTR_CN, 0, "gw7"));
    CHECK(value_is(gw, CERTATTR_SAN_URI, 0, "urn:acme:device:gateway:0007"));
    CHECK(value_is(gw, CERTATTR_SAN_DNS, 0, "gw7.acme.example"));
    CHECK(value_is(gw, CERTATTR_ISSUER_CN, 0, "Acme Gateway CA"));
    CHECK_EQ_INT(certattrs_count(gw, CERTATTR_POLICY), 2);
    CHECK(certattrs_has(gw, CERTATTR_POLICY, S("1.3.6.1.4.1.99999.1.2")));
    CHECK(certattrs_has(gw, CERTATTR_POLICY, S("1.2.3")));
    char serial[128];
    openssl_serial(dir, "gw7", serial, sizeof(serial));
    CHECK(strlen(serial) > 0 && value_is(gw, CERTATTR_SERIAL, 0, serial));

    struct certattrs *plain = load(dir, "plain");
    CHECK_EQ_INT(certattrs_count(plain, CERTATTR_O), 0);
    CHECK_EQ_INT(certattrs_count(plain, CERTATTR_OU), 0);
    CHECK_EQ_INT(certattrs_count(plain, CERTATTR_POLICY), 0);
    CHECK_EQ_INT(certattrs_count(plain, CERTATTR_SAN_URI), 0);
    CHECK_EQ_INT(certattrs_count(plain, CERTATTR_SERIAL), 1);

    struct certattrs *evil = load(dir, "evil");
    const char *acl = "match ou=gateways\n"
                      "pattern write gw/%{san_uri:-1}/up\n"
                      "pattern read commands/%{ou}/#\n"
                      "pattern read orgs/%{o}/#\n";
    struct diag d;
    diag_init(&d);
    struct acl *a = acl_parse(acl, strlen(acl), "t.acl", &d, NULL);
    CHECK(a != NULL);
    struct acl_client *c = acl_compile_cert(a, "gw7", "c", gw);
    CHECK(acl_check(c, S("gw/0007/up"), ACL_WRITE));
    CHECK(acl_check(c, S("orgs/Acme/x"), ACL_READ));
    CHECK(!acl_check(c, S("commands/gateways/x"), ACL_READ)); /* two OUs: ambiguous */
    acl_client_free(c);
    c = acl_compile_cert(a, "plain", "c", plain);
    CHECK_EQ_INT(acl_client_rule_count(c), 0);
    acl_client_free(c);
    c = acl_compile_cert(a, "x", "c", evil);
    CHECK_EQ_INT(acl_client_rule_count(c), 0); /* OU a+b: unusable */
    acl_client_free(c);
    acl_free(a);
    diag_free(&d);
    certattrs_free(gw);
    certattrs_free(plain);
    certattrs_free(evil);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    return check_finish("tls_attrs_test");
}
