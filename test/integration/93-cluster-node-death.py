"""A node killed (kill -9) and never restarted loses nothing acknowledged (persistence true): 3
nats-server processes and 3 certmq nodes. On node 3: a persistent QoS 1 subscriber that stays
connected ("online") and one that disconnected before the kill ("offline"); a publisher on node 1
sends QoS 1 at 100 msg/s throughout. Node 3 is killed. The online device reconnects to node 2:
its session is rebuilt there from node 3's record in JetStream (session present, subscription
kept) and what node 3 had not delivered is read back from the stream. The offline session is
adopted by a surviving node once node 3's heartbeats have stopped, and fills its queue from the
stream; its device comes back later on node 1 and gets every message published since it left.
Every message node 1 acknowledged reaches both subscribers (duplicates counted, none missing).
A device with a clean session and a will, connected to node 3 and never back: its will is
published by the node that adopts node 3's sessions (cluster_dead_node_wills, on by default).
The will device and the offline device's return are mosquitto_sub, as a fleet's tools would be."""
import threading
import time

from certmq_test import Harness, check, wait_for
from cluster_test import Cluster, durable_nodes, wait_routed

h = Harness()
pki = h.pki()
pki.device("any")
ACL = "user any\ntopic readwrite #\n"


node_extra = durable_nodes(h.tmp, "max_queued_messages 100000\n")


cl = Cluster(h, pki, ACL, node_extra=node_extra)
n1, n2, n3 = cl.nodes
for n in cl.nodes:
    n.log_wait(r"QoS >= 1 messages made durable in JetStream stream CMQ_Q_test", 15)
    n.log_wait(r"session records and node heartbeats in JetStream stream", 15)

RATE = 100


class Lines:
    """mosquitto_sub -v output as (topic, payload) pairs, read as it comes."""

    def __init__(self, p):
        self.messages = []

        def read():
            for line in p.stdout:
                topic, _, payload = line.rstrip("\n").partition(" ")
                self.messages.append((topic, payload.encode()))
        threading.Thread(target=read, daemon=True).start()


def received(c):
    return {int(m[1]) for m in list(c.messages) if m[0] == "death/load"}


def report(name, c, acked):
    got = [m for m in list(c.messages) if m[0] == "death/load"]
    missing = acked - received(c)
    print("%s: %d acknowledged, %d received, %d missing %r, %d duplicate(s)" % (
        name, len(acked), len(got), len(missing), sorted(missing)[:10], len(got) - len(set(m[1] for m in got))))
    return missing


def test_killed_node_loses_nothing_acknowledged():
    online = h.paho(n3, pki, "any", client_id="death-online", clean=False)
    check(online.subscribe("death/#", 1) == 1, "QoS 1 granted")
    offline = h.paho(n3, pki, "any", client_id="death-offline", clean=False)
    check(offline.subscribe("death/#", 1) == 1, "QoS 1 granted")
    will = h.mosquitto_sub_bg(n3, pki, "any", "-i", "death-will", "-t", "death/none", "--will-topic",
                              "death/will", "--will-payload", "gone", "--will-qos", "1")
    n3.log_wait(r"client death-will connected", 5)
    pub = h.paho(n1, pki, "any", client_id="death-pub", clean=False)
    wait_routed(pub, online, "death/probe")
    offline.disconnect()
    time.sleep(0.5)
    seqs = {}
    stop = threading.Event()

    def publish():
        k, t0 = 0, time.time()
        while not stop.is_set():
            info = pub.c.publish("death/load", b"%d" % k, 1)
            seqs[info.mid] = k
            k += 1
            time.sleep(max(0, t0 + k / RATE - time.time()))
    t = threading.Thread(target=publish, daemon=True)
    t.start()
    time.sleep(2)
    n3.kill()
    t_kill = time.time()
    online.c.loop_stop()
    online.c.socket().close() if online.c.socket() else None
    # The device comes back on node 2 (a load balancer would send it to any live node).
    again = h.paho(n2, pki, "any", client_id="death-online", clean=False)
    back = time.time() - t_kill
    check(again.connack == (1, 0), "session present on node 2, got %r" % (again.connack,))
    n2.log_wait(r"death-online .*session rebuilt from the record of node node3", 5)
    # The offline session: adopted by node 1 or node 2 once node 3 is taken for dead.
    wait_for(lambda: any(any("adopted the sessions of dead node node3" in l for l in n.log())
                         for n in (n1, n2)), 20, "node 3's offline session adopted")
    time.sleep(2)
    stop.set()
    t.join(5)
    wait_for(lambda: set(seqs) <= pub.acks, 30, "every PUBACK")
    acked = {seqs[m] for m in seqs}
    # mosquitto_sub subscribes again when it connects: what it gets from before that moment it
    # can only get from the adopted session's queue.
    later = Lines(h.mosquitto_sub_bg(n1, pki, "any", "-c", "-i", "death-offline", "-q", "1", "-t", "death/#",
                                     "-v"))
    try:
        wait_for(lambda: acked <= received(again) and acked <= received(later), 30,
                 "every acknowledged message at both subscribers")
    finally:
        m1 = report("online (moved to node 2 in %.2f s)" % back, again, acked)
        m2 = report("offline (adopted, back with mosquitto_sub)", later, acked)
    will.kill()
    check(not m1 and not m2, "nothing acknowledged is missing")
    wills = [m for m in list(again.messages) if m[0] == "death/will"]
    check(wills and wills[0][1] == b"gone", "the will of the device on the dead node was published")


h.run(test_killed_node_loses_nothing_acknowledged)
