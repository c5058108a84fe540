"""The embedded default: a data directory that `enroll serve` creates or reuses.

    enroll-data/
      enroll.toml        generated config (edit it; it is read on every start)
      enroll.db          SQLite database (WAL)
      ca-passphrase      passphrase that encrypts the CA keys in the database (0600)
      root.pem           the root CA certificate (what clients trust)
      tls/               HTTPS listener: server.pem (cert + chain), server.key, ca.pem
      endpoints.json     what a first client needs (URLs, credentials, trust files)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from enroll.config import CONFIG_FILE_NAME, Config, default_raw_config
from enroll.context import AppContext
from enroll.crypto.keys import generate_key
from enroll.errors import ConfigError
from enroll.model import EnrollmentRequest, Issued, Requester
from enroll.private_files import write_private

PEM = serialization.Encoding.PEM
TLS_PROFILE = "tls-listener"


def init_data_dir(data_dir: Path, pm: pluggy.PluginManager,
                  passphrase_file: Path | None = None) -> Path | None:
    """Create the data dir, a passphrase and a generated config if they do not exist.

    With `passphrase_file` (``ENROLL_CA_PASSPHRASE_FILE``, e.g. a systemd credential) no
    passphrase is generated: the config names that file. Returns the path of the config
    file written, or None if one existed already.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    passphrase = data_dir / "ca-passphrase"
    if passphrase_file is not None:
        passphrase = passphrase_file
    elif not passphrase.exists():
        write_private(passphrase, secrets.token_urlsafe(32).encode() + b"\n")
    config_path = data_dir / CONFIG_FILE_NAME
    if config_path.exists():
        return None
    raw: dict[str, Any] = {"ca_passphrase_file": str(passphrase.resolve())}
    raw.update(default_raw_config())
    for section in pm.hook.enroll_default_config(data_dir=data_dir.resolve()):
        for key, value in (section or {}).items():
            raw[key] = value
    header = ("# enroll configuration, generated on first start. Edit and restart.\n"
              "# Every value can be overridden by an ENROLL_* environment variable;\n"
              "# see docs/configuration.md.\n\n")
    write_private(config_path, header.encode() + tomli_w.dumps(raw).encode())
    return config_path


def ensure_tls(ctx: AppContext) -> tuple[Path, Path, Path]:
    """The HTTPS listener's certificate, issued by our own CA for `tls_names`.

    Reissued when missing, within 30 days of expiry, or when the names changed.
    Returns (cert chain path, key path, CA bundle path).
    """
    cfg = ctx.config
    tls_dir = cfg.data_dir / "tls"
    cert_path, key_path, bundle_path = (tls_dir / "server.pem", tls_dir / "server.key",
                                        tls_dir / "ca.pem")
    if TLS_PROFILE not in cfg.profiles:
        raise ConfigError(f"profiles.{TLS_PROFILE}",
                          "the HTTPS listener's certificate is issued under this profile")
    names = sorted(set(cfg.tls_names))
    if cert_path.exists() and key_path.exists() and bundle_path.exists():
        current = x509.load_pem_x509_certificates(cert_path.read_bytes())[0]
        try:
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = sorted([str(v) for v in san.get_values_for_type(x509.DNSName)] +
                          [str(v) for v in san.get_values_for_type(x509.IPAddress)])
        except x509.ExtensionNotFound:
            have = []
        fresh = current.not_valid_after_utc - ctx.clock.now() > dt.timedelta(days=30)
        if fresh and have == names:
            return cert_path, key_path, bundle_path
    key = generate_key("ec-p256")
    gns: list[x509.GeneralName] = []
    for name in names:
        try:
            gns.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            gns.append(x509.DNSName(name))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName(gns), critical=False)
           .sign(key, hashes.SHA256()))
    outcome = ctx.authority.submit(EnrollmentRequest(
        csr=csr, profile=TLS_PROFILE, requester=Requester("system:tls-listener", "operator"),
        protocol="core"))
    if not isinstance(outcome, Issued):
        raise ConfigError(f"profiles.{TLS_PROFILE}", "must use automatic approval")
    write_private(key_path, key.private_bytes(PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    chain = [outcome.certificate, *outcome.chain[:-1]]
    cert_path.write_bytes(b"".join(c.public_bytes(PEM) for c in chain))
    bundle_path.write_bytes(outcome.chain[-1].public_bytes(PEM))
    return cert_path, key_path, bundle_path


def default_ca(cfg: Config) -> str:
    for preferred in ("server", "device"):
        if preferred in cfg.profiles:
            return cfg.profiles[preferred].ca
    return next(iter(cfg.cas))


def write_endpoints(ctx: AppContext, http_url: str, https_url: str,
                    tls_bundle: Path) -> dict[str, Any]:
    cfg = ctx.config
    ca = default_ca(cfg)
    chain = ctx.authority.chain(ca)
    root_path = cfg.data_dir / "root.pem"
    root_path.write_bytes(chain[-1].public_bytes(PEM))
    info: dict[str, Any] = {
        "http_url": http_url, "https_url": https_url,
        "tls_ca_bundle": str(tls_bundle.resolve()), "root_ca": str(root_path.resolve()),
        "ca_chain_url": f"{http_url}/ca/{ca}/chain.pem",
        "crl_url": f"{http_url}/crl/{ca}.crl", "ocsp_url": f"{http_url}/ocsp",
        "health_url": f"{https_url}/health", "metrics_url": f"{http_url}/metrics",
    }
    for entry in ctx.pm.hook.enroll_endpoint_info(frontend=ctx.frontend, http_url=http_url,
                                                  https_url=https_url):
        info.update(dict(entry or {}))
    write_private(cfg.data_dir / "endpoints.json",
                   (json.dumps(info, indent=2) + "\n").encode())
    return info


def banner(info: Mapping[str, Any]) -> str:
    lines = ["enroll is running", f"  HTTP  {info['http_url']}   (CRL, OCSP, CA certs)",
             f"  HTTPS {info['https_url']}  (health)",
             f"  trust the HTTPS listener with {info['tls_ca_bundle']}",
             f"  root CA {info['root_ca']}"]
    # Every table a plugin contributed (`enroll_endpoint_info`), keyed by protocol.
    for key, entry in info.items():
        if isinstance(entry, Mapping):
            details = ", ".join(f"{k}={v}" for k, v in entry.items())
            lines.append(f"  {key.upper():5} {details}")
    return "\n".join(lines)
