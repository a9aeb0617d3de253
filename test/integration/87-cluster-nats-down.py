"""A cluster node whose NATS servers are down still starts and serves its own clients, says so,
and connects by itself once a server comes up; losing the server again is logged and local
delivery goes on."""
import os
import time

from certmq_test import Harness, check
from cluster_test import NatsServer, free_port

h = Harness()
pki = h.pki()
pki.device("any")
port, cport, mport = free_port(), free_port(), free_port()
b = h.broker(pki, "user any\ntopic readwrite #\n",
             extra="cluster_name test\nnode_name lonely\ncluster_nats nats://127.0.0.1:%d\n" % port)


def local_round_trip(tag):
    c = h.paho(b, pki, "any", client_id="local-" + tag)
    check(c.subscribe("local/#", 1) == 1, "granted")
    c.publish("local/" + tag, b"x", 1)
    c.expect("local/" + tag)
    c.disconnect()


early = None


def test_starts_and_serves_without_nats():
    global early
    b.log_wait(r"routing link: no NATS server reachable yet", 5)
    local_round_trip("before")
    # Subscribed while no NATS server is up: the interest must reach NATS once one is.
    early = h.paho(b, pki, "any", client_id="early")
    check(early.subscribe("remote/#", 1) == 1, "granted")


other = pub = nats = None


def test_connects_when_nats_comes_up():
    global other, pub, nats
    nats = NatsServer(h, "solo", port, cport, mport, [])
    b.log_wait(r"routing link connected to NATS", 15)
    b.log_wait(r"shared link connected to NATS", 15)
    local_round_trip("connected")
    other = h.broker(pki, "user any\ntopic readwrite #\n",
                     extra="cluster_name test\nnode_name other\ncluster_nats nats://127.0.0.1:%d\n" % port)
    other.log_wait(r"routing link connected to NATS", 10)
    pub = h.paho(other, pki, "any", client_id="remote-pub")
    pub.publish("remote/x", b"r", 1)
    early.expect("remote/x", 5)
    # The retained bucket is made once JetStream is there (one server: one replica).
    b.log_wait(r"retained messages in JetStream bucket cmq_ret_test", 15)
    other.log_wait(r"retained messages in JetStream bucket cmq_ret_test", 15)
    pub.publish("kept/x", b"k1", 1, retain=True)
    retained_seen("kept/x", b"k1")


def retained_seen(topic, payload):
    c = h.paho(b, pki, "any", client_id="ret-" + topic.replace("/", "-"))
    check(c.subscribe(topic, 1) == 1, "granted")
    t, p, q, r = c.expect(topic, 5)
    check(p == payload and r, "retained %r from the other node: got %r" % (payload, p))
    c.disconnect()


def test_reconnects_after_nats_restart():
    global nats
    nats.stop()
    b.log_wait(r"routing link to NATS lost; reconnecting", 15)
    b.log_wait(r"retained: JetStream unreachable", 5)
    local_round_trip("after")
    retained_seen("kept/x", b"k1")  # from this node's copy meanwhile
    n, m = b.log_count(), other.log_count()
    nats = NatsServer(h, "solo", port, cport, mport, [])
    b.log_wait(r"routing link reconnected to NATS", 15)
    b.log_wait(r"retained messages in JetStream bucket cmq_ret_test", 15, n)
    other.log_wait(r"routing link reconnected to NATS", 15)
    # The subscription is sent again on the new connection: messages flow as before.
    deadline = time.time() + 10
    while time.time() < deadline and not early.messages:
        pub.publish("remote/y", b"again", 0)
        time.sleep(0.1)
    early.expect("remote/y", 2)
    other.log_wait(r"retained messages in JetStream bucket cmq_ret_test", 15, m)
    pub.publish("kept/x", b"k2", 1, retain=True)  # the bucket survived the restart
    retained_seen("kept/x", b"k2")
    check(other.stop() == 0, "second node stops cleanly")
    nats.stop()


def test_config_check_prints_plan():
    import subprocess
    from certmq_test import BIN
    r = subprocess.run([BIN, "--test-config", "-c", b.conf], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "--test-config: " + r.stderr)
    check("cluster: test, this node lonely" in r.stdout and "cmq.test.t." in r.stdout, r.stdout)
    check("JetStream stream CMQ_REC_test" in r.stdout and "a node silent for 5 s is dead" in r.stdout,
          "the records stream is shown")
    check("KV bucket cmq_ret_test" in r.stdout and "1 replica(s)" in r.stdout, "retained bucket shown")
    bad = os.path.join(h.tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write(open(b.conf).read() + "cluster_nats_creds /nonexistent/creds\n")
    r = subprocess.run([BIN, "--test-config", "-c", bad], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "cluster_nats_creds /nonexistent/creds: cannot be read" in r.stderr,
          "unreadable creds reported: " + r.stderr)


h.run(test_starts_and_serves_without_nats, test_connects_when_nats_comes_up,
      test_reconnects_after_nats_restart, test_config_check_prints_plan)
