"""The ACME front-end as a plugin: routes, endpoints.json entry and CLI commands."""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.routing import BaseRoute

from enroll.context import AppContext
from enroll.errors import ConfigError
from enroll.hookspecs import hookimpl

from . import settings


def secret(context: AppContext, name: str) -> bytes:
    """A per-deployment secret kept in the database, shared by every worker."""
    from sqlalchemy.exc import IntegrityError

    from . import store

    try:
        with context.db.write() as conn:
            return store.get_or_create_secret(conn, name, secrets.token_bytes(32))
    except IntegrityError:
        with context.db.write() as conn:  # another worker created it first
            return store.get_or_create_secret(conn, name, b"")


def endpoints(context: AppContext) -> list[Any]:
    """One `AcmeEndpoint` per configured endpoint."""
    from .endpoint import AcmeEndpoint
    from .nonces import Nonces

    parsed = settings.parse(context.config)
    if parsed is None:
        return []
    nonces = Nonces(context.db, secret(context, "nonce"))
    eab_secret = secret(context, "eab")
    profile_cas = {name: p.ca for name, p in context.config.profiles.items()}
    return [AcmeEndpoint(e, parsed.validation, context.db, context.authority, context.clock,
                         nonces, eab_secret, profile_cas) for e in parsed.endpoints]


@hookimpl
def enroll_routes(context: AppContext) -> Sequence[BaseRoute]:
    from .http import RESERVED_LABELS, AcmeHttp

    routes: list[BaseRoute] = []
    eps = endpoints(context)
    descriptions = {name: f"enroll profile {name}" for name in context.config.profiles}
    # Named endpoints first: /acme/<label>/... must win over the default's /acme/... .
    for ep in sorted(eps, key=lambda e: e.label == settings.DEFAULT_LABEL):
        if ep.label in RESERVED_LABELS:
            raise ConfigError(f"acme.endpoints.{ep.label}", "this label is a resource name")
        routes.extend(AcmeHttp(ep, descriptions).routes())
    return routes


@hookimpl
def enroll_endpoint_info(context: AppContext, http_url: str,
                         https_url: str) -> Mapping[str, Any] | None:
    parsed = settings.parse(context.config)
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
