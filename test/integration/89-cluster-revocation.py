"""Revocation cluster-wide: 3 nats-server processes and 3 certmq nodes, each reading its own copy
of the CRL. A device with a persistent session is connected to node 2; its certificate is revoked
in node 1's CRL only. Node 1 announces it, and node 2 disconnects the device within 1 s of the
announcement and discards its session (revoked_session discard, the default). Offline persistent
sessions of certificates revoked in node 1's CRL go on node 1 at the reload and on node 3 at the
announcement."""
import os
import shutil
import time

from certmq_test import Harness, check, wait_for
from cluster_test import Cluster

h = Harness()
pki = h.pki()
for d in ("victim", "other", "admin", "sleeper1", "sleeper3"):
    pki.device(d)
ACL = "pattern readwrite devices/%u/#\nuser admin\ntopic read $SYS/#\n"
crls = [os.path.join(h.tmp, "crl-node%d.pem" % (i + 1)) for i in range(3)]


def install(src, dst):
    shutil.copy(src, dst + ".tmp")
    os.rename(dst + ".tmp", dst)


for c in crls:
    install(pki.crl, c)
cl = Cluster(h, pki, ACL, crlfiles=[[c] for c in crls])
n1, n2, n3 = cl.nodes


def test_revoked_on_node1_disconnected_from_node2():
    v = h.paho(n2, pki, "victim", client_id="victim", clean=False)
    check(v.subscribe("devices/victim/cmd", 1) == 1, "granted")
    o = h.paho(n2, pki, "other", client_id="other", clean=False)
    start = n2.log_count()
    pki.revoke("victim")
    t0 = time.time()
    install(pki.crl, crls[0])  # node 1 only
    check(v.disconnected.wait(3), "revoked device disconnected from node 2")
    took = time.time() - t0
    n1.log_wait(r"newly revoked certificate\(s\) announced", 2)
    # Node 1 notices its CRL file changed (debounced, as on a single node), then node 2 acts.
    print("info disconnected from node 2 %.0f ms after node 1's CRL file changed" % (took * 1000))
    check(took < 1.5, "within 1 s of node 1's reload (took %.2f s from the file change)" % took)
    n2.log_wait(r"disconnecting client victim .*certificate revoked on cluster node node1.*"
                r"session discarded", 2, start)
    check(not o.disconnected.is_set(), "the other device stays")
    # Node 2's own CRL does not list it yet: it may connect, but its session is gone.
    v2 = h.paho(n2, pki, "victim", client_id="victim", clean=False)
    check(v2.connack == (0, 0), "session gone on node 2: %r" % (v2.connack,))
    for c in (v2, o):
        c.disconnect()


def test_offline_sessions_discarded_everywhere():
    """Devices whose persistent sessions wait offline on node 1 and node 3; both certificates are
    revoked in node 1's CRL: node 1 discards its own at the reload, node 3 at the announcement."""
    for node, dev in ((n1, "sleeper1"), (n3, "sleeper3")):
        c = h.paho(node, pki, dev, client_id=dev, clean=False)
        check(c.subscribe("devices/%s/cmd" % dev, 1) == 1, "granted")
        c.disconnect()
    s1, s3 = n1.log_count(), n3.log_count()
    pki.revoke("sleeper1")
    pki.revoke("sleeper3")
    install(pki.crl, crls[0])
    n1.log_wait(r"CRL reload: 1 offline persistent session\(s\) of newly revoked certificates "
                r"discarded", 5, s1)
    n3.log_wait(r"certificate revoked on cluster node node1 .*: 0 connection\(s\) ended and 1 "
                r"offline session\(s\) discarded here", 5, s3)


def test_counters():
    c = h.paho(n2, pki, "admin", client_id="sys-rev")
    vals = {}
    c.c.on_message = lambda cl_, u, m: vals.__setitem__(m.topic, int(m.payload))
    c.subscribe("$SYS/broker/cluster/revocations/#", 0)
    # the retained value first, then one per sys_interval: it may lag the revocation by one
    try:
        wait_for(lambda: vals.get("$SYS/broker/cluster/revocations/received", 0) >= 1, 8,
                 "$SYS counters")
    except Exception:
        pass
    check(vals.get("$SYS/broker/cluster/revocations/received", 0) >= 1, "received: %r" % vals)
    c.disconnect()


def test_nodes_stop_cleanly():
    for b in cl.nodes:
        check(b.stop() == 0, "node stops with status 0")


h.run(test_revoked_on_node1_disconnected_from_node2, test_offline_sessions_discarded_everywhere, test_counters, test_nodes_stop_cleanly)
