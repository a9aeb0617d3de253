"""Shared subscriptions across a cluster: `$share/g/jobs/#` with one member on each of 3 nodes is
a NATS queue group, so every message published on any node reaches exactly one member; a plain
subscriber of the same filter still gets every message, and a group of another name gets its
own copy."""
import time

from certmq_test import Harness, check, wait_for
from cluster_test import Cluster

h = Harness()
pki = h.pki()
pki.device("any")
cl = Cluster(h, pki, "user any\ntopic readwrite #\n", extra="max_queued_messages 20000\n")


def test_one_member_per_node_exactly_once():
    members = [h.paho(b, pki, "any", client_id="m%d" % i) for i, b in enumerate(cl.nodes)]
    for m in members:
        check(m.subscribe("$share/g/jobs/#", 1) == 1, "member granted QoS 1")
    other = h.paho(cl.nodes[1], pki, "any", client_id="other")
    check(other.subscribe("$share/h/jobs/#", 1) == 1, "second group granted")
    plain = h.paho(cl.nodes[2], pki, "any", client_id="plain")
    check(plain.subscribe("jobs/#", 1) == 1, "plain subscriber granted")
    pubs = [h.paho(b, pki, "any", client_id="p%d" % i) for i, b in enumerate(cl.nodes)]
    # Interest travels through the NATS routes after SUBACK: wait until a probe from every node
    # reaches the plain subscriber and some member of each group.
    for p in pubs:
        deadline = time.time() + 10
        while time.time() < deadline:
            p.publish("jobs/probe", b"probe", 0)
            time.sleep(0.1)
            seen = lambda c: any(m[0] == "jobs/probe" for m in c.messages)
            if seen(plain) and seen(other) and any(seen(m) for m in members):
                break
    n = 3000
    infos = []
    for i in range(n):
        p = pubs[i % 3]
        infos.append((p, p.c.publish("jobs/%d" % (i % 7), b"%d" % i, 1)))
    wait_for(lambda: all(i.mid in p.acks for p, i in infos[-30:]), 60, "PUBACKs")
    def jobs(c):  # late probes may still come in: only the numbered messages count
        with c.cv:
            return [int(m[1]) for m in c.messages if m[0] != "jobs/probe"]

    total = lambda: sum(len(jobs(m)) for m in members)
    wait_for(lambda: total() >= n and len(jobs(plain)) >= n and len(jobs(other)) >= n, 60,
             "deliveries")
    time.sleep(0.5)  # any duplicate would arrive meanwhile
    got = [x for c in members for x in jobs(c)]
    check(len(got) == n and sorted(got) == list(range(n)),
          "group g: each message once (%d deliveries, %d distinct)" % (len(got), len(set(got))))
    check(sorted(jobs(other)) == list(range(n)), "group h: each message once")
    check(sorted(jobs(plain)) == list(range(n)), "plain subscriber: all")
    shares = [len(jobs(m)) for m in members]
    check(all(s > 0 for s in shares), "every member got some: %r" % shares)
    for c in members + pubs + [other, plain]:
        c.disconnect()


h.run(test_one_member_per_node_exactly_once)
