"""A graceful stop of one cluster node under load, through HAProxy: 3 nats-server processes, 3
certmq nodes behind HAProxy (TCP passthrough, round robin, health checks). 6 publishers send QoS 1
at 50 msg/s each and 6 persistent QoS 1 subscribers read everything, spread over the nodes; node 1
gets SIGTERM. Its devices reconnect through HAProxy to the other nodes within 5 s, the
subscribers' sessions follow them (node 1 stays on NATS until they are claimed,
cluster_drain_timeout), and every message any node acknowledged reaches every subscriber
(duplicates counted, none missing). Node 1 exits 0 once its sessions are gone."""
import threading
import time
import types

from certmq_test import HAProxy, Harness, check, wait_for
from cluster_test import Cluster

N = 6
RATE = 50

h = Harness()
pki = h.pki()
pki.device("any")
ACL = "user any\ntopic readwrite #\n"
cl = Cluster(h, pki, ACL, extra="max_queued_messages 100000\n")
n1, n2, n3 = cl.nodes
hap = HAProxy(h, [n.port for n in cl.nodes])
front = types.SimpleNamespace(port=hap.port)


class Device:
    """A paho client through HAProxy that reconnects at once and records when it is back."""

    def __init__(self, cid, clean):
        self.c = h.paho(front, pki, "any", client_id=cid, clean=clean)
        self.c.c.reconnect_delay_set(0.05, 0.5)
        self.downs, self.ups = [], []
        on_conn = self.c.c.on_connect
        self.c.c.on_disconnect = lambda *a: self.downs.append(time.time())

        def connected(c, u, flags, rc, props=None):
            on_conn(c, u, flags, rc, props)
            self.ups.append((time.time(), flags.get("session present", 0)))
        self.c.c.on_connect = connected


def node_of(node, cid):
    return any(("client %s connected" % cid) in l for l in node.log())


def test_graceful_stop_loses_nothing():
    subs = [Device("gs-sub-%d" % i, clean=False) for i in range(N)]
    for d in subs:
        check(d.c.subscribe("load/#", 1) == 1, "QoS 1 granted")
    pubs = [Device("gs-pub-%d" % i, clean=True) for i in range(N)]
    on_n1 = [d for d in subs + pubs if node_of(n1, d.c.c._client_id.decode())]
    check(on_n1, "some devices landed on node 1")
    # Interest travels between nodes: wait until a probe from every publisher reaches everyone.
    for p in pubs:
        p.c.publish("load/probe", b"x", 1)
    wait_for(lambda: all(sum(1 for m in d.c.messages if m[0] == "load/probe") >= N for d in subs), 10,
             "probes everywhere")
    for d in subs:
        with d.c.cv:
            d.c.messages.clear()
    mids = [dict() for _ in range(N)]  # publisher -> mid -> seq
    stop = threading.Event()

    def publish(i):
        k, t0 = 0, time.time()
        while not stop.is_set():
            info = pubs[i].c.c.publish("load/p%d" % i, b"%d" % k, 1)
            mids[i][info.mid] = k
            k += 1
            time.sleep(max(0, t0 + k / RATE - time.time()))
    threads = [threading.Thread(target=publish, args=(i,), daemon=True) for i in range(N)]
    for t in threads:
        t.start()
    time.sleep(2)
    t_stop = time.time()
    n1.proc.terminate()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(5)
    wait_for(lambda: all(set(mids[i]) <= pubs[i].c.acks for i in range(N)), 20, "every PUBACK")
    acked = {(i, mids[i][m]) for i in range(N) for m in mids[i]}

    def received(d):
        return {(int(m[0][6:]), int(m[1])) for m in list(d.c.messages) if m[0].startswith("load/p")}
    try:
        wait_for(lambda: all(acked <= received(d) for d in subs), 20, "every acknowledged message")
    finally:
        for d in subs:
            got = [m for m in list(d.c.messages) if m[0].startswith("load/p")]
            missing = acked - received(d)
            print("%s: %d acknowledged, %d received, %d missing %r, %d duplicate(s)" % (
                d.c.c._client_id.decode(), len(acked), len(got), len(missing), sorted(missing)[:5],
                len(got) - len(set((m[0], m[1]) for m in got))))
    back = []
    for d in on_n1:
        later = [t for t, sp in d.ups if t > t_stop]
        check(later, "%s reconnected" % d.c.c._client_id.decode())
        back.append(later[0] - t_stop)
        if d in subs:
            check([sp for t, sp in d.ups if t > t_stop][0] == 1,
                  "%s: session present on the new node" % d.c.c._client_id.decode())
    print("devices of node 1 back in %s s" % ", ".join("%.2f" % b for b in sorted(back)))
    check(max(back) < 5, "back within 5 s")
    check(n1.proc.wait(15) == 0, "node 1 exits 0")
    check(any("every persistent session was taken over by another node" in l for l in n1.log()),
          "node 1 handed its sessions over before stopping")


h.run(test_graceful_stop_loses_nothing)
