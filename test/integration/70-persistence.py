"""Durability: with persistence on, everything a publisher got PUBACK for reaches the persistent
subscribers after kill -9 and a restart (QoS 2 exactly once); subscriptions and retained
messages survive; a corrupt or locked database refuses to start with a clear message."""
import os
import random
import sqlite3
import subprocess
import threading
import time

import paho.mqtt.client as mqtt

from certmq_test import BIN, Broker, Harness, check, wait_for

h = Harness()
pki = h.pki()
for d in ("pub", "s1", "s2"):
    pki.device(d)
db_dir = os.path.join(h.tmp, "db")
os.makedirs(db_dir)
ACL = "pattern readwrite devices/%u/#\npattern read devices/#\n"
b = h.broker(pki, ACL, extra="persistence true\npersistence_location %s\nmax_queued_messages 100000\n"
             "max_inflight_messages 100\n" % db_dir)
conf = b.conf
N = 3000


def restart():
    nb = Broker(h, conf, b.acl)
    h.brokers.append(nb)
    return nb


def test_kill9_loses_nothing_acknowledged():
    global b
    for dev, q in (("s1", 1), ("s2", 2)):
        c = h.paho(b, pki, dev, client_id=dev + "-durable", clean=False)
        check(c.subscribe("devices/pub/#", q) == q, "granted")
        c.disconnect()
    b.proc.poll()
    acked = {}
    sent = {}
    pub = mqtt.Client(client_id="pub-durable", clean_session=True)
    pub.tls_set(ca_certs=pki.ca, certfile=pki.cert("pub")[0], keyfile=pki.cert("pub")[1])
    pub.max_inflight_messages_set(50)
    pub.max_queued_messages_set(0)
    pub.on_publish = lambda c, u, mid: acked.__setitem__(mid, sent.get(mid))
    pub.connect("127.0.0.1", b.port, 60)
    pub.loop_start()
    kill_after = random.randint(N // 6, N // 2)

    def killer():
        wait_for(lambda: len(acked) >= kill_after, 60, "%d acks" % kill_after)
        b.proc.kill()  # kill -9, mid-stream

    t = threading.Thread(target=killer)
    t.start()
    for i in range(N):
        info = pub.publish("devices/pub/seq", b"%06d" % i, 1)
        sent[info.mid] = b"%06d" % i
        if b.proc.poll() is not None:
            break
    t.join()
    pub.loop_stop()
    b.proc.wait()
    h.brokers.remove(b)
    got_acks = {v for v in acked.values() if v is not None}
    check(len(got_acks) >= kill_after, "acks before the kill: %d" % len(got_acks))
    b = restart()
    for dev, q in (("s1", 1), ("s2", 2)):
        c = h.paho(b, pki, dev, client_id=dev + "-durable", clean=False)
        check(c.connack[0] == 1, "session present after restart")
        last = [time.time()]
        n0 = [0]

        def quiet():
            if len(c.messages) != n0[0]:
                n0[0] = len(c.messages)
                last[0] = time.time()
            return time.time() - last[0] > 2.0

        wait_for(quiet, 60, "delivery to settle")
        payloads = [m[1] for m in c.messages if m[0] == "devices/pub/seq"]
        missing = got_acks - set(payloads)
        check(not missing, "%s: %d acknowledged messages lost (e.g. %r)" % (dev, len(missing), sorted(missing)[:5]))
        if q == 2:
            dups = len(payloads) - len(set(payloads))
            check(dups == 0, "QoS 2 delivered %d messages twice" % dups)
        c.disconnect()


def test_retained_and_subscriptions_survive_restart():
    global b
    p = h.paho(b, pki, "pub", client_id="pub-ret")
    p.publish("devices/pub/state", b"kept", 1, retain=True)
    p.disconnect()
    b.stop()
    h.brokers.remove(b)
    b = restart()
    c = h.paho(b, pki, "s1", client_id="s1-durable", clean=False)
    p = h.paho(b, pki, "pub", client_id="pub-after")
    p.publish("devices/pub/after", b"new", 1)
    c.expect("devices/pub/after")  # the subscription survived: no new SUBSCRIBE
    c2 = h.paho(b, pki, "s2", client_id="s2-fresh")
    c2.subscribe("devices/pub/state", 1)
    t, payload, q, r = c2.expect("devices/pub/state")
    check(payload == b"kept" and r, "retained message survived")
    for x in (c, p, c2):
        x.disconnect()


def start_fails(db_path_setup, want):
    d = os.path.join(h.tmp, "bad-" + str(random.randint(0, 1 << 30)))
    os.makedirs(d)
    db_path_setup(os.path.join(d, "certmq.db"))
    text = open(conf).read().replace("persistence_location %s" % db_dir, "persistence_location %s" % d)
    c2 = os.path.join(d, "c.conf")
    with open(c2, "w") as f:
        f.write(text)
    r = subprocess.run([BIN, "-c", c2], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1, "must refuse to start (rc %s)" % r.returncode)
    check(want in r.stderr and "certmq.db" in r.stderr, "message names the problem and the file: " + r.stderr[-400:])


def test_corrupt_database_refused():
    def garbage(path):
        with open(path, "wb") as f:
            f.write(b"this is not a database" * 100)
    start_fails(garbage, "cannot use the persistence database")


def test_locked_database_refused():
    holder = {}

    def lock(path):
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE x(y)")
        con.execute("PRAGMA locking_mode=EXCLUSIVE")
        con.execute("BEGIN EXCLUSIVE")
        holder["c"] = con
    start_fails(lock, "locked")
    holder["c"].close()


h.run(test_kill9_loses_nothing_acknowledged, test_retained_and_subscriptions_survive_restart,
      test_corrupt_database_refused, test_locked_database_refused)
