"""An NDES-compatible challenge page (``mscep_admin``) for MDMs that fetch "dynamic"
SCEP challenges the way they fetch them from Microsoft NDES: Jamf Pro's "Dynamic -
Microsoft CA" challenge type, Fleet's and Zentral's NDES integrations.

    [scep.endpoints.default.dynamic_challenge]
    path = "/certsrv/mscep_admin/"     # the NDES path (default; other labels: …/<label>/)
    users = { jamf = "scrypt$…" }      # hashes from `enroll est hash-password`
    users_file = "/…/mscep-users"      # or/and ``name:hash`` lines (0600)
    ttl = "60m"                        # a fetched challenge's lifetime (NDES: 60 min)
    max_outstanding = 10000            # usable challenges at most (NDES: its cache)

The MDM sends ``GET <path>`` with HTTP Basic credentials and reads the challenge out of
the HTML NDES answers: ``The enrollment challenge password is: <B> XXXX </B>``, the page
encoded as UTF-16 with a byte-order mark (as IIS serves it; the MDM parsers decode
UTF-16 and match a regular expression on that sentence, e.g. ``<B> ([A-Z0-9]{16,32})
</B>``). So the challenge has NDES's form: upper-case hex, here 32 digits (128 bits).

Each fetch makes one challenge in the endpoint's one-time store (`challenges.
OneTimeChallenges.new`, the store ``enroll scep challenge new`` uses): bound to this
endpoint, used once, expiring after `ttl`. The fetch is audited (who, which endpoint,
from where, until when; never the challenge). HTTPS only (the Basic password travels in
the request); wrong or missing credentials answer 401 with a Basic challenge and count
against the endpoint's ``dynamic_challenge_failures_per_*`` rate limits (429 with
Retry-After once over, checked before any password hash runs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from enroll.protocols.est.auth import basic_credentials
from enroll.protocols.est.passwords import VerifiedCache, check_hash_format
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from enroll import endpoints
from enroll.asgi.peer import peer_address
from enroll.config_values import as_duration, as_int, as_str, as_table, check_keys
from enroll.errors import ConfigError, RateLimited
from enroll.rate_limits import Limit

if TYPE_CHECKING:
    from .challenges import OneTimeChallenges
    from .service import ScepService

DEFAULT_PATH = "/certsrv/mscep_admin"
DEFAULT_TTL = 3600
MAX_TTL = 24 * 3600
MAX_USER = 128
MAX_USERS_FILE = 1024 * 1024
REALM = "enroll-mscep-admin"
DEFAULT_MAX_OUTSTANDING = 10_000
_KEYS = {"path", "users", "users_file", "ttl", "max_outstanding"}
log = logging.getLogger("enroll.scep")


@dataclass(frozen=True, slots=True)
class DynamicChallenge:
    path: str
    """Without its trailing slash; served with and without it."""
    users: Mapping[str, str]
    """username -> stored password hash (`enroll.protocols.est.passwords`)."""
    ttl: int
    max_outstanding: int
    """Usable (unused, unexpired) challenges of the endpoint at most; past it a fetch
    answers 503 with NDES's "The password cache is full." page."""


def _users_file(path: Path, key: str) -> dict[str, str]:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_USERS_FILE + 1)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_USERS_FILE:
        raise ConfigError(key, f"{path} is larger than {MAX_USERS_FILE} bytes")
    users: dict[str, str] = {}
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep:
            raise ConfigError(key, f"{path} line {number}: expected name:hash")
        users[_user_name(name.strip(), key)] = check_hash_format(
            stored.strip(), f"{key} ({path} line {number})")
    return users


def _user_name(name: str, key: str) -> str:
    if not name or len(name) > MAX_USER or not name.isprintable() or ":" in name:
        raise ConfigError(key, f"invalid user name {name[:32]!r}")
    return name


def parse(value: Any, key: str, label: str) -> DynamicChallenge:
    """One endpoint's ``dynamic_challenge`` table."""
    table = as_table(value, key)
    check_keys(table, _KEYS, key)
    default = f"{DEFAULT_PATH}/" if label == endpoints.DEFAULT_LABEL \
        else f"{DEFAULT_PATH}/{label}/"
    path = endpoints.path(table.get("path", default), f"{key}.path")
    users: dict[str, str] = {}
    for name, stored in as_table(table.get("users", {}), f"{key}.users").items():
        users[_user_name(name, f"{key}.users")] = check_hash_format(
            as_str(stored, f"{key}.users.{name}"), f"{key}.users.{name}")
    if "users_file" in table:
        path_key = f"{key}.users_file"
        users.update(_users_file(Path(as_str(table["users_file"], path_key)), path_key))
    if not users:
        raise ConfigError(f"{key}.users", "the challenge page needs at least one user "
                                          "(users or users_file)")
    ttl = as_duration(table.get("ttl", DEFAULT_TTL), f"{key}.ttl", minimum=60,
                      maximum=MAX_TTL)
    outstanding = as_int(table.get("max_outstanding", DEFAULT_MAX_OUTSTANDING),
                         f"{key}.max_outstanding", minimum=1, maximum=1_000_000)
    return DynamicChallenge(path=path, users=users, ttl=ttl, max_outstanding=outstanding)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16")  # Python writes the BOM, then native (little) endian


def full_page() -> bytes:
    """NDES's answer when its password cache is full (MDMs look for this sentence)."""
    return _utf16("<HTML><HEAD><TITLE>Network Device Enrollment Service</TITLE></HEAD>\r\n"
                  "<BODY><P> The password cache is full. </P>\r\n"
                  "<P> Wait for outstanding challenge passwords to be used or to expire."
                  " </P>\r\n</BODY></HTML>\r\n")


def page(challenge: str, thumbprint: str, minutes: int) -> bytes:
    """The answer, laid out as NDES lays out its page (the sentences MDM parsers look
    for are NDES's own), in UTF-16 with a byte-order mark as IIS sends it."""
    return _utf16(
        "<HTML><HEAD><TITLE>Network Device Enrollment Service</TITLE></HEAD>\r\n"
        "<BODY><P>A one-time challenge for SCEP enrollment.</P>\r\n"
        f"<P> The thumbprint (hash value) for the CA certificate is: <B> {thumbprint} "
        "</B> </P>\r\n"
        f"<P> The enrollment challenge password is: <B> {challenge} </B> </P>\r\n"
        f"<P> This password can be used only once and will expire within {minutes} "
        "minutes. </P>\r\n"
        "<P> Each enrollment requires a new challenge password. </P>\r\n"
        "</BODY></HTML>\r\n")


def _unauthorized() -> Response:
    return PlainTextResponse("unauthorized\n", status_code=401, headers={
        "www-authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})


def routes(service: ScepService, one_time: OneTimeChallenges) -> list[BaseRoute]:
    """``GET <path>`` and ``GET <path>/`` (a query string is ignored, as IIS does) for an
    endpoint with a ``dynamic_challenge`` table; none otherwise. HTTPS-only: they are
    not marked for the plain-HTTP listener (`enroll.asgi.plain_http`)."""
    # challenges -> settings -> this module: imported when the routes are built.
    from .challenges import ChallengesFull, generate_ndes

    settings = service.endpoint.dynamic_challenge
    if settings is None:
        return []
    endpoint = service.endpoint
    frontend = service.frontend
    door = f"scep:{endpoint.label}"
    verified = VerifiedCache()
    minutes = max(1, settings.ttl // 60)

    def limits_for(user: str | None, source: str | None) -> list[Limit]:
        rates = endpoint.rate_limits
        out = []
        if source is not None:
            out.append(Limit("scep.dynamic_challenge_failures", f"{endpoint.label}|addr|"
                             f"{source}", rates["dynamic_challenge_failures_per_address"]))
        if user is not None:
            out.append(Limit("scep.dynamic_challenge_failures", f"{endpoint.label}|user|"
                             f"{user[:MAX_USER]}",
                             rates["dynamic_challenge_failures_per_user"]))
        return out

    def check(user: str, password: str) -> bool:
        stored = settings.users.get(user)
        # The same work for an unknown name as for a wrong password is not needed: the
        # per-address limit bounds guessing either way.
        return stored is not None and verified.check(user, stored, password)

    def issue(user: str, source: str | None) -> tuple[str, str] | None:
        try:
            challenge, expires = one_time.new(
                endpoint.label, settings.ttl, f"mscep_admin:{user}",
                generator=generate_ndes, limit=settings.max_outstanding,
                audit={"via": "mscep_admin", "user": user, "source": source})
        except ChallengesFull:
            log.warning("scep: endpoint %s has %d usable challenges outstanding; %s's "
                        "fetch refused (dynamic_challenge.max_outstanding)",
                        endpoint.label, settings.max_outstanding, user)
            return None
        ca = frontend.door.chain(endpoint.ca)[0]
        log.info("scep: %s fetched a one-time challenge for endpoint %s from %s "
                 "(expires %s)", user, endpoint.label, source or "-", expires.isoformat())
        return challenge, ca.fingerprint(hashes.SHA256()).hex().upper()

    async def admin(request: Request) -> Response:
        source = peer_address(request.scope)
        if request.url.scheme != "https":
            # Embedded under another server: the Basic password must not travel in clear.
            return PlainTextResponse("the challenge page is served over HTTPS only\n",
                                     status_code=403)
        credentials = basic_credentials(request.headers.get("authorization", ""))
        user = credentials[0] if credentials is not None else None
        limits = limits_for(user, source)
        try:
            await frontend.blocking.run(frontend.limits.check, limits,
                                        "failed challenge-page logins")
        except RateLimited as exc:
            await frontend.blocking.run(door_refusal, "dynamic_challenge_rate_limited",
                                        source, {"detail": exc.detail})
            return PlainTextResponse(exc.detail + "\n", status_code=429,
                                     headers={"retry-after": str(exc.retry_after)})
        if credentials is None or not await frontend.blocking.run(check, *credentials):
            if credentials is not None:  # no credentials at all: a client's first try
                await frontend.blocking.run(frontend.limits.hit, limits)
                await frontend.blocking.run(door_refusal, "dynamic_challenge_unauthorized",
                                            source, {"user": (user or "")[:MAX_USER]})
            return _unauthorized()
        assert user is not None
        if request.method == "HEAD":  # a probe sees the page exists; it mints nothing
            return Response(media_type="text/html; charset=utf-16",
                            headers={"cache-control": "no-store"})
        issued = await frontend.blocking.run(issue, user, source)
        if issued is None:
            return Response(full_page(), status_code=503, headers={
                "cache-control": "no-store", "retry-after": "60"},
                media_type="text/html; charset=utf-16")
        challenge, thumbprint = issued
        return Response(page(challenge, thumbprint, minutes),
                        media_type="text/html; charset=utf-16",
                        headers={"cache-control": "no-store"})

    def door_refusal(reason: str, source: str | None, details: Mapping[str, Any]) -> None:
        frontend.door.record_refusal(door, reason, source, None, details)

    return [Route(settings.path, admin, methods=["GET"]),
            Route(f"{settings.path}/", admin, methods=["GET"])]

