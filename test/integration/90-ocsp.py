"""OCSP-check plugin against a real responder (certmq-pki ocsp-responder: openssl ocsp over the
PKI index) and a misbehaving one (ocsp_fake.py). No CRL is loaded: revocation comes from OCSP
alone. Good devices connect; a device revoked in the index is refused; one revoked while
connected is disconnected at the next re-check; an unreachable responder refuses (closed) or
allows with a warning (open); cached answers keep reconnects working while the responder is
down, until they age out; bad answers are refused and never crash the broker; concurrent checks
of one certificate share a request; a responder that never answers does not delay connected
clients' messages."""
import os
import subprocess
import sys
import threading
import time

from certmq_test import PKI_TOOL, SRC, Harness, check, connect_packet, free_port, read_packet, wait_for

PLUGIN = os.environ.get("CERTMQ_OCSP_PLUGIN",
                        os.path.join(os.environ.get("CERTMQ_BUILD", os.path.join(SRC, "build")),
                                     "certmq_ocsp.so"))
FAKE = os.path.join(SRC, "test", "integration", "ocsp_fake.py")
ACL = "pattern readwrite devices/%u/#\nuser watcher\ntopic read devices/#\n"

h = Harness()
pki = h.pki()


def start_listening(argv):
    """Start a responder that prints 'listening PORT'; returns (process, port)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    h.procs.append(p)
    line = [None]
    t = threading.Thread(target=lambda: line.__setitem__(0, p.stdout.readline()), daemon=True)
    t.start()
    t.join(15)
    check(line[0] and line[0].startswith("listening "), "responder started: %r" % line[0])
    return p, int(line[0].split()[1])


def stop(p):
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


real, real_port = start_listening([PKI_TOOL, "-d", pki.dir, "ocsp-responder", "0", "--nmin", "10"])
REAL = "http://127.0.0.1:%d/" % real_port
DEAD = "http://127.0.0.1:%d/" % free_port()
for d in ("watcher", "good", "revoked", "later", "cached", "stuck-ok", "shared", "leaver"):
    pki.device(d, "--ocsp-url", REAL)
pki.device("noaia")
pki.device("noeku-signer", "--eku", "none")
pki.revoke("revoked")
other = h.pki("other")
other.device("foreign-signer")


def ocsp_broker(*opts, crl=False):
    extra = "plugin %s\n" % PLUGIN + "".join("plugin_opt_%s\n" % o for o in opts)
    b = h.broker(pki, ACL, extra=extra, crl=crl)
    b.log_wait(r"plugin: ocsp: ready", 5)
    return b


def refused(b, device, reason_rx):
    n = b.log_count()
    check(h.tls_refused(b, pki, device), "%s refused" % device)
    b.log_wait(r"refused 127\.0\.0\.1:\d+: refused by plugin: " + reason_rx, 8, n)


def fake(mode, *args):
    log = os.path.join(h.tmp, "fake-%s-%d.log" % (mode, time.time_ns()))
    p, port = start_listening([sys.executable, FAKE, "--port", "0", "--issuer-cert", pki.ca,
                               "--issuer-key", os.path.join(pki.dir, "ca.key"), "--mode", mode,
                               "--log", log] + list(args))
    return p, "http://127.0.0.1:%d/" % port, log


def requests(log):
    return len(open(log).read().splitlines()) if os.path.exists(log) else 0


def test_good_revoked_and_recheck():
    b = ocsp_broker("ocsp_recheck_s 1", "ocsp_timeout_ms 3000")
    g = h.paho(b, pki, "good")
    check(g.connack[1] == 0, "good device connects (AIA responder)")
    b.log_wait(r"plugin: ocsp: good \(serial [0-9A-F:]+\): good", 3)
    refused(b, "revoked", r"OCSP: certificate revoked")
    refused(b, "noaia", r"OCSP: no responder")
    later = h.paho(b, pki, "later")
    check(later.connack[1] == 0, "later connects")
    pki.revoke("later")  # the index only: no CRL is loaded
    wait_for(lambda: later.disconnected.is_set(), 8, "revoked while connected -> disconnected")
    b.log_wait(r"disconnecting client later .*OCSP: certificate revoked", 3)
    check(not g.disconnected.is_set(), "the good device stays")
    g.disconnect()
    b.stop()


def test_shared_request_and_cache():
    p, url, log = fake("slow", "--delay-s", "1")
    b = ocsp_broker("ocsp_responder " + url, "ocsp_recheck_s 0")
    socks = []
    for i in range(3):  # three connections of one device, all waiting for one answer
        s = h.raw_tls(b, pki, "shared")
        s.sendall(connect_packet("shared-%d" % i))
        socks.append(s)
    for s in socks:
        first, body = read_packet(s, 8)
        check(first == 0x20 and body[-1] == 0, "CONNACK after the shared answer")
        s.close()
    check(requests(log) == 1, "one request for three concurrent checks (got %d)" % requests(log))
    c = h.paho(b, pki, "shared", client_id="again")
    check(c.connack[1] == 0 and requests(log) == 1, "reconnect answered from the cache")
    c.disconnect()
    for i in range(3):  # peers that leave while their answer is on its way
        s = h.raw_tls(b, pki, "leaver")
        s.sendall(connect_packet("leaver-%d" % i))
        s.close()
    wait_for(lambda: requests(log) == 2, 5, "one request for the leavers")
    time.sleep(1.5)
    check(b.proc.poll() is None, "broker alive after answers for departed peers")
    stop(p)
    b.stop()


def test_cache_outlives_responder_until_max_age():
    p, url, log = fake("good")
    b = ocsp_broker("ocsp_responder " + url, "ocsp_cache_max_age_s 3", "ocsp_recheck_s 0")
    c = h.paho(b, pki, "cached")
    check(c.connack[1] == 0, "first connect asks the responder")
    c.disconnect()
    stop(p)
    c = h.paho(b, pki, "cached", client_id="cached-2")
    check(c.connack[1] == 0, "reconnect works from the cache while the responder is down")
    c.disconnect()
    refused(b, "good", r"OCSP: no valid answer from .*connect")  # never cached: closed mode
    time.sleep(3.2)
    refused(b, "cached", r"OCSP: no valid answer")  # the cached answer aged out
    b.stop()


def test_fail_open_and_unknown_policy():
    b = ocsp_broker("ocsp_responder " + DEAD, "ocsp_fail_mode open", "ocsp_timeout_ms 1000")
    c = h.paho(b, pki, "good")
    check(c.connack[1] == 0, "open mode: accepted while the responder is down")
    b.log_wait(r"ocsp: good \(serial .*\): no valid answer from .*; allowed \(ocsp_fail_mode open\)", 3)
    c.disconnect()
    b.stop()
    p, url, log = fake("unknown")
    b = ocsp_broker("ocsp_responder " + url)
    refused(b, "good", r"OCSP: responder does not know the certificate")
    b.stop()
    b = ocsp_broker("ocsp_responder " + url, "ocsp_unknown allow")
    c = h.paho(b, pki, "good")
    check(c.connack[1] == 0, "unknown allowed by policy")
    c.disconnect()
    b.stop()
    stop(p)


def test_bad_answers_refused():
    nk, nk_key = pki.cert("noeku-signer")
    fs, fs_key = other.cert("foreign-signer")
    cases = [
        (("wrong-nonce",), r"nonce"),
        (("no-nonce",), r"nonce"),
        (("expired",), r"expired"),
        (("future",), r"not yet valid"),
        (("garbage",), r"no valid answer"),
        (("http-500",), r"HTTP status 500"),
        (("unauthorized",), r"unauthorized"),
        (("close",), r"no valid answer"),
        (("wrong-certid",), r"no valid answer"),
        (("good", "--signer-cert", nk, "--signer-key", nk_key), r"no valid answer"),
        (("good", "--signer-cert", fs, "--signer-key", fs_key), r"no valid answer"),
    ]
    for args, rx in cases:
        p, url, log = fake(*args)
        b = ocsp_broker("ocsp_responder " + url, "ocsp_timeout_ms 2000")
        refused(b, "good", r"OCSP: .*" + rx)
        check(b.proc.poll() is None, "broker alive after %s" % (args,))
        check(b.stop() == 0, "clean exit after %s" % (args,))
        stop(p)


def test_silent_responder_does_not_delay_others():
    hang, url, log = fake("hang")
    pki.device("stuck", "--ocsp-url", url)
    b = ocsp_broker("ocsp_timeout_ms 4000")
    w = h.paho(b, pki, "watcher")
    w.subscribe("devices/#", 0)
    a = h.paho(b, pki, "stuck-ok")
    held = []
    for i in range(5):
        s = h.raw_tls(b, pki, "stuck")
        s.sendall(connect_packet("stuck-%d" % i))
        held.append(s)
    wait_for(lambda: requests(log) >= 1, 3, "the silent responder got the request")
    lat = []
    for i in range(20):
        t0 = time.time()
        a.publish("devices/stuck-ok/t", b"%d" % i, 0)
        w.expect("devices/stuck-ok/t", 2)
        lat.append(time.time() - t0)
    lat.sort()
    print("round trip while 5 checks wait on a silent responder: median %.1f ms, max %.1f ms"
          % (lat[10] * 1000, lat[-1] * 1000))
    for s in held:
        first, body = read_packet(s, 8)
        check(first is None, "held connection refused at the timeout, not answered")
    b.log_wait(r"OCSP: no valid answer from .*no answer within 4000 ms", 3)
    a.disconnect()
    w.disconnect()
    b.stop()
    stop(hang)


def test_bad_options_refused():
    acl = os.path.join(h.tmp, "acl-bad")
    open(acl, "w").write(ACL)
    for opt, want in (("ocsp_fail_mode maybe", "must be closed or open"),
                      ("ocsp_responder https://x/", "https responders are not supported"),
                      ("ocsp_timeout_ms 0", "must be a number"),
                      ("ocsp_colour blue", "unknown option")):
        srv, key = pki.cert("server")
        conf = os.path.join(h.tmp, "bad%d.conf" % time.time_ns())
        with open(conf, "w") as f:
            f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n"
                    "plugin %s\nplugin_opt_%s\n" % (pki.ca, srv, key, acl, PLUGIN, opt))
        r = subprocess.run([os.environ.get("CERTMQ_BIN", os.path.join(SRC, "build", "certmq")),
                            "-c", conf], capture_output=True, text=True, timeout=20)
        check(r.returncode == 1 and want in r.stderr, "%s: rc %d %s" % (opt, r.returncode, r.stderr[-300:]))


h.run(test_good_revoked_and_recheck, test_shared_request_and_cache,
      test_cache_outlives_responder_until_max_age, test_fail_open_and_unknown_policy,
      test_bad_answers_refused, test_silent_responder_does_not_delay_others,
      test_bad_options_refused)
stop(real)
