"""MQTT over secure WebSockets: the same certificate policy as MQTT over TLS, one session space
across both transports, MQTT.js as the client, and the framing cases a raw `ws` peer can make."""
import base64
import json
import os
import time

from certmq_test import Harness, check, connect_packet, publish_packet, subscribe_packet

h = Harness()
pki = h.pki()
for d in ("web", "tcp", "gone", "frag"):
    pki.device(d)
pki.device("revoked")
pki.revoke("revoked")
live_crl = os.path.join(h.tmp, "crl.pem")
os.system("cp %s %s" % (pki.crl, live_crl))
ACL = "pattern readwrite devices/%u/#\npattern read devices/#\n"
b = h.broker(pki, ACL, ws=True, crlfiles=[live_crl])
tcp = h.paho(b, pki, "tcp")
tcp.subscribe("devices/#", 2)


def events(evs, kind):
    return [e for e in evs if e["event"] == kind]


def test_mqttjs_wss_to_tcp():
    for q in (0, 1, 2):
        evs = h.node("mqttjs.js", h.node_plan(b, pki, "web", clientId="web-pub%d" % q,
                                              publish=[{"topic": "devices/web/q%d" % q, "payload": "hi%d" % q, "qos": q}]))
        check(events(evs, "connect"), "MQTT.js connected over wss: %r" % evs)
        t, p, qos, r = tcp.expect("devices/web/q%d" % q)
        check(p == b"hi%d" % q and qos == q, "TCP subscriber got QoS %d from WSS" % q)


def test_tcp_to_mqttjs_wss():
    sub = h.node_bg("mqttjs.js", h.node_plan(b, pki, "web", clientId="web-sub", expect=3,
                                             subscribe=[{"topic": "devices/tcp/#", "qos": 2}]))
    time.sleep(1.0)
    for q in (0, 1, 2):
        tcp.publish("devices/tcp/x%d" % q, b"p%d" % q, q)
    out, err = sub.communicate(timeout=15)
    evs = [json.loads(l) for l in out.splitlines()]
    msgs = events(evs, "message")
    check([base64.b64decode(m["payload"]) for m in msgs] == [b"p0", b"p1", b"p2"], "WSS subscriber: %r %s" % (evs, err))
    check([m["qos"] for m in msgs] == [0, 1, 2], "QoS preserved: %r" % msgs)


def test_retained_and_will_over_wss():
    tcp.publish("devices/tcp/state", b"on", 1, retain=True)
    evs = h.node("mqttjs.js", h.node_plan(b, pki, "web", clientId="web-ret", expect=1,
                                          subscribe=[{"topic": "devices/tcp/state", "qos": 1}]))
    m = events(evs, "message")
    check(m and m[0]["retain"] and base64.b64decode(m[0]["payload"]) == b"on", "retained over WSS: %r" % evs)
    p = h.node_bg("mqttjs.js", h.node_plan(b, pki, "gone", clientId="willer", expect=99, timeout=30000,
                                           will={"topic": "devices/gone/status", "payload": "lost", "qos": 1}))
    time.sleep(1.0)
    p.kill()  # abnormal end
    t, payload, q, r = tcp.expect("devices/gone/status", 5)
    check(payload == b"lost", "will of a WSS client")


def test_refused_without_cert_and_revoked():
    evs = h.node("mqttjs.js", h.node_plan(b, pki, None, clientId="anon"))
    check(not events(evs, "connect"), "no certificate: refused %r" % evs)
    evs = h.node("mqttjs.js", h.node_plan(b, pki, "revoked", clientId="rev"))
    check(not events(evs, "connect"), "revoked: refused %r" % evs)
    b.log_wait("refused .*: revoked", 3)


def test_subprotocol_required():
    evs = h.node("wsraw.js", h.node_plan(b, pki, "frag", protocols=[]))
    check(not events(evs, "open"), "no subprotocol must be refused: %r" % evs)
    evs = h.node("wsraw.js", h.node_plan(b, pki, "frag", protocols=["mqtt"], timeout=1500))
    check(events(evs, "open") and events(evs, "open")[0]["protocol"] == "mqtt", "mqtt accepted: %r" % evs)
    evs = h.node("wsraw.js", h.node_plan(b, pki, "frag", protocols=["mqttv3.1"], timeout=1500))
    check(events(evs, "open"), "mqttv3.1 accepted: %r" % evs)


def test_fragmented_and_batched_frames():
    conn = connect_packet("frag").hex()
    pubs = (publish_packet("devices/frag/a", b"one") + publish_packet("devices/frag/b", b"two", 1, 7)).hex()
    evs = h.node("wsraw.js", h.node_plan(b, pki, "frag", protocols=["mqtt"], timeout=3000, send=[
        {"hex": conn[:8], "fin": False}, {"hex": conn[8:]}, {"hex": pubs}]))
    # MQTT bytes may come back in any framing: read them as one stream.
    stream = "".join(e["hex"] for e in evs if e["event"] == "message")
    check(stream.startswith("20020000"), "CONNACK: %r" % evs)
    check("40020007" in stream, "PUBACK for the batched QoS 1: %r" % evs)
    tcp.expect("devices/frag/a")
    tcp.expect("devices/frag/b")


def test_text_frame_closes_1003():
    evs = h.node("wsraw.js", h.node_plan(b, pki, "frag", protocols=["mqtt"], send=[{"text": "hello"}]))
    c = events(evs, "close")
    check(c and c[0]["code"] == 1003, "text frame -> close 1003: %r" % evs)


def raw_wss_upgrade(device):
    """A TLS socket that went through the HTTP upgrade by hand (no WebSocket library), so it
    can send frames a library would not."""
    import socket
    raw = socket.create_connection(("127.0.0.1", b.ws_port), timeout=5)
    s = h.tls_context(pki, device).wrap_socket(raw, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: mqtt\r\n\r\n" % key).encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(4096)
        check(chunk, "upgrade response")
        resp += chunk
    check(resp.startswith(b"HTTP/1.1 101"), "101 Switching Protocols: %r" % resp[:40])
    return s


def ws_frame(payload, masked=True, opcode=2):
    head = bytes([0x80 | opcode])
    n = len(payload)
    head += bytes([(0x80 if masked else 0) | n]) if n < 126 else bytes([(0x80 if masked else 0) | 126]) + n.to_bytes(2, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def test_unmasked_client_frame_closes_1002():
    # RFC 6455 5.1: the server must close on an unmasked client frame (libwebsockets lets it in).
    s = raw_wss_upgrade("frag")
    s.sendall(ws_frame(connect_packet("masked-ok")))
    data = s.recv(64)
    check(data[:1] == b"\x82" and b"\x20\x02\x00\x00" in data, "masked CONNECT answered: %r" % data)
    start = b.log_count()
    s.sendall(ws_frame(publish_packet("devices/frag/unmasked", b"x"), masked=False))
    data = b""
    try:
        while True:
            chunk = s.recv(64)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    check(data[:2] == b"\x88\x02" and data[2:4] == (1002).to_bytes(2, "big"), "close 1002: %r" % data)
    b.log_wait(r"unmasked WebSocket frame from the client", 5, start)
    time.sleep(0.5)
    with tcp.cv:
        check(not any(m[0] == "devices/frag/unmasked" for m in tcp.messages), "the unmasked PUBLISH was not routed")


def test_revocation_closes_with_close_frame():
    p = h.node_bg("wsraw.js", h.node_plan(b, pki, "web", protocols=["mqtt"], timeout=15000,
                                          send=[{"hex": connect_packet("web-victim").hex()}]))
    time.sleep(1.0)
    pki.revoke("web")
    os.system("cp %s %s.tmp && mv %s.tmp %s" % (pki.crl, live_crl, live_crl, live_crl))
    out, err = p.communicate(timeout=15)
    evs = [json.loads(l) for l in out.splitlines()]
    c = events(evs, "close")
    check(c and c[0]["code"] == 1000, "revoked WSS client gets a close frame (1000), got %r" % evs)


def test_mqttjs_v5():
    sub = h.node_bg("mqttjs.js", h.node_plan(b, pki, "web", clientId="web-v5sub", protocolVersion=5, expect=1,
                                             subscribe=[{"topic": "devices/frag/v5", "qos": 1}],
                                             subscribeProperties={"subscriptionIdentifier": 42}))
    time.sleep(1.0)
    evs = h.node("mqttjs.js", h.node_plan(b, pki, "frag", clientId="frag-v5pub", protocolVersion=5, publish=[
        {"topic": "devices/frag/v5", "payload": "v5", "qos": 1,
         "properties": {"userProperties": {"site": "plant-1"}, "contentType": "text/plain"}}]))
    check(events(evs, "published") and not events(evs, "published")[0]["error"], "v5 publish acked: %r" % evs)
    out, err = sub.communicate(timeout=15)
    msgs = [json.loads(l) for l in out.splitlines() if '"message"' in l]
    check(msgs, "v5 subscriber got it: %s %s" % (out, err))
    pr = msgs[0]["properties"]
    check(pr.get("userProperties") == {"site": "plant-1"} and pr.get("contentType") == "text/plain",
          "properties forwarded: %r" % pr)
    check(pr.get("subscriptionIdentifier") in (42, [42]), "subscription identifier: %r" % pr)


def test_mqttjs_v5_aliases_expiry_shared():
    # Aliases both ways: MQTT.js publishes with automatic aliases; the subscriber allows 5.
    sub = h.node_bg("mqttjs.js", h.node_plan(b, pki, "web", clientId="web-alias", protocolVersion=5, expect=3,
                                             properties={"topicAliasMaximum": 5},
                                             subscribe=[{"topic": "devices/frag/alias", "qos": 1}]))
    time.sleep(1.0)
    h.node("mqttjs.js", h.node_plan(b, pki, "frag", clientId="frag-alias", protocolVersion=5,
                                    autoUseTopicAlias=True, properties={"topicAliasMaximum": 5},
                                    publish=[{"topic": "devices/frag/alias", "payload": "a%d" % i, "qos": 1}
                                             for i in range(3)]))
    out, err = sub.communicate(timeout=15)
    msgs = [json.loads(l) for l in out.splitlines() if '"message"' in l]
    check([base64.b64decode(m["payload"]) for m in msgs] == [b"a0", b"a1", b"a2"], "aliased stream: %s %s" % (out, err))
    check(all(m["topic"] == "devices/frag/alias" for m in msgs), "MQTT.js resolved the broker's aliases: %r" % msgs)
    # Message expiry: an expired message is not delivered to a session that comes back later.
    h.node("mqttjs.js", h.node_plan(b, pki, "web", clientId="web-exp", protocolVersion=5, clean=False,
                                    properties={"sessionExpiryInterval": 60},
                                    subscribe=[{"topic": "devices/frag/exp", "qos": 1}]))
    h.node("mqttjs.js", h.node_plan(b, pki, "frag", clientId="frag-exp", protocolVersion=5, publish=[
        {"topic": "devices/frag/exp", "payload": "gone", "qos": 1, "properties": {"messageExpiryInterval": 1}},
        {"topic": "devices/frag/exp", "payload": "kept", "qos": 1, "properties": {"messageExpiryInterval": 60}}]))
    time.sleep(2.2)
    evs = h.node("mqttjs.js", h.node_plan(b, pki, "web", clientId="web-exp", protocolVersion=5, clean=False,
                                          properties={"sessionExpiryInterval": 60}, expect=1, timeout=4000))
    got = [base64.b64decode(e["payload"]) for e in evs if e["event"] == "message"]
    check(got == [b"kept"], "only the unexpired message: %r" % got)
    # Shared subscription across three MQTT.js members: every job delivered once.
    members = [h.node_bg("mqttjs.js", h.node_plan(b, pki, d, clientId="%s-share" % d, protocolVersion=5, expect=99,
                                                  timeout=6000, subscribe=[{"topic": "$share/w/devices/tcp/job", "qos": 1}]))
               for d in ("web", "frag", "gone")]
    time.sleep(1.5)
    for i in range(9):
        tcp.publish("devices/tcp/job", b"j%d" % i, 1)
    counts = []
    for m in members:
        out, err = m.communicate(timeout=15)
        counts.append(len([l for l in out.splitlines() if '"message"' in l]))
    check(sum(counts) == 9 and max(counts) - min(counts) <= 1, "shared among three: %r" % counts)


def test_mqttjs_v5_will_delay():
    p = h.node_bg("mqttjs.js", h.node_plan(b, pki, "gone", clientId="gone-wd", protocolVersion=5, expect=99,
                                           timeout=30000, properties={"sessionExpiryInterval": 60},
                                           will={"topic": "devices/gone/wd", "payload": "late", "qos": 1,
                                                 "properties": {"willDelayInterval": 2}}))
    time.sleep(1.0)
    p.kill()
    time.sleep(1.0)
    check(not [m for m in tcp.messages if m[0] == "devices/gone/wd"], "will waits for its delay")
    t, payload, q, r = tcp.expect("devices/gone/wd", 4)
    check(payload == b"late", "will after the delay")


h.run(test_mqttjs_v5_aliases_expiry_shared, test_mqttjs_v5_will_delay, test_mqttjs_v5, test_mqttjs_wss_to_tcp, test_tcp_to_mqttjs_wss, test_retained_and_will_over_wss,
      test_refused_without_cert_and_revoked, test_subprotocol_required, test_fragmented_and_batched_frames,
      test_text_frame_closes_1003, test_unmasked_client_frame_closes_1002, test_revocation_closes_with_close_frame)
