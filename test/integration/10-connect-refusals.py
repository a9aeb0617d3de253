"""Who gets in: a device certificate from the fleet CA, valid now, with clientAuth (or no EKU),
not revoked, with a usable CN. Everyone else is refused at the TLS handshake, with a log line
naming the reason."""
import os
import re
import subprocess

from certmq_test import Harness, check, TestFailure
import paho.mqtt.client as mqtt

h = Harness()
pki = h.pki()
other = h.pki("other")
pki.device("dev1")
pki.device("noeku", "--eku", "none")
pki.device("srvonly", "--eku", "serverAuth")
pki.device("expired", "--start", "20200101000000Z", "--end", "20210101000000Z")
pki.device("future", "--start", "20400101000000Z", "--end", "20410101000000Z")
pki.device("revoked")
pki.revoke("revoked")
pki.device("plus", "--cn", "a+b")
pki.device("slash", "--cn", "a/b")
other.device("stranger")
b = h.broker(pki)


def test_accepted_paho():
    c = h.paho(b, pki, "dev1")
    check(c.connack == (0, 0), "CONNACK %r" % (c.connack,))
    c.disconnect()


def test_accepted_mosquitto_clients():
    r = h.mosquitto("mosquitto_pub", b, pki, "dev1", "-t", "devices/dev1/x", "-m", "hi", "-q", "1")
    check(r.returncode == 0, "mosquitto_pub failed: %s" % r.stderr)


def test_accepted_without_eku():
    check(not h.tls_refused(b, pki, "noeku"), "a certificate without EKU must be accepted")


def refused(device_or_cert, reason, ca=pki):
    n = b.log_count()
    if isinstance(device_or_cert, tuple):
        check(h.tls_refused(b, ca, cert=device_or_cert), "handshake should fail")
    else:
        check(h.tls_refused(b, ca, device_or_cert), "handshake should fail")
    b.log_wait(r"refused 127\.0\.0\.1:\d+: " + reason, 5, n)


def test_no_certificate():
    refused(None, "no certificate")
    r = h.mosquitto("mosquitto_pub", b, pki, None, "-t", "devices/x", "-m", "hi")
    check(r.returncode != 0, "mosquitto_pub without --cert must fail")


def test_other_ca():
    refused(other.cert("stranger"), "unknown CA")


def test_expired():
    refused("expired", "expired")


def test_not_yet_valid():
    refused("future", "not yet valid")


def test_revoked():
    refused("revoked", "revoked")


def test_server_auth_only():
    refused("srvonly", "bad extended key usage")


def test_bad_cn():
    refused("plus", "bad identity")
    refused("slash", "bad identity")


def test_mqtt31():
    c = h.paho(b, pki, "dev1", client_id="dev1-31", protocol=mqtt.MQTTv31)
    check(c.connack == (0, 0), "MQTT 3.1 CONNACK %r" % (c.connack,))
    c.disconnect()


def s_client_temp_key(groups, *extra):
    crt, key = pki.cert("dev1")
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port, "-CAfile", pki.ca,
                        "-cert", crt, "-key", key, "-groups", groups] + list(extra), input="", capture_output=True,
                       text=True, timeout=10)
    m = re.search(r"Server Temp Key: ([^\n]*)", r.stdout)
    return m.group(1) if m else r.stdout[-300:]


def test_key_exchange_prefers_x25519():
    """TLS 1.2: the broker's group preference wins over the client's order (X25519 is the
    cheapest). TLS 1.3: the client's key share is taken when it is one of ours, since asking for
    another (HelloRetryRequest) costs a round trip more than the ECDHE saves."""
    got = s_client_temp_key("P-256:X25519", "-tls1_2")
    check(got.startswith("X25519"), "X25519 chosen over a P-256-first client: %s" % got)
    got = s_client_temp_key("P-384:P-256", "-tls1_2")
    check("prime256v1" in got, "P-256 chosen over a P-384-first client: %s" % got)
    if os.environ.get("CERTMQ_TLS13") == "1":
        got = s_client_temp_key("P-256:X25519", "-tls1_3")
        check("prime256v1" in got, "TLS 1.3 takes the client's P-256 share: %s" % got)
        got = s_client_temp_key("X25519:P-256", "-tls1_3")
        check(got.startswith("X25519"), "TLS 1.3 takes the client's X25519 share: %s" % got)


h.run(test_accepted_paho, test_accepted_mosquitto_clients, test_accepted_without_eku,
      test_key_exchange_prefers_x25519,
      test_no_certificate, test_other_ca, test_expired, test_not_yet_valid, test_revoked,
      test_server_auth_only, test_bad_cn, test_mqtt31)
