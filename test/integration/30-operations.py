"""Operator-facing behaviour: $SYS topics behind the ACL, clientid_policy match, --test-config,
refused mosquitto keys, clean shutdown on SIGTERM with clients connected."""
import os
import subprocess

from certmq_test import BIN, Harness, check

h = Harness()
pki = h.pki()
for d in ("dev1", "admin"):
    pki.device(d)
ACL = "pattern readwrite devices/%u/#\nuser admin\ntopic read $SYS/#\n"
b = h.broker(pki, ACL, extra="clientid_policy match\n")


def test_sys_for_admin_only():
    adm = h.paho(b, pki, "admin")
    check(adm.subscribe("$SYS/broker/clients/connected", 0) == 0, "admin may read $SYS")
    t, p, q, r = adm.expect("$SYS/broker/clients/connected", 5)
    check(int(p) >= 1, "connected count %r" % p)
    adm.expect("$SYS/broker/uptime", 3) if adm.subscribe("$SYS/broker/uptime", 0) == 0 else None
    dev = h.paho(b, pki, "dev1")
    check(dev.subscribe("$SYS/#", 0) == 0x80, "a device may not read $SYS")
    check(dev.subscribe("#", 0) == 0, "'#' is granted (own subtree) ...")
    dev.expect_none(1.5)  # ... but never delivers $SYS
    adm.disconnect()
    dev.disconnect()


def test_clientid_policy_match():
    ok = h.paho(b, pki, "dev1", client_id="dev1")
    check(ok.connack == (0, 0), "client id equal to the identity is accepted")
    bad = h.paho(b, pki, "dev1", client_id="something-else")
    check(bad.connack[1] == 2, "CONNACK identifier rejected, got %r" % (bad.connack,))
    ok.disconnect()


def write(name, text):
    path = os.path.join(h.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_config_check_good():
    r = subprocess.run([BIN, "--test-config", "-c", b.conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "good config: %s %s" % (r.stdout, r.stderr))


def test_config_check_bad():
    srv, key = pki.cert("server")
    bad = write("bad.conf", "listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n"
                "allow_anonymous true\nrequire_certificate false\nmax_inflight_messages lots\n"
                "no_such_key 1\n" % (pki.ca, srv, key, b.acl))
    r = subprocess.run([BIN, "--test-config", "-c", bad], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1, "bad config must fail")
    for line, what in ((6, "certmq only accepts clients that present a certificate"),
                       (7, "certmq only accepts clients that present a certificate"),
                       (8, "max_inflight_messages"), (9, "unknown configuration key 'no_such_key'")):
        check("bad.conf:%d: " % line in r.stderr and what in r.stderr, "missing %d %s in %s" % (line, what, r.stderr))


def test_config_check_bad_files():
    srv, key = pki.cert("server")
    other_key = pki.cert("dev1")[1]
    garbage = write("garbage.pem", "not a certificate\n")
    bad = write("files.conf", "listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\ncrlfile %s\n"
                "acl_file %s\n" % (pki.ca, srv, other_key, garbage, write("acl.bad", "topic read\n")))
    r = subprocess.run([BIN, "--test-config", "-c", bad], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1, "bad files must fail")
    check("does not match" in r.stderr, "key mismatch reported: " + r.stderr)
    check("garbage.pem" in r.stderr, "bad CRL reported: " + r.stderr)
    check("acl.bad:1:" in r.stderr, "bad ACL reported with file:line: " + r.stderr)


def test_sigterm_with_clients():
    b2 = h.broker(pki, ACL)
    c = h.paho(b2, pki, "dev1")
    rc = b2.stop()
    check(rc == 0, "exit status %s" % rc)
    check(c.disconnected.wait(5), "client saw the close")


def test_max_connections_per_ip():
    b3 = h.broker(pki, ACL, extra="max_connections_per_ip 2\n")
    c1 = h.paho(b3, pki, "dev1", client_id="dev1")
    c2 = h.paho(b3, pki, "admin", client_id="admin")
    n = b3.log_count()
    check(h.tls_refused(b3, pki, "dev1"), "third connection from 127.0.0.1 refused")
    b3.log_wait(r"refused 127\.0\.0\.1:\d+: max_connections_per_ip \(2\) reached", 3, n)
    c1.disconnect()
    import time
    time.sleep(0.5)
    check(not h.tls_refused(b3, pki, "dev1"), "room again after a disconnect")
    c2.disconnect()


h.run(test_max_connections_per_ip, test_sys_for_admin_only, test_clientid_policy_match, test_config_check_good,
      test_config_check_bad, test_config_check_bad_files, test_sigterm_with_clients)
