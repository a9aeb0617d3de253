"""Cluster routing over NATS: 3 nats-server processes clustered on loopback, 3 certmq nodes. A
publish on one node reaches subscribers on another (10,000 QoS 1 messages in order; awkward topics
byte-identical), `#` never sees `$` topics from another node, NATS forwards nothing to a node
without interest (checked on the NATS monitoring ports), and the receiving node's ACL decides."""
import time

from certmq_test import Harness, check, wait_for
from cluster_test import Cluster, wait_routed

h = Harness()
pki = h.pki()
for d in ("any", "dev1", "dev2", "reader"):
    pki.device(d)
ACL = ("pattern readwrite devices/%u/#\n"
       "user any\ntopic readwrite #\ntopic readwrite $x/#\ntopic read $SYS/#\n"
       "user reader\ntopic read devices/#\ntopic readwrite probe/#\n")
# A QoS 1 subscriber on another node cannot slow the publisher down (no cross-node flow control
# yet): its queue must hold a burst.
cl = Cluster(h, pki, ACL, extra="max_queued_messages 20000\n")
n1, n2, n3 = cl.nodes


def drop_all(*clients):
    for c in clients:
        c.disconnect()


def test_10000_qos1_in_order():
    sub = h.paho(n1, pki, "any", client_id="sub-a")
    check(sub.subscribe("bulk/#", 1) == 1, "granted QoS 1")
    pub = h.paho(n3, pki, "any", client_id="pub-a")
    wait_routed(pub, sub, "bulk/probe")
    pub.c.max_inflight_messages_set(100)
    infos = [pub.c.publish("bulk/seq", b"%d" % i, 1) for i in range(10000)]
    wait_for(lambda: all(i.mid in pub.acks for i in infos[-100:]), 60, "PUBACKs of 10,000")
    wait_for(lambda: len(sub.messages) >= 10000, 60, "10,000 messages on node 1")
    got = [int(m[1]) for m in sub.messages if m[0] == "bulk/seq"]
    check(len(got) == 10000, "10,000 received, got %d" % len(got))
    check(got == list(range(10000)), "in publish order")
    check(all(m[2] == 1 for m in sub.messages if m[0] == "bulk/seq"), "all at QoS 1")
    sub.messages.clear()
    drop_all(sub, pub)


AWKWARD = ["a.b", "a b", "x*y", "x>y", "*", ">", "a//b", "/lead", "trail/", "/", "=3D", "%41",
           "tab\there", "\u00fcn\u00efc\u00f6d\u00e9/\u20ac/\U0001F600", "A-Z_a-z.0-9",
           "long/" + "x.y " * 16000]


def test_awkward_topics_byte_identical():
    sub = h.paho(n1, pki, "any", client_id="sub-b")
    check(sub.subscribe("#", 1) == 1, "granted")
    pub = h.paho(n2, pki, "any", client_id="pub-b")
    wait_routed(pub, sub, "probe/b")
    for t in AWKWARD:
        pub.publish(t, t.encode()[:100], 1)
    for t in AWKWARD:
        topic, payload, qos, retain = sub.expect(t, 10)
        check(topic.encode() == t.encode() and payload == t.encode()[:100], "topic %r intact" % t[:40])
    drop_all(sub, pub)


def test_dollar_topics_not_matched_by_wildcards():
    wild = h.paho(n1, pki, "any", client_id="wild")
    check(wild.subscribe("#", 0) == 0 and wild.subscribe("+/y", 0) == 0, "granted")
    dollar = h.paho(n1, pki, "any", client_id="dollar")
    check(dollar.subscribe("$x/#", 0) == 0, "granted $x/#")
    pub = h.paho(n2, pki, "any", client_id="pub-c")
    wait_routed(pub, wild, "probe/c")
    deadline = time.time() + 10
    while time.time() < deadline:  # the $ filter's interest travels like any other
        pub.publish("$x/y", b"1", 0)
        if dollar.messages:
            break
        time.sleep(0.1)
    dollar.expect("$x/y", 2)
    pub.publish("$x/y", b"2", 1)
    pub.publish("plain/y", b"3", 1)
    dollar.expect("$x/y")
    wild.expect("plain/y")
    time.sleep(0.5)
    leaked = [m[0] for m in wild.messages if m[0].startswith("$")]
    check(not leaked, "wildcards on node 1 got $ topics from node 2: %r" % leaked[:3])
    drop_all(wild, dollar, pub)


def node_out_msgs(server, node):
    """Messages the NATS server sent to a certmq node's connections."""
    conns = server.get("connz")["connections"]
    return sum(c["out_msgs"] for c in conns if (c.get("name") or "").startswith("certmq test %s " % node))


def route_out(server):
    """Messages server sent over its routes, by the peer server's name."""
    names = {s.get("varz")["server_id"]: s.name for s in cl.nats}
    out = {}
    for r in server.get("routez")["routes"]:
        peer = names.get(r["remote_id"], r["remote_id"])
        out[peer] = out.get(peer, 0) + r["out_msgs"]
    return out


def test_no_forwarding_without_interest():
    sub = h.paho(n1, pki, "any", client_id="sub-d")
    check(sub.subscribe("only1/#", 0) == 0, "granted")
    pub = h.paho(n2, pki, "any", client_id="pub-d")
    wait_routed(pub, sub, "only1/probe")
    s1, s2, s3 = cl.nats
    before_routes, before_n3 = route_out(s2), node_out_msgs(s3, "node3")
    n = 3000
    for i in range(n):
        pub.c.publish("only1/x", b"%d" % i, 0)
    wait_for(lambda: len([m for m in sub.messages if m[0] == "only1/x"]) >= n * 0.99, 30,
             "messages on node 1")
    after_routes, after_n3 = route_out(s2), node_out_msgs(s3, "node3")
    to_n1 = after_routes.get("n1", 0) - before_routes.get("n1", 0)
    to_n3 = after_routes.get("n3", 0) - before_routes.get("n3", 0)
    check(to_n1 >= n, "n2 -> n1 route carried the messages (%d of %d)" % (to_n1, n))
    check(to_n3 < n * 0.01, "n2 -> n3 route carried %d of %d messages: forwarded without interest"
          % (to_n3, n))
    # node 3's connections also carry JetStream traffic of their own (the retained bucket's
    # consumer heartbeats every 2 s, read-barrier replies): a handful, never the 3,000
    check(after_n3 - before_n3 < n * 0.01,
          "node 3's NATS connections got %d messages" % (after_n3 - before_n3))
    drop_all(sub, pub)


def test_acl_enforced_on_receiving_node():
    snoop = h.paho(n1, pki, "dev1")
    check(snoop.subscribe("devices/#", 1) == 1, "dev1 may subscribe devices/# (reads filtered)")
    reader = h.paho(n1, pki, "reader")
    check(reader.subscribe("devices/#", 1) == 1 and reader.subscribe("probe/#", 0) == 0, "granted")
    pub = h.paho(n2, pki, "dev2")
    probe = h.paho(n2, pki, "reader", client_id="reader-pub")
    wait_routed(probe, reader, "probe/e")
    pub.publish("devices/dev2/secret", b"s", 1)
    reader.expect("devices/dev2/secret")
    snoop.expect_none(0.7)
    drop_all(snoop, reader, pub, probe)


def test_sys_counters():
    c = h.paho(n3, pki, "any", client_id="sys")
    check(c.subscribe("$SYS/broker/cluster/#", 0) == 0, "granted")
    vals = {}
    deadline = time.time() + 5
    while time.time() < deadline and len(vals) < 8:
        with c.cv:
            for m in c.messages:
                vals[m[0]] = int(m[1])
        time.sleep(0.1)
    check(vals.get("$SYS/broker/cluster/connected") == 1, "connected: %r" % vals)
    check(vals.get("$SYS/broker/cluster/messages/sent", 0) >= 10000, "sent: %r" % vals)
    check(vals.get("$SYS/broker/cluster/messages/invalid") == 0, "invalid: %r" % vals)
    c.disconnect()


def test_nodes_stop_cleanly():
    for b in cl.nodes:
        check(b.stop() == 0, "node stops with status 0")
    check(not [l for b in cl.nodes for l in b.log() if "cluster: message from NATS" in l],
          "no malformed messages between nodes")


h.run(test_10000_qos1_in_order, test_awkward_topics_byte_identical,
      test_dollar_topics_not_matched_by_wildcards, test_no_forwarding_without_interest,
      test_acl_enforced_on_receiving_node, test_sys_counters, test_nodes_stop_cleanly)
