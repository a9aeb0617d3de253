"""MQTT 5 with paho (MQTTv5) and raw packets: CONNACK properties, reason codes, message expiry,
topic aliases both ways, forwarded properties, subscription identifiers and options, shared
subscriptions (distribution and hand-over), will delay, receive maximum, DISCONNECT reasons."""
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from certmq_test import Harness, check, mqtt_str, packet, read_packet, varint, wait_for

h = Harness()
pki = h.pki()
for d in ("a", "b", "c", "ops"):
    pki.device(d)
ACL = "pattern readwrite devices/%u/#\npattern read devices/#\npattern readwrite jobs/#\n"
b = h.broker(pki, ACL, extra="max_keepalive 30\nmax_packet_size 2000\nmax_topic_alias 4\n")


class V5:
    def __init__(self, device, client_id, clean=True, props=None, will=None, expiry=None):
        self.msgs = []
        self.reason = None
        self.connack_props = None
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        crt, key = pki.cert(device)
        self.c.tls_set(ca_certs=pki.ca, certfile=crt, keyfile=key)
        self.c.on_message = lambda c, u, m: self.msgs.append(m)
        self.c.on_connect = self._conn
        self.c.on_disconnect = self._disc
        self.acks = {}
        self.c.on_publish = lambda c, u, mid: self.acks.setdefault(mid, True)
        self.subacks = {}
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.__setitem__(mid, [r.value for r in rcs])
        if will:
            self.c.will_set(*will[:4], properties=will[4] if len(will) > 4 else None)
        cp = props or Properties(PacketTypes.CONNECT)
        if expiry is not None:
            cp.SessionExpiryInterval = expiry
        self.connected = None
        self.c.connect("127.0.0.1", b.port, 60, clean_start=clean, properties=cp)
        self.c.loop_start()
        wait_for(lambda: self.connected is not None, 10, "CONNACK")
        h.clients.append(self)

    def _conn(self, c, u, flags, rc, props=None):
        self.connected = rc
        self.session_present = flags.get("session present")
        self.connack_props = props

    def _disc(self, c, u, rc, props=None):
        if self.reason is None:  # paho reports the server's DISCONNECT, then the lost socket
            self.reason = rc

    def sub(self, topic, qos=1, props=None, **opts):
        o = mqtt.SubscribeOptions(qos=qos, **opts)
        r, mid = self.c.subscribe(topic, options=o, properties=props)
        wait_for(lambda: mid in self.subacks, 5, "SUBACK")
        return self.subacks[mid][0]

    def pub(self, topic, payload, qos=1, props=None, retain=False):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        return info

    def expect(self, topic, timeout=5):
        wait_for(lambda: any(m.topic == topic for m in self.msgs), timeout, "message on " + topic)
        for i, m in enumerate(self.msgs):
            if m.topic == topic:
                return self.msgs.pop(i)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_connack_properties():
    p = Properties(PacketTypes.CONNECT)
    p.ReceiveMaximum = 5
    c = V5("a", "", props=p)
    cp = c.connack_props
    check(c.connected == 0, "connected")
    check(cp.AssignedClientIdentifier.startswith("auto-"), "assigned client id: %s" % cp)
    check(cp.ServerKeepAlive == 30, "server keep alive (max_keepalive 30 < 60)")
    check(cp.TopicAliasMaximum == 4 and cp.MaximumPacketSize == 2000, "limits announced: %s" % cp)
    check(cp.SharedSubscriptionAvailable == 1 and cp.SubscriptionIdentifierAvailable == 1, "features")
    c.stop()


def test_puback_reason_codes():
    c = V5("a", "a-rc")
    acks = {}
    c.c.on_publish = None
    import paho.mqtt.client as pm
    orig = c.c._handle_pubackcomp

    def hook(cmd):
        # parse reason code from the raw packet paho just read
        pkt = c.c._in_packet["packet"]
        acks[int.from_bytes(pkt[0:2], "big")] = pkt[2] if len(pkt) > 2 else 0
        return orig(cmd)
    c.c._handle_pubackcomp = hook
    denied = c.pub("devices/b/x", b"no", 1)
    nobody = c.pub("devices/a/nobody-listens", b"x", 1)
    wait_for(lambda: denied.mid in acks and nobody.mid in acks, 5, "PUBACKs")
    check(acks[denied.mid] == 0x87, "denied publish -> 0x87, got %#x" % acks[denied.mid])
    check(acks[nobody.mid] == 0x10, "no subscribers -> 0x10, got %#x" % acks[nobody.mid])
    c.stop()


def test_properties_forwarded_and_sub_ids():
    s = V5("b", "b-props")
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 7
    check(s.sub("devices/a/#", 1, sp) == 1, "granted")
    sp2 = Properties(PacketTypes.SUBSCRIBE)
    sp2.SubscriptionIdentifier = 9
    s.sub("devices/a/props", 1, sp2)
    p = V5("a", "a-props")
    pp = Properties(PacketTypes.PUBLISH)
    pp.ContentType = "text/plain"
    pp.ResponseTopic = "devices/a/reply"
    pp.CorrelationData = b"\x01\x02"
    pp.UserProperty = [("k1", "v1"), ("k2", "v2"), ("k1", "v3")]
    pp.PayloadFormatIndicator = 1
    p.pub("devices/a/props", b"text", 1, pp)
    m = s.expect("devices/a/props")
    mp = m.properties
    check(mp.ContentType == "text/plain" and mp.ResponseTopic == "devices/a/reply", "props: %s" % mp)
    check(mp.CorrelationData == b"\x01\x02", "correlation data")
    check(mp.UserProperty == [("k1", "v1"), ("k2", "v2"), ("k1", "v3")], "user properties in order: %s" % mp.UserProperty)
    check(sorted(mp.SubscriptionIdentifier) == [7, 9], "both subscription ids, one delivery: %s" % mp)
    time.sleep(0.3)
    check(not [x for x in s.msgs if x.topic == "devices/a/props"], "one copy only")
    p.stop()
    s.stop()


def test_message_expiry():
    s = V5("b", "b-exp", clean=True, expiry=300)
    s.sub("devices/a/exp", 1)
    s.stop()
    p = V5("a", "a-exp")
    short = Properties(PacketTypes.PUBLISH)
    short.MessageExpiryInterval = 1
    long_ = Properties(PacketTypes.PUBLISH)
    long_.MessageExpiryInterval = 100
    p.pub("devices/a/exp", b"short", 1, short)
    p.pub("devices/a/exp", b"long", 1, long_)
    time.sleep(2.2)
    s2 = V5("b", "b-exp", clean=False, expiry=300)
    m = s2.expect("devices/a/exp")
    check(m.payload == b"long", "expired message dropped, got %r" % m.payload)
    check(m.properties.MessageExpiryInterval <= 98, "expiry counted down: %s" % m.properties)
    p.stop()
    s2.stop()


def test_topic_alias_inbound_and_outbound():
    cp = Properties(PacketTypes.CONNECT)
    cp.TopicAliasMaximum = 3
    s = V5("b", "b-alias", props=cp)
    s.sub("devices/a/alias/#", 0)
    p = V5("a", "a-alias")
    ap = Properties(PacketTypes.PUBLISH)
    ap.TopicAlias = 2
    p.pub("devices/a/alias/t", b"first", 0, ap)
    p.pub("", b"second", 0, ap)  # alias only
    m1 = s.expect("devices/a/alias/t")
    # paho 1.6 does not resolve incoming aliases: the second delivery shows the broker's alias
    m2 = s.expect("")
    check((m1.payload, m2.payload) == (b"first", b"second"), "inbound alias resolved by the broker")
    a1, a2 = getattr(m1.properties, "TopicAlias", None), getattr(m2.properties, "TopicAlias", None)
    check(a1 and a1 == a2 and a1 <= 3, "outbound alias assigned, then used alone: %s %s" % (a1, a2))
    # paho 1.6 reports a server DISCONNECT's reason unreliably: read it raw.
    r = raw5("a", "a-alias-bad")
    r.sendall(packet(0x30, mqtt_str("devices/a/alias/t") + b"\x03\x23\x00\x09" + b"x"))
    f, body = read(r)
    check(f == 0xE0 and body[:1] == b"\x94", "alias over the maximum -> DISCONNECT 0x94, got %s %r" % (f, body))
    p.stop()
    s.stop()


def test_subscription_options():
    c = V5("a", "a-opts")
    c.sub("devices/a/nl", 1, noLocal=True)
    c.pub("devices/a/nl", b"own", 1)
    time.sleep(0.5)
    check(not c.msgs, "no-local: own message not delivered")
    c.pub("devices/a/rap", b"kept", 1, retain=True)
    c.sub("devices/a/rap", 1, retainAsPublished=True, retainHandling=2)
    time.sleep(0.4)
    check(not c.msgs, "retain handling 2: no retained message on subscribe")
    c.pub("devices/a/rap", b"live", 1, retain=True)
    m = c.expect("devices/a/rap")
    check(m.retain, "retain as published keeps the flag on live delivery")
    c.stop()


def test_shared_subscription_distribution():
    members = [V5(d, "%s-share" % d) for d in ("a", "b", "c")]
    for m in members:
        check(m.sub("$share/workers/jobs/#", 1) == 1, "shared subscription granted")
    p = V5("ops", "ops-share")
    for i in range(30):
        p.pub("jobs/%d" % i, b"job", 1)
    wait_for(lambda: sum(len(m.msgs) for m in members) == 30, 10, "30 jobs delivered")
    counts = [len(m.msgs) for m in members]
    check(counts == [10, 10, 10], "even distribution: %r" % counts)
    for m in members + [p]:
        m.stop()


def raw5(device, cid, props=b"", keepalive=60):
    return h.raw5(b, pki, device, cid, props, keepalive)


read = read_packet


def test_shared_handover_of_unacked():
    good = V5("a", "a-hand")
    good.sub("$share/g2/jobs/h/#", 1)
    lazy = raw5("b", "b-lazy")
    lazy.sendall(packet(0x82, b"\x00\x01\x00" + mqtt_str("$share/g2/jobs/h/#") + b"\x01"))
    check(read(lazy)[0] == 0x90, "SUBACK")
    p = V5("ops", "ops-hand")
    for i in range(4):
        p.pub("jobs/h/%d" % i, b"j%d" % i, 1)
    time.sleep(0.8)
    got_lazy = 0
    lazy.settimeout(0.5)
    try:
        while True:
            f, body = read(lazy, 0.5)
            if f is None:
                break
            got_lazy += 1
    except Exception:
        pass
    check(got_lazy == 2, "lazy member got its share without acking: %d" % got_lazy)
    lazy.close()  # leaves with two unacknowledged messages
    wait_for(lambda: len(good.msgs) == 4, 5, "unacked messages handed to the other member (%d)" % len(good.msgs))
    good.stop()
    p.stop()


def test_will_delay():
    s = V5("ops", "ops-will")
    s.sub("devices/a/will", 1)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    w = V5("a", "a-will", expiry=60, will=("devices/a/will", b"late", 1, False, wp))
    w.c.loop_stop()
    w.c.socket().close()
    time.sleep(1.0)
    check(not s.msgs, "will not yet published")
    s.expect("devices/a/will", 4)
    # A reconnect within the delay cancels it.
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 4
    w2 = V5("a", "a-will2", expiry=60, will=("devices/a/will", b"cancelled", 1, False, wp))
    w2.c.loop_stop()
    w2.c.socket().close()
    time.sleep(0.5)
    w3 = V5("a", "a-will2", clean=False, expiry=60)
    time.sleep(4.5)
    check(not s.msgs, "will cancelled by the session's new connection")
    w3.stop()
    s.stop()


def test_receive_maximum_honoured():
    r = raw5("b", "b-rm", props=b"\x21\x00\x01")  # receive maximum 1
    r.sendall(packet(0x82, b"\x00\x01\x00" + mqtt_str("devices/a/rm") + b"\x01"))
    check(read(r)[0] == 0x90, "SUBACK")
    p = V5("a", "a-rm")
    for i in range(3):
        p.pub("devices/a/rm", b"m%d" % i, 1)
    f, body = read(r)
    check(f & 0xF0 == 0x30, "first PUBLISH")
    pid = body[2 + int.from_bytes(body[:2], "big"):][:2]
    r.settimeout(0.6)
    try:
        more = r.recv(1)
    except Exception:
        more = b""
    check(not more, "nothing more until PUBACK")
    r.sendall(b"\x40\x02" + pid)
    f, body = read(r)
    check(f & 0xF0 == 0x30, "next PUBLISH after PUBACK")
    r.close()
    p.stop()


def test_disconnect_reasons():
    big = raw5("a", "a-big")
    big.sendall(packet(0x30, mqtt_str("devices/a/big") + b"\x00" + b"x" * 3000))
    f, body = read(big)
    check(f == 0xE0 and body[0] == 0x95, "packet too large -> DISCONNECT 0x95, got %s %r" % (f, body[:2]))
    first = raw5("a", "a-dup")
    raw5("a", "a-dup")
    f, body = read(first)
    check(f == 0xE0 and body[:1] == b"\x8e", "session taken over -> DISCONNECT 0x8E, got %s %r" % (f, body))
    r = raw5("b", "b-rq", props=b"")
    # receive maximum we announce is max_inflight (20): 21 unreleased QoS 2 publishes exceed it
    for i in range(1, 22):
        r.sendall(packet(0x34, mqtt_str("devices/b/q2") + i.to_bytes(2, "big") + b"\x00x"))
    reason = None
    for _ in range(30):
        f, body = read(r)
        if f is None:
            break
        if f == 0xE0:
            reason = body[0]
            break
    check(reason == 0x93, "receive maximum exceeded -> 0x93, got %s" % reason)
    ka = raw5("b", "b-ka", keepalive=1)
    f, body = read(ka, 4)
    check(f == 0xE0 and body[0] == 0x8D, "keep alive timeout -> 0x8D, got %s %r" % (f, body))


def test_protocol_errors_and_packet_size():
    r = raw5("a", "a-dupprop")
    # PUBLISH with the payload format indicator twice
    r.sendall(packet(0x30, mqtt_str("devices/a/x") + b"\x04\x01\x00\x01\x00" + b"x"))
    f, body = read(r)
    check(f == 0xE0 and body[:1] == b"\x82", "duplicate property -> DISCONNECT 0x82, got %s %r" % (f, body))
    check(b"protocol error" in body, "with a reason string: %r" % body)
    # A subscriber's maximum packet size: larger messages are dropped for it alone.
    cp = Properties(PacketTypes.CONNECT)
    cp.MaximumPacketSize = 200
    small = V5("b", "b-small", props=cp)
    small.sub("devices/a/size", 0)
    big = V5("ops", "ops-size")
    big.sub("devices/a/size", 0)
    p = V5("a", "a-size")
    p.pub("devices/a/size", b"y" * 500, 0)
    p.pub("devices/a/size", b"tiny", 0)
    check(big.expect("devices/a/size").payload == b"y" * 500, "large one delivered where it fits")
    check(small.expect("devices/a/size").payload == b"tiny", "only the small one for the small client")
    for c in (small, big, p):
        c.stop()


def test_revoked_v5_client_gets_0x98():
    pki.device("victim")
    r = raw5("victim", "victim")
    pki.revoke("victim")
    b.reload()
    f, body = read(r)
    check(f == 0xE0 and body[:1] == b"\x98", "revoked -> DISCONNECT 0x98, got %s %r" % (f, body))


def test_shutdown_sends_0x8b():
    b2 = h.broker(pki, ACL)
    s = h.raw_tls(b2, pki, "a")
    s.sendall(packet(0x10, mqtt_str("MQTT") + b"\x05\x02\x00\x3c\x00" + mqtt_str("bye")))
    check(read(s)[0] == 0x20, "CONNACK")
    b2.proc.send_signal(15)
    f, body = read(s)
    check(f == 0xE0 and body[:1] == b"\x8b", "shutdown -> DISCONNECT 0x8B, got %s %r" % (f, body))
    check(b2.stop() == 0, "clean exit")


h.run(test_protocol_errors_and_packet_size, test_revoked_v5_client_gets_0x98, test_shutdown_sends_0x8b,
      test_connack_properties, test_puback_reason_codes, test_properties_forwarded_and_sub_ids,
      test_message_expiry, test_topic_alias_inbound_and_outbound, test_subscription_options,
      test_shared_subscription_distribution, test_shared_handover_of_unacked, test_will_delay,
      test_receive_maximum_honoured, test_disconnect_reasons)
