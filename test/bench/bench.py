#!/usr/bin/python3
"""certmq benchmark: broker CPU per message and RSS per connection, read from /proc, for

  * QoS 1 fan-in over MQTT/TLS, persistence off vs on (certmq) and mosquitto for reference;
  * QoS 0 messages over MQTT/TLS vs MQTT/WSS (certmq);
  * idle connections over TLS and WSS (RSS per connection), certmq vs mosquitto over TLS.

Rates here are bounded by the Python/Node load generators sharing the machine's two cores, so
the figures to compare are the broker's own CPU time per message (utime+stime from
/proc/PID/stat) and its RSS growth per connection, not wall-clock throughput. Brokers are pinned
to CPU 0 and the load to CPU 1. Scenarios alternate brokers A B A B; medians are printed.

Usage: test/bench/bench.py [--rounds N] [--messages N] [--idle N]   (loopback only, bounded)
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("CERTMQ_BIN", os.path.join(SRC, "build", "certmq"))
PKI_TOOL = os.path.join(SRC, "certs", "certmq-pki")
JS = os.path.join(SRC, "test", "integration", "js")
sys.path.insert(0, os.path.join(SRC, "test", "integration"))
import paho.mqtt.client as mqtt  # noqa: E402
from certmq_test import connect_packet, publish_packet  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Env:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="certmq-bench-")
        self.pki = os.path.join(self.tmp, "pki")
        self.run("init")
        self.run("server", "server")
        for d in ("pub0", "pub1", "pub2", "pub3", "sub", "idle"):
            self.run("device", d)
        self.acl = os.path.join(self.tmp, "acl")
        with open(self.acl, "w") as f:
            f.write("pattern readwrite devices/%u/#\nuser sub\ntopic read devices/#\n")

    def run(self, *a):
        subprocess.run([PKI_TOOL, "-d", self.pki] + list(a), check=True, capture_output=True)

    def cert(self, d):
        return os.path.join(self.pki, "issued", d + ".crt"), os.path.join(self.pki, "private", d + ".key")


class Broker:
    def __init__(self, env, kind, persistence=False):
        self.kind = kind
        self.port, self.ws_port = free_port(), free_port()
        srv, key = env.cert("server")
        ca = os.path.join(env.pki, "ca.crt")
        conf = os.path.join(env.tmp, "%s-%d.conf" % (kind, self.port))
        with open(conf, "w") as f:
            tls = "cafile %s\ncertfile %s\nkeyfile %s\n" % (ca, srv, key)
            if kind == "certmq":
                f.write("listener %d 127.0.0.1\n%slistener %d 127.0.0.1\nprotocol websockets\n%s" %
                        (self.port, tls, self.ws_port, tls))
                f.write("acl_file %s\nlog_type error\nconnection_messages false\nsys_interval 0\n"
                        "max_queued_messages 1000000\nmax_inflight_messages 100\n" % env.acl)
                if persistence:
                    d = os.path.join(env.tmp, "db-%d" % self.port)
                    os.makedirs(d)
                    f.write("persistence true\npersistence_location %s\n" % d)
                cmd = [BIN, "-c", conf]
            else:
                f.write("user root\nper_listener_settings false\nlistener %d 127.0.0.1\n%srequire_certificate true\n"
                        "use_identity_as_username true\nallow_anonymous false\nacl_file %s\n"
                        "log_type error\nset_tcp_nodelay true\nmax_queued_messages 1000000\n"
                        "max_inflight_messages 100\n" % (self.port, tls, env.acl))
                cmd = ["/usr/sbin/mosquitto", "-c", conf]
        self.log = open(conf + ".log", "w")
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=self.log, stderr=self.log)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("%s did not start: %s" % (kind, open(conf + ".log").read()[-2000:]))
        time.sleep(0.2)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def paho(env, b, dev, cid, qos_sub=None):
    c = mqtt.Client(client_id=cid, clean_session=True)
    crt, key = env.cert(dev)
    c.tls_set(ca_certs=os.path.join(env.pki, "ca.crt"), certfile=crt, keyfile=key)
    c.tls_insecure_set(True)
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", b.port, 60)
    c.loop_start()
    return c


def fan_in_qos1(env, b, messages):
    """4 publishers -> 1 subscriber, QoS 1, 64-byte payloads."""
    got = [0]
    done = threading.Event()
    total = messages * 4

    def on_msg(c, u, m):
        got[0] += 1
        if got[0] >= total:
            done.set()
    sub = paho(env, b, "sub", "bench-sub")
    sub.on_message = on_msg
    sub.subscribe("devices/#", 1)
    time.sleep(0.5)
    pubs = [paho(env, b, "pub%d" % i, "bench-pub%d" % i) for i in range(4)]
    time.sleep(0.5)
    cpu0, t0 = cpu_seconds(b.proc.pid), time.time()
    payload = b"x" * 64

    def run(i):
        for _ in range(messages):
            pubs[i].publish("devices/pub%d/t" % i, payload, 1)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.wait(120)
    dt, cpu = time.time() - t0, cpu_seconds(b.proc.pid) - cpu0
    for c in pubs + [sub]:
        c.disconnect()
        c.loop_stop()
    return {"delivered": got[0], "rate": got[0] / dt, "cpu_us_per_msg": cpu / max(got[0], 1) * 1e6}


def tls_vs_wss_qos0(env, b, messages, wss):
    """One publisher (raw packets: TLS socket or a node ws peer) -> one TCP subscriber, QoS 0."""
    got = [0]
    done = threading.Event()

    def on_msg(c, u, m):
        got[0] += 1
        if got[0] >= messages:
            done.set()
    sub = paho(env, b, "sub", "bench-sub0")
    sub.on_message = on_msg
    sub.subscribe("devices/#", 0)
    time.sleep(0.5)
    burst = b"".join(publish_packet("devices/pub0/t", b"y" * 64) for _ in range(100))
    cpu0, t0 = cpu_seconds(b.proc.pid), time.time()
    if wss:
        crt, key = env.cert("pub0")
        plan = {"url": "wss://127.0.0.1:%d" % b.ws_port, "ca": os.path.join(env.pki, "ca.crt"), "cert": crt,
                "key": key, "protocols": ["mqtt"], "timeout": 120000,
                "send": [{"hex": connect_packet("bench-wss").hex()},
                         {"hex": burst.hex(), "repeat": messages // 100}]}
        p = subprocess.Popen(["taskset", "-c", "1", "node", os.path.join(JS, "wsraw.js"), json.dumps(plan)],
                             stdout=subprocess.DEVNULL, env=dict(os.environ, NODE_PATH=os.path.join(JS, "node_modules")))
        done.wait(120)
        p.kill()
    else:
        ctx = ssl.create_default_context(cafile=os.path.join(env.pki, "ca.crt"))
        ctx.check_hostname = False
        ctx.load_cert_chain(*env.cert("pub0"))
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.port)), server_hostname="localhost")
        s.sendall(connect_packet("bench-tls"))
        s.recv(4)
        for _ in range(messages // 100):
            s.sendall(burst)
        done.wait(120)
        s.close()
    dt, cpu = time.time() - t0, cpu_seconds(b.proc.pid) - cpu0
    sub.disconnect()
    sub.loop_stop()
    return {"delivered": got[0], "rate": got[0] / dt, "cpu_us_per_msg": cpu / max(got[0], 1) * 1e6}


def idle(env, b, n, wss):
    """RSS growth per idle connection (handshake + CONNECT done)."""
    time.sleep(0.3)
    base = rss_kb(b.proc.pid)
    held = []
    if wss:
        crt, key = env.cert("idle")
        plan = {"url": "wss://127.0.0.1:%d" % b.ws_port, "ca": os.path.join(env.pki, "ca.crt"), "cert": crt,
                "key": key, "protocols": ["mqtt"], "timeout": 60000,
                "send": [{"hex": connect_packet("idle-%d" % i).hex()} for i in range(1)]}
        for i in range(n):
            plan["send"] = [{"hex": connect_packet("idle-ws-%d" % i).hex()}]
            held.append(subprocess.Popen(["node", os.path.join(JS, "wsraw.js"), json.dumps(plan)],
                                         stdout=subprocess.DEVNULL,
                                         env=dict(os.environ, NODE_PATH=os.path.join(JS, "node_modules"))))
            if i % 20 == 19:
                time.sleep(0.5)
        time.sleep(3)
    else:
        ctx = ssl.create_default_context(cafile=os.path.join(env.pki, "ca.crt"))
        ctx.check_hostname = False
        ctx.load_cert_chain(*env.cert("idle"))
        for i in range(n):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.port)), server_hostname="localhost")
            s.sendall(connect_packet("idle-%d" % i, keepalive=0))
            s.recv(4)
            held.append(s)
        time.sleep(1)
    per = (rss_kb(b.proc.pid) - base) * 1024 / n
    for h in held:
        if wss:
            h.kill()
            h.wait()
        else:
            h.close()
    return {"bytes_per_conn": per}


def med(results, key):
    return statistics.median(r[key] for r in results)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000, help="per publisher")
    ap.add_argument("--idle", type=int, default=300)
    a = ap.parse_args()
    signal.alarm(1800)
    env = Env()
    os.sched_setaffinity(0, {1})
    table = []

    def scenario(name, brokers, fn, keys):
        res = {k: [] for k, _ in brokers}
        for _ in range(a.rounds):
            for label, mk in brokers:  # A B A B
                b = mk()
                try:
                    res[label].append(fn(b))
                finally:
                    b.stop()
        for label, _ in brokers:
            row = {"scenario": name, "broker": label}
            for k in keys:
                row[k] = med(res[label], k)
            table.append(row)
            print(json.dumps(row), flush=True)

    scenario("QoS 1 fan-in 4->1, 64 B", [
        ("certmq", lambda: Broker(env, "certmq")),
        ("certmq+persistence", lambda: Broker(env, "certmq", persistence=True)),
        ("mosquitto", lambda: Broker(env, "mosquitto"))],
        lambda b: fan_in_qos1(env, b, a.messages), ["rate", "cpu_us_per_msg"])
    n0 = a.messages * 4
    res = {False: [], True: []}
    for _ in range(a.rounds):
        for wss in (False, True):  # A B A B
            b = Broker(env, "certmq")
            try:
                res[wss].append(tls_vs_wss_qos0(env, b, n0, wss))
            finally:
                b.stop()
    for wss in (False, True):
        row = {"scenario": "QoS 0 1->1, 64 B", "broker": "certmq " + ("WSS" if wss else "TLS"),
               "rate": med(res[wss], "rate"), "cpu_us_per_msg": med(res[wss], "cpu_us_per_msg")}
        table.append(row)
        print(json.dumps(row), flush=True)
    scenario("idle connections over TLS (%d)" % a.idle, [
        ("certmq", lambda: Broker(env, "certmq")), ("mosquitto", lambda: Broker(env, "mosquitto"))],
        lambda b: idle(env, b, a.idle, False), ["bytes_per_conn"])
    res = []
    for _ in range(a.rounds):
        b = Broker(env, "certmq")
        try:
            res.append(idle(env, b, min(a.idle, 100), True))
        finally:
            b.stop()
    row = {"scenario": "idle connections over WSS (%d)" % min(a.idle, 100), "broker": "certmq WSS",
           "bytes_per_conn": med(res, "bytes_per_conn")}
    table.append(row)
    print(json.dumps(row), flush=True)

    print("\n| scenario | broker | rate (msg/s) | broker CPU per message (µs) | RSS per connection (bytes) |")
    print("|---|---|---|---|---|")
    for r in table:
        print("| %s | %s | %s | %s | %s |" % (r["scenario"], r["broker"],
              "%.0f" % r["rate"] if "rate" in r else "", "%.1f" % r["cpu_us_per_msg"] if "cpu_us_per_msg" in r else "",
              "%.0f" % r["bytes_per_conn"] if "bytes_per_conn" in r else ""))
    shutil.rmtree(env.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
