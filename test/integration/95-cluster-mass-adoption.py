"""A node dies with more offline persistent sessions than replays run at once (64): 3
nats-server, 3 certmq nodes with persistence true. 100 devices on node 3 subscribe at QoS 1 with
a persistent session and disconnect; a publisher on node 1 sends them 20 acknowledged messages,
queued on node 3. Node 3 is killed and never restarted. The node that adopts its sessions
rebuilds all 100 and replays each one's messages from the stream, 64 at a time, the rest waiting
their turn; every replay ends (none given up). Each device then comes back to that node and gets
its session (session present) and all 20 messages."""
import re
import time

from certmq_test import Harness, check, connect_packet, packet, read_packet, subscribe_packet, wait_for
from cluster_test import Cluster, durable_nodes, wait_routed

N = 100
MSGS = 20

h = Harness()
pki = h.pki()
pki.device("any")
ACL = "user any\ntopic readwrite #\n"

cl = Cluster(h, pki, ACL, node_extra=durable_nodes(h.tmp, "max_persistent_sessions_per_identity 1000\n"))
n1, n2, n3 = cl.nodes
for n in cl.nodes:
    n.log_wait(r"QoS >= 1 messages made durable in JetStream stream CMQ_Q_test", 15)
    n.log_wait(r"session records and node heartbeats in JetStream stream", 15)


def session(b, cid):
    """A raw persistent MQTT 3.1.1 session: (socket, session present)."""
    s = h.raw_tls(b, pki, "any")
    s.sendall(connect_packet(cid, clean=False))
    first, body = read_packet(s)
    check(first == 0x20 and len(body) == 2 and body[1] == 0, "%s: CONNACK accepted, got %r" % (cid, body))
    return s, body[0] & 1


def loads(s, cid):
    """Read PUBLISHes (acknowledging QoS 1) until all MSGS numbered loads came or 10 s passed."""
    got = set()
    end = time.time() + 10
    while len(got) < MSGS and time.time() < end:
        first, body = read_packet(s, max(0.1, end - time.time()))
        check(first is not None, "%s: connection closed with %d of %d messages" % (cid, len(got), MSGS))
        if first >> 4 != 3:
            continue
        tlen = int.from_bytes(body[:2], "big")
        topic, rest = body[2:2 + tlen], body[2 + tlen:]
        if (first >> 1) & 3:
            s.sendall(packet(0x40, rest[:2]))
            rest = rest[2:]
        if topic == b"mass/load" and rest.isdigit():
            got.add(int(rest))
    return got


def test_adoption_beyond_the_replays_run_at_once():
    probe = h.paho(n3, pki, "any", client_id="mass-probe")
    check(probe.subscribe("mass/#", 1) == 1, "QoS 1 granted")
    for k in range(N):
        s, _ = session(n3, "mass-%d" % k)
        s.sendall(subscribe_packet("mass/load", 1, pid=1))
        first, body = read_packet(s)
        check(first == 0x90 and body == b"\x00\x01\x01", "mass-%d: SUBACK QoS 1, got %r" % (k, body))
        s.sendall(b"\xe0\x00")
        s.close()
    pub = h.paho(n1, pki, "any", client_id="mass-pub")
    wait_routed(pub, probe, "mass/probe")
    for k in range(MSGS):
        check(pub.publish("mass/load", b"%d" % k, 1), "PUBACK %d" % k)
    probe.expect("mass/load", 5)  # routed to node 3 (the others follow in order)
    time.sleep(1.5)  # records and the heartbeat's checkpoint after the queueing
    n3.kill()
    adopter = []

    def adopted():
        adopter[:] = [n for n in (n1, n2) if any("adopted the sessions of dead node node3" in l for l in n.log())]
        return adopter
    wait_for(adopted, 20, "node 3's sessions adopted")
    a = adopter[0]
    counts = [int(m.group(1)) for l in a.log() for m in [re.search(r"adopting (\d+) session\(s\) of dead node node3", l)]
              if m]
    check(counts == [N], "one adoption of %d sessions, got %r" % (N, counts))

    def replays_done():
        return sum(1 for l in a.log() if re.search(r"replay for client mass-\d+ done", l))
    try:
        wait_for(lambda: replays_done() == N, 60, "%d replays done" % N)
    finally:
        print("replays done: %d of %d" % (replays_done(), N))
    check(not any("ended early" in l for l in a.log()), "no replay given up")
    short = {}
    for k in range(N):
        cid = "mass-%d" % k
        s, present = session(a, cid)
        check(present == 1, "%s: session present" % cid)
        got = loads(s, cid)
        s.close()
        if got != set(range(MSGS)):
            short[cid] = sorted(set(range(MSGS)) - got)
    check(not short, "devices missing messages: %r" % dict(list(short.items())[:5]))


h.run(test_adoption_beyond_the_replays_run_at_once)
