"""TLS 1.3 (Mbed TLS 3.6 builds): negotiated by default with OpenSSL peers (s_client, python's ssl
under paho, mosquitto_pub/sub); a client without a certificate is refused as under 1.2; session
tickets resume under 1.3 and 1.2 alike, a ticket of the other version falls back to a full
handshake; a revoked device's 1.3 ticket does not resume; tls_version / min_tls_version pin the
versions. On a 2.28 build only the version settings are checked (1.3 is refused at load)."""
import os
import shutil
import subprocess
import time

from certmq_test import Harness, check, connect_packet

HAVE13 = os.environ.get("CERTMQ_TLS13", "1") == "1"
h = Harness()
pki = h.pki()
for d in ("dev1", "dev2", "tick", "keep", "anyres"):
    pki.device(d)
live_crl = os.path.join(h.tmp, "crl.pem")


def publish_crl():
    shutil.copy(pki.crl, live_crl + ".tmp")
    os.rename(live_crl + ".tmp", live_crl)


publish_crl()
ACL = "pattern readwrite devices/%u/#\npattern read devices/#\n"
b = h.broker(pki, ACL, crlfiles=[live_crl]) if HAVE13 else None


def s_client(broker, name, *extra, wait=0.5):
    """openssl s_client kept open `wait` seconds, so that a TLS 1.3 ticket (sent after the
    handshake) arrives before it leaves."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % broker.port, "-CAfile", pki.ca] + list(extra)
    if name:
        crt, key = pki.cert(name)
        cmd += ["-cert", crt, "-key", key]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(wait)
    out, err = p.communicate(input="", timeout=15)
    return out + err


def test_openssl_negotiates_13_with_a_certificate():
    out = s_client(b, "dev1")
    check("New, TLSv1.3" in out, "TLS 1.3 by default: " + out[-300:])
    s = h.raw_tls(b, pki, "dev1")
    check(s.version() == "TLSv1.3", "python's ssl negotiates 1.3: %s" % s.version())
    s.sendall(connect_packet("dev1"))
    check(s.recv(4)[:2] == b"\x20\x02", "CONNACK over TLS 1.3")
    s.close()


def test_no_certificate_refused_under_13():
    n = b.log_count()
    s_client(b, None, "-tls1_3")
    b.log_wait(r"refused 127\.0\.0\.1:\d+: no certificate", 3, n)
    check(h.tls_refused(b, pki), "python's ssl without a certificate refused")


def test_mosquitto_clients():
    sub = h.mosquitto_sub_bg(b, pki, "keep", "-t", "devices/#", "-C", "1", "-W", "10")
    time.sleep(0.5)
    r = h.mosquitto("mosquitto_pub", b, pki, "dev2", "-t", "devices/dev2/t", "-m", "over13")
    check(r.returncode == 0, "mosquitto_pub over TLS 1.3: " + r.stderr)
    out, _ = sub.communicate(timeout=10)
    check(out.strip() == "over13", "mosquitto_sub received it: %r" % out)


def test_paho_over_13():
    c = h.paho(b, pki, "dev1")
    c.subscribe("devices/dev1/x", 1)
    c.publish("devices/dev1/x", b"p", 1)
    c.expect("devices/dev1/x")
    c.disconnect()


def test_resumption_13_and_12():
    for ver in ("-tls1_3", "-tls1_2"):
        sess = os.path.join(h.tmp, "dev1%s.sess" % ver)
        out = s_client(b, "dev1", ver, "-sess_out", sess)
        check(os.path.exists(sess), "session saved (%s): %s" % (ver, out[-300:]))
        out = s_client(b, "dev1", ver, "-sess_in", sess)
        check("Reused" in out, "ticket resumes under %s: %s" % (ver, out[-300:]))
    # A 1.2 session offered by a 1.3 client, and the other way round: full handshakes.
    out = s_client(b, "dev1", "-sess_in", os.path.join(h.tmp, "dev1-tls1_2.sess"))
    check("New, TLSv1.3" in out, "a 1.2 ticket does not resume 1.3: " + out[-300:])
    out = s_client(b, "dev1", "-tls1_2", "-sess_in", os.path.join(h.tmp, "dev1-tls1_3.sess"))
    check("New, TLSv1.2" in out, "a 1.3 ticket does not resume 1.2: " + out[-300:])


def test_revoked_13_ticket_does_not_resume():
    sess = os.path.join(h.tmp, "tick13.sess")
    s_client(b, "tick", "-tls1_3", "-sess_out", sess)
    out = s_client(b, "tick", "-tls1_3", "-sess_in", sess)
    check("Reused" in out, "resumes before the revocation: " + out[-300:])
    pki.revoke("tick")
    publish_crl()
    time.sleep(0.8)
    n = b.log_count()
    out = s_client(b, "tick", "-tls1_3", "-sess_in", sess)
    check("Reused" not in out, "a revoked device's 1.3 ticket must not resume")
    b.log_wait(r"refused 127\.0\.0\.1:\d+: revoked", 3, n)


def test_resumption_any_with_openssl():
    """tls13_resumption any with a real peer. OpenSSL 3.0 offers psk_ke only beside psk_dhe_ke
    (-allow_no_dhe_kex) and Mbed TLS prefers psk_dhe_ke, so the session resumes with an ECDHE;
    a client offering psk_ke alone is tls_ticket_test's (an Mbed TLS client). A revoked
    device's ticket does not resume on such a listener either."""
    anyb = h.broker(pki, ACL, crlfiles=[live_crl], extra="tls13_resumption any\n")
    sess = os.path.join(h.tmp, "anyres.sess")
    s_client(anyb, "anyres", "-tls1_3", "-allow_no_dhe_kex", "-sess_out", sess)
    out = s_client(anyb, "anyres", "-tls1_3", "-allow_no_dhe_kex", "-sess_in", sess)
    check("Reused, TLSv1.3" in out, "resumes on a tls13_resumption any listener: " + out[-300:])
    # OpenSSL 3.0 (Debian 12) shows the resumption's ECDHE as "Server Temp Key"; 3.5 (Debian 13)
    # prints no key exchange line for a resumed session, so there it cannot be checked this way.
    ver = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.split()
    if len(ver) > 1 and ver[1].startswith("3.0"):
        check("Server Temp Key" in out, "with an ECDHE (psk_dhe_ke preferred): " + out[-300:])
    pki.revoke("anyres")
    publish_crl()
    time.sleep(0.8)
    n = anyb.log_count()
    out = s_client(anyb, "anyres", "-tls1_3", "-allow_no_dhe_kex", "-sess_in", sess)
    check("Reused" not in out, "a revoked device's ticket must not resume under any")
    anyb.log_wait(r"refused 127\.0\.0\.1:\d+: revoked", 3, n)


def test_version_settings():
    if not HAVE13:
        r = subprocess.run([os.environ["CERTMQ_BIN"], "--test-config", "-c", write_conf("tls_version tlsv1.3\n")],
                           capture_output=True, text=True, timeout=10)
        check(r.returncode != 0 and "TLS 1.2 only" in r.stdout + r.stderr, "1.3 refused on 2.28: " + r.stderr)
        return
    only12 = h.broker(pki, ACL, extra="tls_version tlsv1.2\n")
    check("New, TLSv1.2" in s_client(only12, "dev1"), "tls_version tlsv1.2 pins 1.2")
    only13 = h.broker(pki, ACL, extra="min_tls_version tlsv1.3\n")
    check("New, TLSv1.3" in s_client(only13, "dev1"), "min_tls_version tlsv1.3 allows 1.3")
    out = s_client(only13, "dev1", "-tls1_2")
    check("New, TLSv1.2" not in out, "min_tls_version tlsv1.3 refuses 1.2")


def write_conf(extra):
    srv, key = pki.cert("server")
    path, acl = os.path.join(h.tmp, "v.conf"), os.path.join(h.tmp, "v.acl")
    with open(acl, "w") as f:
        f.write(ACL)
    with open(path, "w") as f:
        f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n%sacl_file %s\n"
                % (pki.ca, srv, key, extra, acl))
    return path


if HAVE13:
    h.run(test_openssl_negotiates_13_with_a_certificate, test_no_certificate_refused_under_13,
          test_mosquitto_clients, test_paho_over_13, test_resumption_13_and_12,
          test_revoked_13_ticket_does_not_resume, test_resumption_any_with_openssl,
          test_version_settings)
else:
    h.run(test_version_settings)
