"""The ``[intune]`` configuration section: one table per SCEP endpoint Intune serves.

    [intune.endpoints.intune]             # the SCEP endpoint's label ([scep.endpoints.intune])
    tenant = "contoso.onmicrosoft.com"    # the Entra tenant (name or id)
    client_id = "<application (client) id>"
    client_secret = "…"      # or ENROLL_INTUNE__ENDPOINTS__<LABEL>__CLIENT_SECRET
    # certificate_file = "/etc/enroll/intune-app.pem"   # instead of a secret:
    # key_file = "/etc/enroll/intune-app.key"           # the app's certificate + key
    timeout = "10s"                       # each call to Entra, Graph and Intune
    provider = "enroll/0.1"               # callerInfo / User-Agent Intune logs
    # Only to point the plugin at another cloud, or at a test double:
    authority_url = "https://login.microsoftonline.com"
    graph_url = "https://graph.microsoft.com"
    intune_resource = "https://api.manage.microsoft.com/"
    ca_file = "/etc/ssl/…"                # CA bundle for those three (default: system)

The SCEP endpoint hands its challenges to this plugin with ``challenge_verifier =
"intune"``. Secrets are `Secret`s: never logged, never in a repr.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enroll.config import Config
from enroll.config_values import Secret, as_duration, as_str, check_keys
from enroll.errors import ConfigError

SECTION = "intune"
VERIFIER = "intune"
"""What a SCEP endpoint's ``challenge_verifier`` names to use this plugin."""
_SECTION_KEYS = {"endpoints"}
_KEYS = {"tenant", "client_id", "client_secret", "certificate_file", "key_file", "timeout",
         "provider", "authority_url", "graph_url", "intune_resource", "ca_file"}
MAX_TIMEOUT = 60
_TENANT = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


@dataclass(frozen=True, slots=True)
class Credential:
    """A client secret, or a certificate (PEM) and its private key (PEM)."""

    secret: Secret | None = None
    certificate_pem: str | None = None
    key_pem: Secret | None = None


@dataclass(frozen=True, slots=True)
class IntuneEndpoint:
    label: str
    tenant: str
    client_id: str
    credential: Credential
    timeout: float
    provider: str
    authority_url: str
    graph_url: str
    intune_resource: str
    ca_file: str | None

    @property
    def verify(self) -> str | bool:
        """What the HTTP clients verify the servers' certificates against."""
        return self.ca_file if self.ca_file is not None else True


def parse(config: Config) -> dict[str, IntuneEndpoint]:
    """The endpoints Intune verifies, by SCEP endpoint label (empty: no ``[intune]``)."""
    if SECTION not in config.sections:
        return {}
    return parse_table(config.section(SECTION))


def parse_table(section: Mapping[str, Any]) -> dict[str, IntuneEndpoint]:
    check_keys(section, _SECTION_KEYS, SECTION)
    endpoints = section.get("endpoints", {})
    if not isinstance(endpoints, Mapping):
        raise ConfigError(f"{SECTION}.endpoints", "expected a table per SCEP endpoint")
    if endpoints and importlib.util.find_spec("msal") is None:
        raise ConfigError(SECTION, "needs the msal package: pip install 'enroll-pki[intune]'")
    parsed = {}
    for label, table in endpoints.items():
        key = f"{SECTION}.endpoints.{label}"
        if not isinstance(table, Mapping):
            raise ConfigError(key, "expected a table")
        parsed[str(label)] = _endpoint(str(label), table, key)
    return parsed


def _endpoint(label: str, table: Mapping[str, Any], key: str) -> IntuneEndpoint:
    check_keys(table, _KEYS, key)
    for required in ("tenant", "client_id"):
        if required not in table:
            raise ConfigError(f"{key}.{required}", "required")
    tenant = as_str(table["tenant"], f"{key}.tenant")
    if not _TENANT.match(tenant):
        raise ConfigError(f"{key}.tenant", "expected a tenant name or id")
    client_id = as_str(table["client_id"], f"{key}.client_id")
    if not client_id or len(client_id) > 128:
        raise ConfigError(f"{key}.client_id", "expected the application (client) id")
    return IntuneEndpoint(
        label=label, tenant=tenant, client_id=client_id,
        credential=_credential(label, table, key),
        timeout=float(as_duration(table.get("timeout", "10s"), f"{key}.timeout",
                                  minimum=1, maximum=MAX_TIMEOUT)),
        provider=as_str(table.get("provider", "enroll/0.1"), f"{key}.provider")[:128],
        authority_url=_https(table.get("authority_url", "https://login.microsoftonline.com"),
                             f"{key}.authority_url"),
        graph_url=_https(table.get("graph_url", "https://graph.microsoft.com"),
                         f"{key}.graph_url"),
        intune_resource=_https(table.get("intune_resource", "https://api.manage.microsoft.com/"),
                               f"{key}.intune_resource", strip=False),
        ca_file=_readable(table["ca_file"], f"{key}.ca_file") if "ca_file" in table else None,
    )


def _credential(label: str, table: Mapping[str, Any], key: str) -> Credential:
    raw = table.get("client_secret")
    has_cert = "certificate_file" in table or "key_file" in table
    if raw and has_cert:
        raise ConfigError(f"{key}.client_secret", "a secret or a certificate, not both")
    if raw:
        return Credential(secret=raw if isinstance(raw, Secret)
                          else Secret(as_str(raw, f"{key}.client_secret")))
    if not has_cert:
        raise ConfigError(f"{key}.client_secret",
                          "set client_secret, or certificate_file and key_file")
    for name in ("certificate_file", "key_file"):
        if name not in table:
            raise ConfigError(f"{key}.{name}", "certificate_file and key_file go together")
    cert = Path(_readable(table["certificate_file"], f"{key}.certificate_file")).read_text()
    private = Path(_readable(table["key_file"], f"{key}.key_file")).read_text()
    if "BEGIN CERTIFICATE" not in cert:
        raise ConfigError(f"{key}.certificate_file", "expected a PEM certificate")
    if "PRIVATE KEY" not in private:
        raise ConfigError(f"{key}.key_file", "expected a PEM private key")
    return Credential(certificate_pem=cert, key_pem=Secret(private))


def _https(raw: Any, key: str, strip: bool = True) -> str:
    url = as_str(raw, key)
    if not url.startswith("https://") or len(url) > 2048:
        raise ConfigError(key, "expected an https:// URL")
    return url.rstrip("/") if strip else url


def _readable(raw: Any, key: str) -> str:
    path = as_str(raw, key)
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read: {exc.strerror}") from exc
    return path
