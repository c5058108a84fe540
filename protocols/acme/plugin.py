"""The ACME front-end as a plugin: routes, endpoints.json entry and CLI commands."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from starlette.routing import BaseRoute

from enroll.config_values import Secret
from enroll.door import FrontEnd
from enroll.hookspecs import hookimpl
from enroll.store.transaction import Tx

from . import settings


@hookimpl
def enroll_config_sections() -> Mapping[str, Any]:
    return {"acme": settings.parse}


@hookimpl
def enroll_tables() -> Sequence[Table]:
    from . import store

    return (store.acme_secrets, store.acme_used_nonces, store.acme_accounts,
            store.acme_orders, store.acme_authzs, store.acme_challenges, store.acme_eab_keys)


@hookimpl
def enroll_routes(frontend: FrontEnd) -> Sequence[BaseRoute]:
    from .endpoint import build_endpoints
    from .http import AcmeHttp

    routes: list[BaseRoute] = []
    descriptions = {name: f"enroll profile {name}" for name in frontend.config.profiles}
    # Named endpoints first: /acme/<label>/... must win over the default's /acme/... .
    for ep in sorted(build_endpoints(frontend), key=lambda e: e.label == settings.DEFAULT_LABEL):
        routes.extend(AcmeHttp(ep, descriptions).routes())
    return routes


@hookimpl
def enroll_endpoint_info(frontend: FrontEnd, http_url: str,
                         https_url: str) -> Mapping[str, Any] | None:
    parsed = settings.parse(frontend.config)
    if parsed is None or not parsed.endpoints:
        return None
    labels = [e.label for e in parsed.endpoints]
    first = next((e for e in parsed.endpoints if e.label == settings.DEFAULT_LABEL),
                 parsed.endpoints[0])
    info: dict[str, Any] = {"directory": f"{https_url}{first.path}/directory"}
    if len(labels) > 1:
        info["directories"] = {e.label: f"{https_url}{e.path}/directory"
                               for e in parsed.endpoints}
    return {"acme": info}


@hookimpl
def enroll_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    from . import cli

    cli.register(subparsers)


@hookimpl
def enroll_reseal_secrets(tx: Tx, old: Secret, new: Secret) -> Mapping[str, int]:
    from . import eab

    return {"ACME EAB keys": eab.reseal(tx, old, new)}


@hookimpl
def enroll_recover(frontend: FrontEnd, grace: float) -> int:
    from .recovery import recover

    return recover(frontend, grace)
