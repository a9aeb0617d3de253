/* crypto_ops: what each cryptographic operation of a connection costs on this machine with the
 * Mbed TLS certmq links, in CPU time of one thread (docs/performance.md, "Per operation").
 *
 * Record protection: one record of a typical device message (90 bytes of plaintext: a PUBLISH
 * with a 64-byte payload) and one full 16 KiB record, for each AEAD certmq allows. Handshake:
 * ECDSA P-256 signature (the ServerKeyExchange) and verification (the client's CertificateVerify,
 * or a chain signature on a cache miss), ECDHE key generation and shared secret per group, each
 * with a group loaded once and reused ("kept", what certmq arranges where the API lets it) and
 * with a freshly loaded group ("fresh", what Mbed TLS 2.28 does inside a handshake).
 *
 * usage: certmq_crypto_ops [--quick]   (--quick: a tenth of the iterations) */
#include <mbedtls/ccm.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>
#include <mbedtls/version.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static mbedtls_ctr_drbg_context drbg;
static unsigned char key[32] = {1}, iv[12] = {2}, aad[13] = {3}, tag[16];
static unsigned char in[16384], out[16384];

static void row(const char *what, double seconds, int n, const char *unit)
{
    double per = seconds / n;
    if (unit[0] == 'u')
        printf("| %s | %.3f |  |\n", what, per * 1e6);
    else
        printf("| %s |  | %.3f |\n", what, per * 1e3);
}

static void aead(int len, int n)
{
    char name[64];
    double t;
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 128);
    t = cpu_s();
    for (int i = 0; i < n; i++) {
        iv[0] = (unsigned char)i;
        mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, (size_t)len, iv, 12, aad, 13, in, out,
                                  16, tag);
    }
    snprintf(name, sizeof(name), "AES-128-GCM, %d-byte record", len);
    row(name, cpu_s() - t, n, "us");
    mbedtls_gcm_free(&g);

    mbedtls_ccm_context c;
    mbedtls_ccm_init(&c);
    mbedtls_ccm_setkey(&c, MBEDTLS_CIPHER_ID_AES, key, 128);
    t = cpu_s();
    for (int i = 0; i < n; i++) {
        iv[0] = (unsigned char)i;
        mbedtls_ccm_encrypt_and_tag(&c, (size_t)len, iv, 12, aad, 13, in, out, tag, 16);
    }
    snprintf(name, sizeof(name), "AES-128-CCM, %d-byte record", len);
    row(name, cpu_s() - t, n, "us");
    mbedtls_ccm_free(&c);

    mbedtls_chachapoly_context p;
    mbedtls_chachapoly_init(&p);
    mbedtls_chachapoly_setkey(&p, key);
    t = cpu_s();
    for (int i = 0; i < n; i++) {
        iv[0] = (unsigned char)i;
        mbedtls_chachapoly_encrypt_and_tag(&p, (size_t)len, iv, aad, 13, in, out, tag);
    }
    snprintf(name, sizeof(name), "ChaCha20-Poly1305, %d-byte record", len);
    row(name, cpu_s() - t, n, "us");
    mbedtls_chachapoly_free(&p);
}

static void ecdh(mbedtls_ecp_group_id id, const char *name, int n)
{
    char what[96];
    mbedtls_ecp_group kept;
    mbedtls_mpi d, z;
    mbedtls_ecp_point q;
    mbedtls_ecp_group_init(&kept);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&z);
    mbedtls_ecp_point_init(&q);
    if (mbedtls_ecp_group_load(&kept, id) != 0) {
        printf("| ECDHE %s | not in this Mbed TLS |  |\n", name);
        return;
    }
    double t = cpu_s();
    for (int i = 0; i < n; i++) {
        mbedtls_ecp_group g;
        mbedtls_ecp_group_init(&g);
        mbedtls_ecp_group_load(&g, id);
        mbedtls_ecdh_gen_public(&g, &d, &q, mbedtls_ctr_drbg_random, &drbg);
        mbedtls_ecp_group_free(&g);
    }
    snprintf(what, sizeof(what), "ECDHE %s key generation, fresh group", name);
    row(what, cpu_s() - t, n, "ms");
    t = cpu_s();
    for (int i = 0; i < n; i++)
        mbedtls_ecdh_gen_public(&kept, &d, &q, mbedtls_ctr_drbg_random, &drbg);
    snprintf(what, sizeof(what), "ECDHE %s key generation, kept group", name);
    row(what, cpu_s() - t, n, "ms");
    t = cpu_s();
    for (int i = 0; i < n; i++)
        mbedtls_ecdh_compute_shared(&kept, &z, &q, &d, mbedtls_ctr_drbg_random, &drbg);
    snprintf(what, sizeof(what), "ECDHE %s shared secret", name);
    row(what, cpu_s() - t, n, "ms");
    mbedtls_ecp_group_free(&kept);
    mbedtls_mpi_free(&d);
    mbedtls_mpi_free(&z);
    mbedtls_ecp_point_free(&q);
}

/* 3.x added the signature buffer's size. */
#if MBEDTLS_VERSION_MAJOR >= 3
#define SIGN(k, h, sig, sl)                                                                        \
    mbedtls_ecdsa_write_signature(k, MBEDTLS_MD_SHA256, h, 32, sig, sizeof(sig), &(sl),            \
                                  mbedtls_ctr_drbg_random, &drbg)
#else
#define SIGN(k, h, sig, sl)                                                                        \
    mbedtls_ecdsa_write_signature(k, MBEDTLS_MD_SHA256, h, 32, sig, &(sl),                         \
                                  mbedtls_ctr_drbg_random, &drbg)
#endif

static void ecdsa(int n)
{
    mbedtls_ecdsa_context k;
    unsigned char h[32] = {1}, sig[MBEDTLS_ECDSA_MAX_LEN];
    size_t sl = 0;
    mbedtls_ecdsa_init(&k);
    mbedtls_ecdsa_genkey(&k, MBEDTLS_ECP_DP_SECP256R1, mbedtls_ctr_drbg_random, &drbg);
    double t = cpu_s();
    for (int i = 0; i < n; i++) {
        mbedtls_ecdsa_context tmp; /* what a sign through an ECKEY-typed pk context does */
        mbedtls_ecdsa_init(&tmp);
        mbedtls_ecdsa_from_keypair(&tmp, &k);
        SIGN(&tmp, h, sig, sl);
        mbedtls_ecdsa_free(&tmp);
    }
    row("ECDSA P-256 sign, fresh group", cpu_s() - t, n, "ms");
    t = cpu_s();
    for (int i = 0; i < n; i++)
        SIGN(&k, h, sig, sl);
    row("ECDSA P-256 sign, kept group", cpu_s() - t, n, "ms");
    t = cpu_s();
    for (int i = 0; i < n; i++) {
        mbedtls_ecdsa_context tmp;
        mbedtls_ecdsa_init(&tmp);
        mbedtls_ecdsa_from_keypair(&tmp, &k);
        if (mbedtls_ecdsa_read_signature(&tmp, h, 32, sig, sl) != 0)
            abort();
        mbedtls_ecdsa_free(&tmp);
    }
    row("ECDSA P-256 verify, fresh group", cpu_s() - t, n, "ms");
    t = cpu_s();
    for (int i = 0; i < n; i++)
        if (mbedtls_ecdsa_read_signature(&k, h, 32, sig, sl) != 0)
            abort();
    row("ECDSA P-256 verify, kept group", cpu_s() - t, n, "ms");
    mbedtls_ecdsa_free(&k);
}

int main(int argc, char **argv)
{
    int scale = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 10 : 1;
    mbedtls_entropy_context e;
    mbedtls_entropy_init(&e);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &e, NULL, 0) != 0)
        return 1;
    memset(in, 'x', sizeof(in));
    printf("Mbed TLS %s, CPU time of one thread per operation\n\n", MBEDTLS_VERSION_STRING);
    printf("| operation | us | ms |\n|---|---|---|\n");
    aead(90, 1000000 / scale);
    aead(16384, 20000 / scale);
    ecdsa(500 / scale);
    ecdh(MBEDTLS_ECP_DP_SECP256R1, "P-256", 500 / scale);
    ecdh(MBEDTLS_ECP_DP_CURVE25519, "X25519", 500 / scale);
    ecdh(MBEDTLS_ECP_DP_SECP384R1, "P-384", 200 / scale);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&e);
    return 0;
}
