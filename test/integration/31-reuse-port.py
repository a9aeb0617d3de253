"""Several processes on one port: with reuse_port true two certmq processes listen on the same
127.0.0.1 port (the first one's port 0 lets the kernel pick a free one, the second binds the port
it logged), 40 devices connecting there are spread over both by the kernel and each broker logs
the CONNECTs it accepted; a process without reuse_port cannot bind the port and says why; when
one of the two stops, the other goes on serving the port."""
import socket
import ssl
import subprocess

from certmq_test import BIN, Harness, check, connect_packet, read_packet, wait_for

h = Harness()
pki = h.pki()
pki.device("dev")
SRV, KEY = pki.cert("server")
DEVICES = 40


def shared_listener(port, reuse=True):
    return "listener %d 127.0.0.1\n%scafile %s\ncertfile %s\nkeyfile %s\n" % (
        port, "reuse_port true\n" if reuse else "", pki.ca, SRV, KEY)


a = h.broker(pki, extra=shared_listener(0))
PORT = int(a.log_wait(r"listening on 127\.0\.0\.1:(\d+) \(mqtt, reuse_port\)", 10).group(1))
b = h.broker(pki, extra=shared_listener(PORT))
b.log_wait(r"listening on 127\.0\.0\.1:%d \(mqtt, reuse_port\)" % PORT, 10)


def device(cid):
    """A device on the shared port: TLS with its certificate, CONNECT, CONNACK accepted."""
    ctx = h.tls_context(pki, "dev")
    raw = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(connect_packet(cid))
    first, body = read_packet(s, 10)
    check(first == 0x20 and body[1:2] == b"\x00", "CONNACK accepted for %s: %r" % (cid, (first, body)))
    return s


def accepted_by(broker, prefix):
    return sum(1 for l in broker.log() if ("client %s" % prefix) in l and " connected from " in l)


def test_both_accept():
    socks = [device("rp%02d" % i) for i in range(DEVICES)]
    for s in socks:
        s.close()
    # The log lines come through the harness's reader threads: give them a moment.
    wait_for(lambda: accepted_by(a, "rp") + accepted_by(b, "rp") >= DEVICES, 5, "every CONNECT logged")
    na, nb = accepted_by(a, "rp"), accepted_by(b, "rp")
    print("connections accepted: %d by the first broker, %d by the second" % (na, nb))
    check(na + nb == DEVICES, "every device accepted exactly once (%d + %d)" % (na, nb))
    check(na > 0 and nb > 0, "both brokers accepted connections on the shared port (%d, %d)" % (na, nb))


def test_without_option_refused():
    conf = b.conf + ".noreuse"
    with open(conf, "w") as f:
        f.write(shared_listener(PORT, reuse=False))
        f.write("acl_file %s\n" % b.acl)
    r = subprocess.run([BIN, "-c", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode != 0, "a broker without reuse_port does not start on the shared port")
    check("cannot listen on 127.0.0.1:%d: address already in use" % PORT in r.stderr,
          "it says why: %s" % r.stderr[-400:])


def test_one_stops_other_serves():
    check(a.stop() == 0, "the first broker stops cleanly")
    for i in range(5):
        device("after%d" % i).close()
    wait_for(lambda: accepted_by(b, "after") == 5, 5, "the second broker serving the port alone")


h.run(test_both_accept, test_without_option_refused, test_one_stops_other_serves)
