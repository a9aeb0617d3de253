"""A subscriber's queue drains to the end without any further event: a burst much larger than one
write slot (256 KiB) is queued for a QoS 0 subscriber that only reads, then nothing else happens.
Old code stopped a write slot when its output was full and, if the kernel then took all of it in
one write, never scheduled the next one: the rest waited for the subscriber's next packet (its
keep-alive PINGREQ, up to a minute later)."""
import time

from certmq_test import Harness, check, connect_packet, mqtt_str, packet, read_packet

N = 6000
PAYLOAD = b"p" * 1000  # 6 MB in all: about 24 write slots

h = Harness()
pki = h.pki()
for d in ("burst", "reader"):
    pki.device(d)
b = h.broker(pki, "pattern readwrite #\n",
             extra="max_queued_messages 100000\nmax_queued_bytes 0\n")


def connect(device):
    s = h.raw_tls(b, pki, device)
    s.sendall(connect_packet(device, keepalive=0))
    first, body = read_packet(s, 10)
    check(first == 0x20 and body[1] == 0, "%s: CONNACK ok" % device)
    return s


def test_burst_drains_without_further_events():
    reader = connect("reader")
    reader.sendall(packet(0x82, (1).to_bytes(2, "big") + mqtt_str("burst/#") + b"\x00"))
    first, _ = read_packet(reader, 10)
    check(first == 0x90, "SUBACK")

    pub = connect("burst")
    topic = mqtt_str("burst/t")
    one = packet(0x30, topic + PAYLOAD)
    pub.sendall(one * N)  # all of it at once: the broker reads far faster than one slot writes

    got, end = 0, time.time() + 20
    while got < N and time.time() < end:
        try:
            first, _ = read_packet(reader, max(0.1, end - time.time()))
        except OSError:  # timed out: the stall this test is about
            break
        if first is None:
            break
        if first & 0xF0 == 0x30:
            got += 1
    check(got == N, "all %d messages arrived with no further packet from the reader (got %d)" % (N, got))


h.run(test_burst_drains_without_further_events)
