#!/usr/bin/env bash
# certmq-pki: every command, checked with openssl itself, and every error case.
set -u
PKI_TOOL="${CERTMQ_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}/certs/certmq-pki"
T=$(mktemp -d /tmp/certmq-pki-test-XXXXXX)
OCSP_PID=""
cleanup() { [ -n "$OCSP_PID" ] && kill "$OCSP_PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
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

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
