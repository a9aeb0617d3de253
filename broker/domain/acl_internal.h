/* acl_internal: the parsed ACL file, shared by acl.c (parsing, compiling, checking) and
 * acl_explain.c (--explain). Nothing else includes it. */
#ifndef CERTMQ_ACL_INTERNAL_H
#define CERTMQ_ACL_INTERNAL_H

#include "acl.h"
#include "certattr.h"

#include <stdint.h>
#include <uthash.h>

#define ACL_MAX_LINE (65535u + 1024u) /* a topic filter of MQTT's maximum length plus keywords */
#define ACL_TOPIC_MAX 65535u          /* MQTT's limit: longer substituted rules can match nothing */
#define ACL_FIELD_MAX 64              /* %{attr:N}: |N| at most this */

enum { A_READ = ACL_READ, A_WRITE = ACL_WRITE, A_DENY = 4 };

/* One rule as written in the file. nsub counts its substitution levels (patterns only: in a
 * topic rule they are literal text). */
struct rule {
    char *topic;
    uint32_t len, nsub, line;
    uint8_t access;
    bool wild;    /* contains a + or # level */
    bool pattern; /* written as `pattern` (for --explain) */
};

struct rules {
    struct rule *v;
    size_t n, cap;
};

struct user {
    char *name;
    struct rules rules;
    UT_hash_handle hh;
};

/* One condition of a match block: the certificate has attribute attr with this exact value. */
struct cond {
    uint8_t attr; /* enum certattr */
    uint32_t len, line;
    char *value;
};

/* A match block: consecutive `match` lines (all conditions must hold) and the topic and
 * pattern rules after them. */
struct block {
    struct cond *conds;
    size_t ncond;
    struct rules rules;
    bool body; /* a rule or limit came after the conditions: the next `match` starts a block */
    struct {
        bool set;
        uint32_t line;
        uint64_t v;
    } limits[ACL_LIMIT_COUNT];
};

struct acl {
    struct user *users;
    struct rules patterns; /* outside match blocks: every device */
    struct block **blocks;
    size_t nblocks, cap;
    size_t total;
    char *fname;
};

/* The client a rule list is compiled for. */
struct acl_who {
    const char *identity, *client_id;
    size_t il, cl;
    bool id_ok, cid_ok; /* usable as a topic level */
    const struct certattrs *attrs;
};

void acl__who(struct acl_who *w, const char *identity, const char *client_id,
              const struct certattrs *attrs);
/* r's topic with every substitution made, written to out (NULL: only measured). The length, or
 * -1 when a value is missing, ambiguous or unusable for this client (the rule matches nothing);
 * *why (may be NULL) then names the substitution. */
long acl__expand(const struct rule *r, const struct acl_who *w, char *out, const char **why);
/* Do all of b's conditions hold for these attributes? */
bool acl__block_applies(const struct block *b, const struct certattrs *attrs);
/* At t[i] == '%': the length of the substitution token there (%u, %c, %{attr}, %{attr:N}), 0
 * when the '%' is a literal character (followed by neither a letter nor '{', as in mosquitto),
 * or -1 with *why. *attr is the attribute, -'u' or -'c'. */
long acl__token(const char *t, size_t len, size_t i, int *attr, int *field, const char **why);

#endif
