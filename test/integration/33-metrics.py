"""The Prometheus endpoint (metrics_listener): /metrics read by curl and by a real text-format
parser (python3-prometheus-client); a revoked device's refusal, a CRL revocation of a connected
device, an expiry kick, an OCSP failure and a QoS 1 publish each move their own counter;
/healthz and /readyz; malformed requests get 4xx and the endpoint keeps serving, also past its
limit of concurrent scrapers; mutual TLS for scrapers (no client certificate: no answer), its
certificates reloaded on SIGHUP;
--test-config refuses a non-loopback address without it; every metric name the Grafana
dashboard and the alert rules use exists in a scrape."""
import os
import re
import socket
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from certmq_test import BIN, SRC, Harness, check, free_port, wait_for

PLUGIN = os.environ.get("CERTMQ_OCSP_PLUGIN",
                        os.path.join(os.environ.get("CERTMQ_BUILD", os.path.join(SRC, "build")),
                                     "certmq_ocsp.so"))
ACL = "pattern readwrite devices/%u/#\n"

h = Harness()
pki = h.pki()
for d in ("dev1", "revoked", "victim", "scraper"):
    pki.device(d)
pki.run("crl")
b = h.broker(pki, ACL, extra="metrics_listener 127.0.0.1:0\n")
PORT = int(b.log_wait(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", 5).group(1))
URL = "http://127.0.0.1:%d" % PORT


def curl(path, *args, url=None):
    r = subprocess.run(["curl", "-s", "-S", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"] + list(args) +
                       [(url or URL) + path], capture_output=True, text=True, timeout=20)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def scrape(url=None, *args):
    code, text = curl("/metrics", *args, url=url)
    check(code == 200, "GET /metrics: %d %s" % (code, text[:200]))
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def raw(request, read=True):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.sendall(request)
    if not read:
        return s
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def status(resp):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    return int(m.group(1)) if m else None


def test_scrape_parses():
    s = scrape()
    for name, labels in (("certmq_build_info", None), ("certmq_uptime_seconds", {}),
                         ("certmq_refusals_total", {"reason": "revoked"}),
                         ("certmq_tls_handshakes_total", {"kind": "full"}),
                         ("certmq_tls_handshake_cpu_seconds_count", {"kind": "full"}),
                         ("certmq_loop_lag_seconds_count", {}),
                         ("certmq_device_certificates", {"expires_within_days": "+Inf"}),
                         ("certmq_connections", {"state": "open"})):
        check(any(k[0] == name and (labels is None or k[1] == tuple(sorted(labels.items()))) for k in s),
              "%s %r in the scrape" % (name, labels))
    info = [k for k in s if k[0] == "certmq_build_info"]
    check(info and re.match(r"[23]\.\d+\.\d+$", dict(info[0][1]).get("mbedtls", "")),
          "build info: %r" % info)
    crl = [k for k in s if k[0] == "certmq_crl_next_update_timestamp_seconds"]
    check(crl and s[crl[0]] > time.time(), "CRL next update per file: %r" % crl)
    code, head = curl("/metrics", "-I")
    check(code == 200 and "text/plain; version=0.0.4" in head, "HEAD /metrics: %d %s" % (code, head))


def test_traffic_by_qos():
    before = scrape()
    c = h.paho(b, pki, "dev1")
    c.subscribe("devices/dev1/#", 1)
    c.publish("devices/dev1/t", b"x" * 10, qos=1)
    c.expect("devices/dev1/t")
    after = scrape()
    for name in ("certmq_messages_received_total", "certmq_messages_sent_total"):
        check(value(after, name, qos="1") == value(before, name, qos="1") + 1, "%s{qos=1} +1" % name)
    check(value(after, "certmq_listener_connections", listener="127.0.0.1:%d" % b.port, transport="mqtt") >= 1,
          "connections per listener")
    check(value(after, "certmq_device_certificates", expires_within_days="+Inf") >= 1, "connected device counted")
    check(value(after, "certmq_device_certificates", expires_within_days="1") == 0, "no certificate expires today")
    c.disconnect()


def test_revocation_counters():
    victim = h.paho(b, pki, "victim")
    check(victim.connack == (0, 0), "victim connected")
    before = scrape()
    n = b.log_count()
    pki.revoke("revoked")
    pki.revoke("victim")
    b.reload()
    b.log_wait(r"tls: certificates and CRLs reloaded", 5, n)
    wait_for(lambda: victim.disconnected.is_set(), 5, "revoked device disconnected")
    check(h.tls_refused(b, pki, "revoked"), "revoked device refused")
    after = scrape()
    check(value(after, "certmq_refusals_total", reason="revoked") >= value(before, "certmq_refusals_total",
                                                                            reason="revoked") + 1,
          "refusals{reason=revoked} moved")
    check(value(after, "certmq_devices_disconnected_total", reason="revoked_crl") ==
          value(before, "certmq_devices_disconnected_total", reason="revoked_crl") + 1, "disconnected{revoked_crl} +1")
    check(value(after, "certmq_tls_reloads_total", result="ok") >= value(before, "certmq_tls_reloads_total",
                                                                        result="ok") + 1, "tls reload counted")
    check(value(after, "certmq_acl_reloads_total", result="ok") >= 1, "acl reload counted")


def test_expiry_kick():
    pki.expiring("soon", 6)
    c = h.paho(b, pki, "soon")
    check(c.connack == (0, 0), "connected before expiry")
    mid = scrape()
    check(value(mid, "certmq_device_certificates", expires_within_days="1") >= 1, "expires within a day")
    check(c.disconnected.wait(15), "disconnected when the certificate expired")
    after = scrape()
    check(value(after, "certmq_devices_disconnected_total", reason="expired") ==
          value(mid, "certmq_devices_disconnected_total", reason="expired") + 1, "disconnected{expired} +1")


def test_health_and_ready():
    check(curl("/healthz") == (200, "ok\n"), "healthz")
    check(curl("/readyz") == (200, "ready\n"), "readyz")
    check(curl("/readyz?verbose")[0] == 200, "a query string is ignored")


def test_bad_requests_keep_serving():
    cases = ((b"GARBAGE\r\n\r\n", 400), (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
             (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
             (b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
             (b"GET /metrics HTTP/2.0\r\n\r\n", 505), (b"GET /metrics HTTP/1.1\n\n", 400),
             (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 5000 + b"\r\n\r\n", 431),
             (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414),
             (b"GET /metrics HTTP/1.1\r\n" + b"A: b\r\n" * 40 + b"\r\n", 431))
    for req, want in cases:
        got = status(raw(req))
        check(got == want, "%r...: %s, want %d" % (req[:30], got, want))
    check(b"Allow: GET, HEAD" in raw(b"DELETE /metrics HTTP/1.1\r\n\r\n"), "405 names the methods")
    # Silent scrapers hold their slots; past the limit (8) a new one is closed at once. Connections
    # answered above may still hold a slot for a moment (until the broker reads their close), so
    # of nine at least one is closed.
    silent = [raw(b"GET /met", read=False) for _ in range(9)]
    closed = 0
    for s in silent:
        s.settimeout(0.5)
        try:
            closed += s.recv(100) == b""
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
    check(closed >= 1, "a scraper past the limit is closed")
    for s in silent:
        s.close()
    wait_for(lambda: curl("/healthz")[0] == 200, 5, "serving again")
    s = scrape()
    check(value(s, "certmq_metrics_requests_total", result="malformed") >= 7, "malformed requests counted")
    check(value(s, "certmq_metrics_requests_total", result="dropped") >= 1, "the dropped scraper counted")
    c = h.paho(b, pki, "dev1")
    check(c.connack == (0, 0), "devices still served")
    c.disconnect()


def test_dashboard_and_alert_names_exist():
    s = scrape(None)
    ocsp = scrape(OCSP_URL, *SCRAPER_TLS) if OCSP_URL else {}
    names = {k[0] for k in s} | {k[0] for k in ocsp}
    for f in ("config/grafana-certmq.json", "config/prometheus-alerts.yml"):
        used = set(re.findall(r"certmq_[a-z0-9_]+", open(os.path.join(SRC, f)).read()))
        check(used, "%s names metrics" % f)
        missing = sorted(u for u in used if u not in names)
        check(not missing, "%s uses metrics no scrape has: %s" % (f, missing))


def test_config_check():
    srv, key = pki.cert("server")
    base = "listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n" % (pki.ca, srv, key, b.acl)
    cases = (("metrics_listener 0.0.0.0:9100\n", "not a loopback address"),
             ("metrics_listener 10.1.2.3:9100\nmetrics_require_certificate true\n", "needs metrics_cafile"),
             ("metrics_listener localhost:9100\n", "not a numeric IP address"),
             ("metrics_listener ::1:9100\n", "expected ADDRESS:PORT"),
             ("metrics_listener 127.0.0.1:99999\n", "expected ADDRESS:PORT"),
             ("metrics_cafile %s\n" % pki.ca, "without metrics_listener"),
             ("metrics_listener 127.0.0.1:9100\nmetrics_cafile %s\n" % pki.ca, "need metrics_require_certificate"))
    cases += (("metrics_listener 127.0.0.1:0\nmetrics_require_certificate true\nmetrics_cafile %s\n"
               "metrics_certfile %s\nmetrics_keyfile %s\n" % (pki.ca, srv, os.path.join(h.tmp, "nokey")),
               "nokey"),)
    for i, (extra, want) in enumerate(cases):
        path = os.path.join(h.tmp, "m%d.conf" % i)
        with open(path, "w") as f:
            f.write(base + extra)
        r = subprocess.run([BIN, "--test-config", "-c", path], capture_output=True, text=True, timeout=20)
        check(r.returncode == 1 and want in r.stderr, "%r: %d %s" % (extra, r.returncode, r.stderr))
    for i, extra in enumerate(("metrics_listener [::1]:9100\n", "metrics_listener 127.0.0.2:0\n",
                               "metrics_listener 0.0.0.0:9100\nmetrics_require_certificate true\n"
                               "metrics_cafile %s\nmetrics_certfile %s\nmetrics_keyfile %s\n" % (pki.ca, srv, key))):
        path = os.path.join(h.tmp, "ok%d.conf" % i)
        with open(path, "w") as f:
            f.write(base + extra)
        r = subprocess.run([BIN, "--test-config", "-c", path], capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "%r accepted: %s" % (extra, r.stderr))


def test_version():
    r = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0, "--version exits 0")
    for lib in ("certmq ", "Mbed TLS ", "libuv 1.", "libwebsockets 4.", "SQLite 3."):
        check(lib in r.stdout, "%r in --version: %s" % (lib, r.stdout))


# ---- a second broker: OCSP failing, persistence, metrics over mutual TLS ------------------------
DEAD = "http://127.0.0.1:%d/" % free_port()
crt, key = pki.cert("scraper")
SCRAPER_TLS = ("--cacert", pki.ca, "--cert", crt, "--key", key)
OCSP_URL = None
ob = None


def start_ocsp_broker():
    global OCSP_URL, ob
    srv, skey = pki.cert("server")
    extra = ("plugin %s\nplugin_opt_ocsp_responder %s\nplugin_opt_ocsp_timeout_ms 1000\n"
             "metrics_listener 127.0.0.1:0\nmetrics_require_certificate true\nmetrics_cafile %s\n"
             "metrics_certfile %s\nmetrics_keyfile %s\npersistence true\npersistence_location %s\n"
             % (PLUGIN, DEAD, pki.ca, srv, skey, h.tmp))
    ob = h.broker(pki, ACL, extra=extra)
    port = int(ob.log_wait(r"metrics on https://127\.0\.0\.1:(\d+)/metrics", 5).group(1))
    OCSP_URL = "https://localhost:%d" % port


def test_metrics_over_mutual_tls():
    start_ocsp_broker()
    s = scrape(OCSP_URL, *SCRAPER_TLS)
    check(value(s, "certmq_ocsp_requests_total", result="failed") == 0, "no OCSP request yet")
    code, _ = curl("/metrics", "--cacert", pki.ca, url=OCSP_URL)
    check(code != 200, "no client certificate: no metrics (%d)" % code)
    code, _ = curl("/metrics", url=OCSP_URL.replace("https", "http"))
    check(code != 200, "plain HTTP on the TLS port: no metrics (%d)" % code)
    check(scrape(OCSP_URL, *SCRAPER_TLS), "still serving after refusals")
    n = ob.log_count()
    ob.reload()
    ob.log_wait(r"metrics: certificates reloaded", 5, n)
    check(scrape(OCSP_URL, *SCRAPER_TLS), "serving with the reloaded certificates")


def test_ocsp_failure_counted():
    check(ob is not None, "OCSP broker started")
    before = scrape(OCSP_URL, *SCRAPER_TLS)
    check(h.tls_refused(ob, pki, "dev1"), "responder down, fail closed: refused")
    after = scrape(OCSP_URL, *SCRAPER_TLS)
    check(value(after, "certmq_ocsp_requests_total", result="failed") ==
          value(before, "certmq_ocsp_requests_total", result="failed") + 1, "ocsp failed +1")
    check(value(after, "certmq_refusals_total", reason="refused_by_plugin") ==
          value(before, "certmq_refusals_total", reason="refused_by_plugin") + 1, "refusal by plugin +1")
    check(value(after, "certmq_ocsp_responder_latency_seconds_count") >= 1, "responder latency observed")


h.run(test_scrape_parses, test_traffic_by_qos, test_health_and_ready, test_bad_requests_keep_serving,
      test_revocation_counters, test_expiry_kick, test_config_check, test_version,
      test_metrics_over_mutual_tls, test_ocsp_failure_counted, test_dashboard_and_alert_names_exist)
