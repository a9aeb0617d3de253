"""What a node receives from NATS is untrusted: a raw NATS client (this test, speaking the NATS
text protocol itself) publishes a hand-built valid envelope, which is delivered like a message from
another node, and then bad subjects and bad envelopes, which are dropped, counted and logged while
the node goes on serving."""
import socket
import struct
import time

from certmq_test import Harness, check, free_port
from cluster_test import NatsServer

h = Harness()
pki = h.pki()
pki.device("any")
port = free_port()
nats = NatsServer(h, "solo", port, free_port(), free_port(), [])
b = h.broker(pki, "user any\ntopic readwrite #\ntopic read $SYS/#\n",
             extra="cluster_name test\nnode_name n1\ncluster_nats nats://127.0.0.1:%d\n" % port)
b.log_wait(r"routing link connected", 10)
sub = h.paho(b, pki, "any", client_id="sub")
check(sub.subscribe("#", 1) == 1, "granted")


def envelope(qos=1, retain=False, node=b"raw", ident=b"tester", ct=b"", rt=b"", cd=b"", up=b"",
             payload=b"", version=1, flags=None):
    """The documented version 1 layout (broker/domain/envelope.h), built independently."""
    f = flags if flags is not None else qos | (4 if retain else 0)
    return (bytes([version, f]) + bytes([len(node)]) + node + struct.pack(">H", len(ident)) + ident
            + struct.pack(">H", len(ct)) + ct + struct.pack(">H", len(rt)) + rt
            + struct.pack(">H", len(cd)) + cd + struct.pack(">I", len(up)) + up + payload)


class RawNats:
    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        check(self.s.recv(4096).startswith(b"INFO "), "NATS INFO")
        self.s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')

    def pub(self, subject, payload):
        self.s.sendall(b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload))

    def flush(self):
        self.s.sendall(b"PING\r\n")
        buf = b""
        end = time.time() + 5
        while b"PONG" not in buf and time.time() < end:
            buf += self.s.recv(4096)
        check(b"PONG" in buf, "PONG")


raw = RawNats()


def test_valid_envelope_delivered():
    deadline = time.time() + 10  # until the node's interest has reached the server
    while time.time() < deadline and not sub.messages:
        raw.pub(b"cmq.test.t.1.0.raw.a=2Eb", envelope(payload=b"hello", up=b"\x26\x00\x01k\x00\x01v"))
        raw.flush()
        time.sleep(0.1)
    topic, payload, qos, retain = sub.expect("raw/a.b", 2)
    check(payload == b"hello" and qos == 1 and not retain, "delivered as sent")
    time.sleep(0.3)
    with sub.cv:
        sub.messages.clear()


BAD = [
    (b"cmq.test.t.0.0.a=zz", envelope(), "not the subject of a valid topic"),
    (b"cmq.test.t.0.0.=41", envelope(), "not the subject of a valid topic"),
    (b"cmq.test.t.9.0.a", envelope(), "not the subject of a valid topic"),
    (b"cmq.test.t.0.0.=24x", envelope(), "not the subject of a valid topic"),
    (b"cmq.test.t.0.0.bad", b"\x01", "truncated envelope"),
    (b"cmq.test.t.0.0.bad", envelope(version=9), "unknown envelope version"),
    (b"cmq.test.t.0.0.bad", envelope(flags=0x80), "malformed envelope"),
    (b"cmq.test.t.0.0.bad", envelope(ident=b"\xff"), "malformed envelope"),
    (b"cmq.test.t.0.0.bad", envelope(rt=b"a/#"), "malformed envelope"),
    (b"cmq.test.t.0.0.bad", envelope(up=b"\x26\x00\x05k"), "malformed envelope"),
]


def test_bad_input_dropped_and_counted():
    start = b.log_count()
    for subject, payload, why in BAD:
        raw.pub(subject, payload)
    raw.flush()
    # Logged once every 1000 (a hostile publisher must not flood the log), counted exactly.
    b.log_wait(r"message from NATS on cmq\.test\.t\.0\.0\.a=zz dropped: not the subject of a "
               r"valid topic \(1 so far\)", 5, start)
    time.sleep(0.5)
    with sub.cv:  # nothing but late copies of the first test's probe
        leaked = [m[0] for m in sub.messages if m[0] != "raw/a.b"]
    check(not leaked, "bad input delivered: %r" % leaked)
    sub.publish("local/ok", b"1", 1)  # still serving
    sub.expect("local/ok")
    check(sub.subscribe("$SYS/broker/cluster/messages/invalid", 0) == 0, "granted")
    deadline = time.time() + 5
    n = -1
    while time.time() < deadline and n != len(BAD):
        topic, payload, qos, retain = sub.expect("$SYS/broker/cluster/messages/invalid", 3)
        n = int(payload)
    check(n == len(BAD), "%d invalid messages counted, %d sent" % (n, len(BAD)))


def test_each_reason_logged():
    """One fresh node per bad input would be slow; the reasons' texts are checked through the
    first line each kind produces on a node of its own."""
    for subject, payload, why in BAD[4:]:
        node = h.broker(pki, "user any\ntopic readwrite #\n",
                        extra="cluster_name test\nnode_name x\ncluster_nats nats://127.0.0.1:%d\n" % port)
        node.log_wait(r"routing link connected", 10)
        c = h.paho(node, pki, "any", client_id="c-" + why[:3])
        check(c.subscribe("bad", 0) == 0, "granted")
        deadline = time.time() + 5
        while time.time() < deadline:
            raw.pub(subject, payload)
            raw.flush()
            try:
                node.log_wait(r"dropped: %s" % why, 0.2)
                break
            except Exception:
                pass
        node.log_wait(r"dropped: %s" % why, 1)
        c.disconnect()
        check(node.stop() == 0, "node stops cleanly")


h.run(test_valid_envelope_delivered, test_bad_input_dropped_and_counted, test_each_reason_logged)
