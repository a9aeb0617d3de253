"""The Debian package, end to end, as an operator uses it: build it (CPack), install it, make the
PKI as the certmq user, start the service (systemd when it runs the machine, else the unit's own
ExecStartPre/ExecStart as its User), serve a device with mosquitto_pub/sub, reload, stop, purge.
Without systemd the test is the service manager: it listens on NOTIFY_SOCKET and checks that
certmq reports READY, RELOADING then READY, and STOPPING. Needs root (it installs a package);
registered for the non-sanitizer build only (test/CMakeLists: integration/96-package)."""
import configparser
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from certmq_test import Harness, check, free_port, wait_for  # noqa: E402

BUILD = os.environ["CERTMQ_BUILD"]
PKI = "/etc/certmq/pki"
h = Harness()
state = {}


def sh(*cmd, timeout=120, ok=True):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if ok:
        check(r.returncode == 0, "%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr[-800:]))
    return r


def as_certmq(*cmd):
    return sh("runuser", "-u", "certmq", "--", *cmd)


def systemd_runs():
    return os.path.isdir("/run/systemd/system")


def unit():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read("/lib/systemd/system/certmq.service")
    return cp["Service"]


def test_build_and_install():
    check(os.geteuid() == 0, "runs as root (it installs a package)")
    for old in glob.glob(os.path.join(BUILD, "certmq_*.deb")):
        os.unlink(old)
    sh("cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"), "-B", BUILD,
       timeout=300)
    debs = glob.glob(os.path.join(BUILD, "certmq_*.deb"))
    check(len(debs) == 1, "one package built: %s" % debs)
    sh("dpkg", "-i", debs[0])
    state["installed"] = True
    for f in ("/usr/sbin/certmq", "/usr/bin/certmq-pki", "/etc/certmq/certmq.conf",
              "/etc/certmq/acl", "/lib/systemd/system/certmq.service",
              "/usr/lib/certmq/certmq_ocsp.so"):
        check(os.path.exists(f), "%s installed" % f)
    # Man pages from the package's contents: minimal Debian images tell dpkg not to unpack
    # /usr/share/man (path-exclude), so the files on disk are checked only where they landed.
    content = sh("dpkg-deb", "-c", debs[0]).stdout
    for m in ("man1/certmq-pki.1", "man5/certmq.conf.5", "man5/certmq-acl.5", "man8/certmq.8"):
        check("/usr/share/man/" + m in content, "%s in the package" % m)
    conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "certmq").stdout
    check("/etc/certmq/certmq.conf" in conffiles and "/etc/certmq/acl" in conffiles,
          "configuration files are conffiles")
    sh("getent", "passwd", "certmq")
    check(os.stat(PKI).st_uid == int(sh("id", "-u", "certmq").stdout), "the PKI directory is certmq's")
    if os.path.exists("/usr/share/man/man5/certmq.conf.5"):
        man = sh("man", "-P", "cat", "5", "certmq.conf", ok=False)
        check(man.returncode == 0 and "max_handshakes" in man.stdout, "man certmq.conf works")


def test_start_serve_reload_stop():
    check(state.get("installed"), "installed")
    as_certmq("certmq-pki", "-d", PKI, "init")
    as_certmq("certmq-pki", "-d", PKI, "server", "server", "DNS:localhost")
    as_certmq("certmq-pki", "-d", PKI, "device", "dev1")
    as_certmq("certmq-pki", "-d", PKI, "crl")
    port, wsport = free_port(), free_port()
    conf = open("/etc/certmq/certmq.conf").read()
    conf = re.sub(r"^listener 8883$", "listener %d 127.0.0.1" % port, conf, flags=re.M)
    conf = re.sub(r"^listener 8884$", "listener %d 127.0.0.1" % wsport, conf, flags=re.M)
    open("/etc/certmq/certmq.conf", "w").write(conf)
    if systemd_runs():
        sh("systemctl", "start", "certmq")
        state["systemd"] = True
    else:
        start_by_hand()
    sub = subprocess.Popen(["mosquitto_sub", "-h", "localhost", "-p", str(port), "--cafile",
                            PKI + "/ca.crt", "--cert", PKI + "/issued/dev1.crt", "--key",
                            PKI + "/private/dev1.key", "-t", "devices/dev1/#", "-C", "1", "-W", "20"],
                           stdout=subprocess.PIPE, text=True)
    got = ""
    for _ in range(40):  # publish until the subscriber (connecting meanwhile) has it
        sh("mosquitto_pub", "-h", "localhost", "-p", str(port), "--cafile", PKI + "/ca.crt",
           "--cert", PKI + "/issued/dev1.crt", "--key", PKI + "/private/dev1.key",
           "-t", "devices/dev1/t", "-m", "from-the-package", "-q", "1")
        if sub.poll() is not None:
            break
        time.sleep(0.25)
    got = sub.communicate(timeout=25)[0]
    check(got.strip() == "from-the-package", "a device is served (got %r)" % got)
    if state.get("systemd"):
        sh("systemctl", "reload", "certmq")
        check(sh("systemctl", "is-active", "certmq", ok=False).stdout.strip() == "active",
              "active after reload")
        sh("systemctl", "stop", "certmq")
    else:
        reload_and_stop_by_hand()


def start_by_hand():
    """The unit's ExecStartPre and ExecStart as its User, with the test as the notify socket."""
    svc = unit()
    check(svc.get("Type") == "notify", "Type=notify")
    check("HUP" in svc.get("ExecReload", ""), "ExecReload sends SIGHUP")
    pre, start = svc["ExecStartPre"].split(), svc["ExecStart"].split()
    sh("runuser", "-u", svc["User"], "--", *pre)
    sock_path = os.path.join(tempfile.mkdtemp(prefix="certmq-notify-"), "notify")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(sock_path)
    os.chmod(os.path.dirname(sock_path), 0o755)
    os.chmod(sock_path, 0o777)
    state["notify"] = ns
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    log = open(os.path.join(os.path.dirname(sock_path), "certmq.log"), "w")
    state["log"] = log.name
    p = subprocess.Popen(["runuser", "-u", svc["User"], "--"] + start, env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    state["proc"] = p
    expect_notify("READY=1")


def expect_notify(what, timeout=15):
    ns = state["notify"]
    ns.settimeout(timeout)
    end = time.time() + timeout
    while time.time() < end:
        msg = ns.recv(4096).decode()
        if what in msg.split("\n"):
            return msg
    raise AssertionError("no %s from certmq" % what)


def certmq_pid():
    """runuser forks: the broker is its child."""
    out = sh("pgrep", "-P", str(state["proc"].pid), "-x", "certmq").stdout.split()
    check(len(out) == 1, "one certmq under runuser")
    return int(out[0])


def reload_and_stop_by_hand():
    pid = certmq_pid()
    os.kill(pid, signal.SIGHUP)
    expect_notify("RELOADING=1")
    expect_notify("READY=1")
    wait_for(lambda: "SIGHUP: reloading" in open(state["log"]).read(), 10, "reload logged")
    os.kill(pid, signal.SIGTERM)
    expect_notify("STOPPING=1")
    check(state["proc"].wait(timeout=20) == 0, "certmq stopped cleanly")


def test_purge():
    check(state.get("installed"), "installed")
    sh("dpkg", "--purge", "certmq")
    state["installed"] = False
    for f in ("/usr/sbin/certmq", "/etc/certmq", "/var/lib/certmq", "/lib/systemd/system/certmq.service"):
        check(not os.path.exists(f), "%s removed by purge" % f)
    check(sh("getent", "passwd", "certmq", ok=False).returncode != 0, "the certmq user is gone")


def cleanup():
    p = state.get("proc")
    if p and p.poll() is None:
        subprocess.run(["pkill", "-P", str(p.pid)])
        p.wait(timeout=20)
    if state.get("installed"):
        subprocess.run(["dpkg", "--purge", "certmq"], capture_output=True)


try:
    h.run(test_build_and_install, test_start_serve_reload_stop, test_purge)
finally:
    cleanup()
