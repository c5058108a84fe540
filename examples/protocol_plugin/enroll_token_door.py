"""A complete (toy) protocol front-end: ``POST /token-door/<label>`` with a bearer token
and a DER PKCS#10 body answers the PEM certificate.

It shows what a new protocol needs and nothing more (docs/architecture.md, "Where a new
protocol plugs in"): its settings read with the settings kit and parsed once, its own
table declared through ``enroll_tables`` with its own alembic branch, its routes built
from the `FrontEnd` it is handed (the door into the core, never the composition root),
blocking work through ``frontend.blocking``, and one table from the core's errors to its
wire answers.

    [token_door.endpoints.lab]
    profile = "device"
    token_sha256 = "<hex SHA-256 of the token>"
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import Column, DateTime, String, Table
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from enroll import endpoints
from enroll.config import Config
from enroll.config_values import as_str, as_table, check_keys
from enroll.csr import load_csr
from enroll.door import FrontEnd
from enroll.errors import (
    BadCSR,
    ConfigError,
    EnrollError,
    MalformedInput,
    PolicyDenied,
    Unauthorized,
)
from enroll.hookspecs import hookimpl
from enroll.model import EnrollmentRequest, Issued, Pending, Requester
from enroll.store.schema import metadata

PROTOCOL = "token_door"
HERE = Path(__file__).resolve().parent

token_door_uses = Table(
    "token_door_uses", metadata,
    Column("id", String(36), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("request_id", String(36), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# One table from the core's errors to this door's answers.
STATUSES: dict[type[EnrollError], int] = {MalformedInput: 400, BadCSR: 400,
                                          Unauthorized: 401, PolicyDenied: 403}


@dataclass(frozen=True, slots=True)
class Door:
    label: str
    path: str
    profile: str
    ca: str
    token_sha256: str


def _parse(config: Config) -> tuple[Door, ...]:
    section = as_table(config.section(PROTOCOL), PROTOCOL)
    check_keys(section, {"endpoints"}, PROTOCOL)
    doors = []
    for label, table in as_table(section.get("endpoints", {}), f"{PROTOCOL}.endpoints").items():
        table = as_table(table, f"{PROTOCOL}.endpoints.{label}")
        check_keys(table, {"profile", "ca", "token_sha256"}, f"{PROTOCOL}.endpoints.{label}")
        base = endpoints.endpoint_base(label, table, section=PROTOCOL, config=config,
                                       default_path=f"/token-door/{label}",
                                       default_profile="device")
        digest = as_str(table.get("token_sha256", ""), f"{PROTOCOL}.endpoints.{label}.token_sha256")
        if len(digest) != 64:
            raise ConfigError(f"{PROTOCOL}.endpoints.{label}.token_sha256",
                              "expected the hex SHA-256 of the token")
        doors.append(Door(base.label, base.path, base.profile, base.ca, digest.lower()))
    return tuple(doors)


def settings(config: Config) -> tuple[Door, ...]:
    return endpoints.cached(config, PROTOCOL, _parse)


@hookimpl
def enroll_config_sections() -> Mapping[str, Any]:
    """``[token_door]`` is ours (a table no plugin claims stops start-up)."""
    return {PROTOCOL: settings}


@hookimpl
def enroll_tables() -> Sequence[Table]:
    return (token_door_uses,)


@hookimpl
def enroll_migration_dirs() -> Sequence[Path]:
    return (HERE / "token_door_migrations",)


@hookimpl
def enroll_routes(frontend: FrontEnd) -> Sequence[BaseRoute]:
    return [Route(door.path, _handler(frontend, door), methods=["POST"])
            for door in settings(frontend.config)]


@hookimpl
def enroll_endpoint_info(frontend: FrontEnd, http_url: str,
                         https_url: str) -> Mapping[str, Any] | None:
    doors = settings(frontend.config)
    return {PROTOCOL: {d.label: f"{https_url}{d.path}" for d in doors}} if doors else None


def _handler(frontend: FrontEnd, door: Door) -> Any:
    def enroll(token: str, body: bytes) -> bytes:
        # Constant-time comparison of digests; the token itself is never stored.
        if not hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(),
                                   door.token_sha256):
            raise Unauthorized("wrong or missing token")
        outcome = frontend.door.submit(EnrollmentRequest(
            csr=load_csr(body), profile=door.profile, protocol=PROTOCOL, endpoint=door.label,
            requester=Requester(f"{PROTOCOL}:{door.label}", "token"), ca=door.ca))
        if not isinstance(outcome, Issued):
            raise PolicyDenied("pending or rejected" if not isinstance(outcome, Pending)
                               else "waiting for approval")
        with frontend.db.write() as tx:  # this door's own bookkeeping, never issuance
            tx.run("INSERT INTO token_door_uses (id, endpoint, request_id, at) "
                   "VALUES (?, ?, ?, ?)", (str(uuid.uuid4()), door.label, outcome.request_id,
                                          tx.when(dt.datetime.now(dt.UTC))))
        return outcome.certificate.public_bytes(serialization.Encoding.PEM)

    async def handle(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth[:7].lower() == "bearer " and len(auth) < 512 else ""
        try:
            pem = await frontend.blocking.run(enroll, token, await request.body())
        except EnrollError as exc:
            status = next((s for cls, s in STATUSES.items() if isinstance(exc, cls)), 503)
            return PlainTextResponse(exc.detail + "\n", status_code=status)
        return Response(pem, media_type="application/pem-certificate-chain")

    return handle
