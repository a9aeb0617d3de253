"""Plugins: the example plugin is loaded with its options, restricts what the ACL allows
(publish and delivery), observes messages, logs through the broker and is unloaded at exit;
it refuses a certificate at the handshake, and decides on others asynchronously while the
broker keeps serving connected clients; an unanswered decision is refused at the time limit;
a missing file, a library that is not a plugin and a plugin whose init fails stop the start."""
import os
import subprocess
import time

from certmq_test import BIN, Harness, check, connect_packet, read_packet

h = Harness()
pki = h.pki()
for d in ("a", "watcher", "banned"):
    pki.device(d)
PLUGIN = os.environ.get("CERTMQ_EXAMPLE_PLUGIN", os.path.join(os.environ.get("CERTMQ_BUILD", "build"),
                                                              "certmq_example.so"))
ACL = "pattern readwrite devices/%u/#\nuser watcher\ntopic read devices/#\n"
b = h.broker(pki, ACL, extra="plugin %s\nplugin_opt_deny_level secret\nplugin_opt_log_messages true\n" % PLUGIN)


def test_plugin_restricts_and_observes():
    b.log_wait(r"plugin: example: ready \(deny_level secret\)", 3)
    w = h.paho(b, pki, "watcher")
    w.subscribe("devices/#", 1)
    a = h.paho(b, pki, "a")
    a.publish("devices/a/secret/x", b"no", 1)   # the ACL allows it, the plugin does not
    a.publish("devices/a/open", b"yes", 1)
    t, p, q, r = w.expect("devices/a/open")
    w.expect_none(0.5)
    b.log_wait(r"plugin: example: a denied on devices/a/secret/x", 3)
    b.log_wait(r"plugin: example: message #1 from a on devices/a/open", 3)
    b.log_wait(r"plugin: example: a connected as a from 127\.0\.0\.1:", 3)
    a.disconnect()
    w.disconnect()


def test_cert_attributes():
    pki.device("gw", "--o", "Acme", "--ou", "gateways", "--ou", "east", "--san", "URI:urn:acme:gw:7",
               "--policy", "1.3.6.1.4.1.99999.1.2")
    b3 = h.broker(pki, ACL, extra="plugin %s\nplugin_opt_log_attributes true\n" % PLUGIN)
    g = h.paho(b3, pki, "gw")
    for want in (r"example: gw has o=Acme", r"example: gw has ou=gateways", r"example: gw has ou=east",
                 r"example: gw has san_uri=urn:acme:gw:7", r"example: gw has policy=1\.3\.6\.1\.4\.1\.99999\.1\.2",
                 r"example: gw has cn=gw", r"example: gw has serial=[0-9A-F]+", r"example: gw has issuer_cn="):
        b3.log_wait(want, 3)
    g.disconnect()
    check(b3.stop() == 0, "clean exit")


def test_cert_check_deny_and_pending():
    b2 = h.broker(pki, ACL, extra="plugin %s\nplugin_opt_deny_cert banned\nplugin_opt_cert_delay_ms 1500\n"
                  % PLUGIN)
    n = b2.log_count()
    check(h.tls_refused(b2, pki, "banned"), "the plugin refuses the certificate")
    b2.log_wait(r"refused 127\.0\.0\.1:\d+: refused by plugin: example: identity on the deny list "
                r"\(identity banned", 3, n)
    w = h.paho(b2, pki, "watcher")   # each of these waited for the plugin's delayed decision
    w.subscribe("devices/#", 1)
    a = h.paho(b2, pki, "a")
    n = b2.log_count()
    s = h.raw_tls(b2, pki, "a")      # TLS done; the plugin has not decided yet
    s.sendall(connect_packet("pending-a"))
    b2.log_wait(r"example: deciding on a \(\d+-byte certificate\) in 1500 ms", 3, n)
    a.publish("devices/a/meanwhile", b"1", 1)
    w.expect("devices/a/meanwhile")
    served = time.time()
    first, body = read_packet(s, 5)  # the CONNACK comes only after the decision
    decided = time.time()
    check(first == 0x20 and body[-1] == 0, "CONNACK accepted after the decision: %r %r" % (first, body))
    check(decided - served > 0.5, "connected clients were served while the decision was pending")
    s.close()
    # Peers that leave while their decision is pending: the late decisions are discarded.
    n = b2.log_count()
    for i in range(5):
        g = h.raw_tls(b2, pki, "a")
        g.sendall(connect_packet("gone-%d" % i))
        g.close()
    b2.log_wait(r"example: deciding on a", 3, n)
    time.sleep(2)
    a.publish("devices/a/after", b"2", 1)
    w.expect("devices/a/after")
    check(b2.proc.poll() is None, "broker alive after discarded decisions")
    a.disconnect()
    w.disconnect()
    check(b2.stop() == 0, "clean exit with the plugin's timers")


def test_cert_check_time_limit():
    b3 = h.broker(pki, ACL, extra="plugin %s\nplugin_opt_cert_delay_ms 5000\ntls_handshake_timeout 1000\n"
                  % PLUGIN)
    n = b3.log_count()
    check(h.tls_refused(b3, pki, "a"), "an unanswered decision refuses the connection")
    b3.log_wait(r"refused 127\.0\.0\.1:\d+: refused by plugin: certificate check not answered in time", 3, n)
    check(b3.stop() == 0, "clean exit with a decision still pending")


def start_fails(extra, want):
    srv, key = pki.cert("server")
    conf = os.path.join(h.tmp, "p%d.conf" % abs(hash(extra)))
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n%s"
                % (pki.ca, srv, key, b.acl, extra))
    r = subprocess.run([BIN, "-c", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1, "must refuse to start (rc %s)" % r.returncode)
    check(want in r.stderr, "expected %r in: %s" % (want, r.stderr[-500:]))


def test_bad_plugins_refused():
    start_fails("plugin /nonexistent/plugin.so\n", "cannot load plugin")
    start_fails("plugin /usr/lib/x86_64-linux-gnu/libsqlite3.so.0\n", "not a certmq plugin")
    start_fails("plugin %s\nplugin_opt_colour blue\n" % PLUGIN, "plugin initialisation failed")


def test_test_config_checks_plugins():
    srv, key = pki.cert("server")
    conf = os.path.join(h.tmp, "tc.conf")
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n"
                "plugin /nonexistent/x.so\n" % (pki.ca, srv, key, b.acl))
    r = subprocess.run([BIN, "--test-config", "-c", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1 and "x.so: cannot load plugin" in r.stderr, "--test-config: " + r.stderr)


def test_unloaded_at_exit():
    rc = b.stop()
    check(rc == 0, "clean exit")
    check(any("example: unloading after" in l for l in b.log()), "cleanup hook ran")


h.run(test_plugin_restricts_and_observes, test_cert_attributes, test_cert_check_deny_and_pending, test_cert_check_time_limit,
      test_bad_plugins_refused, test_test_config_checks_plugins,
      test_unloaded_at_exit)
