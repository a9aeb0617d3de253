"""Handshake load: 40 devices connect at once with full handshakes while max_handshakes admits
4 at a time and each loop turn does a bounded amount of handshake work; every one of them gets
its CONNACK, and a connected pair keeps exchanging messages throughout (its round trips are
printed, not asserted: performance is measured by test/bench, not here). Then the pair idles
long enough for the broker to give its TLS record buffers back, and carries on unharmed."""
import threading
import time

from certmq_test import Harness, check, connect_packet, read_packet

h = Harness()
pki = h.pki()
N = 40
for i in range(N):
    pki.device("d%d" % i)
pki.device("pub")
pki.device("watcher")
ACL = "pattern readwrite devices/%u/#\nuser watcher\ntopic read devices/#\n"
b = h.broker(pki, ACL, extra="max_handshakes 4\ntls_handshake_timeout 30000\n")


def test_storm_while_serving():
    w = h.paho(b, pki, "watcher")
    w.subscribe("devices/pub/#", 0)
    p = h.paho(b, pki, "pub")
    results = [None] * N

    def dev(i):
        try:
            s = h.raw_tls(b, pki, "d%d" % i)
            s.sendall(connect_packet("d%d" % i))
            results[i] = read_packet(s, 30)
            s.close()
        except Exception as e:  # recorded, checked below
            results[i] = e

    threads = [threading.Thread(target=dev, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    rtt = []
    while any(t.is_alive() for t in threads) and len(rtt) < 2000:
        t0 = time.time()
        p.publish("devices/pub/x", b"%d" % len(rtt), 0)
        w.expect("devices/pub/x", 5)
        rtt.append(time.time() - t0)
    for t in threads:
        t.join(40)
    bad = [(i, r) for i, r in enumerate(results) if not (isinstance(r, tuple) and r[0] == 0x20)]
    check(not bad, "every device got its CONNACK: %r" % bad[:3])
    check(rtt, "the connected pair exchanged messages during the storm")
    rtt.sort()
    print("round trips during the storm: %d, median %.1f ms, max %.1f ms"
          % (len(rtt), rtt[len(rtt) // 2] * 1000, rtt[-1] * 1000))
    time.sleep(11)  # parked after 5-10 s without I/O
    for i in range(50):
        p.publish("devices/pub/after", b"%d" % i, 1)
    for i in range(50):
        t, payload, q, r = w.expect("devices/pub/after", 5)
        check(payload == b"%d" % i, "in order after the idle period: %r" % payload)
    time.sleep(11)
    p.publish("devices/pub/again", b"x" * 20000, 1)
    check(w.expect("devices/pub/again", 5)[1] == b"x" * 20000, "a multi-record message after parking")
    p.disconnect()
    w.disconnect()


h.run(test_storm_while_serving)
