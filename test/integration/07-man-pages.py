"""The man pages are generated from docs/ (packaging/md2man.py) and stay in sync with the code:
each renders without groff errors, and every key of the configuration directive table
(broker/app/config*.c) is documented both in docs/configuration.md and in certmq.conf(5)."""
import glob
import os
import re
import subprocess
import tempfile

from certmq_test import SRC, Harness, check

PAGES = [("certmq", "8", "MQTT broker", "docs/man/certmq.md"),
         ("certmq.conf", "5", "certmq configuration file", "docs/configuration.md"),
         ("certmq-acl", "5", "certmq topic permissions file", "docs/acl.md"),
         ("certmq-pki", "1", "the fleet PKI for certmq", "docs/pki.md")]

h = Harness()
out = tempfile.mkdtemp(prefix="certmq-man-")


def render(name, section, desc, doc):
    page = os.path.join(out, "%s.%s" % (name, section))
    with open(page, "w") as f:
        subprocess.run(["/usr/bin/python3", os.path.join(SRC, "packaging/md2man.py"), name, section,
                        desc, os.path.join(SRC, doc)], stdout=f, check=True, timeout=30)
    r = subprocess.run(["groff", "-man", "-Tutf8", "-K", "utf8", "-ww"], stdin=open(page),
                       capture_output=True, text=True, timeout=30)
    return page, r


def test_pages_render():
    for name, section, desc, doc in PAGES:
        _, r = render(name, section, desc, doc)
        check(r.returncode == 0, "%s(%s) renders (%s)" % (name, section, r.stderr[:200]))
        bad = [l for l in r.stderr.splitlines() if "error" in l or "macro" in l]
        check(not bad, "%s(%s): groff says %s" % (name, section, bad[:3]))
        check(len(r.stdout) > 2000, "%s(%s) has content" % (name, section))


def test_every_key_documented_in_both():
    keys = set()
    for src in glob.glob(os.path.join(SRC, "broker/app/config*.c")):
        keys |= set(re.findall(r'\{"([a-z0-9_]+)\*?", T_[A-Z]+', open(src).read()))
    check(len(keys) > 60, "found the directive table (%d keys)" % len(keys))
    md = open(os.path.join(SRC, "docs/configuration.md")).read()
    _, r = render(*PAGES[1])
    man = re.sub(r".\x08", "", r.stdout)  # drop overstrike, if any
    missing_md = sorted(k for k in keys if not re.search(r"`%s\b" % re.escape(k), md))
    missing_man = sorted(k for k in keys if not re.search(r"(?<![\w-])%s\b" % re.escape(k), man))
    check(not missing_md, "keys not in docs/configuration.md: %s" % missing_md)
    check(not missing_man, "keys not in certmq.conf(5): %s" % missing_man)


h.run(test_pages_render, test_every_key_documented_in_both)
