"""Regenerate the SCEP test vectors in this folder (see README.md).

    python tests/vectors/scep/make_vectors.py

Needs micromdm's scepclient (Debian package `scep`). Serves GetCACaps/GetCACert on a
loopback port with the fixed RA in ra.key/ra.pem, records what scepclient POSTs, and
writes our own client's messages with the same RA for comparison.
"""

from __future__ import annotations

import datetime as dt
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from enroll.protocols.scep import signeddata

from enroll.testing.scep_client import ScepClient, csr_with_challenge

HERE = Path(__file__).resolve().parent
PEM = serialization.Encoding.PEM
CHALLENGE = "vector-challenge"


def _ra() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key_path, cert_path = HERE / "ra.key", HERE / "ra.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vector SCEP RA")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(4242).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False,
                                         False, False), critical=True)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(PEM))
    return key, cert


def capture_scepclient(ra: x509.Certificate) -> None:
    body = signeddata.degenerate([ra])
    captured: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if "GetCACaps" in self.path:
                payload, ctype = b"AES\nDES3\nPOSTPKIOperation\nRenewal\nSHA-1\nSHA-256\n", \
                    "text/plain"
            else:
                payload, ctype = body, "application/x-x509-ca-ra-cert"
            self.send_response(200)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802
            captured.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(500)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    binary = shutil.which("scepclient")
    assert binary, "scepclient is needed to capture vectors"
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.pem"
        url = f"http://127.0.0.1:{port}/scep"
        subprocess.run([binary, "-server-url", url, "-private-key", str(key), "-challenge",
                        CHALLENGE, "-cn", "vector-device"], env=env, timeout=30,
                       capture_output=True, check=False)
        (HERE / "scepclient_pkcsreq_des_sha1.der").write_bytes(captured[-1])
        (HERE / "scepclient_device.key").write_bytes(key.read_bytes())
        # RenewalReq: scepclient signs with client.pem when it exists.
        client_key = serialization.load_pem_private_key(key.read_bytes(), None)
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        issued = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                              "vector-device")]))
                  .issuer_name(ra.subject).public_key(client_key.public_key())  # type: ignore[arg-type]
                  .serial_number(777).not_valid_before(now)
                  .not_valid_after(now + dt.timedelta(days=3650))
                  .sign(_ra()[0], hashes.SHA256()))
        (Path(tmp) / "client.pem").write_bytes(issued.public_bytes(PEM))
        subprocess.run([binary, "-server-url", url, "-private-key", str(key),
                        "-certificate", str(Path(tmp) / "client.pem")], env=env, timeout=30,
                       capture_output=True, check=False)
        (HERE / "scepclient_renewalreq_des_sha1.der").write_bytes(captured[-1])
        (HERE / "scepclient_renewal_signer.pem").write_bytes(issued.public_bytes(PEM))
    server.shutdown()


def our_client(ra: x509.Certificate) -> None:
    for cipher, digest in (("aes128_cbc", "sha256"), ("aes256_cbc", "sha512"),
                           ("tripledes_3key", "sha1")):
        client = ScepClient(ra, cipher=cipher, digest=digest)
        csr = csr_with_challenge(client.key, "vector-ours", CHALLENGE)
        message, _ = client.pkcs_req(csr, f"vector-{cipher}")
        (HERE / f"pkcsreq_{cipher.split('_')[0]}_{digest}.der").write_bytes(message)


if __name__ == "__main__":
    key, cert = _ra()
    capture_scepclient(cert)
    our_client(cert)
    print("vectors written to", HERE)
