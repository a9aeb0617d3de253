"""certmq integration test harness.

Each test file starts its own broker on a kernel-chosen 127.0.0.1 port, with its own temporary
directory and generated PKI, drives it with real clients (paho, mosquitto_pub/sub, raw TLS
sockets with hand-built MQTT packets — never the broker's own codec), and stops everything it
started by PID. Run one test: CERTMQ_BIN=build/certmq /usr/bin/python3 test/integration/10-...py
"""
import atexit
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

SRC = os.environ.get("CERTMQ_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("CERTMQ_BIN", os.path.join(SRC, "build", "certmq"))
PKI_TOOL = os.path.join(SRC, "certs", "certmq-pki")
JS_DIR = os.path.join(SRC, "test", "integration", "js")
TEST_TIMEOUT = int(os.environ.get("CERTMQ_TEST_TIMEOUT", "150"))


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def closed_by_broker(s, timeout):
    """True when the broker closes s (EOF or reset) within timeout seconds."""
    s.settimeout(timeout)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def free_port():
    """A 127.0.0.1 port nobody listens on now (for peers that cannot be given port 0)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=5.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    raise TestFailure("timed out waiting for " + what)


# ---- raw MQTT packets, built by hand ------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    if isinstance(s, str):
        s = s.encode()
    return len(s).to_bytes(2, "big") + s


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_packet(client_id="raw", keepalive=60, clean=True, level=4, name=b"MQTT"):
    flags = 0x02 if clean else 0
    return packet(0x10, mqtt_str(name) + bytes([level, flags]) + keepalive.to_bytes(2, "big") +
                  mqtt_str(client_id))


def publish_packet(topic, payload, qos=0, pid=1, retain=False):
    body = mqtt_str(topic) + (pid.to_bytes(2, "big") if qos else b"") + payload
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body)


def subscribe_packet(topic, qos=0, pid=1):
    return packet(0x82, pid.to_bytes(2, "big") + mqtt_str(topic) + bytes([qos]))


def read_packet(s, timeout=5):
    """Read one MQTT packet from a raw socket: (first byte, body), or (None, b"") at EOF."""
    s.settimeout(timeout)
    first = s.recv(1)
    if not first:
        return None, b""
    n, mult = 0, 1
    while True:
        x = s.recv(1)[0]
        n += (x & 0x7F) * mult
        mult *= 128
        if not x & 0x80:
            break
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            break
        body += chunk
    return first[0], body


# ---- PKI ----------------------------------------------------------------------------------------

class PKI:
    def __init__(self, h, name="pki"):
        self.h = h
        self.dir = os.path.join(h.tmp, name)
        self.run("init")
        self.run("server", "server")

    def run(self, *args):
        r = subprocess.run([PKI_TOOL, "-d", self.dir] + list(args), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise TestFailure("certmq-pki %s failed: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def device(self, name, *opts):
        self.run("device", name, *opts)
        return self.cert(name)

    def cert(self, name):
        return (os.path.join(self.dir, "issued", name + ".crt"), os.path.join(self.dir, "private", name + ".key"))

    def expiring(self, name, seconds):
        """A device whose certificate began an hour ago and ends in `seconds` (issued now: under a
        loaded sanitizer run the caller may start late)."""
        from datetime import datetime, timedelta, timezone
        now = datetime.now(timezone.utc)
        fmt = lambda t: t.strftime("%Y%m%d%H%M%SZ")
        return self.device(name, "--start", fmt(now - timedelta(hours=1)), "--end",
                           fmt(now + timedelta(seconds=seconds)))

    def revoke(self, name, *opts):
        self.run("revoke", name, *opts)

    @property
    def ca(self):
        return os.path.join(self.dir, "ca.crt")

    @property
    def crl(self):
        return os.path.join(self.dir, "crl.pem")


# ---- the broker ---------------------------------------------------------------------------------

class Broker:
    def __init__(self, h, conf_path, acl_path):
        self.h = h
        self.conf = conf_path
        self.acl = acl_path
        self.log_path = conf_path + ".log"
        self.lines = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([BIN, "-c", conf_path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        h.procs.append(self.proc)
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()
        m = self.log_wait(r"listening on 127\.0\.0\.1:(\d+) \(mqtt\)", 10)
        self.port = int(m.group(1))
        self.ws_port = None
        if "protocol websockets" in open(conf_path).read():
            self.ws_port = int(self.log_wait(r"listening on 127\.0\.0\.1:(\d+) \(websockets\)", 10).group(1))
        self.exit_code = None

    def _drain(self):
        with open(self.log_path, "wb") as f:
            for raw in self.proc.stderr:
                f.write(raw)
                f.flush()
                with self.lock:
                    self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def log(self):
        with self.lock:
            return list(self.lines)

    def log_wait(self, regex, timeout=5.0, start=0):
        rx = re.compile(regex)
        end = time.time() + timeout
        while time.time() < end:
            for line in self.log()[start:]:
                m = rx.search(line)
                if m:
                    return m
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.02)
        raise TestFailure("broker log never matched /%s/" % regex)

    def log_count(self):
        return len(self.log())

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def kill(self):
        """kill -9, as a crash: the harness then expects no clean exit."""
        self.killed = True
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure("broker did not stop within %ds of SIGTERM" % timeout)
        self.reader.join(5)
        self.exit_code = self.proc.returncode
        return self.exit_code


def _ssl_as_reset(f):
    def call(*a):
        try:
            return f(*a)
        except ssl.SSLError as e:
            raise ConnectionResetError(str(e))
    return call


class Client:
    """A connected paho client that records what it receives."""

    def __init__(self, h, b, pki, device, client_id, clean, protocol, will, keepalive, userdata=None):
        self.messages = []
        self.cv = threading.Condition()
        self.disconnected = threading.Event()
        self.connack = None
        self.subacks = {}
        self.acks = set()
        kw = {"client_id": client_id, "protocol": protocol}
        if protocol != mqtt.MQTTv5:
            kw["clean_session"] = clean
        self.c = mqtt.Client(**kw)
        # paho 1.6 catches ConnectionError on its socket, not an SSL error such as SSLEOFError
        # (a peer gone in the middle of a write), which ends its thread: no reconnection ever.
        for name in ("_sock_send", "_sock_recv"):
            setattr(self.c, name, _ssl_as_reset(getattr(self.c, name)))
        crt, key = pki.cert(device)
        self.c.tls_set(ca_certs=pki.ca, certfile=crt, keyfile=key)
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *a: self.disconnected.set()
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = lambda c, u, mid: self._acked(mid)
        if will:
            self.c.will_set(*will)
        self.c.connect("127.0.0.1", b.port, keepalive)
        self.c.loop_start()
        h.clients.append(self)
        wait_for(lambda: self.connack is not None or self.disconnected.is_set(), 10, "CONNACK")

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack = (flags.get("session present", 0), rc)

    def _on_message(self, c, u, m):
        with self.cv:
            self.messages.append((m.topic, m.payload, m.qos, m.retain))
            self.cv.notify_all()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.subacks[mid] = [g if isinstance(g, int) else g.value for g in granted]

    def _acked(self, mid):
        self.acks.add(mid)

    def subscribe(self, topic, qos=0, timeout=5):
        r, mid = self.c.subscribe(topic, qos)
        wait_for(lambda: mid in self.subacks, timeout, "SUBACK for " + topic)
        return self.subacks[mid][0]

    def publish(self, topic, payload, qos=0, retain=False, timeout=5):
        info = self.c.publish(topic, payload, qos, retain)
        if qos:
            wait_for(lambda: info.mid in self.acks, timeout, "ack of publish to " + topic)
        return info

    def expect(self, topic, timeout=5):
        end = time.time() + timeout
        with self.cv:
            while True:
                for i, m in enumerate(self.messages):
                    if m[0] == topic:
                        return self.messages.pop(i)
                left = end - time.time()
                if left <= 0:
                    raise TestFailure("no message on %s (got %r)" % (topic, [m[0] for m in self.messages]))
                self.cv.wait(left)

    def expect_none(self, timeout=0.7):
        time.sleep(timeout)
        with self.cv:
            got = list(self.messages)
            self.messages.clear()
        check(not got, "unexpected messages: %r" % got)

    def disconnect(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (an abnormal end)."""
        self.c.loop_stop()
        self.c.socket().close()


class HAProxy:
    """haproxy -db (foreground, TCP passthrough) in front of backend ports with a generated
    configuration; stopped by its PID. backend: the backend section's balancing lines; server:
    options of every server (health checks, PROXY protocol)."""

    CONF = """global
    nbthread 1
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend mqtts
    bind 127.0.0.1:%d
    default_backend certmq
backend certmq
%s    default-server %s
%s"""

    def __init__(self, h, ports, backend="    balance roundrobin\n    option redispatch\n    retries 3\n",
                 server="check inter 300ms fall 1 rise 2 on-marked-down shutdown-sessions"):
        self.path = os.path.join(h.tmp, "haproxy.cfg")
        self.log = os.path.join(h.tmp, "haproxy.log")
        servers = "".join("    server certmq%d 127.0.0.1:%d\n" % (i + 1, p) for i, p in enumerate(ports))
        for _ in range(3):  # the free port may be taken between the probe and haproxy's bind
            self.port = free_port()
            with open(self.path, "w") as f:
                f.write(self.CONF % (self.port, backend, server, servers))
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.path], stdout=out,
                                             stderr=subprocess.STDOUT)
            h.procs.append(self.proc)
            try:
                wait_for(self._listening, 10, "haproxy listening")
                return
            except TestFailure:
                self.stop()
        raise TestFailure("haproxy did not start: %s" % open(self.log).read()[-800:])

    def _listening(self):
        check(self.proc.poll() is None, "haproxy exited: %s" % open(self.log).read()[-800:])
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Harness:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="certmq-test-")
        self.procs = []
        self.clients = []
        self.brokers = []
        self.passed = 0
        self.failed = 0
        signal.signal(signal.SIGALRM, self._timeout)
        signal.alarm(TEST_TIMEOUT)
        # A test whose set-up fails before run() (a missing binary, a port taken) must not leave
        # the servers it already started behind.
        atexit.register(self._kill_all)

    def _timeout(self, *a):
        self._kill_all()
        print("FAIL: test exceeded %ds" % TEST_TIMEOUT)
        os._exit(1)

    def _kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()

    def pki(self, name="pki"):
        return PKI(self, name)

    def broker(self, pki, acl="pattern readwrite devices/%u/#\n", extra="", crl=True, cafile=None,
               crlfiles=None, ws=False):
        conf = os.path.join(self.tmp, "certmq%d.conf" % len(self.brokers))
        acl_path = os.path.join(self.tmp, "acl%d" % len(self.brokers))
        with open(acl_path, "w") as f:
            f.write(acl)
        srv, key = pki.cert("server")
        with open(conf, "w") as f:
            f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n" % (cafile or pki.ca, srv, key))
            for c in crlfiles if crlfiles is not None else ([pki.crl] if crl else []):
                f.write("crlfile %s\n" % c)
            if ws:
                f.write("listener 0 127.0.0.1\nprotocol websockets\ncafile %s\ncertfile %s\nkeyfile %s\n"
                        % (cafile or pki.ca, srv, key))
                for c in crlfiles if crlfiles is not None else ([pki.crl] if crl else []):
                    f.write("crlfile %s\n" % c)
            f.write("acl_file %s\nlog_type all\nsys_interval 1\n" % acl_path)
            f.write(extra)
        b = Broker(self, conf, acl_path)
        self.brokers.append(b)
        return b

    def paho(self, b, pki, device, client_id=None, clean=True, protocol=mqtt.MQTTv311, will=None, keepalive=60):
        return Client(self, b, pki, device, client_id if client_id is not None else device, clean, protocol, will,
                      keepalive)

    def tls_context(self, pki, device=None, cert=None):
        ctx = ssl.create_default_context(cafile=pki.ca)
        ctx.check_hostname = False
        if device:
            ctx.load_cert_chain(*pki.cert(device))
        elif cert:
            ctx.load_cert_chain(*cert)
        return ctx

    def raw_tls(self, b, pki, device=None, cert=None):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        return self.tls_context(pki, device, cert).wrap_socket(s, server_hostname="localhost")

    def raw5(self, b, pki, device, cid, props=b"", keepalive=60):
        """A raw TLS socket with an accepted MQTT 5 session (clean start)."""
        s = self.raw_tls(b, pki, device)
        body = (mqtt_str("MQTT") + b"\x05\x02" + keepalive.to_bytes(2, "big") + varint(len(props)) + props +
                mqtt_str(cid))
        s.sendall(packet(0x10, body))
        first, rest = read_packet(s)
        check(first == 0x20 and rest[1] == 0, "raw v5 CONNACK ok")
        return s

    def tls_refused(self, b, pki, device=None, cert=None):
        """True when the broker refuses the handshake (or drops the connection right after it)."""
        try:
            s = self.raw_tls(b, pki, device, cert)
            s.sendall(connect_packet("probe"))
            data = s.recv(4)
            s.close()
            return data == b""
        except (ssl.SSLError, ConnectionError, OSError):
            return True

    def mosquitto(self, tool, b, pki, device, *args, timeout=10):
        cmd = [tool, "-h", "127.0.0.1", "-p", str(b.port), "--cafile", pki.ca, "--insecure"]
        if device:
            crt, key = pki.cert(device)
            cmd += ["--cert", crt, "--key", key]
        cmd += list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def mosquitto_sub_bg(self, b, pki, device, *args):
        crt, key = pki.cert(device)
        cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "--cafile", pki.ca, "--insecure",
               "--cert", crt, "--key", key] + list(args)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    # ---- Node.js peers (MQTT.js and ws), installed from test/integration/js/package-lock.json
    def node_plan(self, b, pki, device, **plan):
        plan.setdefault("url", "wss://127.0.0.1:%d" % b.ws_port)
        plan.setdefault("ca", pki.ca)
        if device:
            crt, key = pki.cert(device)
            plan.setdefault("cert", crt)
            plan.setdefault("key", key)
        return plan

    def node(self, script, plan, timeout=20):
        import json
        env = dict(os.environ, NODE_PATH=os.path.join(JS_DIR, "node_modules"))
        r = subprocess.run(["node", os.path.join(JS_DIR, script), json.dumps(plan)], capture_output=True,
                           text=True, timeout=timeout, env=env)
        return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]

    def node_bg(self, script, plan):
        import json
        env = dict(os.environ, NODE_PATH=os.path.join(JS_DIR, "node_modules"))
        p = subprocess.Popen(["node", os.path.join(JS_DIR, script), json.dumps(plan)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
        self.procs.append(p)
        return p

    def run(self, *tests):
        for t in tests:
            name = t.__name__
            try:
                t()
                self.passed += 1
                print("ok   %s" % name)
            except Exception as e:  # a test's failure must not hide the others
                self.failed += 1
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
        self.finish()

    def finish(self):
        for c in self.clients:
            try:
                c.c.loop_stop()
            except Exception:
                pass
        for b in self.brokers:
            try:
                rc = b.stop()
                if rc != 0 and not getattr(b, "killed", False):
                    self.failed += 1
                    print("FAIL broker exit status %s after SIGTERM" % rc)
            except TestFailure as e:
                self.failed += 1
                print("FAIL %s" % e)
            bad = [l for l in b.log() if "AddressSanitizer" in l or "runtime error:" in l or "LeakSanitizer" in l]
            if bad:
                self.failed += 1
                print("FAIL sanitizer report:\n" + "\n".join(b.log()[-80:]))
        self._kill_all()
        if self.failed:
            for b in self.brokers:
                print("---- broker log (last 60 lines) ----")
                print("\n".join(b.log()[-60:]))
        if os.environ.get("CERTMQ_KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)
