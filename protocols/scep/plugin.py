"""The SCEP front-end as a plugin: routes, default config, endpoints.json entry, CLI,
and the challenge verifier (static and one-time) behind the core's hook."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from sqlalchemy import Table
from starlette.routing import BaseRoute

from enroll.config_values import Secret, as_duration
from enroll.context import AppContext
from enroll.door import FrontEnd
from enroll.errors import ConfigError
from enroll.hookspecs import hookimpl
from enroll.model import ChallengeContext
from enroll.private_files import write_private
from enroll.store.transaction import Tx

from . import challenges, ra, settings

CHALLENGE_FILE = "scep-challenge"
DEFAULT_CA = "scep"
"""The embedded default's RSA issuing CA (`enroll.config.default_raw_config`)."""


@hookimpl
def enroll_config_sections() -> Mapping[str, Any]:
    return {"scep": settings.parse}


@hookimpl
def enroll_tables() -> Sequence[Table]:
    from . import store

    return (store.scep_ra_keys, store.scep_challenges)


@hookimpl
def enroll_routes(frontend: FrontEnd) -> Sequence[BaseRoute]:
    from . import http, ndes_admin
    from .service import ScepService

    one_time = challenges.OneTimeChallenges(frontend.db, frontend.clock)
    result: list[BaseRoute] = []
    for endpoint in settings.parse(frontend.config):
        service = ScepService(frontend, endpoint, one_time)
        result.extend(http.routes(service, one_time))
        result.extend(ndes_admin.routes(service, one_time))
    return result


@hookimpl
def enroll_default_config(data_dir: Path) -> Mapping[str, Any]:
    """A default endpoint at /scep with a generated static challenge: the plaintext in a
    0600 file (for endpoints.json and the banner), only its hash in the config."""
    path = data_dir / CHALLENGE_FILE
    if path.exists():
        challenge = path.read_text().strip()
    else:
        challenge = challenges.generate()
        write_private(path, challenge + "\n")
    return {"scep": {"endpoints": {"default": {
        "path": settings.DEFAULT_PATH, "profile": "device", "ca": DEFAULT_CA,
        "challenge_sha256": challenges.digest(challenge),
        "challenge_file": str(path.resolve()),
    }}}}


@hookimpl
def enroll_endpoint_info(frontend: FrontEnd, http_url: str,
                         https_url: str) -> Mapping[str, Any] | None:
    endpoints = settings.parse(frontend.config)
    if not endpoints:
        return None
    first = endpoints[0]
    info: dict[str, Any] = {"url": f"{http_url}{first.path}"}
    if first.challenge_file is not None:
        try:
            info["challenge"] = first.challenge_file.read_text().strip()
        except OSError:
            pass
    # Creating the RAs here (serve calls this once, before workers start) also spares
    # the workers a race for them. The fingerprints are for clients that pin a
    # certificate of GetCACert: the RA (scepclient -ca-fingerprint; it changes at each
    # RA rollover) or the issuing CA (an MDM profile's CAFingerprint; it does not).
    for endpoint in endpoints:
        generations = ra.RAKeyring(frontend, endpoint, endpoint.ca).snapshot()
        if endpoint is first:
            current = generations.current
            info["ra_fingerprint"] = current.certificate.fingerprint(hashes.SHA256()).hex()
            if generations.next is not None:
                info["next_ra_fingerprint"] = \
                    generations.next.certificate.fingerprint(hashes.SHA256()).hex()
            if current.chain:
                info["ca_fingerprint"] = current.chain[0].fingerprint(hashes.SHA256()).hex()
    if len(endpoints) > 1:
        info["endpoints"] = {e.label: f"{http_url}{e.path}" for e in endpoints}
    return {"scep": info}


@hookimpl(tryfirst=True)
def enroll_verify_challenge(context: ChallengeContext) -> bool | None:
    return challenges.verify(context)


@hookimpl
def enroll_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    scep = subparsers.add_parser("scep", help="SCEP endpoints and challenges")
    sub = scep.add_subparsers(dest="scep_command")
    chal = sub.add_parser("challenge", help="one-time challenge passwords").add_subparsers(
        dest="scep_challenge_command")
    p = chal.add_parser("new", help="create a one-time challenge password (printed once)")
    p.add_argument("--endpoint", default="default", help="SCEP endpoint name")
    p.add_argument("--expires", default=None, help="lifetime, e.g. 1h or 7d "
                   "(default: the endpoint's one_time_ttl)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_challenge_new)


def _cmd_challenge_new(args: argparse.Namespace, opener: Any) -> int:
    ctx: AppContext = opener.context()
    endpoints = {e.label: e for e in settings.parse(ctx.config)}
    endpoint = endpoints.get(args.endpoint)
    if endpoint is None:
        raise ConfigError("scep.endpoints", f"no SCEP endpoint named {args.endpoint!r} "
                          f"(have: {', '.join(endpoints) or 'none'})")
    if not endpoint.one_time:
        raise ConfigError(f"scep.endpoints.{endpoint.label}.one_time_challenges",
                          "one-time challenges are disabled for this endpoint")
    ttl = as_duration(args.expires, "--expires", minimum=60) if args.expires \
        else endpoint.one_time_ttl
    challenge, expires = challenges.OneTimeChallenges(ctx.db, ctx.clock).new(
        endpoint.label, ttl, "cli")
    if args.json:
        print(json.dumps({"challenge": challenge, "endpoint": endpoint.label,
                          "expires": expires.isoformat()}))
    else:
        print(challenge)
    return 0


@hookimpl
def enroll_reseal_secrets(tx: Tx, old: Secret, new: Secret) -> Mapping[str, int]:
    return {"SCEP RA keys": ra.reseal(tx, old, new)}
