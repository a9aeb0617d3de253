"""A node cut off from NATS gives up what another node took meanwhile: 3 nats-server processes
(pinging their clients every second) and 3 certmq nodes. A device holds a persistent session on
node 3; node 3 is stopped (SIGSTOP) for several seconds (NATS may or may not drop its connections
meanwhile: the other nodes' heartbeats keep its connections busy); the device connects to node 1,
which claims the session, gets no answer from node 3 and rebuilds the session from node 3's
record. When node 3 runs again (SIGCONT), it notices its loop stood still (or its link to NATS
coming back), sees the newer claim, closes the old connection (MQTT 5: DISCONNECT 0x8E) and drops
its copy; the device's connection on node 1 stays, its session present."""
import os
import signal
import socket
import time

from certmq_test import Harness, TestFailure, check, mqtt_str, packet, read_packet, wait_for
from cluster_test import Cluster, stream_leader

h = Harness()
pki = h.pki()
pki.device("dev")
cl = Cluster(h, pki, "pattern readwrite devices/%u/#\n", nats_extra='ping_interval: "1s"\nping_max: 2\n')
n1, n2, n3 = cl.nodes

EXPIRY = b"\x05\x11\x00\x00\x0e\x10"  # properties: session expiry 3600 s


def connect(node):
    s = h.raw_tls(node, pki, "dev")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(packet(0x10, mqtt_str("MQTT") + b"\x05\x00\x00\x3c" + EXPIRY + mqtt_str("outage")))
    first, body = read_packet(s, 10)
    check(first == 0x20, "CONNACK")
    connect.present = body[0] & 1
    return s, body[1]


def alive(s):
    s.sendall(b"\xc0\x00")
    first, _ = read_packet(s, 5)
    return first == 0xD0


def test_cut_off_node_closes_what_it_lost():
    # A stream just created has no leader for a moment: a record written then waits for a retry.
    wait_for(lambda: stream_leader(cl.nats, "CMQ_REC_test"), 10, "the session records' stream has a leader")
    old, rc = connect(n3)
    check(rc == 0, "node 3 accepts the session")
    start = n3.log_count()
    # The session's record goes to JetStream at the end of the loop turn that sent the CONNACK:
    # give it that turn before the node stops (CONNACK does not wait for the record).
    time.sleep(0.3)
    os.kill(n3.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(4)
        end, new = time.time() + 30, None
        while new is None:
            s, rc = connect(n1)
            if rc == 0:
                new = s
                check(connect.present, "session present on node 1 (rebuilt from node 3's record)")
            else:
                s.close()
                check(time.time() < end, "node 1 gets the session within 30 s")
                time.sleep(0.5)
    finally:
        os.kill(n3.proc.pid, signal.SIGCONT)
    t0 = time.time()
    try:
        first, body = read_packet(old, 20)
    except socket.timeout:
        raise TestFailure("node 3 kept the connection node 1 took over")
    check(first == 0xE0 and body[0] == 0x8E, "DISCONNECT 0x8E, got %r %r" % (first, body))
    print("info old connection closed %.2f s after node 3 woke up" % (time.time() - t0))
    n3.log_wait(r"client outage \(dev\): node node1 took the session over while this node was cut "
                r"off from NATS|client outage .*kicked|outage.*taken over", 5, start)
    check(alive(new), "the device's connection on node 1 stays")
    new.close()


h.run(test_cut_off_node_closes_what_it_lost)
