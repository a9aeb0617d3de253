#!/usr/bin/env python3
"""ocsp_fake.py: an OCSP responder for tests that can misbehave on purpose.

    ocsp_fake.py --port 0 --issuer-cert CA.crt --issuer-key CA.key
                 [--signer-cert S.crt --signer-key S.key] [--include-signer]
                 --mode MODE [--revoked-serial HEX ...] [--next-update-s N] [--delay-s N]
                 [--log FILE] [--host 127.0.0.1]

Serves OCSP over HTTP/1.1 (POST, and GET per RFC 6960 A.1) on 127.0.0.1, one thread per
connection. Prints "listening PORT" on stdout once bound, then serves until SIGTERM/SIGINT
(exit status 0).

Modes:
  good          every serial good, except --revoked-serial ones (revoked an hour ago)
  unknown       every serial unknown
  wrong-nonce   good, but the nonce differs from the request's (one is sent even if the
                request had none)
  no-nonce      good, without a nonce
  expired       good, thisUpdate 2 days ago, nextUpdate 1 day ago
  future        good, thisUpdate 1 day from now
  garbage       HTTP 200, application/ocsp-response, 64 random bytes (first byte 0xff)
  http-500      HTTP 500
  unauthorized  OCSPResponse with responseStatus unauthorized(6)
  hang          reads the request, never answers, keeps the connection open
  close         reads the request, closes the connection without answering
  slow          like good, after --delay-s seconds
  wrong-certid  good, but for serial+1

Signing: by default the issuer key signs (responder ID by name, no certificates in the
response unless --include-signer). With --signer-cert/--signer-key that key signs, and its
certificate is included (certificates=[signer]).
thisUpdate = now - 60 s, nextUpdate = now + --next-update-s (default 3600; 0 = no nextUpdate).
--log FILE gets one line per request: "<mode> <SERIAL HEX|-> <request nonce hex|->".
Python 3 with python3-cryptography >= 38 (Debian 12).
"""

import argparse
import base64
import binascii
import datetime
import http.server
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

MODES = ("good", "unknown", "wrong-nonce", "no-nonce", "expired", "future", "garbage", "http-500",
         "unauthorized", "hang", "close", "slow", "wrong-certid")
MAX_REQ = 64 * 1024

stop_event = threading.Event()
log_lock = threading.Lock()


def parse_args(argv):
    p = argparse.ArgumentParser(description="misbehaving OCSP responder for tests")
    p.add_argument("--port", type=int, required=True, help="TCP port; 0 = ephemeral")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--issuer-cert", required=True)
    p.add_argument("--issuer-key", required=True)
    p.add_argument("--signer-cert")
    p.add_argument("--signer-key")
    p.add_argument("--include-signer", action="store_true",
                   help="include the signer's certificate (always done with --signer-cert)")
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--revoked-serial", action="append", nargs="+", default=[], metavar="HEX")
    p.add_argument("--next-update-s", type=int, default=3600)
    p.add_argument("--delay-s", type=float, default=0.0)
    p.add_argument("--log")
    a = p.parse_args(argv)
    if (a.signer_cert is None) != (a.signer_key is None):
        p.error("--signer-cert and --signer-key go together")
    try:
        a.revoked = {int(s.replace(":", "").lower().removeprefix("0x"), 16)
                     for group in a.revoked_serial for s in group}
    except ValueError:
        p.error("--revoked-serial: hexadecimal serial numbers")
    return a


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def sign_hash(key):
    return None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()


def serial_hex(n):
    h = "%X" % n
    return h if len(h) % 2 == 0 else "0" + h


class Fake:
    def __init__(self, a):
        self.a = a
        self.issuer = load_cert(a.issuer_cert)
        self.issuer_key = load_key(a.issuer_key)
        if a.signer_cert:
            self.signer, self.signer_key, self.include = load_cert(a.signer_cert), load_key(a.signer_key), True
        else:
            self.signer, self.signer_key, self.include = self.issuer, self.issuer_key, a.include_signer
        # cryptography 38 builds a CertID from a (cert, issuer) pair only, so a throwaway
        # certificate carrying the requested serial under the issuer's name stands in for it.
        self.dummy_key = ec.generate_private_key(ec.SECP256R1())

    def log(self, serial, nonce):
        if not self.a.log:
            return
        line = "%s %s %s\n" % (self.a.mode, serial_hex(serial) if serial is not None else "-",
                               nonce.hex() if nonce else "-")
        with log_lock, open(self.a.log, "a") as f:
            f.write(line)

    def stand_in(self, serial):
        now = datetime.datetime.utcnow()
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocsp_fake")]))
                .issuer_name(self.issuer.subject)
                .public_key(self.dummy_key.public_key())
                .serial_number(serial)
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(self.dummy_key, hashes.SHA256()))

    def response(self, req):
        """DER OCSPResponse for the parsed request, per mode."""
        mode = self.a.mode
        if mode == "unauthorized":
            return ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(
                serialization.Encoding.DER)
        now = datetime.datetime.utcnow()
        serial = req.serial_number + (1 if mode == "wrong-certid" else 0)
        this_update = now - datetime.timedelta(seconds=60)
        next_update = (this_update + datetime.timedelta(seconds=60 + self.a.next_update_s)
                       if self.a.next_update_s > 0 else None)
        if mode == "expired":
            this_update, next_update = now - datetime.timedelta(days=2), now - datetime.timedelta(days=1)
        elif mode == "future":
            this_update = now + datetime.timedelta(days=1)
            next_update = this_update + datetime.timedelta(seconds=max(self.a.next_update_s, 3600))
        status, rev_time = ocsp.OCSPCertStatus.GOOD, None
        if mode == "unknown":
            status = ocsp.OCSPCertStatus.UNKNOWN
        elif serial in self.a.revoked:
            status, rev_time = ocsp.OCSPCertStatus.REVOKED, now - datetime.timedelta(hours=1)
        b = (ocsp.OCSPResponseBuilder()
             .add_response(cert=self.stand_in(serial), issuer=self.issuer, algorithm=req.hash_algorithm,
                           cert_status=status, this_update=this_update, next_update=next_update,
                           revocation_time=rev_time, revocation_reason=None)
             .responder_id(ocsp.OCSPResponderEncoding.NAME, self.signer))
        if self.include:
            b = b.certificates([self.signer])
        nonce = request_nonce(req)
        if mode == "wrong-nonce":
            other = os.urandom(16)
            while other == nonce:
                other = os.urandom(16)
            b = b.add_extension(x509.OCSPNonce(other), critical=False)
        elif mode != "no-nonce" and nonce is not None:
            b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
        return b.sign(self.signer_key, sign_hash(self.signer_key)).public_bytes(serialization.Encoding.DER)


def request_nonce(req):
    try:
        return req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def der_from_get(path):
    path = urllib.parse.unquote(path.split("?", 1)[0])
    for start in [0] + [i + 1 for i, c in enumerate(path) if c == "/"]:
        try:
            der = base64.b64decode(path[start:], validate=True)
        except (binascii.Error, ValueError):
            continue
        if der[:1] == b"\x30":
            return der
    return None


MALFORMED = bytes.fromhex("30030a0101")
INTERNAL = bytes.fromhex("30030a0102")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ocsp_fake"
    sys_version = ""
    timeout = 30
    fake = None  # set in main

    def send(self, code, body, ctype="application/ocsp-response"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_ocsp(self, der):
        fake, mode = self.fake, self.fake.a.mode
        try:
            req = ocsp.load_der_ocsp_request(der)
            serial, nonce = req.serial_number, request_nonce(req)
        except Exception:
            req, serial, nonce = None, None, None
        fake.log(serial, nonce)
        if mode == "hang":
            self.close_connection = True
            stop_event.wait()
            return
        if mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if mode == "http-500":
            return self.send(500, b"internal server error\n", "text/plain")
        if mode == "garbage":
            return self.send(200, b"\xff" + os.urandom(63))
        if mode == "slow" and self.fake.a.delay_s > 0:
            if stop_event.wait(self.fake.a.delay_s):
                return
        if req is None:
            return self.send(200, MALFORMED)
        try:
            body = fake.response(req)
        except Exception as e:  # e.g. a serial no certificate can carry
            sys.stderr.write("ocsp_fake: %s\n" % e)
            body = INTERNAL
        self.send(200, body)

    def do_POST(self):
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            return self.send(411, b"Content-Length required\n", "text/plain")
        if not 0 <= n <= MAX_REQ:
            self.close_connection = True
            return self.send(413, b"too large\n", "text/plain")
        der = self.rfile.read(n)
        if len(der) != n:
            self.close_connection = True
            return
        self.handle_ocsp(der)

    def do_GET(self):
        der = der_from_get(self.path)
        if der is None:
            return self.send(400, b"POST an OCSP request\n", "text/plain")
        self.handle_ocsp(der)

    def log_message(self, fmt, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main(argv):
    a = parse_args(argv)
    Handler.fake = Fake(a)

    def stop(signum, frame):
        stop_event.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ":" in a.host:
        Server.address_family = socket.AF_INET6
    srv = Server((a.host, a.port), Handler)
    try:
        print("listening %d" % srv.server_address[1], flush=True)
        srv.serve_forever(poll_interval=0.2)
    finally:
        stop_event.set()
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
