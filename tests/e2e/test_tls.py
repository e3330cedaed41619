"""obmend's own TLS listener (http.tls), black-box: a self-signed certificate made with the openssl
CLI, HTTPS answered on the configured port (/healthz and a 1C checkauth with Basic auth), plain
HTTP to the TLS port refused, a key that does not match the certificate refused at start with a
message naming the file, and SIGHUP picking up a renewed certificate for new connections.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import subprocess
import unittest

from harness import EVENT_TIMEOUT, Harness


def make_certificate(directory, name: str, cn: str = "127.0.0.1"):
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", f"subjectAltName=IP:{cn}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class Tls(unittest.TestCase):
    def setUp(self):
        self.h = Harness.for_test(self)
        self.h.create_database()
        self.cert, self.key = make_certificate(self.h.dir, "server")

    def config(self, cert, key):
        return self.h.config({"http": {"tls": {"certificate": str(cert), "key": str(key)}}})

    def https(self, d, path: str, cafile, headers: dict | None = None):
        ctx = ssl.create_default_context(cafile=str(cafile))
        conn = http.client.HTTPSConnection("127.0.0.1", d.port, context=ctx, timeout=EVENT_TIMEOUT)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read(), conn.sock.getpeercert()
        finally:
            conn.close()

    def test_https_is_served_and_plain_http_is_not(self):
        d = self.h.start_daemon(self.config(self.cert, self.key))
        status, body, peer = self.https(d, "/healthz", self.cert)
        self.assertEqual(status, 200, body)
        self.assertIn(b'"status":"ok"', body.replace(b" ", b""))
        auth = base64.b64encode(f"{self.h.USER}:{self.h.password}".encode()).decode()
        status, body, _ = self.https(d, "/1c_exchange?type=catalog&mode=checkauth", self.cert,
                                     {"Authorization": f"Basic {auth}"})
        self.assertEqual(status, 200)
        self.assertTrue(body.startswith(b"success\n"), body)
        # Plain HTTP to the TLS port: no HTTP answer comes back.
        with socket.create_connection(("127.0.0.1", d.port), timeout=EVENT_TIMEOUT) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.recv(4096)
        self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        self.assertRegex(d.log(), r"listening on https://127\.0\.0\.1:\d+")

    def test_a_key_that_does_not_match_is_refused_at_start(self):
        _, other_key = make_certificate(self.h.dir, "other")
        d = self.h.start_daemon(self.config(self.cert, other_key), wait_ready=False)
        self.assertNotEqual(d.wait_exit(), 0)
        self.assertIn(f"http.tls.key '{other_key}' does not match the certificate", d.log())

    def test_sighup_picks_up_a_renewed_certificate(self):
        d = self.h.start_daemon(self.config(self.cert, self.key))
        old = self.h.dir / "old.crt"
        old.write_bytes(self.cert.read_bytes())
        renewed, renewed_key = make_certificate(self.h.dir, "renewed")
        # The admin replaces the files in place (as certbot's deploy hook does) and reloads.
        self.cert.write_bytes(renewed.read_bytes())
        self.key.write_bytes(renewed_key.read_bytes())
        d.reload()
        status, _, _ = self.https(d, "/healthz", renewed)
        self.assertEqual(status, 200)
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.https(d, "/healthz", old)


if __name__ == "__main__":
    unittest.main()
