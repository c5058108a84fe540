"""/serverkeygen with the key asked for encrypted (RFC 7030 §4.4.1.1, §4.4.1.2, §4.4.2):
an EnvelopedData to the client's own key, or a 400 with nothing generated or stored;
never the key in clear."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, keywrap, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asympadding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from enroll.protocols.est import store
from enroll.protocols.est.keyenvelope import (
    ASYMMETRIC_DECRYPT_KEY_ID,
    DECRYPT_KEY_ID,
    KEY_PACKAGE,
)
from harness import est_enroll

from enroll.testing import make_csr

ENCRYPTED_PART = "application/pkcs7-mime; smime-type=server-generated-key"


def _client(h: Any, key: Any) -> x509.Certificate:
    """A certificate this engine issued for `key`: the client's TLS identity."""
    r = est_enroll(h, make_csr(key, cn="sensor-7"))
    assert r.status_code == 200, r.text
    [cert] = pkcs7.load_der_pkcs7_certificates(base64.b64decode(r.content))
    return cert


def _template(oid: x509.ObjectIdentifier, key_id: bytes) -> x509.CertificateSigningRequest:
    """A serverkeygen template carrying `oid` (an OCTET STRING key identifier)."""
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID

    signer = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-7-app")]))
            .add_attribute(oid, key_id, _tag=_ASN1Type.OctetString)
            .sign(signer, hashes.SHA256()))


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _parts(r: Any) -> dict[str, bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + r.headers["content-type"].encode() + b"\r\n\r\n" + r.content)
    return {f"{part.get_content_type()}; smime-type={part.get_param('smime-type')}"
            if part.get_param("smime-type") else part.get_content_type():
            base64.b64decode(str(part.get_payload())) for part in message.iter_parts()}


class _KeyPackage(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.Any


def _unwrap_signed(signed_der: bytes) -> bytes:
    """The one OneAsymmetricKey (PKCS#8) of the SignedData's AsymmetricKeyPackage."""
    signed = cms.ContentInfo.load(signed_der)
    assert signed["content_type"].native == "signed_data"
    encap = signed["content"]["encap_content_info"]
    assert encap["content_type"].dotted == KEY_PACKAGE
    [one] = _KeyPackage.load(encap["content"].native)
    return bytes(one.dump())


def _decrypt(enveloped_der: bytes, key: rsa.RSAPrivateKey, ski: bytes) -> bytes:
    info = cms.ContentInfo.load(enveloped_der)
    assert info["content_type"].native == "enveloped_data"
    enveloped = info["content"]
    [recipient] = enveloped["recipient_infos"]
    ktri = recipient.chosen
    assert ktri["rid"].chosen.native == ski
    assert ktri["key_encryption_algorithm"]["algorithm"].native == "rsaes_oaep"
    cek = key.decrypt(ktri["encrypted_key"].native, asympadding.OAEP(
        asympadding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    eci = enveloped["encrypted_content_info"]
    assert eci["content_type"].native == "signed_data"
    iv = eci["content_encryption_algorithm"]["parameters"].native
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    padded = decryptor.update(eci["encrypted_content"].native) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _keys(h: Any) -> int:
    with h.ctx.db.read() as conn:
        return store.count_keys(conn)


def test_key_asked_for_encrypted_comes_back_enveloped_to_the_client_cert(make_est: Any
                                                                          ) -> None:
    h = make_est(archive_keys=True)
    key = rsa.generate_private_key(65537, 2048)
    client = _client(h, key)
    csr = _template(ASYMMETRIC_DECRYPT_KEY_ID, _ski(client))
    r = est_enroll(h, csr, op="serverkeygen", client_cert=client)
    assert r.status_code == 200, r.text
    parts = _parts(r)
    assert set(parts) == {ENCRYPTED_PART, "application/pkcs7-mime; smime-type=certs-only"}
    [cert] = pkcs7.load_der_pkcs7_certificates(
        parts["application/pkcs7-mime; smime-type=certs-only"])
    signed = _decrypt(parts[ENCRYPTED_PART], key, _ski(client))
    pkcs8 = _unwrap_signed(signed)
    generated = serialization.load_der_private_key(pkcs8, None)
    assert generated.public_key() == cert.public_key()
    assert pkcs8 not in r.content  # and never in clear
    assert _keys(h) == 1  # archived (sealed) as without encryption


def test_openssl_cms_decrypts_the_key(make_est: Any, require_tools: None,
                                      tmp_path: Path) -> None:
    h = make_est()
    key = rsa.generate_private_key(65537, 2048)
    client = _client(h, key)
    csr = _template(ASYMMETRIC_DECRYPT_KEY_ID, _ski(client))
    r = est_enroll(h, csr, op="serverkeygen", client_cert=client)
    assert r.status_code == 200, r.text
    parts = _parts(r)
    (tmp_path / "key.p7").write_bytes(parts[ENCRYPTED_PART])
    (tmp_path / "client.pem").write_bytes(client.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "client.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in",
                    "key.p7", "-recip", "client.pem", "-inkey", "client.key", "-out",
                    "signed.der"], cwd=tmp_path, check=True, capture_output=True)
    pkcs8 = _unwrap_signed((tmp_path / "signed.der").read_bytes())
    [cert] = pkcs7.load_der_pkcs7_certificates(
        parts["application/pkcs7-mime; smime-type=certs-only"])
    assert serialization.load_der_private_key(pkcs8, None).public_key() == cert.public_key()


def _refused(h: Any, csr: x509.CertificateSigningRequest, client: x509.Certificate | None,
             phrase: str) -> None:
    before = h.counts()
    r = est_enroll(h, csr, op="serverkeygen", client_cert=client)
    assert r.status_code == 400, r.text
    assert phrase in r.text
    assert "PRIVATE" not in r.text and "multipart" not in r.headers["content-type"]
    assert h.counts() == before and _keys(h) == 0


def test_unknown_asymmetric_identifier_is_400_and_nothing_is_stored(make_est: Any) -> None:
    h = make_est(archive_keys=True)
    client = _client(h, rsa.generate_private_key(65537, 2048))
    unknown = _template(ASYMMETRIC_DECRYPT_KEY_ID, b"\x01" * 20)
    _refused(h, unknown, client, "names no key known here")
    # The right identifier, but no TLS client certificate to encrypt to.
    named = _template(ASYMMETRIC_DECRYPT_KEY_ID, _ski(client))
    _refused(h, named, None, "names no key known here")


def test_symmetric_identifier_is_refused_rather_than_answered_in_clear(make_est: Any
                                                                       ) -> None:
    h = make_est(archive_keys=True)
    csr = _template(DECRYPT_KEY_ID, b"kek-1")
    _refused(h, csr, None, "names no key configured")


def _kek_file(tmp_path: Path, key: bytes, name: str = "kek.hex") -> str:
    path = tmp_path / name
    path.write_text(key.hex() + "\n")
    return str(path)


def test_a_configured_symmetric_key_wraps_the_key(make_est: Any, tmp_path: Path) -> None:
    kek = os.urandom(32)
    h = make_est(serverkeygen_keys={"kek-1": _kek_file(tmp_path, kek),
                                    "hex:00ff": _kek_file(tmp_path, os.urandom(16), "bin.hex")})
    r = est_enroll(h, _template(DECRYPT_KEY_ID, b"kek-1"), op="serverkeygen")
    assert r.status_code == 200, r.text
    parts = _parts(r)
    info = cms.ContentInfo.load(parts[ENCRYPTED_PART])
    [recipient] = info["content"]["recipient_infos"]
    kekri = recipient.chosen
    assert recipient.name == "kekri" and kekri["kekid"]["key_identifier"].native == b"kek-1"
    assert kekri["key_encryption_algorithm"]["algorithm"].native == "aes256_wrap"
    cek = keywrap.aes_key_unwrap(kek, kekri["encrypted_key"].native)
    eci = info["content"]["encrypted_content_info"]
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(
        eci["content_encryption_algorithm"]["parameters"].native)).decryptor()
    padded = decryptor.update(eci["encrypted_content"].native) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    pkcs8 = _unwrap_signed(unpadder.update(padded) + unpadder.finalize())
    [cert] = pkcs7.load_der_pkcs7_certificates(
        parts["application/pkcs7-mime; smime-type=certs-only"])
    assert serialization.load_der_private_key(pkcs8, None).public_key() == cert.public_key()
    # A binary identifier (hex: in the config); an unknown one is refused.
    r = est_enroll(h, _template(DECRYPT_KEY_ID, b"\x00\xff"), op="serverkeygen")
    assert r.status_code == 200, r.text
    _refused(h, _template(DECRYPT_KEY_ID, b"kek-2"), None, "names no key configured")


def test_openssl_cms_unwraps_with_the_shared_key(make_est: Any, require_tools: None,
                                                 tmp_path: Path) -> None:
    kek = os.urandom(16)
    h = make_est(serverkeygen_keys={"kek-1": _kek_file(tmp_path, kek)})
    r = est_enroll(h, _template(DECRYPT_KEY_ID, b"kek-1"), op="serverkeygen")
    assert r.status_code == 200, r.text
    (tmp_path / "key.p7").write_bytes(_parts(r)[ENCRYPTED_PART])
    subprocess.run(["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in",
                    "key.p7", "-secretkey", kek.hex(), "-secretkeyid", b"kek-1".hex(),
                    "-out", "signed.der"], cwd=tmp_path, check=True, capture_output=True)
    pkcs8 = _unwrap_signed((tmp_path / "signed.der").read_bytes())
    assert serialization.load_der_private_key(pkcs8, None)


def test_bad_shared_keys_stop_start_up(make_est: Any, tmp_path: Path) -> None:
    from enroll.errors import ConfigError

    short = tmp_path / "short.hex"
    short.write_text("00" * 10)
    with pytest.raises(ConfigError, match="serverkeygen_keys"):
        make_est(serverkeygen_keys={"kek-1": str(short)})


def test_an_ec_client_key_cannot_receive_key_transport(make_est: Any) -> None:
    h = make_est(archive_keys=True)
    client = _client(h, ec.generate_private_key(ec.SECP256R1()))
    csr = _template(ASYMMETRIC_DECRYPT_KEY_ID, _ski(client))
    _refused(h, csr, client, "must be RSA")
