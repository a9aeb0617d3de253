"""Chaos under load (issue #16: a node or a NATS server dies, and nothing acknowledged is lost).

Each scenario starts its own cluster: 3 nats-server processes (JetStream, pinging their clients
every second) and 3 certmq nodes with `persistence true` (a QoS 1 PUBACK means JetStream holds the
message), behind HAProxy (TCP passthrough, round robin, health checks). P publishers send QoS 1,
each on its own topic load/seq/N with its sequence number as payload (persistent sessions, so paho
sends what was not acknowledged again after reconnecting), and S persistent QoS 1 subscribers
read load/# (one whose session was lost, session present 0, subscribes again as a device would:
what it missed meanwhile counts as missing); the devices spread over the nodes through HAProxy.
Then:

* node_kill: the node holding the most devices gets SIGKILL and stays dead;
* nats_kill: the NATS server leading the stream CMQ_Q_test gets SIGKILL and stays dead (the nodes
  fail over to the other two servers by themselves);
* zombie: a node holding devices is stopped (SIGSTOP) for 20 s, then runs again (SIGCONT). A
  stopped process still completes TCP handshakes (the kernel does), so HAProxy's health check here
  waits for a TLS ServerHello: the node is marked down and its connections are cut, its devices
  reconnect to the others while it sleeps (its NATS server drops it after two missed pings);
* none, node_stop: nothing happens, the node holding the most devices is stopped gracefully
  (SIGTERM: it hands its sessions over); the harness checking itself, not run by default.

Every (publisher, sequence number) that got a PUBACK reaches every subscriber (0 missing;
duplicates counted). node_kill (and node_stop): every device of the dead node is back within 5 s (p99), its
persistent sessions kept (session present), no PUBACK later than 5 s after its publish. nats_kill:
no PUBACK later than 10 s, every node still running. zombie: every device of the stopped node
reconnects elsewhere while it is stopped, nothing arrives on their old connections after it wakes,
and the woken node drops every session another node took meanwhile (its log says so).

Sizes (environment): CHAOS_PUBS (6), CHAOS_SUBS (6), CHAOS_RATE (20 msg/s per publisher),
CHAOS_SCENARIOS (node_kill,nats_kill,zombie; also none, node_stop), CHAOS_ROUNDS (1), CHAOS_RUN (10 s of load
after the event), CHAOS_DELIVERY_WAIT (30 s at most for the last deliveries), CHAOS_QUIET (10: that
wait ends once nothing has arrived for this long), CHAOS_KEEPALIVE (3 s: how fast a device notices
a dead connection nobody closed), CHAOS_FAIL_FAST (1: stop at the first failed scenario).
test/soak/cluster-chaos.sh runs the issue's acceptance size (30 + 30, 10 rounds)."""
import os
import re
import signal
import ssl
import threading
import time
import types

SCENARIOS = [s.strip() for s in os.environ.get("CHAOS_SCENARIOS", "node_kill,nats_kill,zombie").split(",")
             if s.strip()]
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))
PUBS = int(os.environ.get("CHAOS_PUBS", "6"))
SUBS = int(os.environ.get("CHAOS_SUBS", "6"))
RATE = float(os.environ.get("CHAOS_RATE", "20"))
WARMUP = float(os.environ.get("CHAOS_WARMUP", "3"))
RUN = float(os.environ.get("CHAOS_RUN", "10"))
ZOMBIE_STOP = float(os.environ.get("CHAOS_ZOMBIE_STOP", "20"))
ACK_WAIT = float(os.environ.get("CHAOS_ACK_WAIT", "20"))
DELIVERY_WAIT = float(os.environ.get("CHAOS_DELIVERY_WAIT", "30"))
QUIET = float(os.environ.get("CHAOS_QUIET", "10"))
KEEPALIVE = int(os.environ.get("CHAOS_KEEPALIVE", "3"))
FAIL_FAST = os.environ.get("CHAOS_FAIL_FAST") == "1"
# The harness's alarm: every wait of a scenario at its bound (set-up, load, event, PUBACKs,
# deliveries, teardown), for all of them (about 370 s by default, while a run takes about 95 s;
# CMakeLists.txt gives ctest's timeout room for it).
EVENT = {"none": 0, "node_stop": 0, "node_kill": 0, "nats_kill": 0, "zombie": ZOMBIE_STOP}
os.environ.setdefault("CERTMQ_TEST_TIMEOUT", str(int(20 + ROUNDS * sum(
    45 + 0.3 * (PUBS + SUBS) + WARMUP + EVENT.get(s, 0) + RUN + ACK_WAIT + DELIVERY_WAIT
    for s in SCENARIOS))))

from certmq_test import HAProxy, Harness, TestFailure, check, wait_for  # noqa: E402
from cluster_test import Cluster, durable_nodes, stream_leader  # noqa: E402

FILTER = "load/#"
check(all(s in EVENT for s in SCENARIOS), "CHAOS_SCENARIOS: each one of %s" % ", ".join(EVENT))
h = Harness()
pki = h.pki()
pki.device("any")
ACL = "user any\ntopic readwrite #\n"


class Scope:
    """One scenario's own directory (configurations, NATS stores, logs) inside the harness's,
    sharing its lists of processes, brokers and clients: whatever happens, the harness stops
    everything by PID."""

    def __init__(self, name):
        self.tmp = os.path.join(h.tmp, name)
        os.makedirs(self.tmp)
        self.procs, self.brokers, self.clients = h.procs, h.brokers, h.clients

    def broker(self, *a, **kw):
        return Harness.broker(self, *a, **kw)

    def paho(self, *a, **kw):
        return Harness.paho(self, *a, **kw)


class Device:
    """A paho client through HAProxy (persistent session, QoS 1) that reconnects at once and
    records its connections (time, session present), what it receives and its PUBACKs, each with
    the number of the connection it came on."""

    def __init__(self, scope, front, cid, sub):
        self.cid = cid
        self.c = scope.paho(front, pki, "any", client_id=cid, clean=False, keepalive=KEEPALIVE)
        check(self.c.connack == (0, 0), "%s connected: %r" % (cid, self.c.connack))
        self.conn = 1  # connections so far (the CONNACK above was the first)
        self.ups, self.downs = [(time.time(), 0)], []
        self.got, self.probes, self.acked = [], 0, []
        self.sent, self.mid_seq = {}, {}  # publishers: seq -> time published, mid -> seq
        self.resubscribed = 0
        self.sub = sub
        p = self.c.c
        p.reconnect_delay_set(0.05, 0.5)
        p.max_inflight_messages_set(0)  # no queue in paho: a reconnection resends everything
        p.on_connect = self._connected
        p.on_disconnect = lambda *a: self.downs.append(time.time())
        p.on_message = self._message
        p.on_publish = self._puback

    def _connected(self, c, u, flags, rc, props=None):
        if rc != 0:
            return
        self.conn += 1
        sp = flags.get("session present", 0)
        self.ups.append((time.time(), sp))
        if self.sub and not sp:
            # The session was lost: a real device subscribes again (what it missed meanwhile
            # shows as missing).
            self.resubscribed += 1
            c.subscribe(FILTER, 1)

    def _message(self, c, u, m):
        if m.topic.startswith("load/seq/"):
            self.got.append((int(m.topic[9:]), int(m.payload), time.time(), self.conn))
        else:
            self.probes += 1

    def _puback(self, c, u, mid):
        self.acked.append((mid, time.time(), self.conn))
        self.c.acks.add(mid)

    def acks(self):
        """seq -> time of its first PUBACK."""
        out = {}
        for mid, t, _ in list(self.acked):
            seq = self.mid_seq.get(mid)
            if seq is not None and seq not in out:
                out[seq] = t
        return out

    def back_after(self, t):
        """Time of the first connection after t (or None)."""
        later = [u for u in self.ups if u[0] > t]
        return later[0] if later else None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float("nan")


def secs(x):
    return "-" if x != x else "%.2f s" % x


def names(cids, n=4):
    return ", ".join(cids[:n]) + (" and %d more" % (len(cids) - n) if len(cids) > n else "")


def devices_on(node, devs):
    return [d for d in devs if any(("client %s connected" % d.cid) in l for l in node.log())]


def client_hello():
    """A TLS ClientHello, in hex, for HAProxy's health check."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    out = ssl.MemoryBIO()
    try:
        ctx.wrap_bio(ssl.MemoryBIO(), out).do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read().hex()


def scenario(kind, rnd):
    scope = Scope("%s-%d" % (kind, rnd))

    cl = Cluster(scope, pki, ACL, extra="max_queued_messages 100000\n",
                 node_extra=durable_nodes(scope.tmp), nats_extra='ping_interval: "1s"\nping_max: 2\n')
    hap, devs = None, []
    try:
        for n in cl.nodes:
            n.log_wait(r"QoS >= 1 messages made durable in JetStream stream CMQ_Q_test", 15)
        if kind == "zombie":
            # A stopped process still completes TCP handshakes (the kernel does): HAProxy's plain
            # check would keep sending a third of the reconnections to it. This check waits for
            # the TLS ServerHello, so the stopped node is marked down and its connections cut.
            hap = HAProxy(scope, [n.port for n in cl.nodes],
                          backend="    balance roundrobin\n    option redispatch\n    retries 3\n"
                          "    timeout check 1s\n    option tcp-check\n    tcp-check connect\n"
                          "    tcp-check send-binary %s\n    tcp-check expect binary 1603\n" % client_hello(),
                          server="check inter 300ms fall 2 rise 2 on-marked-down shutdown-sessions")
        else:
            hap = HAProxy(scope, [n.port for n in cl.nodes])
        run(kind, rnd, scope, cl, hap, devs)
    finally:
        teardown(cl, hap, devs)


def run(kind, rnd, scope, cl, hap, devs):
    front = types.SimpleNamespace(port=hap.port)
    tag = "%s-%d" % (kind, rnd)
    for i in range(SUBS):  # each in devs as soon as it exists: the teardown disconnects it
        devs.append(Device(scope, front, "chaos-%s-sub-%d" % (tag, i), True))
        check(devs[-1].c.subscribe(FILTER, 1, timeout=10) == 1, "QoS 1 granted")
    subs = list(devs)
    for i in range(PUBS):
        devs.append(Device(scope, front, "chaos-%s-pub-%d" % (tag, i), False))
    pubs = devs[len(subs):]
    # Interest travels between nodes: wait until a probe from every publisher reaches everyone.
    for p in pubs:
        p.c.publish("load/probe", b"x", 1, timeout=10)
    wait_for(lambda: all(d.probes >= PUBS for d in subs), 15, "probes everywhere")
    on = {n: devices_on(n, devs) for n in cl.nodes}
    print("info %s: devices per node %s" % (tag, [len(on[n]) for n in cl.nodes]))

    stop = threading.Event()

    def publish(i):
        p, k, t0 = pubs[i], 0, time.time()
        while not stop.is_set():
            t = time.time()
            info = p.c.c.publish("load/seq/%d" % i, b"%d" % k, 1)
            p.mid_seq[info.mid] = k
            p.sent[k] = t
            k += 1
            time.sleep(max(0, t0 + k / RATE - time.time()))
    threads = [threading.Thread(target=publish, args=(i,), daemon=True) for i in range(PUBS)]
    t_start = time.time()
    for t in threads:
        t.start()
    time.sleep(WARMUP)

    # ---- the event
    victims, victim, t_event, t_wake = [], None, time.time(), None
    if kind in ("node_kill", "node_stop", "zombie"):
        # the node holding the most devices, subscribers first
        victim = max(cl.nodes, key=lambda n: (len([d for d in on[n] if d.sub]), len(on[n])))
        victims = on[victim]
        check(victims, "some devices landed on the chosen node")
        marks = {d: d.conn for d in victims}
        print("info %s: node%d holds %d subscriber(s) and %d publisher(s)" % (
            tag, cl.nodes.index(victim) + 1, len([d for d in victims if d.sub]),
            len([d for d in victims if not d.sub])))
        t_event = time.time()
        if kind == "node_kill":
            victim.proc.kill()
            victim.proc.wait(5)
            h.brokers.remove(victim)  # dead by design: not an exit status to check
            time.sleep(RUN)
        elif kind == "node_stop":
            victim.proc.terminate()  # hands its sessions over (Harness.finish: exit status 0)
            time.sleep(RUN)
        else:
            log_mark = len(victim.log())
            os.kill(victim.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(ZOMBIE_STOP)
            finally:
                os.kill(victim.proc.pid, signal.SIGCONT)
            t_wake = time.time()
            time.sleep(RUN)
    elif kind == "nats_kill":
        wait_for(lambda: stream_leader(cl.nats) is not None, 10, "a leader of CMQ_Q_test")
        leader = stream_leader(cl.nats)
        srv = [s for s in cl.nats if s.name == leader][0]
        # the node that was first connected to that server (cluster_test: node i to server i)
        moved = cl.nodes[cl.nats.index(srv)]
        log_mark = len(moved.log())
        print("info %s: killing nats-server %s (leader of CMQ_Q_test)" % (tag, leader))
        t_event = time.time()
        srv.proc.kill()
        srv.proc.wait(5)
        time.sleep(RUN)
        print("info %s: CMQ_Q_test now led by %s" % (tag, stream_leader(cl.nats)))
    else:
        time.sleep(RUN)
    stop.set()
    for t in threads:
        t.join(5)
    t_stop = time.time()

    # ---- every PUBACK (bounded), then every delivery (bounded)
    try:
        wait_for(lambda: all(len(p.acks()) >= len(p.sent) for p in pubs), ACK_WAIT, "every PUBACK")
    except TestFailure:
        pass  # counted below
    t_acked = time.time()
    acked = {(i, seq) for i, p in enumerate(pubs) for seq in p.acks()}
    sent = sum(len(p.sent) for p in pubs)

    def received(d):
        return {(i, seq) for i, seq, _, _ in list(d.got)}
    end, last, last_n = time.time() + DELIVERY_WAIT, time.time(), -1
    while time.time() < end:
        if all(acked <= received(d) for d in subs):
            break
        n = sum(len(d.got) for d in subs)
        if n != last_n:
            last, last_n = time.time(), n
        elif time.time() - last > QUIET:
            break
        time.sleep(0.1)
    t_delivered = time.time()

    dead = [d.cid for d in devs if not (d.c.c._thread and d.c.c._thread.is_alive())]
    check(not dead, "harness: paho's thread ended in %s (see the traceback above)" % names(dead))

    # ---- the numbers
    missing = {d.cid: sorted(acked - received(d)) for d in subs}
    n_missing = sum(len(m) for m in missing.values())
    dups = sum(len(d.got) - len(received(d)) for d in subs)
    lat, ack_times = [], []
    for p in pubs:
        for seq, t in p.acks().items():
            lat.append(t - p.sent[seq])
            ack_times.append(t)
    ack_times.sort()
    gaps = [b - a for a, b in zip(ack_times, ack_times[1:]) if a <= t_stop]
    stall, gap = max(lat or [0]), max(gaps or [0])
    unacked = sent - len(acked)
    back = []  # node_kill, zombie: from the event to the device's next connection
    for d in victims:
        u = d.back_after(t_event)
        if u:
            back.append(u[0] - t_event)
    if not victims:  # otherwise: each connection after the event, from the loss of the previous
        for d in devs:
            for k, (t, _) in enumerate(d.ups):
                lost = [x for x in d.downs if d.ups[k - 1][0] < x < t] if k else []
                if t > t_event and lost:
                    back.append(t - lost[0])
    lost_sessions = [d.cid for d in victims if d.back_after(t_event) and not d.back_after(t_event)[1]]
    print("%s: %d published, %d acknowledged (%d never), %d missing, %d duplicate(s), "
          "reconnect p50 %s p99 %s (%d of %d), max PUBACK stall %.2f s "
          "(longest gap without any PUBACK %.2f s), %d session(s) lost, %d resubscription(s); "
          "acks %.1f s, deliveries %.1f s after the load" % (
              tag, sent, len(acked), unacked, n_missing, dups, secs(pct(back, 50)), secs(pct(back, 99)),
              len(back), len(victims) if victims else len(back), stall, gap, len(lost_sessions),
              sum(d.resubscribed for d in subs),
              t_acked - t_stop, t_delivered - t_acked))
    for cid, m in missing.items():
        if m:
            print("info %s: %s misses %d, e.g. %r" % (tag, cid, len(m), m[:8]))
    reconnects = sum(len([u for u in d.ups if u[0] > t_start]) for d in devs)
    print("info %s: %d reconnection(s) of all devices during the load" % (tag, reconnects))
    done = [m for n in cl.nodes for line in n.log()
            for m in [re.search(r"replay for .* done: (\d+) message\(s\) queued again, (\d+) skipped", line)] if m]
    print("info %s: %d replay(s): %d deliveries queued again, %d message(s) skipped (delivered live already)" % (
        tag, len(done), sum(int(m.group(1)) for m in done), sum(int(m.group(2)) for m in done)))

    # ---- the checks (all of them, then one failure naming each that failed)
    fails = []

    def need(cond, what):
        if not cond:
            fails.append(what)
    need(n_missing == 0, "%d acknowledged message(s) missing at the subscribers" % n_missing)
    need(unacked == 0, "%d publish(es) never acknowledged within %.0f s" % (unacked, ACK_WAIT))
    for n in cl.nodes:
        if n is not victim or kind == "zombie":
            need(n.proc.poll() is None, "node%d still running" % (cl.nodes.index(n) + 1))
    if kind in ("none", "node_kill", "node_stop"):
        need(stall <= 5, "PUBACK stall %.2f s > 5 s" % stall)
    if kind == "nats_kill":
        need(stall <= 10, "PUBACK stall %.2f s > 10 s" % stall)
        need(any("routing link reconnected to NATS" in l for l in moved.log()[log_mark:]),
             "node%d moved to another NATS server" % (cl.nodes.index(moved) + 1))
    if kind in ("node_kill", "node_stop"):
        need(len(back) == len(victims), "%d of %d devices of the dead node back" % (len(back), len(victims)))
        need(pct(back, 99) < 5, "devices of the dead node back in p99 %.2f s (>= 5 s)" % pct(back, 99))
        need(not lost_sessions, "%d persistent session(s) of the dead node lost (session present 0): %s"
             % (len(lost_sessions), names(lost_sessions)))
    if kind == "zombie":
        early = [d.cid for d in victims if not (d.back_after(t_event) and d.back_after(t_event)[0] < t_wake)]
        need(not early, "devices of the stopped node not reconnected elsewhere while it was stopped: %s"
             % names(early))
        # Nothing on an old connection to the woken node: no delivery, no PUBACK.
        stale = [d.cid for d in victims
                 if any(c == marks[d] and t > t_wake for _, _, t, c in list(d.got)) or
                 any(c == marks[d] and t > t_wake for _, t, c in list(d.acked))]
        need(not stale, "the woken node delivered or acknowledged on connections it lost: %s"
             % names(stale))
        # Late copies: a message first received before the wake-up and again after it (the woken
        # node publishing what it still had from its old connections, say). Counted, allowed.
        late = 0
        for d in subs:
            first = {}
            for i, seq, t, _ in list(d.got):
                if (i, seq) in first and first[(i, seq)] < t_wake <= t - 0.5:
                    late += 1
                first.setdefault((i, seq), t)
        print("info %s: %d copy(ies) delivered again more than 0.5 s after the wake-up" % (tag, late))
        # The woken node gives up every session another node took meanwhile (fenced after its
        # NATS link came back, or a hand-over that never finished): its log names each one.
        log = victim.log()[log_mark:]
        kept = [d.cid for d in victims if not any(
            ("client %s (" % d.cid) in l and "dropped" in l for l in log)]
        print("info %s: the woken node dropped %d of %d session(s) taken meanwhile" % (
            tag, len(victims) - len(kept), len(victims)))
        need(not kept, "the woken node did not drop the sessions taken while it was stopped: %s"
             % names(kept))
    check(not fails, "; ".join(fails))


def teardown(cl, hap, devs):
    """Devices first (so they do not chase the nodes), then the nodes (SIGTERM to all at once),
    HAProxy and the NATS servers. Exit statuses and sanitizer reports: Harness.finish."""
    for d in devs:  # DISCONNECT from all, then wait for their threads (each takes up to 1 s)
        try:
            d.c.c.disconnect()
        except Exception:
            pass
    for d in devs:
        d.c.c.loop_stop()
    for n in cl.nodes:  # a second SIGTERM: no waiting for the devices to claim their sessions
        for _ in range(2):
            if n.proc.poll() is None:
                n.proc.send_signal(signal.SIGTERM)
                time.sleep(0.1)
    for n in cl.nodes:
        if n in h.brokers:
            try:
                n.proc.wait(15)
            except Exception:
                pass
            try:
                n.stop()  # kills it if still running (Harness.finish reports the exit status)
            except TestFailure as e:
                print("FAIL %s" % e)
    if hap:
        hap.stop()
    cl.stop_nats()


def make(kind, rnd):
    def t():
        if FAIL_FAST and h.failed:
            print("CHAOS_FAIL_FAST: stopping after the first failed scenario")
            h.finish()  # exits
        scenario(kind, rnd)
    t.__name__ = "%s_round%d" % (kind, rnd)
    return t


h.run(*[make(s, r + 1) for r in range(ROUNDS) for s in SCENARIOS])
