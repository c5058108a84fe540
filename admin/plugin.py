"""The operators' door as a plugin: its config section, tables, CLI commands, the
routes of the admin API and the console, the client CA its API accepts certificates
from, and the secrets it seals."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from sqlalchemy import Table
from starlette.routing import BaseRoute

from enroll.config_values import Secret
from enroll.context import AppContext
from enroll.door import FrontEnd
from enroll.hookspecs import hookimpl
from enroll.store.transaction import Tx

from . import settings


@hookimpl
def enroll_config_sections() -> Mapping[str, Any]:
    return {settings.SECTION: settings.parse}


@hookimpl
def enroll_tables() -> Sequence[Table]:
    from . import store

    return store.TABLES


@hookimpl
def enroll_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from . import cli

    cli.register(subparsers)


@hookimpl
def enroll_reseal_secrets(tx: Tx, old: Secret, new: Secret) -> Mapping[str, int]:
    from . import secrets_reseal

    return secrets_reseal.reseal(tx, old, new)


@hookimpl
def enroll_operator_routes(context: AppContext) -> Sequence[BaseRoute]:
    parsed = settings.parse(context.config)
    routes: list[BaseRoute] = []
    if parsed.api:
        from . import api

        routes.append(api.mount(context, parsed))
    if parsed.console:
        from .ui import pages

        routes.append(pages.mount(context, parsed))
    return routes


@hookimpl
def enroll_tls_client_cas(frontend: FrontEnd) -> Sequence[x509.Certificate] | None:
    """With ``[admin] client_ca``, the HTTPS listener asks for client certificates from
    that CA too (its chain, so OpenSSL can build a path); the API still checks a
    certificate's issuer, inventory record and role itself (`admin.api.auth`)."""
    parsed = settings.parse(frontend.config)
    if not parsed.api or parsed.client_ca is None:
        return None
    return list(frontend.door.chain(parsed.client_ca))
