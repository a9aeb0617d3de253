#!/usr/bin/env python3
"""idle-tls: N idle mutual-TLS MQTT connections from python's ssl (OpenSSL), and the broker's RSS
per connection; run-bench's `idle-tls13` scenario (loadgen's Mbed TLS 2.28 speaks TLS 1.2 only).

Like loadgen's `idle --resume`: one client certificate per connection, round-robin over the
dev*.crt/.key pairs of --certdir; the first connection of a certificate makes a full handshake
and the others resume its session (a TLS 1.3 ticket, read with the CONNACK). Each connection sends
CONNECT (clean session, keepalive 0), waits for CONNACK and stays open. VmRSS of --broker-pid is
read before the first connection and --settle seconds after the last one is up (certmq gives an
idle connection's record buffers back after 5-10 s without I/O). Prints one JSON line in
loadgen's format ("scenario": "idle"), then holds the connections until SIGTERM (--hold s).

usage: test/bench/idle-tls.py --port P --cafile CA --certdir DIR --broker-pid PID
                              [--conns N] [--tls 1.3|1.2] [--settle S] [--src-ips K] [--hold S]
"""
import argparse
import glob
import json
import os
import signal
import socket
import ssl
import sys
import time


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def connect_packet(cid):
    cid = cid.encode()
    var = b"\x00\x04MQTT\x04\x02\x00\x00"  # 3.1.1, clean session, keepalive 0
    payload = len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(var) + len(payload)]) + var + payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--certdir", required=True)
    ap.add_argument("--broker-pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--tls", choices=("1.2", "1.3"), default="1.3")
    ap.add_argument("--settle", type=float, default=12)
    ap.add_argument("--src-ips", type=int, default=1)
    ap.add_argument("--hold", type=float, default=3600)
    a = ap.parse_args()
    version = ssl.TLSVersion.TLSv1_3 if a.tls == "1.3" else ssl.TLSVersion.TLSv1_2

    certs = sorted(glob.glob(os.path.join(a.certdir, "dev*.crt")))
    if not certs:
        sys.exit("idle-tls: no dev*.crt in %s" % a.certdir)
    ctxs = []
    for crt in certs:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ctx.maximum_version = version
        ctx.check_hostname = False  # the broker's name is not the point; its CA is checked
        ctx.load_verify_locations(a.cafile)
        ctx.load_cert_chain(crt, crt[:-4] + ".key")
        ctxs.append(ctx)
    sessions = [None] * len(ctxs)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    before = rss_kb(a.broker_pid)
    held, ok, resumed, errors = [], 0, 0, 0
    t0 = time.monotonic()
    for i in range(a.conns):
        k = i % len(ctxs)
        try:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.settimeout(10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as loadgen: no Nagle wait
            raw.bind(("127.0.0.%d" % (1 + i % a.src_ips), 0))
            raw.connect(("127.0.0.1", a.port))
            s = ctxs[k].wrap_socket(raw, server_hostname="localhost", session=sessions[k])
            s.sendall(connect_packet("idle-%d" % i))
            got = b""
            while len(got) < 4:
                b = s.recv(4 - len(got))
                if not b:
                    break
                got += b
            if got[:2] != b"\x20\x02" or got[3:4] != b"\x00":
                raise OSError("no CONNACK: %r" % got)
        except (OSError, ssl.SSLError) as e:
            errors += 1
            if errors <= 3:
                print("idle-tls: connection %d: %s" % (i, e), file=sys.stderr)
            continue
        ok += 1
        resumed += s.session_reused
        if sessions[k] is None or not s.session_reused:
            sessions[k] = s.session
        held.append(s)
    connect_s = time.monotonic() - t0
    time.sleep(a.settle)
    after = rss_kb(a.broker_pid)
    print(json.dumps({"scenario": "idle", "tls": a.tls, "conns": a.conns, "ok": ok,
                      "resumed": resumed, "errors": errors, "connect_s": round(connect_s, 3),
                      "broker_rss_before_kb": before, "broker_rss_after_kb": after,
                      "broker_rss_per_conn_b": (after - before) * 1024 // ok if ok else 0}),
          flush=True)
    print("idle-tls: READY %d connections held" % ok, file=sys.stderr, flush=True)
    time.sleep(a.hold)


if __name__ == "__main__":
    main()
