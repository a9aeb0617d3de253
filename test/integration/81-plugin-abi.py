"""Plugin API compatibility (docs/plugins.md): a plugin built against the previous minor version's
header (test/plugins/old_minor.c, a smaller hooks table) loads, its connect/disconnect hooks run
once per connection, and the hook it does not know is treated as absent (it wrote junk there);
plugins built for a newer minor, for another major or for the pre-3.0 plain version are refused
at start and by --test-config, with a message naming both versions."""
import os
import subprocess
import time

from certmq_test import BIN, Harness, check

h = Harness()
pki = h.pki()
pki.device("a")
BUILD = os.environ.get("CERTMQ_BUILD", "build")


def plugin(name):
    return os.path.join(BUILD, "certmq_test_%s.so" % name)


ACL = "pattern readwrite devices/%u/#\n"
b = h.broker(pki, ACL, extra="plugin %s\n" % plugin("old_minor"))


def test_old_minor_loads_and_runs():
    b.log_wait(r"old_minor: ready \(built for API 3\.0, certmq speaks 3\.2\)", 3)
    n = b.log_count()
    a = h.paho(b, pki, "a", client_id="dev-a")
    a.publish("devices/a/x", b"1", 1)
    b.log_wait(r"old_minor: a connected as dev-a from 127\.0\.0\.1:\d+", 3, n)
    a.disconnect()
    b.log_wait(r"old_minor: a \(dev-a\) disconnected", 3, n)
    time.sleep(2.2)  # ticks ran: the junk past the plugin's table was never called
    check(b.proc.poll() is None, "broker alive after ticks")
    log = b.log()[n:]
    check(sum("old_minor: a connected" in l for l in log) == 1, "connect hook once")
    check(sum("old_minor: a (dev-a) disconnected" in l for l in log) == 1, "disconnect hook once")
    check(b.stop() == 0, "clean exit")


def conf_with(extra):
    srv, key = pki.cert("server")
    conf = os.path.join(h.tmp, "abi%d.conf" % abs(hash(extra)))
    with open(conf, "w") as f:
        f.write("listener 0 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nacl_file %s\n%s"
                % (pki.ca, srv, key, b.acl, extra))
    return conf


def refused(name, want):
    conf = conf_with("plugin %s\n" % plugin(name))
    r = subprocess.run([BIN, "-c", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1, "%s must refuse to start (rc %s)" % (name, r.returncode))
    check(want in r.stderr, "expected %r in: %s" % (want, r.stderr[-500:]))
    check("version_probe: loaded" not in r.stderr, "init of a refused plugin never runs")
    r = subprocess.run([BIN, "--test-config", "-c", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 1 and want in r.stderr, "--test-config %s: %s" % (name, r.stderr))


def test_incompatible_versions_refused():
    refused("newer_minor", "plugin built for API 3.3, newer than this certmq's 3.2")
    refused("next_major", "plugin built for API 4.2, certmq speaks 3.2: only plugins for API 3.0 to 3.2 load")
    refused("legacy", "plugin API version 2, certmq speaks 3.2: rebuild the plugin")


def test_test_config_accepts_old_minor():
    conf = conf_with("plugin %s\n" % plugin("old_minor"))
    r = subprocess.run([BIN, "--test-config", "-c", conf], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0 and "configuration OK" in r.stdout, "--test-config: " + r.stderr)


h.run(test_old_minor_loads_and_runs, test_incompatible_versions_refused,
      test_test_config_accepts_old_minor)
