"""CRL policy per listener (crl_mode, crl_expired), CRL validation, and identity options
(cert_identity cn / san_uri / subject; repeated fields refused)."""
import os
import subprocess

from certmq_test import BIN, Harness, check

h = Harness()
pki = h.pki()
pki.run("intermediate", "plant")
pki.device("dev1", "--san", "URI:urn:fleet:dev-1")
pki.device("i1", "--ca", "plant")
pki.device("plain")
inter = os.path.join(pki.dir, "intermediates", "plant")
cafile = os.path.join(h.tmp, "cas.pem")
with open(cafile, "w") as f:
    f.write(open(pki.ca).read() + open(os.path.join(inter, "ca.crt")).read())
chain_i1 = (os.path.join(pki.dir, "issued", "i1-chain.pem"), pki.cert("i1")[1])
ACL = "pattern readwrite devices/%u/#\n"


def test_crl_missing_strict_and_present():
    strict = h.broker(pki, ACL, cafile=cafile)  # only the root's CRL: plant has none
    n = strict.log_count()
    check(h.tls_refused(strict, pki, cert=chain_i1), "strict: device under a CA without CRL refused")
    strict.log_wait("refused .*: CRL missing", 3, n)
    check(not h.tls_refused(strict, pki, "dev1"), "strict: root-issued device accepted")
    present = h.broker(pki, ACL, cafile=cafile, extra="crl_mode present\n")
    check(not h.tls_refused(present, pki, cert=chain_i1), "present: accepted")


def test_expired_crl_reject_and_warn():
    old = os.path.join(h.tmp, "expired-crl.pem")
    pki.run("crl", "--start", "20200101000000Z", "--end", "20200201000000Z")
    os.rename(pki.crl, old)
    pki.run("crl")  # a fresh one for the other tests
    rej = h.broker(pki, ACL, crlfiles=[old])
    n = rej.log_count()
    check(h.tls_refused(rej, pki, "dev1"), "reject: everyone under an expired CRL is refused")
    rej.log_wait("refused .*: CRL expired", 3, n)
    warn = h.broker(pki, ACL, crlfiles=[old], extra="crl_expired warn\n")
    check(not h.tls_refused(warn, pki, "dev1"), "warn: accepted")
    warn.log_wait("accepting certificates under an expired CRL", 3)


def test_wrongly_signed_crl_refused():
    other = h.pki("other")
    srv, key = pki.cert("server")
    conf = os.path.join(h.tmp, "wrongcrl.conf")
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\ncrlfile %s\nacl_file %s\n"
                % (pki.ca, srv, key, other.crl, h.brokers[0].acl))
    r = subprocess.run([BIN, "--test-config", "-c", conf], capture_output=True, text=True, timeout=20)
    # The other fleet's CA has the same name as ours: its CRL claims our issuer but is signed by
    # another key.
    check(r.returncode == 1 and "signature does not verify" in r.stderr, "wrongly signed CRL: " + r.stderr)


def test_identity_san_uri_and_subject():
    uri = h.broker(pki, "user urn:fleet:dev-1\ntopic readwrite devices/x\n", extra="cert_identity san_uri\n")
    c = h.paho(uri, pki, "dev1", client_id="c1")
    check(c.subscribe("devices/x", 1) == 1, "the SAN URI is the identity")
    uri.log_wait("as urn:fleet:dev-1", 3)
    c.disconnect()
    n = uri.log_count()
    check(h.tls_refused(uri, pki, "plain"), "a certificate without a SAN URI is refused")
    uri.log_wait("bad identity: .*no field", 3, n)
    subj = h.broker(pki, "user CN=dev1\ntopic readwrite devices/y\n", extra="cert_identity subject\n")
    c = h.paho(subj, pki, "dev1", client_id="c2")
    check(c.subscribe("devices/y", 1) == 1, "the subject DN is the identity")
    c.disconnect()


def test_two_cns_refused():
    d = os.path.join(h.tmp, "twocn")
    os.makedirs(d)
    key, csr, crt, cnf = (os.path.join(d, x) for x in ("k.pem", "r.csr", "c.pem", "req.cnf"))
    with open(cnf, "w") as f:
        f.write("[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=first\n1.CN=second\n")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-key", key, "-config", cnf, "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", pki.ca, "-CAkey", os.path.join(pki.dir, "ca.key"),
                    "-CAcreateserial", "-out", crt, "-days", "30"], check=True, capture_output=True)
    b = h.brokers[0]
    n = b.log_count()
    check(h.tls_refused(b, pki, cert=(crt, key)), "two CNs refused")
    b.log_wait("bad identity: the identity field appears more than once", 3, n)


def test_crlpath_directory():
    d = os.path.join(h.tmp, "crls")
    os.makedirs(d)
    pki.device("gone")
    pki.revoke("gone")
    import shutil
    shutil.copy(pki.crl, os.path.join(d, "root.pem"))
    shutil.copy(os.path.join(inter, "crl.pem"), os.path.join(d, "plant.pem"))
    b = h.broker(pki, ACL, cafile=cafile, crlfiles=[])  # only to write a config, restarted below
    b.stop()
    h.brokers.remove(b)
    # crlpath is a listener key: put it right after the listener's keyfile line
    lines = open(b.conf).read().splitlines()
    out = []
    for line in lines:
        out.append(line)
        if line.startswith("keyfile "):
            out.append("crlpath %s" % d)
    with open(b.conf, "w") as f:
        f.write("\n".join(out) + "\n")
    from certmq_test import Broker
    b2 = Broker(h, b.conf, b.acl)
    h.brokers.append(b2)
    check(h.tls_refused(b2, pki, "gone"), "revoked device refused through crlpath")
    check(not h.tls_refused(b2, pki, cert=chain_i1), "intermediate's CRL found in crlpath (strict)")
    n = b2.log_count()
    pki.device("later")
    c = h.paho(b2, pki, "later")
    pki.revoke("later")
    shutil.copy(pki.crl, os.path.join(d, "root.pem.tmp"))
    os.rename(os.path.join(d, "root.pem.tmp"), os.path.join(d, "root.pem"))
    check(c.disconnected.wait(3), "a new CRL dropped into crlpath disconnects the revoked device")
    b2.log_wait("certificate revoked; session discarded", 3, n)


h.run(test_crlpath_directory, test_crl_missing_strict_and_present, test_expired_crl_reject_and_warn, test_wrongly_signed_crl_refused,
      test_identity_san_uri_and_subject, test_two_cns_refused)
