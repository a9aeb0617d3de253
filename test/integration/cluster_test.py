"""A real certmq cluster on loopback for the cluster tests: 3 nats-server processes clustered with
routes (JetStream on, stores in the test's temp dir, monitoring ports for the checks), and certmq
nodes each connected first to its own NATS server (the others as fail-over). Every process is
started and stopped by PID through the Harness; every wait is bounded."""
import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.request

from certmq_test import TestFailure, check, free_port, wait_for  # noqa: F401  (re-exported)

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"
# Long topics become long subjects: the NATS servers accept protocol lines up to this, and the
# nodes' cluster_max_subject_length stays below it.
MAX_CONTROL_LINE = 262144
MAX_SUBJECT = 250000


class PortTaken(TestFailure):
    """A port free_port() chose was taken by another test before nats-server bound it."""


class NatsServer:
    def __init__(self, h, name, port, cport, mport, route_ports, extra=""):
        self.name, self.port, self.mport = name, port, mport
        store = os.path.join(h.tmp, "js-" + name)
        conf = os.path.join(h.tmp, name + ".conf")
        routes = ", ".join("nats-route://127.0.0.1:%d" % p for p in route_ports)
        with open(conf, "w") as f:
            f.write("server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n"
                    "max_control_line: %d\n"
                    "jetstream { store_dir: \"%s\", max_memory_store: 64MB, max_file_store: 256MB }\n"
                    % (name, port, mport, MAX_CONTROL_LINE, store))
            f.write(extra)
            if route_ports:
                f.write("cluster { name: certmq-test, listen: 127.0.0.1:%d, routes: [%s] }\n"
                        % (cport, routes))
        self.log = open(os.path.join(h.tmp, name + ".log"), "wb")
        self.proc = subprocess.Popen([NATS_SERVER, "-c", conf], stdout=self.log, stderr=subprocess.STDOUT)
        h.procs.append(self.proc)
        wait_for(self._up, 10, "nats-server %s monitoring port" % name)

    def _up(self):
        if self.proc.poll() is not None:
            self.log.flush()
            if b"address already in use" in open(self.log.name, "rb").read():
                raise PortTaken(self.name)
        check(self.proc.poll() is None, "nats-server %s exited (see %s)" % (self.name, self.log.name))
        try:
            self.get("varz")
            return True
        except (OSError, http.client.HTTPException):
            # Not answering yet, or the port is another server's (free_port() can hand a port out
            # again once its probe socket is closed): the log says "address already in use".
            return False

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (self.mport, path), timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def route_out_msgs(self):
        """Messages this server sent over its routes, per peer server name."""
        return {r.get("remote_name", r.get("remote_id")): r["out_msgs"] for r in self.get("routez")["routes"]}


class Cluster:
    """3 NATS servers; nodes are certmq brokers made with h.broker (so the harness stops them)."""

    def __init__(self, h, pki, acl, nodes=3, extra="", crlfiles=None, node_extra=None, nats_extra=""):
        self.h = h
        for attempt in range(4):  # tests run in parallel: a chosen port can be taken meanwhile
            picked = set()
            while len(picked) < 9:  # nine different ports, whatever the kernel hands out again
                picked.add(free_port())
            picked = list(picked)
            ports = [tuple(picked[3 * i:3 * i + 3]) for i in range(3)]
            self.nats = []
            try:
                for i, (p, cp, mp) in enumerate(ports):
                    others = [ports[k][1] for k in range(3) if k != i]
                    self.nats.append(NatsServer(h, "n%d" % (i + 1), p, cp, mp, others, nats_extra))
                break
            except PortTaken:
                self.stop_nats()
                if attempt == 3:
                    raise
        wait_for(lambda: all(s.get("routez")["num_routes"] >= 2 for s in self.nats), 15, "NATS routes")
        self.ports, self.pki, self.acl, self.extra = ports, pki, acl, extra
        self.crlfiles = crlfiles  # per node: its own CRL files (None: the PKI's CRL for all)
        self.node_extra = node_extra  # per node: node_extra(i) is added to node i's config
        self.nodes = []
        for i in range(nodes):
            self.add_node()

    def add_node(self):
        """Start one more certmq node (node N, first connected to NATS server N mod 3) and wait
        until it is linked to NATS and watches the retained bucket."""
        i = len(self.nodes)
        urls = " ".join("nats://127.0.0.1:%d" % self.ports[(i + k) % 3][0] for k in range(3))
        b = self.h.broker(self.pki, acl=self.acl,
                          extra="cluster_name test\nnode_name node%d\ncluster_nats %s\n"
                          "cluster_max_subject_length %d\n%s%s" % (
                              i + 1, urls, MAX_SUBJECT, self.extra,
                              self.node_extra(i) if self.node_extra else ""),
                          crlfiles=self.crlfiles[i] if self.crlfiles else None)
        b.log_wait(r"routing link connected", 10)
        b.log_wait(r"shared link connected", 10)
        b.log_wait(r"retained messages in JetStream bucket", 15)
        b.log_wait(r"sessions owned through JetStream stream", 15)
        self.nodes.append(b)
        return b

    def stop_nats(self):
        for s in self.nats:
            s.stop()


def stream_detail(servers, stream="CMQ_Q_test", led=True):
    """A JetStream stream's /jsz details from the first live server among servers that knows it
    (led: only once it has a leader; st["cluster"]["leader"] names its server), or None."""
    for s in servers:
        if s.proc.poll() is not None:
            continue
        try:
            j = s.get("jsz?accounts=true&streams=true")
        except (OSError, http.client.HTTPException):
            continue
        for acc in j.get("account_details", []):
            for st in acc.get("stream_detail", []):
                if st["name"] == stream and (not led or st.get("cluster", {}).get("leader")):
                    return st
    return None


def stream_leader(servers, stream="CMQ_Q_test"):
    """server_name of the NATS server leading the stream, or None."""
    st = stream_detail(servers, stream)
    return st["cluster"]["leader"] if st else None


def durable_nodes(tmp, extra=""):
    """node_extra for Cluster: persistence true, each node in its own directory under tmp."""
    def node_extra(i):
        d = os.path.join(tmp, "db%d" % i)
        os.makedirs(d, exist_ok=True)
        return "persistence true\npersistence_location %s\n%s" % (d, extra)
    return node_extra


def wait_routed(pub, sub, topic, timeout=10):
    """Interest travels from a node through NATS routes after its SUBACK: publish probes on topic
    from pub until sub gets one, then forget the probes."""
    end = time.time() + timeout
    while time.time() < end:
        pub.publish(topic, b"probe", 0)
        try:
            sub.expect(topic, 0.2)
            time.sleep(0.3)
            with sub.cv:
                sub.messages = [m for m in sub.messages if m[0] != topic]
            return
        except TestFailure:
            pass
    raise TestFailure("interest in %s never reached the publishing node" % topic)

