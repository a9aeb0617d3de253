/* cluster_claim: the answer JetStream gives for a session's last claim (a direct get) is read
 * strictly: the epoch from the subject, the claiming node from the data (a node name of the full
 * 64 characters config allows included), "no claim" from status 404, and anything else — another
 * status, another key, a bad epoch, a node name that is not one — refused. Also the session key:
 * 32 hex digits, distinct for identity/client id pairs that concatenate alike. */
#include "check.h"
#include "cluster_int.h"

#include <string.h>

#define KEY "0123456789abcdef0123456789abcdef"

static int last(const char *subject, const char *status, const char *data, uint64_t *epoch,
                char node[CLUSTER_NODE_MAX + 1])
{
    natsMsg *m = NULL;
    CHECK_EQ_INT(natsMsg_Create(&m, "_INBOX.x", NULL, data, (int)strlen(data)), NATS_OK);
    if (subject)
        natsMsgHeader_Set(m, "Nats-Subject", subject);
    if (status)
        natsMsgHeader_Set(m, "Status", status);
    int r = cluster__last_claim(m, "cmq.t", KEY, epoch, node);
    natsMsg_Destroy(m);
    return r;
}

static void test_last_claim(void)
{
    uint64_t e = 0;
    char node[CLUSTER_NODE_MAX + 1];
    CHECK_EQ_INT(last("cmq.t.claim." KEY ".7", NULL, "node1", &e, node), 1);
    CHECK(e == 7);
    CHECK_EQ_STR(node, "node1");
    char longest[CLUSTER_NODE_MAX + 2];
    memset(longest, 'n', CLUSTER_NODE_MAX);
    longest[CLUSTER_NODE_MAX] = '\0';
    CHECK_EQ_INT(last("cmq.t.claim." KEY ".8", NULL, longest, &e, node), 1);
    CHECK_EQ_STR(node, longest);
    longest[CLUSTER_NODE_MAX] = 'n';
    longest[CLUSTER_NODE_MAX + 1] = '\0';
    CHECK_EQ_INT(last("cmq.t.claim." KEY ".8", NULL, longest, &e, node), -1);
    CHECK_EQ_INT(last(NULL, "404", "", &e, node), 0);
    CHECK_EQ_INT(last(NULL, "503", "", &e, node), -1);
    CHECK_EQ_INT(last("cmq.t.claim.ffffffffffffffffffffffffffffffff.7", NULL, "node1", &e, node),
                 -1);
    CHECK_EQ_INT(last("cmq.t.claim." KEY ".x7", NULL, "node1", &e, node), -1);
    CHECK_EQ_INT(last("cmq.t.claim." KEY ".0", NULL, "node1", &e, node), -1);
    CHECK_EQ_INT(last("cmq.t.claim." KEY ".7", NULL, "node 1", &e, node), -1);
    CHECK_EQ_INT(last("cmq.t.claim." KEY ".7", NULL, "", &e, node), -1);
    CHECK_EQ_INT(last(NULL, NULL, "node1", &e, node), -1);
}

static void test_session_key(void)
{
    char a[33], b[33], c[33];
    cluster__session_key("dev", "ab", a);
    cluster__session_key("deva", "b", b);
    cluster__session_key("dev", "ab", c);
    CHECK_EQ_INT(strlen(a), 32);
    CHECK(strspn(a, "0123456789abcdef") == 32);
    CHECK(strcmp(a, b) != 0);
    CHECK_EQ_STR(a, c);
}

int main(void)
{
    CHECK_EQ_INT(nats_Open(-1), NATS_OK); /* messages are freed through nats.c's collector */
    test_last_claim();
    test_session_key();
    nats_Close();
    return check_finish("cluster_claim_test");
}
