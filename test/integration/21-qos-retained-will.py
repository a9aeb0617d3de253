"""Delivery end to end: QoS 0/1/2 with paho and mosquitto clients, payload sizes, retained
messages (set, replace, clear), wills (abnormal close only)."""
import time

from certmq_test import Harness, check

h = Harness()
pki = h.pki()
for d in ("pub", "sub"):
    pki.device(d)
b = h.broker(pki, "pattern readwrite devices/%u/#\npattern read devices/#\n")
pub = h.paho(b, pki, "pub")
sub = h.paho(b, pki, "sub")


def test_qos_levels_and_sizes():
    for q in (0, 1, 2):
        check(sub.subscribe("devices/pub/q%d" % q, q) == q, "granted QoS %d" % q)
    for q in (0, 1, 2):
        for size in (0, 1, 100 * 1024):
            payload = bytes((i * 7 + q) % 256 for i in range(size))
            pub.publish("devices/pub/q%d" % q, payload, q)
            t, p, qos, r = sub.expect("devices/pub/q%d" % q)
            check(p == payload, "payload of %d bytes intact at QoS %d" % (size, q))
            check(qos == q, "delivered at QoS %d, got %d" % (q, qos))


def test_qos_downgrade():
    check(sub.subscribe("devices/pub/low", 0) == 0, "granted 0")
    pub.publish("devices/pub/low", b"x", 2)
    t, p, qos, r = sub.expect("devices/pub/low")
    check(qos == 0, "delivered at the subscription's QoS")


def test_mosquitto_clients_qos2():
    p = h.mosquitto_sub_bg(b, pki, "sub", "-t", "devices/pub/mq", "-q", "2", "-C", "3", "-W", "10")
    time.sleep(0.5)
    for i in range(3):
        r = h.mosquitto("mosquitto_pub", b, pki, "pub", "-t", "devices/pub/mq", "-m", "m%d" % i, "-q", "2")
        check(r.returncode == 0, "mosquitto_pub: " + r.stderr)
    out, err = p.communicate(timeout=15)
    check(out.split() == ["m0", "m1", "m2"], "mosquitto_sub got %r %r" % (out, err))


def test_retained():
    pub.publish("devices/pub/state", b"on", 1, retain=True)
    pub.publish("devices/pub/state", b"off", 1, retain=True)
    c = h.paho(b, pki, "sub", client_id="late")
    c.subscribe("devices/pub/#", 1)
    t, p, q, r = c.expect("devices/pub/state")
    check(p == b"off" and r, "latest retained value with the retain flag, got %r %r" % (p, r))
    pub.publish("devices/pub/state", b"", 1, retain=True)  # clear
    c.expect("devices/pub/state")  # the live delivery of the clear
    c.disconnect()
    c2 = h.paho(b, pki, "sub", client_id="later")
    c2.subscribe("devices/pub/#", 1)
    c2.expect_none()
    c2.disconnect()


def test_will_on_abnormal_close():
    sub.subscribe("devices/pub/status", 1)
    w = h.paho(b, pki, "pub", client_id="willer", will=("devices/pub/status", b"gone", 1, False))
    w.drop()
    t, p, q, r = sub.expect("devices/pub/status")
    check(p == b"gone", "will payload")


def test_no_will_after_disconnect():
    w = h.paho(b, pki, "pub", client_id="polite", will=("devices/pub/status", b"gone", 1, False))
    w.disconnect()
    sub.expect_none()


def test_will_topic_must_be_allowed():
    w = h.paho(b, pki, "pub", client_id="bad-will", will=("devices/sub/status", b"x", 0, False))
    check(w.connack[1] == 5, "CONNACK not authorized for a forbidden will topic, got %r" % (w.connack,))


h.run(test_qos_levels_and_sizes, test_qos_downgrade, test_mosquitto_clients_qos2, test_retained,
      test_will_on_abnormal_close, test_no_will_after_disconnect, test_will_topic_must_be_allowed)
