"""Sessions keyed by (certificate identity, client id): offline queues for persistent sessions,
takeover by the same identity only, clientid_policy match, keep-alive."""
import socket
import ssl
import time

from certmq_test import Harness, check, connect_packet, read_packet, subscribe_packet

h = Harness()
pki = h.pki()
for d in ("dev-a", "dev-b", "pub"):
    pki.device(d)
ACL = "pattern readwrite devices/%u/#\npattern read fleet/#\nuser pub\ntopic write fleet/#\n"
b = h.broker(pki, ACL, extra="max_queued_messages 100\n")
pub = h.paho(b, pki, "pub")


def test_offline_queue():
    s = h.paho(b, pki, "dev-a", client_id="keeper", clean=False)
    check(s.subscribe("fleet/#", 1) == 1, "granted")
    s.disconnect()
    time.sleep(0.2)
    for i in range(5):
        pub.publish("fleet/cmd", b"m%d" % i, 1)
    pub.publish("fleet/cmd0", b"qos0", 0)  # QoS 0 is not kept for offline sessions
    s2 = h.paho(b, pki, "dev-a", client_id="keeper", clean=False)
    check(s2.connack[0] == 1, "session present")
    got = [s2.expect("fleet/cmd")[1] for _ in range(5)]
    check(got == [b"m%d" % i for i in range(5)], "queued messages in order, got %r" % got)
    s2.expect_none(0.5)
    s2.disconnect()
    # A clean session discards the old one.
    s3 = h.paho(b, pki, "dev-a", client_id="keeper", clean=True)
    check(s3.connack[0] == 0, "no session present after clean start")
    s3.disconnect()


def test_takeover_same_identity():
    first = h.paho(b, pki, "dev-a", client_id="dup")
    n = b.log_count()
    second = h.paho(b, pki, "dev-a", client_id="dup")
    check(first.disconnected.wait(5), "the first connection is closed by the takeover")
    b.log_wait("session taken over", 5, n)
    check(second.connack == (0, 0), "second accepted")
    second.disconnect()


def test_other_identity_cannot_take_over():
    a = h.paho(b, pki, "dev-a", client_id="shared-id")
    bb = h.paho(b, pki, "dev-b", client_id="shared-id")
    check(not a.disconnected.wait(1), "dev-b with dev-a's client id must not end dev-a's session")
    check(a.subscribe("devices/dev-a/x", 1) == 1, "dev-a still works")
    a.disconnect()
    bb.disconnect()


def test_keepalive_timeout():
    s = h.raw_tls(b, pki, "dev-b")
    s.sendall(connect_packet("sleepy", keepalive=1))
    check(s.recv(4)[:2] == b"\x20\x02", "CONNACK")
    start = time.time()
    s.settimeout(5)
    data = s.recv(10)  # nothing sent: the broker closes after 1.5 x keep-alive
    took = time.time() - start
    check(data == b"", "connection closed")
    check(1.2 < took < 3.5, "closed after ~1.5 s, took %.2f" % took)
    b.log_wait("keep-alive timeout", 3)


def test_inflight_redelivered_with_dup():
    s = h.raw_tls(b, pki, "dev-b")
    s.sendall(connect_packet("redeliver", clean=False))
    check(read_packet(s)[0] == 0x20, "CONNACK")
    s.sendall(subscribe_packet("fleet/x", 1, 5))
    check(read_packet(s)[0] == 0x90, "SUBACK")
    pub.publish("fleet/x", b"unacked", 1)
    first, body = read_packet(s)
    check(first & 0xF0 == 0x30 and not first & 0x08, "first delivery without DUP")
    s.close()  # no PUBACK
    time.sleep(0.3)
    s = h.raw_tls(b, pki, "dev-b")
    s.sendall(connect_packet("redeliver", clean=False))
    first, body = read_packet(s)
    check(first == 0x20 and body[0] == 1, "session present")
    first, body = read_packet(s)
    check(first & 0xF0 == 0x30 and first & 0x08, "redelivered with DUP (first byte %02x)" % first)
    check(body.endswith(b"unacked"), "same message")
    pid = body[2 + body[1]:4 + body[1]]
    s.sendall(b"\x40\x02" + pid)
    s.sendall(b"\xe0\x00")
    s.close()


h.run(test_inflight_redelivered_with_dup, test_offline_queue, test_takeover_same_identity, test_other_identity_cannot_take_over,
      test_keepalive_timeout)
