"""Behind a load balancer: PROXY protocol v2 (proxy_protocol v2, proxy_protocol_from).

A real HAProxy (TCP passthrough, send-proxy-v2, health checks) in front of a proxy_protocol
listener: mosquitto_sub and mosquitto_pub bound to 127.0.0.5 / 127.0.0.6 connect through it with
their certificates and exchange a message, and certmq names them by those addresses although
every socket it accepted came from HAProxy's 127.0.0.1; HAProxy's health checks (PROXY v2 LOCAL)
are counted in $SYS/broker/proxy/health_checks and leave no log line above debug. Hand-built
headers sent straight from Python, followed by a real TLS handshake with the device certificate
(the ClientHello in the same write as the header, or after it): a fake source 10.9.9.9 or
2001:db8::7 is what the log shows; max_connections_per_ip 2 counts per header address (a third
connection claiming 10.1.2.3 is refused before TLS while one claiming 10.1.2.4 is accepted, all
from socket 127.0.0.1). LOCAL from Python is closed quietly and counted. A ClientHello without a
header, and malformed headers (v1 text, version 1, UDP, too long, too short), are refused with a
clear line and the broker keeps serving. A listener whose proxy_protocol_from does not hold
127.0.0.1 refuses connections from there (one log line per 10 s, the rest counted) and accepts
them from 127.0.0.2. A listener without proxy_protocol is unaffected (a header there is not
TLS). config/haproxy.cfg passes `haproxy -c`."""
import os
import re
import socket
import ssl
import subprocess
import time

from certmq_test import (SRC, HAProxy, Harness, TestFailure, check, closed_by_broker, connect_packet,
                         read_packet, wait_for)

h = Harness()
pki = h.pki()
pki.device("dev")
pki.device("watcher")
SRV, KEY = pki.cert("server")
ACL = "pattern readwrite devices/%u/#\nuser watcher\ntopic read $SYS/#\n"
SIG = bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])


def listener(keys):
    return "listener 0 127.0.0.1\n%scafile %s\ncertfile %s\nkeyfile %s\n" % (keys, pki.ca, SRV, KEY)


# The harness's own listener (no PROXY protocol) comes first, then one behind the proxies of
# 127.0.0.0/8, then one that trusts 127.0.0.2 alone.
b = h.broker(pki, ACL, extra="max_connections_per_ip 2\n" +
             listener("proxy_protocol v2\nproxy_protocol_from 127.0.0.0/8\n") +
             listener("proxy_protocol v2\nproxy_protocol_from 127.0.0.2/32, 2001:db8::/32\n"))
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+) \(mqtt, PROXY protocol v2\)")


def proxy_ports():
    return [int(m.group(1)) for m in map(LISTENING.search, b.log()) if m]


wait_for(lambda: len(proxy_ports()) == 2, 10, "both PROXY protocol listeners")
PROXY_PORT, STRICT_PORT = proxy_ports()


# ---- PROXY v2 headers and TLS, built here -------------------------------------------------------

def v2_header(src, sport, command=0x21, dport=8883):
    if ":" in src:
        fam, addrs = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, "::1")
    else:
        fam, addrs = 0x11, socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, "127.0.0.1")
    body = addrs + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    return SIG + bytes([command, fam]) + len(body).to_bytes(2, "big") + body


LOCAL = SIG + bytes([0x20, 0x00, 0, 0])


class BioTLS:
    """TLS over a plain socket through memory BIOs, so that the client's first flight leaves in
    the same write as the bytes before it (the PROXY header). Enough of a socket for
    read_packet: settimeout, recv, sendall, close."""

    def __init__(self, raw, first):
        self.raw = raw
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = h.tls_context(pki, "dev").wrap_bio(self.inc, self.out, server_hostname="localhost")
        pending = first
        while True:
            try:
                self.obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            pending += self.out.read()
            if pending:
                raw.sendall(pending)
                pending = b""
            if done:
                return
            data = raw.recv(65536)
            if not data:
                raise ConnectionError("closed by the broker during the handshake")
            self.inc.write(data)

    def settimeout(self, t):
        self.raw.settimeout(t)

    def sendall(self, data):
        self.obj.write(data)
        self.raw.sendall(self.out.read())

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                data = self.raw.recv(65536)
                if not data:
                    return b""
                self.inc.write(data)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def close(self):
        self.raw.close()


def tcp(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def connack_ok(s, cid):
    s.sendall(connect_packet(cid))
    first, body = read_packet(s, 10)
    check(first == 0x20 and body[1:2] == b"\x00", "CONNACK accepted for %s: %r" % (cid, (first, body)))
    return s


def proxied(src, sport, cid, port=None, source="127.0.0.1"):
    """A device claiming src:sport: header and ClientHello in one write, then CONNECT."""
    raw = tcp(port or PROXY_PORT, source)
    return connack_ok(BioTLS(raw, v2_header(src, sport)), cid)


def refused_at_handshake(raw, first):
    try:
        BioTLS(raw, first)
        return False
    except (ssl.SSLError, ConnectionError, OSError):
        return True


def sys_value(topic, pred, timeout=8, what=""):
    """Waits for a $SYS publication of topic whose value satisfies pred (sys_interval 1)."""
    w = h.paho(b, pki, "watcher", client_id="watcher-%d" % time.monotonic_ns())
    try:
        w.c.subscribe(topic, 0)
        end = time.time() + timeout
        last = None
        while time.time() < end:
            try:
                last = int(w.expect(topic, max(0.1, end - time.time()))[1])
            except TestFailure:
                break
            if pred(last):
                return last
        raise TestFailure("%s: %s stayed at %r" % (what or "$SYS", topic, last))
    finally:
        w.disconnect()


def loud_lines_since(start, needle):
    """Log lines above debug level since start that contain needle."""
    return [l for l in b.log()[start:] if needle in l and " debug: " not in l]


# ---- HAProxy ------------------------------------------------------------------------------------

def mosquitto(tool, port, source, *args):
    crt, key = pki.cert("dev")
    return [tool, "-h", "127.0.0.1", "-p", str(port), "-A", source, "--cafile", pki.ca, "--insecure",
            "--cert", crt, "--key", key] + list(args)


# ---- tests --------------------------------------------------------------------------------------

def test_example_config_is_valid():
    r = subprocess.run(["haproxy", "-c", "-f", os.path.join(SRC, "config", "haproxy.cfg")],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "config/haproxy.cfg: %s%s" % (r.stdout, r.stderr))


def test_through_haproxy():
    start = b.log_count()
    hap = HAProxy(h, [PROXY_PORT], backend="    balance source\n    hash-type consistent\n    option redispatch\n"
                  "    retries 2\n", server="send-proxy-v2 check check-send-proxy inter 300ms fall 2 rise 1 "
                  "on-marked-down shutdown-sessions")
    try:
        sub = subprocess.Popen(mosquitto("mosquitto_sub", hap.port, "127.0.0.5", "-i", "hap-sub", "-t",
                                         "devices/dev/#", "-C", "1", "-W", "20"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        h.procs.append(sub)
        b.log_wait(r"client hap-sub connected from 127\.0\.0\.5:\d+ as dev", 10, start)
        r = subprocess.run(mosquitto("mosquitto_pub", hap.port, "127.0.0.6", "-i", "hap-pub", "-t",
                                     "devices/dev/x", "-m", "through haproxy"),
                           capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "mosquitto_pub through HAProxy: %s" % r.stderr)
        out, err = sub.communicate(timeout=20)
        check(out.strip() == "through haproxy", "the subscriber got the message: %r %r" % (out, err))
        b.log_wait(r"client hap-pub connected from 127\.0\.0\.6:\d+ as dev", 5, start)
        checks = sys_value("$SYS/broker/proxy/health_checks", lambda v: v >= 2, what="HAProxy's health checks")
        print("HAProxy health checks counted: %d" % checks)
        loud = loud_lines_since(start, "refused 127.0.0.1:")
        check(not loud, "health checks and proxied connections are never refused: %r" % loud[:3])
    finally:
        hap.stop()
    check(hap.proc.returncode is not None, "HAProxy stopped")


def test_header_address_is_used():
    start = b.log_count()
    s4 = proxied("10.9.9.9", 40001, "pp-v4")
    s6 = proxied("2001:db8::7", 40002, "pp-v6")
    b.log_wait(r"client pp-v4 connected from 10\.9\.9\.9:40001 as dev", 5, start)
    b.log_wait(r"client pp-v6 connected from \[2001:db8::7\]:40002 as dev", 5, start)
    # The header in one write, the ClientHello after a pause: the same.
    raw = tcp(PROXY_PORT)
    raw.sendall(v2_header("10.9.9.8", 40003))
    time.sleep(0.2)
    s = connack_ok(h.tls_context(pki, "dev").wrap_socket(raw, server_hostname="localhost"), "pp-split")
    b.log_wait(r"client pp-split connected from 10\.9\.9\.8:40003 as dev", 5, start)
    for x in (s4, s6, s):
        x.close()


def test_limits_count_header_addresses():
    start = b.log_count()
    a1 = proxied("10.1.2.3", 40011, "lim-a1")
    a2 = proxied("10.1.2.3", 40012, "lim-a2")
    raw = tcp(PROXY_PORT)
    check(refused_at_handshake(raw, v2_header("10.1.2.3", 40013)),
          "a third connection claiming 10.1.2.3 is refused (max_connections_per_ip 2)")
    raw.close()
    b.log_wait(r"refused 10\.1\.2\.3:40013: max_connections_per_ip \(2\) reached", 5, start)
    other = proxied("10.1.2.4", 40014, "lim-b1")  # also from socket 127.0.0.1, like the others
    b.log_wait(r"client lim-b1 connected from 10\.1\.2\.4:40014", 5, start)
    for x in (a1, a2, other):
        x.close()


def test_local_is_quiet():
    before = sys_value("$SYS/broker/proxy/health_checks", lambda v: True)
    start = b.log_count()
    ports = []
    for _ in range(10):
        s = tcp(PROXY_PORT)
        ports.append(s.getsockname()[1])
        s.sendall(LOCAL)
        check(closed_by_broker(s, 3.0), "LOCAL is closed by the broker")
        s.close()
    sys_value("$SYS/broker/proxy/health_checks", lambda v: v >= before + 10, what="LOCAL counted")
    loud = [l for p in ports for l in loud_lines_since(start, "127.0.0.1:%d" % p)]
    check(not loud, "no line above debug for a health check: %r" % loud[:3])
    b.log_wait(r"debug: 127\.0\.0\.1:%d: PROXY v2 LOCAL \(the proxy's health check\), closed" % ports[0], 2, start)


def test_no_header_refused():
    start = b.log_count()
    raw = tcp(PROXY_PORT)
    port = raw.getsockname()[1]
    check(refused_at_handshake(raw, b""), "a ClientHello without a PROXY header is refused")
    raw.close()
    b.log_wait(r"notice: refused 127\.0\.0\.1:%d: proxy protocol: not a PROXY protocol v2 header "
               r"\(first bytes 16 03 01" % port, 5, start)


def test_malformed_refused():
    v4 = v2_header("10.5.5.5", 40021)
    cases = [
        (b"PROXY TCP4 10.5.5.5 127.0.0.1 40021 8883\r\n", r"a PROXY protocol v1 \(text\) header"),
        (SIG + bytes([0x11]) + v4[13:], r"PROXY protocol header of a version other than 2"),
        (SIG + bytes([0x21, 0x12]) + v4[14:], r"for something other than TCP over IPv4 or IPv6"),
        (SIG + bytes([0x21, 0x11, 0x02, 0x58]) + bytes(600), r"longer than 528 bytes"),
        (SIG + bytes([0x21, 0x21, 0, 12]) + v4[16:], r"too short for its addresses"),
    ]
    start = b.log_count()
    for data, why in cases:
        s = tcp(PROXY_PORT)
        port = s.getsockname()[1]
        s.sendall(data)
        check(closed_by_broker(s, 3.0), "malformed header closed: %r" % data[:20])
        s.close()
        b.log_wait(r"refused 127\.0\.0\.1:%d: proxy protocol: .*%s" % (port, why), 5, start)
    proxied("10.5.5.6", 40022, "after-malformed").close()
    b.log_wait(r"client after-malformed connected from 10\.5\.5\.6:40022", 5, start)


def test_only_listed_proxies():
    before = sys_value("$SYS/broker/tls/refused/proxy_protocol", lambda v: True)
    start = b.log_count()
    for i in range(5):
        s = tcp(STRICT_PORT)
        s.sendall(v2_header("10.6.6.6", 40030 + i))
        check(closed_by_broker(s, 3.0), "a header from 127.0.0.1 is refused where only 127.0.0.2 may send one")
        s.close()
    sys_value("$SYS/broker/tls/refused/proxy_protocol", lambda v: v >= before + 5, what="refusals counted")
    lines = [l for l in b.log()[start:] if "not from an address in proxy_protocol_from" in l]
    check(len(lines) == 1, "one log line for five refusals within 10 s: %r" % lines)
    check("notice: refused 127.0.0.1:" in lines[0], "it names the peer: %s" % lines[0])
    proxied("10.7.7.7", 40040, "strict-ok", port=STRICT_PORT, source="127.0.0.2").close()
    b.log_wait(r"client strict-ok connected from 10\.7\.7\.7:40040", 5, start)


def test_plain_listener_unaffected():
    start = b.log_count()
    c = h.paho(b, pki, "dev", client_id="plain")
    check(c.connack is not None and c.connack[1] == 0, "a device on the listener without PROXY protocol")
    b.log_wait(r"client plain connected from 127\.0\.0\.1:\d+ as dev", 5, start)
    c.disconnect()
    s = tcp(b.port)
    port = s.getsockname()[1]
    s.sendall(v2_header("10.8.8.8", 40050))
    check(closed_by_broker(s, 3.0), "a PROXY header where none is expected is refused")
    s.close()
    b.log_wait(r"refused 127\.0\.0\.1:%d: handshake failed: not a TLS ClientHello \(first bytes 0d 0a 0d 0a"
               % port, 5, start)


h.run(test_example_config_is_valid, test_through_haproxy, test_header_address_is_used,
      test_limits_count_header_addresses, test_local_is_quiet, test_no_header_refused,
      test_malformed_refused, test_only_listed_proxies, test_plain_listener_unaffected)
