"""Bad input closes only the connection that sent it; everyone else keeps being served."""
import time

from certmq_test import Harness, check, connect_packet, packet, mqtt_str, publish_packet

h = Harness()
pki = h.pki()
for d in ("evil", "good"):
    pki.device(d)
b = h.broker(pki, "pattern readwrite devices/%u/#\npattern read devices/#\n")
good = h.paho(b, pki, "good")
good.subscribe("devices/good/#", 1)

CONNECT = connect_packet("evil")
CASES = {
    "remaining length over 4 bytes": CONNECT + b"\x30\xff\xff\xff\xff\x7f",
    "reserved CONNECT flag": packet(0x10, mqtt_str("MQTT") + b"\x04\x03\x00\x3c" + mqtt_str("e")),
    "bad protocol name": packet(0x10, mqtt_str("HTTP") + b"\x04\x02\x00\x3c" + mqtt_str("e")),
    "PUBLISH before CONNECT": publish_packet("devices/evil/x", b"x"),
    "second CONNECT": CONNECT + CONNECT,
    "SUBSCRIBE with wrong flags": CONNECT + packet(0x80, b"\x00\x01" + mqtt_str("a") + b"\x00"),
    "PUBLISH QoS 3": CONNECT + packet(0x36, mqtt_str("devices/evil/x") + b"\x00\x01"),
    "topic with wildcard": CONNECT + publish_packet("devices/evil/#", b"x"),
    "invalid UTF-8 topic": CONNECT + packet(0x30, mqtt_str(b"devices/\xff") + b"x"),
    "SUBSCRIBE without entries": CONNECT + packet(0x82, b"\x00\x01"),
    "truncated string": CONNECT + packet(0x30, b"\x00\x10ab"),
    "reserved packet type 0": CONNECT + b"\x00\x00",
    "packet id 0": CONNECT + packet(0x32, mqtt_str("devices/evil/x") + b"\x00\x00x"),
}


def run_case(name, data):
    s = h.raw_tls(b, pki, "evil")
    s.sendall(data)
    s.settimeout(5)
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except Exception as e:
        raise AssertionError("%s: connection not closed (%s)" % (name, e))
    s.close()
    # A CONNACK may precede the close; nothing else may.
    check(got in (b"", b"\x20\x02\x00\x00") or got.startswith(b"\x20\x02\x00\x01"),
          "%s: unexpected bytes %r" % (name, got[:20]))
    # The broker is still serving others.
    good.publish("devices/good/ping", name.encode(), 1)
    t, p, q, r = good.expect("devices/good/ping")
    check(p == name.encode(), "delivery after " + name)


def test_malformed_packets():
    for name, data in CASES.items():
        run_case(name, data)


def test_garbage_instead_of_tls():
    import socket
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
    try:
        data = s.recv(100)
        while data:
            data = s.recv(100)
    except ConnectionResetError:
        pass
    s.close()
    good.publish("devices/good/ping", b"after garbage", 1)
    good.expect("devices/good/ping")


def test_slow_handshake_does_not_block():
    import socket
    idle = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(20)]
    good.publish("devices/good/ping", b"while idle", 1)
    good.expect("devices/good/ping")
    for s in idle:
        s.close()


h.run(test_malformed_packets, test_garbage_instead_of_tls, test_slow_handshake_does_not_block)
