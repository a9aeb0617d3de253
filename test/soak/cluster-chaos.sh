#!/usr/bin/env bash
# cluster-chaos.sh: issue #16's acceptance soak. 30 QoS 1 publishers and 30 persistent QoS 1
# subscribers spread over 3 certmq nodes through HAProxy (persistence true, 3 nats-server with
# JetStream); in each round one node is killed (SIGKILL), the NATS server leading the message
# stream is killed, and one node is stopped for 20 s (SIGSTOP, then SIGCONT), each on a fresh
# cluster; 10 rounds in a row. Every message that got a PUBACK must reach every subscriber. It is
# test/integration/91-cluster-chaos.py at a larger size: see its docstring for what each
# scenario checks. 5 QoS 1 msg/s per publisher (150 msg/s into the cluster, 4,500 deliveries/s):
# one Python process drives all 60 paho clients, and much more would measure Python's lag, not
# the broker's (CHAOS_RATE overrides it).
#
# usage: test/soak/cluster-chaos.sh [--short]
#   --short   the CI size instead (6 + 6 devices, 1 round: what ctest runs, about 95 s)
# environment: CERTMQ_BIN (default build/certmq), and any CHAOS_* of the test to override a
#   size, e.g. CHAOS_SCENARIOS=node_kill CHAOS_ROUNDS=3. CERTMQ_KEEP_TMP=1 keeps the logs.
# Stops at the first round with a loss (or any other failed check) and exits non-zero; about
# 15-20 minutes when nothing fails (a round of the three: about 100 s).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export CERTMQ_BIN=${CERTMQ_BIN:-$SRC/build/certmq}
[ -x "$CERTMQ_BIN" ] || { echo "cluster-chaos.sh: no broker at $CERTMQ_BIN (build it first)" >&2; exit 2; }
case "${1:-}" in
    --short)
        export CHAOS_PUBS=${CHAOS_PUBS:-6} CHAOS_SUBS=${CHAOS_SUBS:-6} CHAOS_ROUNDS=${CHAOS_ROUNDS:-1} ;;
    "")
        export CHAOS_PUBS=${CHAOS_PUBS:-30} CHAOS_SUBS=${CHAOS_SUBS:-30} CHAOS_ROUNDS=${CHAOS_ROUNDS:-10}
        export CHAOS_RATE=${CHAOS_RATE:-5} ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
export CHAOS_FAIL_FAST=1
cd "$SRC/test/integration"
echo "cluster-chaos: $CHAOS_PUBS publishers (${CHAOS_RATE:-20} msg/s each), $CHAOS_SUBS subscribers," \
     "$CHAOS_ROUNDS round(s) of ${CHAOS_SCENARIOS:-node_kill,nats_kill,zombie}"
# One process per round: paho 1.6 waits on its sockets with select(), which fails once a process
# has used descriptor numbers past 1024 (seven 60-device scenarios in one process get there).
rounds=$CHAOS_ROUNDS
for r in $(seq 1 "$rounds"); do
    echo "cluster-chaos: round $r of $rounds"
    CHAOS_ROUNDS=1 /usr/bin/python3 91-cluster-chaos.py
done
