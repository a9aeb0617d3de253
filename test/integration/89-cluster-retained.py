"""Retained messages cluster-wide: 3 nats-server processes (JetStream) and 3 certmq nodes. 1,000
rounds of "publish retained QoS 1 on node 1, wait for the PUBACK, subscribe at once on nodes 2
and 3": every subscription gets the latest value (the read barrier). A clear propagates; a node
started later gets the whole retained set; the bucket holds it as one message per topic."""
import socket
import threading
import time

import paho.mqtt.client as mqtt

from certmq_test import Harness, TestFailure, check, wait_for
from cluster_test import Cluster

ROUNDS = int(__import__("os").environ.get("RET_ROUNDS", "1000"))

h = Harness()
pki = h.pki()
for d in ("any",):
    pki.device(d)
ACL = "user any\ntopic readwrite #\ntopic read $SYS/#\n"
cl = Cluster(h, pki, ACL)
n1, n2, n3 = cl.nodes


def nodelay(client):
    client.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Retained:
    """Collects the retained messages (retain flag set: answers to a SUBSCRIBE) per topic."""

    def __init__(self, client):
        self.c = client
        self.cv = threading.Condition()
        self.got = []
        client.c.on_message = self._on
        # The client's PUBACK for one round's retained message and the next SUBSCRIBE are both
        # small: with Nagle on, the SUBSCRIBE waits for the broker's delayed ACK (40 ms).
        nodelay(client)

    def _on(self, c, u, m):
        if m.retain:
            with self.cv:
                self.got.append((m.topic, m.payload))
                self.cv.notify_all()

    def take(self, timeout=5):
        end = time.time() + timeout
        with self.cv:
            while not self.got:
                left = end - time.time()
                if left <= 0:
                    raise TestFailure("no retained message")
                self.cv.wait(left)
            return self.got.pop(0)


def wait_ack(client, info, timeout=10):
    end = time.time() + timeout
    while info.mid not in client.acks:
        if time.time() > end:
            raise TestFailure("no PUBACK for the retained publish")
        time.sleep(0.0005)


def test_1000_rounds_latest_value_everywhere():
    pub = h.paho(n1, pki, "any", client_id="ret-pub")
    nodelay(pub)
    s2 = Retained(h.paho(n2, pki, "any", client_id="ret-s2"))
    s3 = Retained(h.paho(n3, pki, "any", client_id="ret-s3"))
    t0 = time.time()
    for k in range(ROUNDS):
        wait_ack(pub, pub.c.publish("ret/latest", b"%d" % k, 1, True))
        # Both at once, right after the PUBACK: each must see value k, never k-1.
        s2.c.c.subscribe("ret/latest", 1)
        s3.c.c.subscribe("ret/latest", 1)
        for s, name in ((s2, "node 2"), (s3, "node 3")):
            topic, payload = s.take()
            check(topic == "ret/latest" and payload == b"%d" % k,
                  "round %d on %s: got %r" % (k, name, payload))
    took = time.time() - t0
    print("info %d rounds in %.1f s (%.1f ms per round)" % (ROUNDS, took, took * 1000 / ROUNDS))
    for c in (pub, s2.c, s3.c):
        c.disconnect()


def test_clear_propagates():
    pub = h.paho(n3, pki, "any", client_id="clr-pub")
    pub.publish("ret/clear", b"x", 1, retain=True)
    s1 = Retained(h.paho(n1, pki, "any", client_id="clr-s1"))
    s1.c.subscribe("ret/clear", 1)
    check(s1.take()[1] == b"x", "set first")
    pub.publish("ret/clear", b"", 1, retain=True)  # empty payload: clear
    s2 = Retained(h.paho(n2, pki, "any", client_id="clr-s2"))
    s1.c.subscribe("ret/clear", 1)
    s2.c.subscribe("ret/clear", 1)
    time.sleep(0.7)
    check(not s1.got and not s2.got, "cleared everywhere: %r %r" % (s1.got, s2.got))
    for c in (pub, s1.c, s2.c):
        c.disconnect()


def test_late_node_gets_everything():
    pubs = [h.paho(n, pki, "any", client_id="set-pub%d" % i) for i, n in enumerate(cl.nodes)]
    want = {}
    for i in range(60):
        p = pubs[i % 3]
        t = "set/%d/%s" % (i, "x.y z" if i % 2 else "plain")
        p.publish(t, b"v%d" % i, 1, retain=True)
        want[t] = b"v%d" % i
    pubs[0].publish("set/0/plain", b"v0-new", 1, retain=True)
    want["set/0/plain"] = b"v0-new"
    n4 = cl.add_node()
    s = Retained(h.paho(n4, pki, "any", client_id="set-s4"))
    s.c.subscribe("set/#", 1)
    wait_for(lambda: len(s.got) >= len(want), 10, "the whole retained set on the late node")
    time.sleep(0.3)
    got = dict(s.got)
    check(len(s.got) == len(want) and got == want, "late node has exactly the set: %d of %d"
          % (len(got), len(want)))
    for c in pubs + [s.c]:
        c.disconnect()


def test_counters_and_bucket():
    info = cl.nats[0].get("jsz?streams=1&accounts=1")
    names = [st["name"] for a in info.get("account_details", []) for st in a.get("stream_detail", [])]
    check("KV_cmq_ret_test" in names, "bucket stream exists: %r" % names)
    c = h.paho(n2, pki, "any", client_id="sys-ret")
    vals = {}

    def on(cl_, u, m):
        vals[m.topic] = int(m.payload)

    c.c.on_message = on
    c.subscribe("$SYS/broker/cluster/retained/#", 0)
    wait_for(lambda: "$SYS/broker/cluster/retained/applied" in vals, 5, "$SYS retained counters")
    check(vals.get("$SYS/broker/cluster/retained/ready") == 1, "ready: %r" % vals)
    check(vals.get("$SYS/broker/cluster/retained/applied", 0) >= ROUNDS, "applied: %r" % vals)
    check(vals.get("$SYS/broker/cluster/retained/invalid") == 0, "invalid: %r" % vals)
    c.disconnect()


def test_v5_refused_when_jetstream_gone():
    c = h.paho(n1, pki, "any", client_id="gone-v5", protocol=mqtt.MQTTv5)
    cl.stop_nats()
    n1.log_wait(r"JetStream unreachable", 15)
    info = c.c.publish("ret/gone", b"x", 1, True)
    wait_for(lambda: info.mid in c.acks, 5, "an answer to the retained publish")
    n1.log_wait(r"retained message on ret/gone not acknowledged", 5)
    c.disconnect()


def test_nodes_stop_cleanly():
    for b in cl.nodes:
        check(b.stop() == 0, "node stops with status 0")


h.run(test_1000_rounds_latest_value_everywhere, test_clear_propagates, test_late_node_gets_everything,
      test_counters_and_bucket, test_v5_refused_when_jetstream_gone, test_nodes_stop_cleanly)
