"""Revocation that bites: devices whose certificate (or an issuing CA) is revoked while they are
connected are disconnected within a second of the CRL file changing, with no signal sent; they
cannot come back, neither by full handshake nor by session-ticket resumption; a revoked device's
offline persistent sessions are discarded at the reload. Expiry
disconnects too. A bad CRL never replaces a good one. Server certificates rotate on SIGHUP."""
import os
import shutil
import subprocess
import time

from certmq_test import Harness, check

h = Harness()
pki = h.pki()
pki.run("intermediate", "plant")
pki.device("sub1")
pki.device("pub1")
pki.device("tick")
pki.device("keep")
pki.device("admin")
pki.device("i1", "--ca", "plant")
pki.device("i2", "--ca", "plant")
inter = os.path.join(pki.dir, "intermediates", "plant")
cafile = os.path.join(h.tmp, "cas.pem")
with open(cafile, "w") as f:
    f.write(open(pki.ca).read() + open(os.path.join(inter, "ca.crt")).read())
# The broker reads copies, replaced by rename like an operator's deployment would do.
live_root = os.path.join(h.tmp, "crl-root.pem")
live_inter = os.path.join(h.tmp, "crl-plant.pem")


def publish_crls():
    for src, dst in ((pki.crl, live_root), (os.path.join(inter, "crl.pem"), live_inter)):
        shutil.copy(src, dst + ".tmp")
        os.rename(dst + ".tmp", dst)


publish_crls()
srv, key = pki.cert("server")
ACL = "pattern readwrite devices/%u/#\npattern read devices/#\nuser admin\ntopic read $SYS/#\n"
b = h.broker(pki, ACL, cafile=cafile, crlfiles=[live_root, live_inter])


def chain(name):
    return (os.path.join(pki.dir, "issued", name + "-chain.pem"), pki.cert(name)[1])


def test_revoked_device_will_not_published_session_discarded():
    pki.device("willer")
    watcher = h.paho(b, pki, "keep", client_id="watcher")
    watcher.subscribe("devices/#", 1)
    w = h.paho(b, pki, "willer", clean=False, will=("devices/willer/status", b"lost", 1, False))
    w.subscribe("devices/willer/cmd", 1)
    n = b.log_count()
    pki.revoke("willer")
    publish_crls()
    check(w.disconnected.wait(3), "revoked device disconnected")
    b.log_wait("disconnecting client willer .*session discarded", 2, n)
    watcher.expect_none(1.0)  # its will is never published
    watcher.disconnect()


def test_offline_session_discarded_at_reload():
    """A device revoked while offline: its persistent session goes at the CRL reload (not at its
    expiry), and only its own."""
    pki.device("sleeper")
    for cid in ("sleeper-a", "sleeper-b"):
        c = h.paho(b, pki, "sleeper", client_id=cid, clean=False)
        c.subscribe("devices/sleeper/cmd", 1)
        c.disconnect()
    k = h.paho(b, pki, "keep", client_id="keep-offline", clean=False)
    k.subscribe("devices/keep/cmd", 1)
    k.disconnect()
    n = b.log_count()
    pki.revoke("sleeper")
    publish_crls()
    b.log_wait(r"CRL reload: 2 offline persistent session\(s\) of newly revoked certificates "
               r"discarded", 3, n)
    k = h.paho(b, pki, "keep", client_id="keep-offline", clean=False)
    check(k.connack == (1, 0), "another device's offline session stays: %r" % (k.connack,))
    k.disconnect()


def test_revoked_subscriber_and_publisher():
    sub = h.paho(b, pki, "sub1")
    sub.subscribe("devices/#", 1)
    pub = h.paho(b, pki, "pub1")
    pub.publish("devices/pub1/x", b"before", 1)
    sub.expect("devices/pub1/x")
    n = b.log_count()
    pki.revoke("sub1")
    t0 = time.time()
    publish_crls()
    check(sub.disconnected.wait(3), "revoked subscriber disconnected")
    took = time.time() - t0
    print("    revoked subscriber disconnected %.2f s after the CRL file changed" % took)
    # The design target is one second; the bound leaves room for a loaded sanitizer run.
    check(took < 2.5, "disconnected within a second (took %.2fs)" % took)
    b.log_wait(r"disconnecting client sub1 .*identity sub1.*certificate revoked", 2, n)
    check(not pub.disconnected.is_set(), "others stay connected")
    pki.revoke("pub1")
    publish_crls()
    check(pub.disconnected.wait(3), "revoked publisher disconnected")
    check(h.tls_refused(b, pki, "sub1"), "a revoked device cannot reconnect")


def s_client(name, *extra):
    crt, key = pki.cert(name)
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port, "-cert", crt, "-key", key,
           "-CAfile", pki.ca, "-tls1_2"] + list(extra)
    return subprocess.run(cmd, input="", capture_output=True, text=True, timeout=15)


def test_ticket_resumption_after_revocation():
    sess = os.path.join(h.tmp, "tick.sess")
    r = s_client("tick", "-sess_out", sess)
    check(os.path.exists(sess), "session saved: " + r.stderr)
    r = s_client("tick", "-sess_in", sess)
    check("Reused" in r.stdout + r.stderr, "ticket resumption works before revocation: " + r.stderr)
    pki.revoke("tick")
    publish_crls()
    time.sleep(0.8)
    n = b.log_count()
    r = s_client("tick", "-sess_in", sess)
    check("Reused" not in r.stdout + r.stderr, "the ticket must not resume a revoked device")
    b.log_wait(r"refused 127\.0\.0\.1:\d+: revoked", 3, n)


def test_revoked_intermediate():
    s1 = h.raw_tls(b, pki, cert=chain("i1"))
    s2 = h.raw_tls(b, pki, cert=chain("i2"))
    from certmq_test import connect_packet
    for s, cid in ((s1, "i1"), (s2, "i2")):
        s.sendall(connect_packet(cid))
        check(s.recv(4)[:2] == b"\x20\x02", "CONNACK for " + cid)
    keep = h.paho(b, pki, "keep")
    pki.run("revoke-intermediate", "plant")
    publish_crls()
    for s in (s1, s2):
        s.settimeout(3)
        check(s.recv(10) == b"", "device under the revoked intermediate disconnected")
    check(not keep.disconnected.wait(0.5), "root-issued device unaffected")
    check(h.tls_refused(b, pki, cert=chain("i1")), "cannot reconnect")


def test_garbage_crl_keeps_old():
    keep = h.paho(b, pki, "keep", client_id="keep2")
    n = b.log_count()
    with open(live_root + ".tmp", "w") as f:
        f.write("-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n")
    os.rename(live_root + ".tmp", live_root)
    b.log_wait("tls reload failed: keeping", 3, n)
    check(not keep.disconnected.wait(0.5), "connected devices stay")
    check(h.tls_refused(b, pki, "sub1"), "revoked device still refused under the old CRLs")
    check(not h.tls_refused(b, pki, "keep"), "good device still accepted")
    publish_crls()


def test_expiry_disconnects():
    pki.expiring("soon", 5)
    c = h.paho(b, pki, "soon")
    check(c.connack == (0, 0), "connected before expiry")
    check(c.disconnected.wait(12), "disconnected when the certificate expired")
    b.log_wait("certificate expired", 2)


def test_server_certificate_rotation():
    keep = h.paho(b, pki, "keep", client_id="keep3")
    pki.run("server", "server2")
    new_crt, new_key = pki.cert("server2")
    shutil.copy(new_crt, srv)
    shutil.copy(new_key, key)
    n = b.log_count()
    b.reload()
    b.log_wait("certificates and CRLs reloaded", 3, n)
    check(not keep.disconnected.wait(0.5), "devices stay connected across rotation")
    s = h.raw_tls(b, pki, "keep")
    der = s.getpeercert(binary_form=True)
    s.close()
    want = subprocess.run(["openssl", "x509", "-in", new_crt, "-outform", "DER"], capture_output=True).stdout
    check(der == want, "new connections get the new server certificate")


def test_sys_counts_every_verdict():
    # Five devices were disconnected by CRL reloads (willer, sub1, pub1, i1, i2), one by expiry.
    adm = h.paho(b, pki, "admin")
    got = {}
    want = {"revoked": 5, "expired": 1}
    for name in ("revoked", "expired"):
        topic = "$SYS/broker/tls/disconnected/" + name
        check(adm.subscribe(topic, 0) == 0, "admin may read " + topic)
        # $SYS is published every 1-2 s (sys_interval 1, on the tick): the retained value may
        # predate the last verdict by that much; the next publications catch up.
        end = time.time() + 4
        got[name] = int(adm.expect(topic, 3)[1])
        while got[name] != want[name] and time.time() < end:
            got[name] = int(adm.expect(topic, 3)[1])
    check(got == want, "$SYS disconnect counters: %r" % got)
    adm.disconnect()


h.run(test_revoked_device_will_not_published_session_discarded, test_offline_session_discarded_at_reload,
      test_revoked_subscriber_and_publisher, test_ticket_resumption_after_revocation,
      test_revoked_intermediate, test_garbage_crl_keeps_old, test_expiry_disconnects,
      test_server_certificate_rotation, test_sys_counts_every_verdict)
