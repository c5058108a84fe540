"""The EST front-end as a plugin: routes, default config, endpoints.json entry, the
client CAs the HTTPS listener asks for, and CLI commands."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import Table
from starlette.routing import BaseRoute

from enroll.config_values import Secret
from enroll.door import FrontEnd
from enroll.hookspecs import hookimpl
from enroll.private_files import write_private
from enroll.store.transaction import Tx

from . import passwords, settings

PASSWORD_FILE = "est-password"  # noqa: S105 - a file name
DEFAULT_USER = "est"


@hookimpl
def enroll_config_sections() -> Mapping[str, Any]:
    return {"est": settings.parse}


@hookimpl
def enroll_tables() -> Sequence[Table]:
    from . import store

    return (store.est_users, store.est_server_keys)


@hookimpl
def enroll_routes(frontend: FrontEnd) -> Sequence[BaseRoute]:
    from . import http
    from .service import EstService

    parsed = settings.parse(frontend.config)
    if parsed is None:
        return []
    services = [EstService(frontend, endpoint) for endpoint in parsed.endpoints]
    return http.routes(parsed, services)


@hookimpl
def enroll_default_config(data_dir: Path) -> Mapping[str, Any]:
    """A default endpoint at /.well-known/est with a generated Basic user: the plaintext
    password in a 0600 file (for endpoints.json and the banner), only a hash in the
    config. 256 bits of entropy, so a fast keyed hash is enough."""
    path = data_dir / PASSWORD_FILE
    if path.exists():
        password = path.read_text().strip()
    else:
        password = passwords.generate()
        write_private(path, password + "\n")
    return {"est": {"endpoints": {settings.DEFAULT_LABEL: {
        "profile": "device",
        "users": {DEFAULT_USER: passwords.hash_fast(password)},
        "password_file": str(path.resolve()),
    }}}}


@hookimpl
def enroll_endpoint_info(frontend: FrontEnd, http_url: str,
                         https_url: str) -> Mapping[str, Any] | None:
    parsed = settings.parse(frontend.config)
    if parsed is None or not parsed.endpoints:
        return None
    first = parsed.endpoints[0]
    info: dict[str, Any] = {"url": f"{https_url}{first.path}", "profile": first.profile}
    if first.password_file is not None and first.users:
        try:
            password = first.password_file.read_text().strip()
        except OSError:
            password = ""
        for user, stored in first.users.items():
            if password and passwords.verify(password, stored):
                info["username"], info["password"] = user, password
                break
    return {"est": info}


@hookimpl
def enroll_tls_client_cas(frontend: FrontEnd) -> Sequence[x509.Certificate] | None:
    """Each endpoint's CA chain (so OpenSSL can build a path to a root), its external
    anchors, and the proxy's own client certificates (``[est.proxy] client_certs``, so
    the TLS layer verifies the proxy's certificate): the HTTPS listener asks clients for
    certificates from these."""
    parsed = settings.parse(frontend.config)
    if parsed is None:
        return None
    cas: list[x509.Certificate] = []
    for endpoint in parsed.endpoints:
        cas.extend(frontend.door.chain(endpoint.ca))
        cas.extend(endpoint.anchors)
    if parsed.proxy is not None:
        cas.extend(parsed.proxy.chain)
    return cas


@hookimpl
def enroll_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from . import cli

    cli.register(subparsers)


@hookimpl
def enroll_reseal_secrets(tx: Tx, old: Secret, new: Secret) -> Mapping[str, int]:
    from . import serverkeygen

    return {"EST kept keys": serverkeygen.reseal(tx, old, new)}
