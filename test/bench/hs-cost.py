#!/usr/bin/env python3
"""hs-cost: broker CPU per mutual-TLS handshake, full and resumed, TLS 1.2 and 1.3, certmq against
mosquitto in the same run (docs/performance.md, "Handshake CPU by TLS version").

Each case opens N connections from python's ssl (OpenSSL) with an ECDSA P-256 device certificate,
sends MQTT CONNECT and waits for CONNACK (so a TLS 1.3 ticket has arrived), and closes. The
broker's user+system CPU (/proc/PID/stat) over the N connections, divided by N, is the figure;
the client's own CPU is not counted. Resumed cases first make one full connection for the ticket.

usage: test/bench/hs-cost.py [--n N] [--certmq BIN] [--mosquitto BIN]   (default N 200)
Needs certs/certmq-pki, openssl, mosquitto. Loopback only; stops by itself.
"""
import argparse
import os
import pwd
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import free_port  # noqa: E402  (test/bench/bench.py)

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def wait_port(port, proc):
    for _ in range(100):
        if proc.poll() is not None:
            sys.exit("broker exited: see its log (%s)" % " ".join(proc.args))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("broker did not listen on %d" % port)


CONNECT = bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 2]) + b"hc"


def one(ctx, port, session=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t = ctx.wrap_socket(s, server_hostname="localhost", session=session)
    t.sendall(CONNECT)
    got = t.recv(4)
    if got[:1] != b"\x20":
        sys.exit("no CONNACK: %r" % got)
    sess, reused = t.session, t.session_reused
    t.close()
    return sess, reused


def case(pid, port, ctx, n, resumed):
    sess = one(ctx, port)[0] if resumed else None
    reused = 0
    t0 = cpu_s(pid)
    for _ in range(n):
        s, r = one(ctx, port, sess if resumed else None)
        reused += r
        if resumed and s is not None:
            sess = s
    ms = (cpu_s(pid) - t0) * 1000 / n
    return ms, reused


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--certmq", default=os.path.join(SRC, "build", "certmq"))
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hs-cost-")
    pki = os.path.join(tmp, "pki")
    tool = os.path.join(SRC, "certs", "certmq-pki")
    for args in (["init"], ["server", "server"], ["device", "dev1"]):
        subprocess.run([tool, "-d", pki] + args, check=True, capture_output=True)
    ca, crt, key = (os.path.join(pki, "ca.crt"), os.path.join(pki, "issued/server.crt"),
                    os.path.join(pki, "private/server.key"))
    procs = []
    try:
        brokers = []
        port = free_port()
        acl = os.path.join(tmp, "acl")
        open(acl, "w").write("pattern readwrite devices/%u/#\n")
        conf = os.path.join(tmp, "certmq.conf")
        open(conf, "w").write("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n"
                              "log_type error\n" % (port, ca, crt, key, acl))
        p = subprocess.Popen([a.certmq, "-c", conf], stdout=subprocess.DEVNULL, stderr=open(conf + ".log", "w"))
        procs.append(p)
        brokers.append(("certmq", p, port))
        port = free_port()
        conf = os.path.join(tmp, "mosquitto.conf")
        open(conf, "w").write("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n"
                              "use_identity_as_username true\nallow_anonymous false\nlog_type error\nuser %s\n"
                              % (port, ca, crt, key, pwd.getpwuid(os.getuid()).pw_name))
        p = subprocess.Popen([a.mosquitto, "-c", conf], stdout=subprocess.DEVNULL, stderr=open(conf + ".log", "w"))
        procs.append(p)
        brokers.append(("mosquitto", p, port))
        for _, p, port in brokers:
            wait_port(port, p)
        print("| case | certmq ms | mosquitto ms | certmq/mosquitto |")
        print("|---|---|---|---|")
        for ver, name in ((ssl.TLSVersion.TLSv1_2, "TLS 1.2"), (ssl.TLSVersion.TLSv1_3, "TLS 1.3")):
            for resumed in (False, True):
                row = []
                for _, p, port in brokers:
                    ctx = ssl.create_default_context(cafile=ca)
                    ctx.check_hostname = False
                    ctx.load_cert_chain(os.path.join(pki, "issued/dev1.crt"), os.path.join(pki, "private/dev1.key"))
                    ctx.minimum_version = ctx.maximum_version = ver
                    try:
                        ms, reused = case(p.pid, port, ctx, a.n, resumed)
                    except ssl.SSLError:  # a build on Mbed TLS 2.28 has no TLS 1.3
                        ms, reused = float("nan"), 0
                    if resumed and reused < a.n * 0.9:
                        ms = float("nan")  # not resumed: no figure
                    row.append(ms)
                what = "%s %s" % (name, "resumed" if resumed else "full")
                print("| %s | %.2f | %.2f | %.2f |" % (what, row[0], row[1], row[0] / row[1]))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
