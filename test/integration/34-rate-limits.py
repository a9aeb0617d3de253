"""Per-identity limits from certmq.conf and ACL match blocks, with certificates carrying an OU
(certs/certmq-pki --ou): a flooding sensor is held to its publish rate (MQTT 5: PUBACK 0x97 per
refused message, QoS 0 dropped; rate_limit_action disconnect: DISCONNECT 0x96; MQTT 3.1.1 and
mosquitto_pub: disconnected) while another device on the same broker keeps publishing, a gateway
(`match ou=gateways`, a higher limit) gets more; subscriptions and retained messages per
identity; refusals in $SYS and in certmq --explain."""
import subprocess
import time

import paho.mqtt.client as mqtt

from certmq_test import (BIN, Harness, check, connect_packet, mqtt_str, packet, publish_packet,
                         read_packet, wait_for)

ACL = """pattern readwrite devices/%u/#
user watch
topic read devices/#
user admin
topic read $SYS/#

match ou=sensors
limit max_publish_rate_per_identity 20
limit max_subscriptions_per_identity 3
limit max_retained_messages_per_identity 2

match ou=gateways
limit max_publish_rate_per_identity 1000
"""
# Everyone else (the watcher, admin): certmq.conf's default.
CONF = "max_publish_rate_per_identity 100\n"

h = Harness()
pki = h.pki()
for name in ("flood-1", "flood-2", "flood-3", "flood-4", "quiet-1", "subs-1", "ret-1"):
    pki.device(name, "--o", "Acme", "--ou", "sensors")
pki.device("gw-1", "--o", "Acme", "--ou", "gateways")
pki.device("watch")
pki.device("admin")
b = h.broker(pki, ACL, extra=CONF)
watch = h.paho(b, pki, "watch", protocol=mqtt.MQTTv5)
check(watch.subscribe("devices/#", 0) == 0, "watcher subscribed")


def publish5(topic, payload, qos, pid):
    """An MQTT 5 PUBLISH (no properties)."""
    body = mqtt_str(topic) + (pid.to_bytes(2, "big") if qos else b"") + b"\x00" + payload
    return packet(0x30 | (qos << 1), body)


def flood(device, n, qos=1):
    """n publishes in one write from device (raw MQTT 5); the PUBACK reason codes, in order."""
    s = h.raw5(b, pki, device, device)
    s.sendall(b"".join(publish5("devices/%s/t" % device, b"x" * 10, qos, i + 1) for i in range(n)))
    rcs = []
    while qos and len(rcs) < n:
        first, body = read_packet(s)
        check(first == 0x40, "PUBACK, got %r" % (first,))
        rcs.append(body[2] if len(body) > 2 else 0)
    return s, rcs


def count_from(device):
    with watch.cv:
        return sum(1 for m in watch.messages if m[0] == "devices/%s/t" % device)


def received_from(device):
    with watch.cv:
        got = [m for m in watch.messages if m[0] == "devices/%s/t" % device]
        watch.messages[:] = [m for m in watch.messages if m[0] != "devices/%s/t" % device]
    return len(got)


def test_flooding_sensor_refused_others_unaffected():
    s, rcs = flood("flood-1", 100)
    ok = [rc for rc in rcs if rc in (0x00, 0x10)]
    refused = [rc for rc in rcs if rc == 0x97]
    # A second's worth (20) at once, plus what refills while the 100 are read (a few ms).
    check(18 <= len(ok) <= 30 and len(ok) + len(refused) == 100, "flood: %d accepted, %r" %
          (len(ok), sorted(set(rcs))))
    check(rcs[:18] == [0] * 18, "the burst goes first: %r" % rcs[:20])
    # The connection stays (refuse): a publish a second later passes again.
    time.sleep(1.1)
    s.sendall(publish5("devices/flood-1/t", b"late", 1, 500))
    first, body = read_packet(s)
    check(first == 0x40 and (len(body) == 2 or body[2] == 0), "refilled: %r" % body)
    wait_for(lambda: count_from("flood-1") == len(ok) + 1, 5, "the accepted messages delivered")
    check(received_from("flood-1") == len(ok) + 1, "only the accepted ones were delivered")
    # Another sensor at the same moment: its own bucket.
    q = h.paho(b, pki, "quiet-1", protocol=mqtt.MQTTv5)
    for i in range(15):
        q.publish("devices/quiet-1/t", b"%d" % i, 1)
    wait_for(lambda: sum(1 for m in watch.messages if m[0] == "devices/quiet-1/t") == 15, 5,
             "the quiet sensor's 15 messages")
    q.disconnect()
    s.close()
    b.log_wait(r"identity flood-1 publishes over max_publish_rate_per_identity 20 "
               r"\(client id flood-1\): refused", 5)


def test_qos0_flood_dropped():
    received_from("flood-2")
    s, _ = flood("flood-2", 100, qos=0)
    time.sleep(1.1)  # refilled: the marker passes
    s.sendall(publish5("devices/flood-2/t", b"marker", 1, 7))
    first, body = read_packet(s)
    check(first == 0x40 and (len(body) == 2 or body[2] == 0), "marker accepted: %r" % body)
    wait_for(lambda: any(m[1] == b"marker" for m in watch.messages), 5, "the marker")
    n = received_from("flood-2") - 1
    check(18 <= n <= 30, "QoS 0 flood: %d of 100 delivered" % n)
    s.close()


def test_gateway_gets_more():
    s, rcs = flood("gw-1", 200)
    check(rcs.count(0x97) == 0, "a gateway's 200 at once are within its 1000/s: %r" %
          sorted(set(rcs)))
    s.close()


def until_closed(s):
    """Every packet the broker sends on s until it closes it: [(first byte, body)]."""
    got = []
    try:
        while True:
            first, body = read_packet(s)
            if first is None:
                return got
            got.append((first, body))
    except (OSError, IndexError):
        return got  # closed under the read


def test_disconnect_policy_and_v311():
    b2 = h.broker(pki, ACL, extra=CONF + "rate_limit_action disconnect\n")
    s = h.raw5(b2, pki, "flood-3", "f3")
    s.sendall(b"".join(publish5("devices/flood-3/t", b"x", 1, i + 1) for i in range(60)))
    kinds = [(first, body[0] if first == 0xE0 and body else None)
             for first, body in until_closed(s)]
    check(kinds and kinds[-1] == (0xE0, 0x96), "DISCONNECT 0x96 last: %r" % kinds[-3:])
    check(18 <= sum(1 for k in kinds if k[0] == 0x40) <= 30, "acked before: %d" % len(kinds))
    b2.log_wait(r"client f3 .*disconnected: publish rate over this identity's limit", 5)
    # MQTT 3.1.1 (refuse policy on b): no way to refuse one message, so disconnected; its will
    # goes out. mosquitto_pub sends every stdin line as a message.
    crt, key = pki.cert("flood-3")
    try:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "--cafile", pki.ca,
                        "--insecure", "--cert", crt, "--key", key, "-V", "mqttv311", "-i", "mp",
                        "-t", "devices/flood-3/t", "-q", "1", "-l"],
                       input="m\n" * 300, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pass  # it may try to reconnect: the log line below is what counts
    b.log_wait(r"client mp .*disconnected: publish rate over this identity's limit", 5)
    # A 3.1.1 client ended for its rate still gets the PUBACKs of the messages accepted before.
    s = h.raw_tls(b, pki, "flood-4")
    s.sendall(connect_packet("f4"))
    check(read_packet(s)[0] == 0x20, "CONNACK")
    s.sendall(b"".join(publish_packet("devices/flood-4/t", b"x", 1, i + 1) for i in range(60)))
    acks = [first for first, _ in until_closed(s)]
    check(18 <= acks.count(0x40) <= 30 and set(acks) == {0x40}, "3.1.1 acks before the end: %r"
          % acks)
    check(b2.stop() == 0, "clean exit")


def test_subscriptions_per_identity():
    c = h.paho(b, pki, "subs-1", protocol=mqtt.MQTTv5)
    got = [c.subscribe("devices/subs-1/%d" % i) for i in range(4)]
    check(got == [0, 0, 0, 0x97], "v5: the 4th filter is over the quota: %r" % got)
    check(c.subscribe("devices/subs-1/0", 1) == 1, "changing a filter's QoS is not one more")
    c3 = h.paho(b, pki, "subs-1", client_id="subs-1b")  # 3.1.1, same identity
    check(c3.subscribe("devices/subs-1/9") == 0x80, "3.1.1: 0x80 (the quota is per identity)")
    c.c.unsubscribe("devices/subs-1/2")
    wait_for(lambda: c3.subscribe("devices/subs-1/9") == 0, 5, "a freed subscription")
    c.disconnect()
    c3.disconnect()


def test_retained_per_identity():
    c = h.paho(b, pki, "ret-1", protocol=mqtt.MQTTv5)
    for i in range(3):
        c.publish("devices/ret-1/r%d" % i, b"v", 1, retain=True)
    c.publish("devices/ret-1/r0", b"w", 1, retain=True)  # replacing its own is not one more
    b.log_wait(r"max_retained_messages_per_identity reached: devices/ret-1/r2 not retained", 5)
    late = h.paho(b, pki, "watch", client_id="watch-late", protocol=mqtt.MQTTv5)
    late.subscribe("devices/ret-1/#")
    time.sleep(0.5)
    topics = sorted(m[0] for m in late.messages if m[3])
    check(topics == ["devices/ret-1/r0", "devices/ret-1/r1"], "retained: %r" % topics)
    late.disconnect()
    c.disconnect()


def test_sys_and_explain():
    a = h.paho(b, pki, "admin")
    a.subscribe("$SYS/broker/refused/#")

    def value(name):
        with a.cv:
            vals = [int(m[1]) for m in a.messages if m[0] == "$SYS/broker/refused/" + name]
        return vals[-1] if vals else -1

    wait_for(lambda: value("publish_rate") >= 70 and value("identity_subscriptions") >= 2 and
             value("identity_retained") >= 1, 5, "$SYS refusal counters")
    check(value("publish_byte_rate") == 0, "no byte rate set")
    a.disconnect()
    r = subprocess.run([BIN, "--explain", "-c", b.conf, "--cert", pki.cert("gw-1")[0]],
                       capture_output=True, text=True, timeout=20)
    for want in ("limit max_publish_rate_per_identity 1000  [match ou=gateways]",
                 "max_publish_rate_per_identity: 1000 (a match block's limit)",
                 "max_subscriptions_per_identity: 0 = unlimited (certmq.conf)",
                 "publish_rate_burst: 1 s, rate_limit_action: refuse"):
        check(want in r.stdout, "explain shows %r:\n%s" % (want, r.stdout))
    r = subprocess.run([BIN, "--explain", "-c", b.conf, "--cert", pki.cert("watch")[0]],
                       capture_output=True, text=True, timeout=20)
    check("max_publish_rate_per_identity: 100 (certmq.conf)" in r.stdout, r.stdout)


h.run(test_flooding_sensor_refused_others_unaffected, test_qos0_flood_dropped,
      test_gateway_gets_more, test_disconnect_policy_and_v311, test_subscriptions_per_identity,
      test_retained_per_identity, test_sys_and_explain)
