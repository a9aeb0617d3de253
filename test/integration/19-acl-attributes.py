"""ACL rules from certificate attributes, on the fleet example (config/acl.fleet.example) as it
is: certificates with O, OU, SAN URIs and policy OIDs issued by certs/certmq-pki (engineers by a
second CA), %{san_uri:5} and %{cn} substitutions, match blocks (all conditions must hold, deny
wins), ambiguous and hostile attributes, a reload recompiling live clients from the attributes
kept with their sessions, mosquitto_pub, and certmq --explain on the same file."""
import os
import subprocess

import paho.mqtt.client as mqtt

from certmq_test import BIN, PKI, SRC, Harness, check

FLEET = os.path.join(SRC, "config", "acl.fleet.example")
GW_POLICY = "1.3.6.1.4.1.99999.1.2"
ENG_POLICY = "1.3.6.1.4.1.99999.1.9"


class FieldPKI(PKI):
    """The engineers' CA ("Acme Field CA"); clients still verify the broker with the fleet CA."""

    def __init__(self, h, fleet):
        self.h = h
        self.fleet = fleet
        self.dir = os.path.join(h.tmp, "field")
        self.run("init", "--cn", "Acme Field CA")

    @property
    def ca(self):
        return self.fleet.ca


h = Harness()
pki = h.pki()
field = FieldPKI(h, pki)
sensor = lambda name, *uris: pki.device(name, "--o", "Acme", "--ou", "sensors",
                                        *sum((["--san", "URI:" + u] for u in uris), []))
sensor("sensor-0042", "urn:acme:device:sensor:0042")
sensor("sensor-dup", "urn:acme:device:sensor:0001", "urn:acme:device:sensor:0002")
sensor("sensor-evil", "urn:acme:device:sensor:+")
pki.device("gw-east", "--o", "Acme", "--ou", "gateways", "--policy", GW_POLICY)
pki.device("gw-nopolicy", "--o", "Acme", "--ou", "gateways")
pki.device("gw-two-ou", "--o", "Acme", "--ou", "gateways", "--ou", "sensors", "--policy", "1.2.3",
           "--policy", GW_POLICY)
pki.device("dash", "--o", "Acme", "--ou", "dashboards")
field.device("eng-1", "--policy", ENG_POLICY)
field.device("eng-nopolicy")
bundle = os.path.join(h.tmp, "cas.pem")
with open(bundle, "w") as f:
    f.write(open(pki.ca).read() + open(os.path.join(field.dir, "ca.crt")).read())
b = h.broker(pki, open(FLEET).read(), cafile=bundle,
             crlfiles=[pki.crl, os.path.join(field.dir, "crl.pem")])
dash = h.paho(b, pki, "dash")
check(dash.subscribe("fleet/#", 1) == 1, "dashboards read fleet/#")
check(dash.subscribe("status/#", 1) == 1, "dashboards read status/#")
check(dash.subscribe("gateways/#", 1) == 1, "dashboards read gateways/#")


def test_sensor_by_urn():
    s = h.paho(b, pki, "sensor-0042")
    s.publish("fleet/sensors/0042/telemetry", b"21.5", 1)
    check(dash.expect("fleet/sensors/0042/telemetry")[1] == b"21.5", "payload")
    s.publish("fleet/sensors/0043/telemetry", b"forged", 1)  # another sensor's number: dropped
    s.publish("status/sensor-0042", b"up", 1)
    dash.expect("status/sensor-0042")
    dash.expect_none()
    check(s.subscribe("commands/sensors/0042/#", 1) == 1, "own commands")
    check(s.subscribe("commands/sensors/0043/#", 1) == 0x80, "another sensor's commands")
    s.disconnect()


def test_ambiguous_and_hostile_urn():
    d = h.paho(b, pki, "sensor-dup")
    d.publish("fleet/sensors/0001/telemetry", b"x", 1)
    d.publish("fleet/sensors/0002/telemetry", b"x", 1)
    d.publish("status/sensor-dup", b"up", 1)  # the rule without attributes still applies
    dash.expect("status/sensor-dup")
    dash.expect_none()
    check(d.subscribe("commands/#", 1) == 0x80, "two SAN URIs: no sensor rule at all")
    d.disconnect()
    e = h.paho(b, pki, "sensor-evil")
    check(e.connack == (0, 0), "a hostile attribute does not refuse the device")
    check(e.subscribe("commands/#", 1) == 0x80, "URN field '+' cannot widen the pattern")
    e.publish("fleet/sensors/x/telemetry", b"x", 1)
    dash.expect_none()
    e.disconnect()


def test_gateway_needs_every_condition():
    gw = h.paho(b, pki, "gw-east")
    eng = h.paho(b, field, "eng-1")
    check(gw.subscribe("commands/#", 1) == 1, "gateway reads commands/#")
    eng.publish("commands/gw-east/reboot", b"now", 1)
    gw.expect("commands/gw-east/reboot")
    eng.publish("commands/admin/rotate", b"k", 1)  # deny in the gateways' block wins
    gw.expect_none()
    gw.publish("gateways/gw-east/up", b"1", 1)  # %{cn}
    dash.expect("gateways/gw-east/up")
    gw.publish("gateways/gw-west/up", b"1", 1)
    gw.publish("fleet/sensors/0099/telemetry", b"relayed", 1)
    dash.expect("fleet/sensors/0099/telemetry")
    dash.expect_none()
    nop = h.paho(b, pki, "gw-nopolicy")
    check(nop.subscribe("commands/#", 1) == 0x80, "without the policy OID it is no gateway")
    two = h.paho(b, pki, "gw-two-ou")  # one of its OUs and one of its policies suffice ...
    check(two.subscribe("commands/#", 1) == 1, "a match condition holds on any of several values")
    check(two.subscribe("commands/sensors/+/#", 1) == 1, "... and it satisfies the sensors' block")
    two.publish("gateways/gw-two-ou/up", b"1", 1)
    dash.expect("gateways/gw-two-ou/up")
    for c in (gw, eng, nop, two):
        c.disconnect()


def test_engineer_by_issuer_and_policy():
    eng = h.paho(b, field, "eng-1", protocol=mqtt.MQTTv5)
    check(eng.subscribe("$SYS/#", 0) == 0, "engineers read $SYS")
    eng.expect("$SYS/broker/clients/connected", 3)
    nop = h.paho(b, field, "eng-nopolicy")
    check(nop.subscribe("commands/#", 0) == 0x80, "same CA without the policy: nothing")
    eng.disconnect()
    nop.disconnect()


def test_mosquitto_pub():
    r = h.mosquitto("mosquitto_pub", b, pki, "sensor-0042", "-t", "fleet/sensors/0042/telemetry",
                    "-m", "from-mosquitto", "-q", "1", "-V", "mqttv5")
    check(r.returncode == 0, "mosquitto_pub: %s" % r.stderr)
    check(dash.expect("fleet/sensors/0042/telemetry")[1] == b"from-mosquitto", "payload")
    r = h.mosquitto("mosquitto_pub", b, pki, "sensor-0042", "-t", "fleet/sensors/0043/telemetry",
                    "-m", "x", "-q", "1", "-V", "mqttv5")
    check("not authorized" in (r.stdout + r.stderr).lower() or r.returncode != 0,
          "v5 publish to another sensor's topic refused: %r" % (r.stdout + r.stderr))
    dash.expect_none()


def test_reload_recompiles_from_kept_attributes():
    s = h.paho(b, pki, "sensor-0042")
    s.publish("fleet2/0042", b"x", 1)
    dash.expect_none()
    with open(b.acl, "a") as f:
        f.write("\nmatch san_uri=urn:acme:device:sensor:0042\ntopic write fleet/v2/only-0042\n"
                "pattern write fleet/v2/%{san_uri:4}\n")
    n = b.log_count()
    b.reload()
    b.log_wait(r"acl: loaded .* \(\d+ rules\)", 5, n)
    s.publish("fleet/v2/only-0042", b"a", 1)
    dash.expect("fleet/v2/only-0042")
    s.publish("fleet/v2/sensor", b"b", 1)
    dash.expect("fleet/v2/sensor")
    s.disconnect()
    with open(b.acl, "a") as f:
        f.write("match ou=\n")  # broken: every error logged, the rules in force stay
    n = b.log_count()
    b.reload()
    b.log_wait(r"acl: .*:\d+: 'match ou=' needs a value", 5, n)
    s = h.paho(b, pki, "sensor-0042")
    s.publish("fleet/v2/sensor", b"c", 1)
    dash.expect("fleet/v2/sensor")
    s.disconnect()


def test_connections_per_identity():
    """max_connections_per_identity 1, raised to 2 for gateways by a match block's limit."""
    acl = open(FLEET).read() + "\nmatch ou=gateways\nlimit max_connections_per_identity 2\n"
    b2 = h.broker(pki, acl, cafile=bundle, crlfiles=[pki.crl, os.path.join(field.dir, "crl.pem")],
                  extra="max_connections_per_identity 1\n")
    s1 = h.paho(b2, pki, "sensor-0042", client_id="s1", protocol=mqtt.MQTTv5)
    s2 = h.paho(b2, pki, "sensor-0042", client_id="s2", protocol=mqtt.MQTTv5)
    check(s1.connack[1] == 0 and s2.connack[1] == 0x97, "second sensor client: %r" % (s2.connack,))
    s2.disconnect()  # stop paho from retrying: it would compete for the place freed below
    s1b = h.paho(b2, pki, "sensor-0042", client_id="s1", protocol=mqtt.MQTTv5)
    check(s1b.connack[1] == 0, "taking over its own session is not one more connection")
    s1.disconnect()  # the taken-over client: paho would reconnect it and take s1 back
    s3 = h.paho(b2, pki, "sensor-0042", client_id="s3")  # MQTT 3.1.1: 3 = server unavailable
    check(s3.connack[1] == 3, "3.1.1 refusal: %r" % (s3.connack,))
    s3.disconnect()
    b2.log_wait(r"identity sensor-0042 already has 1 clients connected "
                r"\(max_connections_per_identity 1\): client id s2 refused", 3)
    g = [h.paho(b2, pki, "gw-east", client_id="g%d" % i, protocol=mqtt.MQTTv5) for i in range(3)]
    check([c.connack[1] == 0 for c in g] == [True, True, False], "gateways: 2 by their block")
    g[2].disconnect()
    n = b2.log_count()
    s1b.disconnect()
    b2.log_wait(r"client s1 disconnected", 5, n)  # its DISCONNECT may still be on the way
    s4 = h.paho(b2, pki, "sensor-0042", client_id="s4")
    check(s4.connack[1] == 0, "a freed place can be taken")
    r = subprocess.run([BIN, "--explain", "-c", b2.conf, "--cert", pki.cert("gw-east")[0]],
                       capture_output=True, text=True, timeout=20)
    check("limit max_connections_per_identity 2" in r.stdout and
          "max_connections_per_identity: 2 (a match block's limit)" in r.stdout, r.stdout)
    for c in [s4] + g[:2]:
        c.disconnect()
    check(b2.stop() == 0, "clean exit")


def line_of(text):
    """The line of the fleet example that is text (the example grows; the test follows it)."""
    return open(FLEET).read().splitlines().index(text) + 1


def explain(*args):
    return subprocess.run([BIN, "--explain", "-c", b.conf] + list(args), capture_output=True,
                          text=True, timeout=20)


def test_explain():
    deny = line_of("topic deny commands/admin/#")
    r = explain("--cert", pki.cert("gw-east")[0], "--topic", "commands/admin/reboot")
    check(r.returncode == 0, "explain: %s" % r.stderr)
    out = r.stdout
    for want in ("identity: gw-east (cert_identity cn)", "ou        = gateways",
                 "policy    = " + GW_POLICY, "pattern readwrite gateways/%{cn}/# -> gateways/gw-east/#",
                 "%s:%d: match ou=sensors does not hold" % (b.acl, line_of("match ou=sensors")),
                 "publish: denied (%s:%d denies it; deny wins)" % (b.acl, deny),
                 "subscribe: denied (%s:%d denies the whole filter)" % (b.acl, deny)):
        check(want in out, "explain shows %r in:\n%s" % (want, out))
    r = explain("--cert", pki.cert("sensor-0042")[0], "--client-id", "s", "--topic",
                "fleet/sensors/0042/telemetry")
    grant = line_of("pattern write fleet/sensors/%{san_uri:5}/telemetry")
    check("publish: allowed (%s:%d grants write)" % (b.acl, grant) in r.stdout, r.stdout)
    check("receive: denied (no rule grants read: default deny)" in r.stdout, r.stdout)
    r = explain("--cert", pki.cert("sensor-dup")[0], "--topic", "fleet/sensors/0001/telemetry")
    check("the certificate has several values" in r.stdout, r.stdout)
    check("publish: denied (no rule grants write: default deny)" in r.stdout, r.stdout)
    r = explain("--cert", pki.cert("sensor-evil")[0])
    check("(unusable as a topic level)" in r.stdout, r.stdout)
    r = explain("--cert", os.path.join(field.dir, "issued", "eng-1.crt"), "--topic", "$SYS/#")
    check("subscribe: allowed" in r.stdout and "issuer_cn = Acme Field CA" in r.stdout, r.stdout)
    r = explain("--cert", b.acl)
    check(r.returncode == 1 and "not a certificate" in r.stderr, "a non-certificate: %r" % r.stderr)
    r = subprocess.run([BIN, "--explain", "-c", b.conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 2, "--explain without --cert is a usage error")


h.run(test_sensor_by_urn, test_ambiguous_and_hostile_urn, test_gateway_needs_every_condition,
      test_engineer_by_issuer_and_policy, test_mosquitto_pub, test_explain, test_connections_per_identity,
      test_reload_recompiles_from_kept_attributes)
