"""Restarts without a handshake storm: with tls_ticket_key_file a session ticket issued before a
restart resumes after it (openssl s_client -sess_out/-sess_in says "Reused"); a rotated key keeps
resuming until it leaves the file (SIGHUP or the file watch); a device revoked while the broker
was down cannot resume; a bad key file refuses the start and a bad reload keeps the keys in
force; without the option a restart means full handshakes, as before."""
import os
import subprocess

from certmq_test import BIN, Harness, check

h = Harness()
pki = h.pki()
for d in ("dev1", "dev2", "dev3"):
    pki.device(d)
KEYDIR = os.path.join(h.tmp, "keys")
os.mkdir(KEYDIR, 0o700)
KEYS = os.path.join(KEYDIR, "ticket.key")
pki.run("ticket-key", KEYS)
WITH_KEYS = "tls_ticket_key_file %s\n" % KEYS
state = {}


def s_client(b, name, *extra):
    crt, key = pki.cert(name)
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port, "-cert", crt, "-key", key,
           "-CAfile", pki.ca, "-tls1_2"] + list(extra)
    return subprocess.run(cmd, input="", capture_output=True, text=True, timeout=15)


def ticket(b, name):
    """A full handshake that saves its session (with the broker's ticket) to a file."""
    sess = os.path.join(h.tmp, "%s-%d.sess" % (name, len(os.listdir(h.tmp))))
    r = s_client(b, name, "-sess_out", sess)
    check("New, TLSv1.2" in r.stdout and os.path.exists(sess), "full handshake for %s: %s" % (name, r.stderr))
    return sess


def resumes(b, name, sess):
    """True when the ticket resumed; False after a full handshake (which must have succeeded)."""
    r = s_client(b, name, "-sess_in", sess)
    if "Reused, TLSv1.2" in r.stdout:
        return True
    check("New, TLSv1.2" in r.stdout, "full handshake instead: %s" % r.stderr)
    return False


def replace_keys(data, mode=0o600):
    """As an operator would: write beside the file, then rename over it."""
    tmp = KEYS + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, KEYS)


def reload_and_wait(b, regex):
    n = b.log_count()
    b.reload()
    return b.log_wait(regex, 5, n)


def test_restart_resumes():
    b = h.broker(pki, extra=WITH_KEYS)
    b.log_wait(r"1 session-ticket key\(s\) from .*ticket\.key", 5)
    sess = ticket(b, "dev1")
    check(resumes(b, "dev1", sess), "resumes before the restart")
    check(b.stop() == 0, "clean stop")
    b = h.broker(pki, extra=WITH_KEYS)
    check(resumes(b, "dev1", sess), "the same ticket resumes after a restart (no full handshake)")
    state["b"] = b


def test_rotation():
    b = state["b"]
    old = ticket(b, "dev1")
    n = b.log_count()
    pki.run("ticket-key", KEYS)  # a fresh key in front, the old one kept
    b.log_wait(r"2 session-ticket key\(s\) loaded", 5, n)  # the file watch
    check(resumes(b, "dev1", old), "a ticket of the previous key still resumes")
    new = ticket(b, "dev1")
    with open(KEYS, "rb") as f:
        first = f.read(80)
    replace_keys(first)  # the previous key rotated out
    reload_and_wait(b, r"1 session-ticket key\(s\) loaded")
    check(not resumes(b, "dev1", old), "a ticket of a rotated-out key does not resume")
    check(resumes(b, "dev1", new), "a ticket of the current key resumes")
    state["new"] = new


def test_bad_reload_keeps_keys():
    b = state["b"]
    with open(KEYS, "rb") as f:
        good = f.read()
    replace_keys(good[:79])
    m = reload_and_wait(b, r"tls reload: .*79 bytes")
    b.log_wait(r"keeping the session-ticket keys in force", 3)
    check(resumes(b, "dev1", state["new"]), "the keys in force stay after a bad key file")
    replace_keys(good, 0o644)
    reload_and_wait(b, r"mode 0644 lets others read the ticket keys")
    check(resumes(b, "dev1", state["new"]), "... and after a key file others can read")
    replace_keys(good)
    reload_and_wait(b, r"1 session-ticket key\(s\) loaded")
    del m


def test_revoked_while_down():
    b = state["b"]
    s2, s3 = ticket(b, "dev2"), ticket(b, "dev3")
    check(resumes(b, "dev2", s2), "dev2 resumes before")
    check(b.stop() == 0, "clean stop")
    pki.revoke("dev2")  # regenerates the CRL the broker reads
    b = h.broker(pki, extra=WITH_KEYS)
    n = b.log_count()
    r = s_client(b, "dev2", "-sess_in", s2)
    check("Reused" not in r.stdout, "a device revoked while the broker was down does not resume")
    b.log_wait(r"refused 127\.0\.0\.1:\d+: revoked", 3, n)
    check(resumes(b, "dev3", s3), "others still resume after the restart")
    state["b"] = b


def test_without_option_full_handshake():
    b = h.broker(pki)
    sess = ticket(b, "dev1")
    check(resumes(b, "dev1", sess), "random keys: resumes while the process lives")
    check(b.stop() == 0, "clean stop")
    b = h.broker(pki)
    check(not resumes(b, "dev1", sess), "random keys: a restart means a full handshake")
    check(b.stop() == 0, "clean stop")


def start_fails(keyfile, want):
    conf = os.path.join(h.tmp, "bad-%d.conf" % len(os.listdir(h.tmp)))
    acl = os.path.join(h.tmp, "bad.acl")
    with open(acl, "w") as f:
        f.write("pattern readwrite devices/%u/#\n")
    srv, key = pki.cert("server")
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n"
                "tls_ticket_key_file %s\n" % (pki.ca, srv, key, acl, keyfile))
    t = subprocess.run([BIN, "--test-config", "-c", conf], capture_output=True, text=True, timeout=20)
    check(t.returncode != 0 and want in t.stdout + t.stderr, "--test-config names it: %s" % t.stderr)
    p = subprocess.Popen([BIN, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    h.procs.append(p)
    try:
        _, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    check(p.returncode != 0, "the broker refuses to start (exit %s)" % p.returncode)
    check(want in err and "not starting" in err, "with a clear message: %s" % err)


def test_bad_key_file_refuses_start():
    with open(KEYS, "rb") as f:
        good = f.read()
    loose = os.path.join(KEYDIR, "loose.key")
    with open(loose, "wb") as f:
        f.write(good)
    os.chmod(loose, 0o640)
    start_fails(loose, "mode 0640")
    short = os.path.join(KEYDIR, "short.key")
    with open(short, "wb") as f:
        f.write(good[:50])
    os.chmod(short, 0o600)
    start_fails(short, "50 bytes")
    start_fails(os.path.join(KEYDIR, "missing.key"), "cannot read")
    if os.geteuid() == 0:
        foreign = os.path.join(KEYDIR, "foreign.key")
        with open(foreign, "wb") as f:
            f.write(good)
        os.chmod(foreign, 0o600)
        os.chown(foreign, 65534, 65534)
        start_fails(foreign, "owned by uid 65534")


h.run(test_restart_resumes, test_rotation, test_bad_reload_keeps_keys, test_revoked_while_down,
      test_without_option_full_handshake, test_bad_key_file_refuses_start)
