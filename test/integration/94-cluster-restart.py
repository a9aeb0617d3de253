"""A node that comes straight back after a crash, without its disk (persistence files lost, or a
container restarted), answers for sessions it no longer has: 3 nats-server, 3 certmq nodes with
persistence true. Two persistent QoS 1 subscribers on node 3 disconnect; a publisher on node 1
sends them 40 acknowledged messages, queued on node 3. Node 3 is killed, its files removed, and
it is started again under the same name before the others could take it for dead. One device
comes back on node 2, which asks node 3 (alive, with no such session): its record in JetStream
says it had one, so node 2 rebuilds it and reads its messages back from the stream. The other
device comes back on node 3 itself, which finds its own record the same way. Both get their
session (session present) and every acknowledged message.

A session that outgrows one record (NATS max_payload 64 KB here) must not come back as the state
its last record that fitted described: its node writes a record saying the session ended, and
when that node dies the device gets a new session (session present 0)."""
import glob
import os
import time

from certmq_test import Broker, Harness, check, wait_for
from cluster_test import Cluster, durable_nodes, wait_routed

h = Harness()
pki = h.pki()
pki.device("any")
ACL = "user any\ntopic readwrite #\n"

cl = Cluster(h, pki, ACL, node_extra=durable_nodes(h.tmp), nats_extra="max_payload: 65536\n")
n1, n2, n3 = cl.nodes
for n in cl.nodes:
    n.log_wait(r"session records and node heartbeats in JetStream stream", 15)


def received(c):
    return {int(m[1]) for m in list(c.messages) if m[0] == "restart/load"}


def test_restarted_node_without_its_files():
    subs = {}
    for cid in ("restart-a", "restart-b"):
        c = h.paho(n3, pki, "any", client_id=cid, clean=False)
        check(c.subscribe("restart/#", 1) == 1, "QoS 1 granted")
        subs[cid] = c
    pub = h.paho(n1, pki, "any", client_id="restart-pub")
    for c in subs.values():
        wait_routed(pub, c, "restart/probe")
        c.disconnect()
    time.sleep(1.5)  # the records say "offline" (written at the end of a loop turn, acknowledged)
    for k in range(40):
        check(pub.publish("restart/load", b"%d" % k, 1), "PUBACK %d" % k)
    time.sleep(1.5)  # records and the heartbeat's checkpoint after the queueing
    conf = n3.conf
    n3.kill()
    db = os.path.join(h.tmp, "db2")
    for f in glob.glob(os.path.join(db, "*")):
        os.remove(f)
    again = Broker(h, conf, n3.acl)
    h.brokers.append(again)
    again.log_wait(r"sessions owned through JetStream stream", 15)
    time.sleep(2)  # node 3's heartbeats heard again: not silent, so node 2 asks it
    check(not any("node node3 is silent" in line for line in n2.log()), "node 3 was never taken for dead")
    a = h.paho(n2, pki, "any", client_id="restart-a", clean=False)
    check(a.connack == (1, 0), "session present on node 2, got %r" % (a.connack,))
    n2.log_wait(r"restart-a .*session rebuilt from the record of node node3", 5)
    b = h.paho(again, pki, "any", client_id="restart-b", clean=False)
    check(b.connack == (1, 0), "session present on the restarted node 3, got %r" % (b.connack,))
    again.log_wait(r"restart-b .*session rebuilt from the record of node node3", 5)
    want = set(range(40))
    try:
        wait_for(lambda: want <= received(a) and want <= received(b), 20, "every acknowledged message")
    finally:
        print("node 2: %d of 40, restarted node 3: %d of 40" % (len(received(a) & want), len(received(b) & want)))


def test_session_outgrowing_its_record():
    c = h.paho(n2, pki, "any", client_id="outgrown", clean=False)
    check(c.subscribe("outgrown/small", 1) == 1, "QoS 1 granted")
    time.sleep(1.5)  # a record that fits, acknowledged
    for batch in range(6):  # 300 filters of ~250 bytes: over 64 KB
        r, mid = c.c.subscribe([("outgrown/%d/%d/%s" % (batch, k, "x" * 240), 1) for k in range(50)])
        wait_for(lambda: mid in c.subacks, 5, "SUBACK of batch %d" % batch)
    n2.log_wait(r"client outgrown \(any\): too many subscriptions for one session record", 5)
    time.sleep(1.5)  # the record saying it ended, acknowledged
    n2.kill()
    c.c.loop_stop()  # paho may have seen the connection close already
    again = h.paho(n1, pki, "any", client_id="outgrown", clean=False)
    check(again.connack == (0, 0), "a new session (session present 0), got %r" % (again.connack,))
    n1.log_wait(r"outgrown .*the session at node node2 had ended; a new session starts here", 5)


h.run(test_restarted_node_without_its_files, test_session_outgrowing_its_record)
