"""The operator's ACL file: default deny, per-device isolation through patterns, subscribe
refusals, filtering of deliveries, live reload (SIGHUP and file change), broken files kept out."""
import os
import time

from certmq_test import Harness, check

h = Harness()
pki = h.pki()
for d in ("dev-a", "dev-b", "dash"):
    pki.device(d)
ACL = """# test ACL
pattern readwrite devices/%u/#
user dash
topic read devices/#
topic write fleet/#
"""
b = h.broker(pki, ACL)
a = h.paho(b, pki, "dev-a")
bb = h.paho(b, pki, "dev-b")
dash = h.paho(b, pki, "dash")


def test_own_subtree():
    check(a.subscribe("devices/dev-a/#", 1) == 1, "own subtree granted")
    a.publish("devices/dev-a/t", b"1", 1)
    a.expect("devices/dev-a/t")


def test_isolation():
    check(bb.subscribe("devices/dev-a/#", 1) == 0x80, "another device's subtree must be refused")
    check(bb.subscribe("#", 0) == 0, "a partially readable filter is granted")
    bb.publish("devices/dev-a/t", b"forged", 1)  # PUBACKed, silently dropped
    a.expect_none()
    a.publish("devices/dev-a/secret", b"x", 1)
    bb.expect_none()  # dev-b's '#' does not deliver what it may not read


def test_dashboard_reads_all():
    check(dash.subscribe("devices/#", 1) == 1, "dash reads devices/#")
    a.publish("devices/dev-a/temp", b"20", 1)
    t, p, q, r = dash.expect("devices/dev-a/temp")
    check(p == b"20", "payload")
    check(dash.subscribe("fleet/#", 0) == 0x80, "write-only topic is not subscribable")


def test_reload_sighup():
    check(bb.subscribe("fleet/news", 1) == 0x80, "not yet readable")
    with open(b.acl, "a") as f:
        f.write("pattern read fleet/#\n")
    n = b.log_count()
    b.reload()
    b.log_wait(r"acl: loaded .* \(4 rules\)", 5, n)
    check(bb.subscribe("fleet/news", 1) == 1, "readable after reload, same connection")
    dash.publish("fleet/news", b"hello", 1)
    bb.expect("fleet/news")


def test_broken_file_keeps_rules():
    with open(b.acl) as f:
        good = f.read()
    with open(b.acl, "w") as f:
        f.write(good + "topic banana fleet/x\n")
    n = b.log_count()
    b.reload()
    b.log_wait(r"acl: .*acl0:7: bad access 'banana'", 5, n)
    b.log_wait(r"reload of .* failed, keeping the previous rules", 5, n)
    dash.publish("fleet/news", b"still", 1)
    bb.expect("fleet/news")
    with open(b.acl, "w") as f:
        f.write(good)


def test_file_change_without_signal():
    n = b.log_count()
    tmp = b.acl + ".new"
    with open(tmp, "w") as f:
        f.write("pattern readwrite devices/%u/#\nuser dash\ntopic read devices/#\n")
    os.rename(tmp, b.acl)  # atomic replace, as editors and config management do
    b.log_wait(r"acl: loaded .* \(2 rules\)", 5, n)
    dash.publish("fleet/news", b"gone", 1)  # dash lost write access to fleet/#
    bb.expect_none()


h.run(test_own_subtree, test_isolation, test_dashboard_reads_all, test_reload_sighup,
      test_broken_file_keeps_rules, test_file_change_without_signal)
