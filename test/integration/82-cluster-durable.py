"""QoS 1/2 durable cluster-wide (persistence true): 3 nats-server processes (JetStream) and 3 certmq
nodes. A QoS 1 or 2 publish is acknowledged only once the replicated JetStream stream CMQ_Q_test
holds it: 300 QoS 1 and 100 QoS 2 publishes on node 1 are all acknowledged, all delivered on node
2, and all in the stream (NATS monitoring and $SYS). With JetStream gone, a QoS 1 publish is not
acknowledged: MQTT 5 gets PUBACK 0x80, MQTT 3.1.1 is disconnected (it sends it again after
reconnecting); QoS 0 still flows between local clients."""
import socket

from certmq_test import Harness, check, mqtt_str, packet, publish_packet, read_packet, wait_for
from cluster_test import Cluster, durable_nodes, wait_routed

h = Harness()
pki = h.pki()
for d in ("any", "admin"):
    pki.device(d)
ACL = "user any\ntopic readwrite #\nuser admin\ntopic read $SYS/#\n"


# A publish waits for JetStream (sent again meanwhile) this long before it is refused.
node_extra = durable_nodes(h.tmp, "cluster_ack_timeout 5\n")


cl = Cluster(h, pki, ACL, node_extra=node_extra)
n1, n2, n3 = cl.nodes
for n in cl.nodes:
    n.log_wait(r"QoS >= 1 messages made durable in JetStream stream CMQ_Q_test", 15)


def stream_messages():
    for s in cl.nats:
        try:
            j = s.get("jsz?streams=true")
        except OSError:
            continue
        for acc in j.get("account_details", []):
            for st in acc.get("stream_detail", []):
                if st["name"] == "CMQ_Q_test" and st.get("cluster", {}).get("leader") == s.name:
                    return st["state"]["messages"]
    return -1


def test_acknowledged_once_in_the_stream():
    sub = h.paho(n2, pki, "any", client_id="dur-sub", clean=False)
    check(sub.subscribe("dur/#", 2) == 2, "QoS 2 granted")
    pub = h.paho(n1, pki, "any", client_id="dur-pub")
    wait_routed(pub, sub, "dur/probe")
    before = stream_messages()
    infos = [pub.c.publish("dur/q1", b"%d" % k, 1) for k in range(300)]
    infos += [pub.c.publish("dur/q2", b"%d" % k, 2) for k in range(100)]
    wait_for(lambda: all(i.mid in pub.acks for i in infos), 30, "every PUBACK and PUBCOMP")
    wait_for(lambda: sum(1 for m in sub.messages if m[0] in ("dur/q1", "dur/q2")) >= 400, 20,
             "400 delivered on node 2")
    got1 = [int(m[1]) for m in sub.messages if m[0] == "dur/q1"]
    got2 = [int(m[1]) for m in sub.messages if m[0] == "dur/q2"]
    check(got1 == list(range(300)) and got2 == list(range(100)), "in order, once each")
    wait_for(lambda: stream_messages() >= before + 400, 10, "400 more messages in CMQ_Q_test")
    a = h.paho(n1, pki, "admin", client_id="dur-sys")
    a.subscribe("$SYS/broker/cluster/durable/#", 0)
    vals = {}

    def stored():
        for m in list(a.messages):
            vals[m[0]] = int(m[1])
        return vals.get("$SYS/broker/cluster/durable/stored", 0) >= 400
    wait_for(stored, 8, "$SYS durable/stored")
    check(vals.get("$SYS/broker/cluster/durable/ready") == 1, "ready: %r" % vals)
    for c in (sub, pub, a):
        c.disconnect()


def raw(node, v5):
    s = h.raw_tls(node, pki, "any")
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if v5:
        s.sendall(packet(0x10, mqtt_str("MQTT") + b"\x05\x02\x00\x3c\x00" + mqtt_str("dur-raw5")))
    else:
        s.sendall(packet(0x10, mqtt_str("MQTT") + b"\x04\x02\x00\x3c" + mqtt_str("dur-raw3")))
    first, body = read_packet(s)
    check(first == 0x20 and body[1] == 0, "CONNACK ok")
    return s


def test_not_acknowledged_without_jetstream():
    local = h.paho(n1, pki, "any", client_id="dur-local")
    local.subscribe("local/#", 0)
    s5, s3 = raw(n1, True), raw(n1, False)
    cl.stop_nats()
    n1.log_wait(r"routing link to NATS lost", 15)
    # No NATS server: the publish is kept until cluster_ack_timeout (5 s), then refused.
    s5.sendall(packet(0x32, mqtt_str("dur/gone") + b"\x00\x07\x00x"))  # v5: empty properties
    first, body = read_packet(s5, 15)
    check(first == 0x40 and body[:2] == b"\x00\x07" and body[2] == 0x80,
          "MQTT 5: PUBACK 0x80, got %r %r" % (first, body))
    s3.sendall(publish_packet("dur/gone", b"x", 1, pid=8))
    first, _ = read_packet(s3, 15)
    check(first is None, "MQTT 3.1.1: disconnected, no PUBACK (got %r)" % first)
    n1.log_wait(r"not acknowledged to its publisher: not stored by JetStream within cluster_ack_timeout", 5)
    pub = h.paho(n1, pki, "any", client_id="dur-local-pub")
    pub.publish("local/x", b"still", 0)
    check(local.expect("local/x")[1] == b"still", "QoS 0 still flows on the node")
    s5.close()


h.run(test_acknowledged_once_in_the_stream, test_not_acknowledged_without_jetstream)
