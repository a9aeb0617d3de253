#!/usr/bin/env bash
# certmq-pki: every command, checked with openssl itself, and every error case.
set -u
SRC="${CERTMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
PKI_TOOL="$SRC/certs/certmq-pki"
OCSP_FAKE="$SRC/test/integration/ocsp_fake.py"
T=$(mktemp -d /tmp/certmq-pki-test-XXXXXX)
OCSP_PID=""
PIDS=()   # every background process this script starts, killed by PID on exit
cleanup() {
    local p _
    [ -n "$OCSP_PID" ] && kill "$OCSP_PID" 2>/dev/null
    for p in ${PIDS[@]+"${PIDS[@]}"}; do kill "$p" 2>/dev/null; done
    for p in ${PIDS[@]+"${PIDS[@]}"}; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
expect() { local name="$1"; shift; if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name"; fi; }
expect_fail() { local name="$1"; shift; if "$@" >"$T/out" 2>&1; then bad "$name (succeeded)"; else grep -q "certmq-pki:" "$T/out" && ok "$name" || bad "$name (no message)"; fi; }
P() { timeout 60 "$PKI_TOOL" -d "$T/pki" "$@"; }

expect_fail "no CA yet" P device d1
expect "init" P init
expect_fail "init twice" P init
expect "init --if-missing" P init --if-missing
expect "server" P server server
expect "device" P device dev1
expect_fail "device exists" P device dev1
expect_fail "invalid name" P device 'bad name'
expect_fail "unknown command" P frobnicate
expect_fail "unknown option" P device d9 --colour blue
expect "chain verifies" openssl verify -CAfile "$T/pki/ca.crt" "$T/pki/issued/dev1.crt"
openssl x509 -in "$T/pki/issued/dev1.crt" -noout -text > "$T/dev1.txt"
expect "clientAuth EKU" grep -q "TLS Web Client Authentication" "$T/dev1.txt"
expect "ECDSA P-256 key" grep -q "prime256v1" "$T/dev1.txt"
P device noeku --eku none >/dev/null
if openssl x509 -in "$T/pki/issued/noeku.crt" -noout -text | grep -q "Extended Key Usage"; then bad "--eku none"; else ok "--eku none"; fi
P device srv --eku serverAuth >/dev/null
expect "--eku serverAuth" sh -c "openssl x509 -in '$T/pki/issued/srv.crt' -noout -text | grep -q 'TLS Web Server Authentication'"
P device old --start 20200101000000Z --end 20210101000000Z >/dev/null
expect "expired cert is expired" sh -c "openssl verify -CAfile '$T/pki/ca.crt' '$T/pki/issued/old.crt' 2>&1 | grep -q 'certificate has expired'"
P device later --start 20400101000000Z --end 20410101000000Z >/dev/null
expect "future cert not yet valid" sh -c "openssl verify -CAfile '$T/pki/ca.crt' '$T/pki/issued/later.crt' 2>&1 | grep -q 'not yet valid'"
P device weird --cn 'a+b/c' >/dev/null
expect "CN taken literally" sh -c "openssl x509 -in '$T/pki/issued/weird.crt' -noout -subject -nameopt RFC2253 | grep -q 'CN=a\\\\+b/c'"
P device sans --san URI:urn:dev:7 --san DNS:d.example >/dev/null
expect "SANs" sh -c "openssl x509 -in '$T/pki/issued/sans.crt' -noout -text | grep -q 'URI:urn:dev:7'"
P device gw7 --o Acme --ou gateways --ou east --policy 1.3.6.1.4.1.99999.1.2 --policy 1.2.3 \
    --san URI:urn:acme:device:gateway:0007 >/dev/null
openssl x509 -in "$T/pki/issued/gw7.crt" -noout -subject -nameopt RFC2253 -ext certificatePolicies,subjectAltName > "$T/gw7.txt" 2>&1
expect "--o and --ou in the subject" grep -q "subject=CN=gw7,OU=east,OU=gateways,O=Acme" "$T/gw7.txt"
expect "--policy OIDs" sh -c "grep -q 'Policy: 1.3.6.1.4.1.99999.1.2' '$T/gw7.txt' && grep -q 'Policy: 1.2.3' '$T/gw7.txt'"
expect "SAN URI with --o" grep -q "URI:urn:acme:device:gateway:0007" "$T/gw7.txt"
expect "attributes chain verifies" openssl verify -CAfile "$T/pki/ca.crt" "$T/pki/issued/gw7.crt"
expect_fail "--policy not an OID" P device badoid --policy 1..2
expect_fail "--o with a dollar" P device badorg --o 'a$b'
expect_fail "--ou without a value" P device badou --ou
expect "revoke" P revoke dev1
expect_fail "revoke twice" P revoke dev1
expect_fail "revoke unknown" P revoke nobody
expect "revoked per CRL" sh -c "cat '$T/pki/ca.crt' '$T/pki/crl.pem' > '$T/bundle'; openssl verify -crl_check -CAfile '$T/bundle' '$T/pki/issued/dev1.crt' 2>&1 | grep -q 'certificate revoked'"
expect "list shows R" sh -c "P() { '$PKI_TOOL' -d '$T/pki' \"\$@\"; }; P list | grep -q '^R '"
expect "intermediate" P intermediate plant1
expect "device under intermediate" P device d2 --ca plant1
expect "intermediate chain verifies" openssl verify -CAfile "$T/pki/ca.crt" -untrusted "$T/pki/intermediates/plant1/ca.crt" "$T/pki/issued/d2.crt"
expect_fail "unknown intermediate" P device d3 --ca nope
expect "revoke-intermediate" P revoke-intermediate plant1
expect "crl-all" P crl-all
expect "intermediate revoked" sh -c "cat '$T/pki/ca.crt' '$T/pki/crl-chain.pem' > '$T/b2'; openssl verify -crl_check_all -CAfile '$T/b2' -untrusted '$T/pki/intermediates/plant1/ca.crt' '$T/pki/issued/d2.crt' 2>&1 | grep -q 'revoked'"
expect "expired CRL on request" P crl --start 20200101000000Z --end 20200201000000Z
expect "CRL is expired" sh -c "openssl crl -in '$T/pki/crl.pem' -noout -nextupdate | grep -q 2020"

# openssl ocsp serves the index.
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl ocsp -index "$T/pki/index.txt" -CA "$T/pki/ca.crt" -rsigner "$T/pki/ca.crt" -rkey "$T/pki/ca.key" \
    -port "$PORT" -nrequest 2 >/dev/null 2>&1 &
OCSP_PID=$!
sleep 0.5
timeout 10 openssl ocsp -issuer "$T/pki/ca.crt" -cert "$T/pki/issued/sans.crt" -url "http://127.0.0.1:$PORT" -CAfile "$T/pki/ca.crt" > "$T/o1" 2>&1
expect "OCSP good" grep -q ": good" "$T/o1"
timeout 10 openssl ocsp -issuer "$T/pki/ca.crt" -cert "$T/pki/issued/dev1.crt" -url "http://127.0.0.1:$PORT" -CAfile "$T/pki/ca.crt" > "$T/o2" 2>&1
expect "OCSP revoked" grep -q ": revoked" "$T/o2"
wait "$OCSP_PID" 2>/dev/null; OCSP_PID=""

# certmq-pki ocsp-responder: a delegated responder certificate, live revocation.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listening() { # $1 = stdout file, $2 = PID -> prints the port; at most 10 s
    local _
    for _ in $(seq 100); do
        if grep -q '^listening [0-9]' "$1" 2>/dev/null; then awk '/^listening /{ print $2; exit }' "$1"; return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
gone() { local _; for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
listens_loopback_only() { # $1 = port: one LISTEN socket, on 127.0.0.1 (state 0A in /proc/net/tcp*)
    local hex; hex=$(printf '%04X' "$1")
    [ "$(awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p' /proc/net/tcp /proc/net/tcp6 | wc -l)" -eq 1 ] &&
        awk -v a="0100007F:$hex" '$4 == "0A" && $2 == a' /proc/net/tcp | grep -q .
}
oq() { # $1 = output file, $2 = issuer cert, $3 = cert, $4 = URL, then extra options
    local out="$1" iss="$2" crt="$3" url="$4"; shift 4
    timeout 15 openssl ocsp -issuer "$iss" -cert "$crt" -url "$url" -CAfile "$T/pki/ca.crt" -resp_text "$@" > "$out" 2>&1
}

RPORT=$(free_port)
expect "device --ocsp-url" P device live --ocsp-url "http://127.0.0.1:$RPORT"
expect "AIA carries the OCSP URL" sh -c "openssl x509 -in '$T/pki/issued/live.crt' -noout -ocsp_uri | grep -qx 'http://127.0.0.1:$RPORT'"
"$PKI_TOOL" -d "$T/pki" ocsp-responder "$RPORT" --nmin 10 > "$T/r1.out" 2> "$T/r1.err" &
RESP_PID=$!; PIDS+=("$RESP_PID")
if [ "$(wait_listening "$T/r1.out" "$RESP_PID")" = "$RPORT" ]; then ok "ocsp-responder listening"; else bad "ocsp-responder listening: $(cat "$T/r1.err")"; fi
expect "responder on 127.0.0.1 only" listens_loopback_only "$RPORT"
RCRT="$T/pki/issued/@ocsp-responder.crt"
openssl x509 -in "$RCRT" -noout -text > "$T/rcrt.txt" 2>&1
expect "responder cert: OCSPSigning EKU" grep -q "OCSP Signing" "$T/rcrt.txt"
expect "responder cert: OCSP no check" grep -q "OCSP No Check" "$T/rcrt.txt"
expect "responder cert: CN" grep -q "Subject: CN *= *root OCSP responder" "$T/rcrt.txt"
expect "responder cert: key 0600" sh -c "[ \"\$(stat -c %a '$T/pki/private/@ocsp-responder.key')\" = 600 ]"
expect "responder cert signed by the CA" openssl verify -CAfile "$T/pki/ca.crt" "$RCRT"
oq "$T/q1" "$T/pki/ca.crt" "$T/pki/issued/live.crt" "$(openssl x509 -in "$T/pki/issued/live.crt" -noout -ocsp_uri)"
expect "responder: good" grep -q "live.crt: good" "$T/q1"
expect "responder: Response verify OK" grep -q "Response verify OK" "$T/q1"
expect "responder: delegated signer" grep -q "Responder Id: CN = root OCSP responder" "$T/q1"
expect "responder: nonce echoed" grep -q "OCSP Nonce" "$T/q1"
expect "responder: --nmin sets nextUpdate" grep -q "Next Update" "$T/q1"
expect "revoke while serving" P revoke live
oq "$T/q2" "$T/pki/ca.crt" "$T/pki/issued/live.crt" "http://127.0.0.1:$RPORT"
expect "responder: revoked at once" grep -q "live.crt: revoked" "$T/q2"
expect "responder: revoked, verify OK" grep -q "Response verify OK" "$T/q2"
P device fresh >/dev/null
oq "$T/q3" "$T/pki/ca.crt" "$T/pki/issued/fresh.crt" "http://127.0.0.1:$RPORT"
expect "responder: device issued while serving is good" grep -q "fresh.crt: good" "$T/q3"
timeout 60 "$PKI_TOOL" -d "$T/other" init --cn "Other CA" >/dev/null && timeout 60 "$PKI_TOOL" -d "$T/other" device stranger >/dev/null
oq "$T/q4" "$T/other/ca.crt" "$T/other/issued/stranger.crt" "http://127.0.0.1:$RPORT"
if grep -q ": good" "$T/q4"; then bad "responder: other CA's device not good"
elif grep -qiE "unknown|error|fail" "$T/q4"; then ok "responder: other CA's device unknown/error"
else bad "responder: other CA's device ($(head -c 200 "$T/q4"))"; fi
expect_fail "ocsp-responder: port in use" P ocsp-responder "$RPORT"
cp "$RCRT" "$T/rcrt-first.pem"
kill "$RESP_PID"
expect "responder stops with one kill" gone "$RESP_PID"
expect "responder port closed" sh -c "! awk -v p=':$(printf '%04X' "$RPORT")' '\$4 == \"0A\" && substr(\$2, length(\$2) - 4) == p' /proc/net/tcp /proc/net/tcp6 | grep -q ."

"$PKI_TOOL" -d "$T/pki" ocsp-responder 0 > "$T/r2.out" 2> "$T/r2.err" &
RESP_PID=$!; PIDS+=("$RESP_PID")
EPORT=$(wait_listening "$T/r2.out" "$RESP_PID")
if [ -n "$EPORT" ] && [ "$EPORT" -gt 0 ]; then ok "ocsp-responder port 0 prints the port"; else bad "ocsp-responder port 0: $(cat "$T/r2.err")"; fi
expect "responder cert reused" cmp -s "$RCRT" "$T/rcrt-first.pem"
oq "$T/q5" "$T/pki/ca.crt" "$T/pki/issued/sans.crt" "http://127.0.0.1:$EPORT"
expect "ephemeral responder answers" grep -q "sans.crt: good" "$T/q5"
kill "$RESP_PID"; gone "$RESP_PID"

P intermediate plant2 >/dev/null; P device p2 --ca plant2 >/dev/null
"$PKI_TOOL" -d "$T/pki" ocsp-responder 0 --ca plant2 > "$T/r3.out" 2> "$T/r3.err" &
RESP_PID=$!; PIDS+=("$RESP_PID")
IPORT=$(wait_listening "$T/r3.out" "$RESP_PID")
expect "intermediate responder cert" grep -q "OCSP Signing" <(openssl x509 -in "$T/pki/intermediates/plant2/issued/@ocsp-responder.crt" -noout -text)
oq "$T/q6" "$T/pki/intermediates/plant2/ca.crt" "$T/pki/issued/p2.crt" "http://127.0.0.1:${IPORT:-1}"
expect "intermediate responder: good, verify OK (root trusted only)" sh -c "grep -q 'p2.crt: good' '$T/q6' && grep -q 'Response verify OK' '$T/q6'"
expect "revoke under intermediate" P revoke p2 --ca plant2
oq "$T/q7" "$T/pki/intermediates/plant2/ca.crt" "$T/pki/issued/p2.crt" "http://127.0.0.1:${IPORT:-1}"
expect "intermediate responder: revoked" grep -q "p2.crt: revoked" "$T/q7"
kill "$RESP_PID"; gone "$RESP_PID"

expect_fail "ocsp-responder: bad port" P ocsp-responder 70000
expect_fail "ocsp-responder: no port" P ocsp-responder
expect_fail "ocsp-responder: host name" P ocsp-responder 0 --host example.com
expect_fail "ocsp-responder: --nmin 0" P ocsp-responder 0 --nmin 0
expect_fail "ocsp-responder: unknown CA" P ocsp-responder 0 --ca nope

# ocsp_fake.py self-test: good, and a wrong nonce that openssl must refuse.
fake_start() { # $1 = tag, then ocsp_fake options; sets FAKE_PID and FAKE_PORT
    local tag="$1"; shift
    /usr/bin/python3 "$OCSP_FAKE" --port 0 --issuer-cert "$T/pki/ca.crt" --issuer-key "$T/pki/ca.key" --log "$T/fake.log" "$@" \
        > "$T/$tag.out" 2> "$T/$tag.err" &
    FAKE_PID=$!; PIDS+=("$FAKE_PID")
    FAKE_PORT=$(wait_listening "$T/$tag.out" "$FAKE_PID")
}
fake_start fake1 --mode good --revoked-serial "$(openssl x509 -in "$T/pki/issued/srv.crt" -noout -serial | cut -d= -f2)"
oq "$T/f1" "$T/pki/ca.crt" "$T/pki/issued/sans.crt" "http://127.0.0.1:${FAKE_PORT:-1}"
expect "ocsp_fake good" sh -c "grep -q 'sans.crt: good' '$T/f1' && grep -q 'Response verify OK' '$T/f1'"
oq "$T/f2" "$T/pki/ca.crt" "$T/pki/issued/srv.crt" "http://127.0.0.1:${FAKE_PORT:-1}"
expect "ocsp_fake --revoked-serial" grep -q "srv.crt: revoked" "$T/f2"
expect "ocsp_fake log line" grep -q "^good $(openssl x509 -in "$T/pki/issued/sans.crt" -noout -serial | cut -d= -f2) [0-9a-f]" "$T/fake.log"
kill "$FAKE_PID"; wait "$FAKE_PID"; rc=$?
if [ "$rc" -eq 0 ]; then ok "ocsp_fake clean exit on SIGTERM"; else bad "ocsp_fake exit status $rc"; fi
fake_start fake2 --mode wrong-nonce
oq "$T/f3" "$T/pki/ca.crt" "$T/pki/issued/sans.crt" "http://127.0.0.1:${FAKE_PORT:-1}"
expect "ocsp_fake wrong-nonce refused by openssl" grep -qi "nonce verify error" "$T/f3"
kill "$FAKE_PID"; gone "$FAKE_PID"
expect "ocsp_fake log counts requests" sh -c "[ \$(wc -l < '$T/fake.log') -eq 3 ]"

# ticket-key: a 0600 file of 80-byte keys; a fresh key goes in front, at most --keep older ones.
TK="$T/tk/ticket.key"; mkdir -p "$T/tk"
size() { stat -c %s "$1"; }
expect "ticket-key new file" P ticket-key "$TK"
expect "ticket-key one key, 0600" sh -c "[ \$(stat -c %s:%a '$TK') = 80:600 ]"
first=$(head -c 16 "$TK" | od -An -tx1 | tr -d ' \n')
expect "ticket-key rotate" P ticket-key "$TK"
expect "ticket-key two keys" sh -c "[ \$(stat -c %s '$TK') = 160 ]"
expect "ticket-key old key second" sh -c "[ \"\$(tail -c 80 '$TK' | head -c 16 | od -An -tx1 | tr -d ' \n')\" = '$first' ]"
expect "ticket-key new key first" sh -c "[ \"\$(head -c 16 '$TK' | od -An -tx1 | tr -d ' \n')\" != '$first' ]"
P ticket-key "$TK" >/dev/null; P ticket-key "$TK" >/dev/null
expect "ticket-key keeps 2 older by default" sh -c "[ \$(stat -c %s '$TK') = 240 ]"
expect "ticket-key --keep 0" P ticket-key "$TK" --keep 0
expect "ticket-key --keep 0 leaves one" sh -c "[ \$(stat -c %s:%a '$TK') = 80:600 ]"
expect "ticket-key default path" sh -c "timeout 60 '$PKI_TOOL' -d '$T/tkd' ticket-key && [ -s '$T/tkd/ticket.key' ]"
echo junk > "$T/tk/junk"
expect_fail "ticket-key refuses a non-key file" P ticket-key "$T/tk/junk"
expect "ticket-key left it alone" grep -q junk "$T/tk/junk"
expect_fail "ticket-key bad --keep" P ticket-key "$TK" --keep x
expect_fail "ticket-key no such directory" P ticket-key "$T/nope/ticket.key"
expect "ticket-key no temporary left" sh -c "[ -z \"\$(ls -A '$T/tk' | grep '^\\.ticket-key')\" ]"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
