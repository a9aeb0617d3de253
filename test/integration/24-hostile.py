"""One hostile or broken device must not hurt the fleet: regressions for what an adversarial run
found (topic aliases for dropped messages, Subscription Identifiers from clients, ...), each
tried with a real client where one shows the problem."""
import os
import subprocess
import time
from types import SimpleNamespace

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from certmq_test import (Harness, check, connect_packet, mqtt_str, packet, publish_packet, read_packet, varint,
                         wait_for)

h = Harness()
pki = h.pki()
for d in ("pub", "sub"):
    pki.device(d)
ACL = "pattern readwrite devices/%u/#\npattern read devices/#\n"
b = h.broker(pki, ACL, extra="max_topic_alias 4\n")


def v5_client(device, props):
    msgs = []
    c = mqtt.Client(client_id=device + "-v5", protocol=mqtt.MQTTv5)
    crt, key = pki.cert(device)
    c.tls_set(ca_certs=pki.ca, certfile=crt, keyfile=key)
    c.tls_insecure_set(True)
    c.on_message = lambda cl, u, m: msgs.append(m)
    state = {}
    c.on_connect = lambda cl, u, f, rc, p=None: state.__setitem__("rc", rc)
    c.on_disconnect = lambda cl, u, rc, p=None: state.setdefault("gone", rc)
    c.on_subscribe = lambda cl, u, mid, rcs, p: state.__setitem__("suback", mid)
    c.connect("127.0.0.1", b.port, 60, clean_start=True, properties=props)
    c.loop_start()
    wait_for(lambda: "rc" in state, 10, "CONNACK")
    h.clients.append(SimpleNamespace(c=c))  # the harness stops its loop at the end
    return c, msgs, state


def test_alias_not_registered_for_dropped_message():
    # A subscriber with topic aliases and a small Maximum Packet Size: the large message is
    # dropped for it alone, so no alias may be registered for it, and the next message on that
    # topic must carry the topic name (old code sent it alias-only: a protocol error for the
    # client, which never learnt the alias). paho 1.6 does not resolve aliases, so an alias-only
    # delivery shows up with an empty topic.
    cp = Properties(PacketTypes.CONNECT)
    cp.TopicAliasMaximum = 10
    cp.MaximumPacketSize = 200
    c, msgs, state = v5_client("sub", cp)
    _, mid = c.subscribe("devices/pub/alias", options=mqtt.SubscribeOptions(qos=1))
    wait_for(lambda: state.get("suback") == mid, 5, "SUBACK")
    for payload in ("x" * 500, "small-1", "small-2"):
        r = h.mosquitto("mosquitto_pub", b, pki, "pub", "-V", "mqttv5", "-q", "1", "-t", "devices/pub/alias",
                        "-m", payload)
        check(r.returncode == 0, "publish: %s" % r.stderr)
    wait_for(lambda: len(msgs) >= 2, 5, "two deliveries")
    first, second = msgs[0], msgs[1]
    check(first.topic == "devices/pub/alias" and first.payload == b"small-1",
          "first delivery after the drop names its topic: %r %r" % (first.topic, first.payload))
    a1 = getattr(first.properties, "TopicAlias", None)
    check(a1 == 1, "the alias given with it is the first one: %r" % a1)
    check(second.payload == b"small-2" and getattr(second.properties, "TopicAlias", None) == a1,
          "then the alias is used")
    check("gone" not in state, "subscriber still connected")
    c.disconnect()
    c.loop_stop()


def test_subscription_id_from_client_is_a_protocol_error():
    # [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a Subscription Identifier (0x0B).
    s = h.raw5(b, pki, "pub", "pub-subid")
    props = b"\x0b\x05"
    s.sendall(packet(0x30, mqtt_str("devices/pub/x") + varint(len(props)) + props + b"payload"))
    first, body = read_packet(s)
    check(first == 0xE0 and body[:1] == b"\x82", "DISCONNECT 0x82, got %r %r" % (first, body))
    b.log_wait(r"subscription identifier in a PUBLISH from a client", 5)


def test_unfinished_packet_is_timed_out():
    # keep-alive 0 and half a PUBLISH: the half packet must not pin its buffer forever.
    pb = h.broker(pki, ACL, extra="packet_timeout 1000\n")
    s = h.raw5(pb, pki, "pub", "pub-half", keepalive=0)
    body = mqtt_str("devices/pub/half") + b"\x00" + b"x" * 100
    s.sendall((bytes([0x30]) + varint(len(body)) + body)[:40])
    start = time.time()
    first, rest = read_packet(s, timeout=5)
    took = time.time() - start
    check(first == 0xE0 and rest[:1] == b"\x8d", "DISCONNECT 0x8D, got %r %r" % (first, rest))
    check(0.8 < took < 3, "closed after about packet_timeout: %.2f s" % took)
    pb.log_wait(r"packet not completed within packet_timeout", 5)
    pb.stop()


def test_max_memory_refuses_new_work():
    # A budget the broker is already over (a few MB resident): after its first check (1 s) new
    # CONNECTs get 0x97 (MQTT 5) / 0x03 (3.1.1), an MQTT 5 QoS 1 PUBLISH gets PUBACK 0x97, a 3.1.1
    # publisher is disconnected; the broker itself keeps running.
    mb = h.broker(pki, ACL, extra="max_memory 1048576\nsys_interval 0\n")
    early5 = h.raw5(mb, pki, "pub", "early5")
    early3 = h.raw_tls(mb, pki, "pub")
    early3.sendall(connect_packet("early3"))
    first, rest = read_packet(early3)
    check(first == 0x20 and rest[1] == 0, "3.1.1 CONNACK before the first check")
    mb.log_wait(r"max_memory: resident memory \d+ MiB of 1 MiB: refusing", 5)
    s = h.raw_tls(mb, pki, "pub")
    s.sendall(connect_packet("late3"))
    first, rest = read_packet(s)
    check(first == 0x20 and rest[1] == 0x03, "3.1.1 CONNECT refused 0x03: %r %r" % (first, rest))
    s = h.raw_tls(mb, pki, "pub")
    body = mqtt_str("MQTT") + b"\x05\x02\x00\x3c\x00" + mqtt_str("late5")
    s.sendall(packet(0x10, body))
    first, rest = read_packet(s)
    check(first == 0x20 and rest[1] == 0x97, "MQTT 5 CONNECT refused 0x97: %r %r" % (first, rest))
    early5.sendall(packet(0x32, mqtt_str("devices/pub/m") + b"\x00\x07" + b"\x00" + b"payload"))
    first, rest = read_packet(early5)
    check(first == 0x40 and rest[:3] == b"\x00\x07\x97", "PUBACK 0x97: %r %r" % (first, rest))
    early3.sendall(publish_packet("devices/pub/m", b"payload", qos=1, pid=3))
    first, rest = read_packet(early3)
    check(first is None, "3.1.1 publisher disconnected: %r" % first)
    mb.log_wait(r"PUBLISH refused: server memory budget \(max_memory\) reached", 5)
    mb.stop()


def test_dropped_messages_are_logged():
    # A subscriber whose queue is full loses messages: counted and now also logged, once per
    # session per interval, not once per message.
    qb = h.broker(pki, ACL, extra="max_queued_messages 3\nmax_inflight_messages 1\n")
    c = h.paho(qb, pki, "sub", client_id="slow", clean=False)
    c.subscribe("devices/pub/q", 1)
    c.disconnect()
    start = qb.log_count()
    for i in range(10):
        r = h.mosquitto("mosquitto_pub", qb, pki, "pub", "-q", "1", "-t", "devices/pub/q", "-m", "m%d" % i)
        check(r.returncode == 0, "publish")
    qb.log_wait(r"client slow \(sub\): queue full \(max_queued_messages 3.*dropped so far", 5, start)
    lines = [l for l in qb.log()[start:] if "queue full" in l]
    check(len(lines) == 1, "logged once, not per message: %d lines" % len(lines))
    qb.stop()


def deep_chain(n):
    """A root with n intermediate CAs below it and a device under the last: (root, chain, key),
    made with openssl directly (certmq-pki makes one level of intermediates)."""
    d = os.path.join(h.tmp, "deep%d" % n)
    os.makedirs(d)

    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True, timeout=30)

    def key(name):
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key")

    def sign(name, issuer, cn, ext):
        key(name)
        run("req", "-new", "-key", name + ".key", "-subj", "/CN=" + cn, "-out", name + ".csr")
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext)
        run("x509", "-req", "-in", name + ".csr", "-CA", issuer + ".crt", "-CAkey", issuer + ".key",
            "-CAcreateserial", "-days", "30", "-extfile", name + ".ext", "-out", name + ".crt")

    key("root")
    run("req", "-x509", "-new", "-key", "root.key", "-subj", "/CN=Deep Root %d" % n, "-days", "30", "-out",
        "root.crt", "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=keyCertSign,cRLSign")
    ca = "basicConstraints=critical,CA:true\nkeyUsage=keyCertSign,cRLSign\n"
    issuer = "root"
    for i in range(1, n + 1):
        sign("i%d" % i, issuer, "Deep Intermediate %d" % i, ca)
        issuer = "i%d" % i
    sign("leaf", issuer, "deepdevice%d" % n,
         "basicConstraints=CA:false\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n")
    chain = os.path.join(d, "chain.pem")
    with open(chain, "w") as out:
        for name in ["leaf"] + ["i%d" % i for i in range(n, 0, -1)]:
            with open(os.path.join(d, name + ".crt")) as f:
                out.write(f.read())
    return os.path.join(d, "root.crt"), chain, os.path.join(d, "leaf.key")


def test_chain_too_long_is_named():
    # verify_depth 4 (the default): a chain of 5 CAs is refused naming the device; a chain of 9
    # (beyond what Mbed TLS walks at all) is refused as "chain too long", not "handshake failed".
    roots = os.path.join(h.tmp, "deep-roots.pem")
    chains = {n: deep_chain(n) for n in (5, 9)}
    with open(roots, "w") as out:
        for path in [pki.ca] + [c[0] for c in chains.values()]:
            with open(path) as f:
                out.write(f.read())
    db = h.broker(pki, ACL, cafile=roots)
    for n, (root, chain, key) in chains.items():
        start = db.log_count()
        check(h.tls_refused(db, pki, cert=(chain, key)), "a chain of %d CAs is refused" % n)
        line = db.log_wait(r"refused .*: chain too long.*", 5, start).group(0)
        if n == 5:
            check("CN=deepdevice5" in line and "verify_depth 4" in line, "names the device: " + line)
    db.stop()


h.run(test_alias_not_registered_for_dropped_message, test_subscription_id_from_client_is_a_protocol_error,
      test_chain_too_long_is_named, test_unfinished_packet_is_timed_out, test_max_memory_refuses_new_work,
      test_dropped_messages_are_logged)
