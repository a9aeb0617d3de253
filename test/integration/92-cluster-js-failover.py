"""Durable QoS 1 through a JetStream leader fail-over (persistence true): 3 nats-server processes
(JetStream) and 3 certmq nodes. Two publishers send QoS 1 at 20 msg/s each, an MQTT 5 one on the
node whose NATS server leads the stream CMQ_Q_test (its own link goes down with it) and an MQTT
3.1.1 one on another node; a persistent subscriber is on the third. The leader is killed (SIGKILL)
and publishing goes on for 10 s: no publish is refused (no PUBACK 0x80, no disconnection), every
PUBACK comes, none later than 10 s after its PUBLISH, and every acknowledged message reaches the
subscriber (duplicates from attempts sent again are counted and allowed). While PUBACKs are held
the publishers are still served: a PINGREQ sent every second is answered within a second (a
device's keep-alive must not run out during an election; checked on the MQTT 5 publisher). Right
after the kill the 3.1.1 publisher sends a burst of 300 more (past the 256 acknowledgements a
client may have waiting, so the node stops reading it for a while): PUBACKs come in the order of
the publishes. Before that: refusals
that will not pass are not retried: a message over NATS's max_payload or over the stream's
max_msg_size (JetStream error 10054) gets 0x80 at once, and one for a stream someone deleted gets
0x80 well before cluster_ack_timeout (the stream is made again)."""
import json
import socket
import threading
import time

from certmq_test import Harness, check, mqtt_str, packet, publish_packet, read_packet, wait_for
from cluster_test import Cluster, durable_nodes, stream_leader, wait_routed

RATE = 20
RUN_AFTER_KILL = 10
MAX_STALL = 10.0

h = Harness()
pki = h.pki()
for d in ("any", "admin"):
    pki.device(d)
ACL = "user any\ntopic readwrite #\nuser admin\ntopic read $SYS/#\n"


# MQTT takes packets larger than NATS's max_payload (1 MB): those are refused by nats.c.
node_extra = durable_nodes(h.tmp, "max_packet_size 2097152\n")


cl = Cluster(h, pki, ACL, node_extra=node_extra)
for n in cl.nodes:
    n.log_wait(r"QoS >= 1 messages made durable in JetStream stream CMQ_Q_test", 15)
alive = list(cl.nats)


def js_api(server, subject, body=b""):
    """One JetStream API request over a plain NATS connection: the JSON reply."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    f = s.makefile("rb")
    f.readline()  # INFO
    s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
              b"SUB _t.reply 1\r\nPUB %s _t.reply %d\r\n%s\r\n" % (subject.encode(), len(body), body))
    while True:
        line = f.readline()
        check(line, "NATS closed the connection")
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif line.startswith(b"MSG "):
            n = int(line.split()[-1])
            data = f.read(n + 2)[:n]
            s.close()
            return json.loads(data)


def durable_stats(node):
    a = h.paho(node, pki, "admin", client_id="fo-sys-%d" % time.monotonic_ns())
    a.subscribe("$SYS/broker/cluster/durable/#", 0)
    vals = {}

    def got():
        for m in list(a.messages):
            vals[m[0].rsplit("/", 1)[1]] = int(m[1])
        return "retried" in vals and "failed" in vals
    wait_for(got, 5, "$SYS durable stats")
    a.disconnect()
    return vals


class RawPub:
    """A raw QoS 1 publisher: when each PUBLISH went out and when its PUBACK came, with its
    reason code; a closed connection is recorded too."""

    def __init__(self, node, v5, cid):
        self.v5, self.topic = v5, "fo/" + cid
        self.s = h.raw_tls(node, pki, "any")
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        level = b"\x05\x02\x00\x3c\x00" if v5 else b"\x04\x02\x00\x3c"
        self.s.sendall(packet(0x10, mqtt_str("MQTT") + level + mqtt_str(cid)))
        first, body = read_packet(self.s)
        check(first == 0x20 and body[1] == 0, "CONNACK ok")
        self.sent, self.acks, self.closed = {}, {}, None
        self.pings, self.pongs, self.order = [], [], []
        self.lock = threading.Lock()
        self.s.settimeout(None)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                first, body = read_packet(self.s, None)
            except OSError:
                first = None
            if first is None:
                self.closed = time.time()
                return
            if first >> 4 == 13:
                self.pongs.append(time.time())
            if first >> 4 == 4:
                pid = int.from_bytes(body[:2], "big")
                with self.lock:
                    self.acks[pid] = (time.time(), body[2] if len(body) > 2 else 0)
                    self.order.append(pid)

    def publish(self, k, payload=None, topic=None):
        pid = k % 65535 + 1
        p = payload if payload is not None else b"%d" % k
        if self.v5:
            pkt = packet(0x32, mqtt_str(topic or self.topic) + pid.to_bytes(2, "big") + b"\x00" + p)
        else:
            pkt = publish_packet(topic or self.topic, p, 1, pid=pid)
        with self.lock:
            self.sent[pid] = time.time()
        self.s.sendall(pkt)
        return pid

    def ping(self):
        self.pings.append(time.time())
        self.s.sendall(b"\xc0\x00")

    def ack(self, pid, timeout):
        wait_for(lambda: pid in self.acks or self.closed, timeout, "PUBACK %d" % pid)
        check(pid in self.acks, "PUBACK %d (connection closed)" % pid)
        t, rc = self.acks[pid]
        return t - self.sent[pid], rc


def test_final_refusals_are_not_retried():
    n1 = cl.nodes[0]
    p = RawPub(n1, True, "refusal")
    lat, rc = p.ack(p.publish(1), 10)
    check(rc == 0, "accepted before: reason %#x" % rc)
    before = durable_stats(n1)
    lat, rc = p.ack(p.publish(2, b"x" * (1100 * 1024)), 5)
    check(rc == 0x80, "over max_payload: PUBACK 0x80, got %#x" % rc)
    check(lat < 1, "over max_payload: refused at once, took %.2f s" % lat)
    # The stream refuses it (JetStream error 10054, not "unavailable"): refused at once too.
    cfg = js_api(alive[0], "$JS.API.STREAM.INFO.CMQ_Q_test")["config"]
    cfg["max_msg_size"] = 4096
    r = js_api(alive[0], "$JS.API.STREAM.UPDATE.CMQ_Q_test", json.dumps(cfg).encode())
    check("error" not in r, "stream updated: %r" % r)
    lat, rc = p.ack(p.publish(5, b"y" * 8192), 5)
    check(rc == 0x80, "over the stream's max_msg_size: PUBACK 0x80, got %#x" % rc)
    check(lat < 1, "over the stream's max_msg_size: refused at once, took %.2f s" % lat)
    cfg["max_msg_size"] = -1
    check("error" not in js_api(alive[0], "$JS.API.STREAM.UPDATE.CMQ_Q_test", json.dumps(cfg).encode()),
          "stream updated back")
    time.sleep(1.5)  # $SYS is published every second
    check(durable_stats(n1)["retried"] == before["retried"], "the refused messages were not retried")
    r = js_api(alive[0], "$JS.API.STREAM.DELETE.CMQ_Q_test")
    check(r.get("success"), "stream deleted: %r" % r)
    start = n1.log_count()
    lat, rc = p.ack(p.publish(3), 15)
    check(rc == 0x80, "stream gone: PUBACK 0x80, got %#x" % rc)
    check(lat < 8, "stream gone: refused in %.1f s, well before cluster_ack_timeout (15 s)" % lat)
    print("stream deleted: publish refused after %.1f s" % lat)
    n1.log_wait(r"JetStream stream CMQ_Q_test is gone", 2, start)
    n1.log_wait(r"QoS >= 1 messages made durable in JetStream stream CMQ_Q_test", 15, start)
    lat, rc = p.ack(p.publish(4), 10)
    check(rc == 0, "accepted again once the stream is made again: %#x" % rc)
    p.s.close()


def test_leader_failover_refuses_nothing():
    leader = None
    wait_for(lambda: stream_leader(alive) is not None, 15, "a leader for CMQ_Q_test")
    leader = stream_leader(alive)
    li = [s.name for s in cl.nats].index(leader)
    # Node i is linked first to NATS server i: the MQTT 5 publisher loses its own link too.
    n5, n3, ns = cl.nodes[li], cl.nodes[(li + 1) % 3], cl.nodes[(li + 2) % 3]
    sub = h.paho(ns, pki, "any", client_id="fo-sub", clean=False)
    check(sub.subscribe("fo/#", 1) == 1, "QoS 1 granted")
    for node, tag in ((n5, "a"), (n3, "b")):
        probe = h.paho(node, pki, "any", client_id="fo-probe-" + tag)
        wait_routed(probe, sub, "fo/probe")
        probe.disconnect()
    pubs = [RawPub(n5, True, "v5"), RawPub(n3, False, "v311")]
    before = {n: durable_stats(n) for n in (n5, n3)}
    stop, burst = threading.Event(), threading.Event()
    BURST = 300

    def run(p):
        k, burst_done = 0, False
        while not stop.is_set():
            p.publish(k)
            k += 1
            if burst.is_set() and not burst_done and not p.v5:
                for _ in range(BURST):
                    p.publish(k)
                    k += 1
                burst_done = True
            if k % RATE == 0:
                p.ping()
            time.sleep(1.0 / RATE)
        p.count = k

    threads = [threading.Thread(target=run, args=(p,)) for p in pubs]
    for t in threads:
        t.start()
    time.sleep(3)
    victim = cl.nats[li]
    killed_at = time.time()
    victim.proc.kill()
    victim.proc.wait()
    burst.set()
    alive.remove(victim)
    time.sleep(RUN_AFTER_KILL)
    stop.set()
    for t in threads:
        t.join()
    for p in pubs:
        wait_for(lambda: len(p.acks) >= p.count or p.closed, 30, "every PUBACK on %s" % p.topic)
    new_leader = stream_leader(alive)
    for p in pubs:
        check(not p.closed, "%s: not disconnected" % p.topic)
        lats = sorted(p.acks[pid][0] - p.sent[pid] for pid in p.acks)
        refused = [pid for pid in p.acks if p.acks[pid][1] != 0]
        worst = max(p.acks, key=lambda pid: p.acks[pid][0] - p.sent[pid])
        print("%s: %d published, %d PUBACKs, refused %d, longest publish->PUBACK %.2f s (sent %.1f s "
              "after the kill), median %.3f s"
              % (p.topic, p.count, len(p.acks), len(refused), lats[-1], p.sent[worst] - killed_at,
                 lats[len(lats) // 2]))
        check(len(p.acks) == p.count, "%s: every PUBACK" % p.topic)
        check(p.order == list(p.sent), "%s: PUBACKs in the order of the publishes" % p.topic)
        check(not refused, "%s: nothing refused" % p.topic)
        check(lats[-1] <= MAX_STALL, "%s: longest publish->PUBACK %.2f s" % (p.topic, lats[-1]))
        # PINGRESPs come in order: the k-th answers the k-th PINGREQ.
        waits = [b - a for a, b in zip(p.pings, p.pongs)]
        print("%s: %d PINGREQ, %d PINGRESP, longest wait %.2f s" % (p.topic, len(p.pings), len(p.pongs),
                                                                   max(waits or [0])))
        check(len(p.pongs) == len(p.pings), "%s: every PINGREQ answered" % p.topic)
        check(not p.v5 or max(waits) < 1.0,
              "%s: every PINGREQ answered within 1 s while PUBACKs were held" % p.topic)

    def received(topic):
        return [int(m[1]) for m in list(sub.messages) if m[0] == topic]

    for p in pubs:
        wait_for(lambda: set(range(p.count)) <= set(received(p.topic)), 15,
                 "every acknowledged message of %s on the subscriber" % p.topic)
        got = received(p.topic)
        print("%s: %d received, %d duplicate(s)" % (p.topic, len(got), len(got) - len(set(got))))
    for node, tag in ((n5, "v5 node"), (n3, "v311 node")):
        st = {k: v - before[node][k] for k, v in durable_stats(node).items()}
        print("%s: durable stored %d, retried %d, failed %d" % (tag, st["stored"], st["retried"],
                                                                 st["failed"]))
        check(st["failed"] == 0, "%s: nothing failed" % tag)
    print("stream leader %s killed; new leader %s" % (leader, new_leader))
    for p in pubs:
        p.s.close()
    sub.disconnect()


h.run(test_final_refusals_are_not_retried, test_leader_failover_refuses_nothing)
