"""What every console page shares: the `Console` (context, settings, templates, the
cookie-signing key), the session cookie, the signed-in `Principal`, CSRF tokens and
`render`.

Sessions are signed cookies (itsdangerous, keyed by a random key sealed in
``admin_keys``): HttpOnly, Secure, SameSite=Strict, Path=<prefix>/ui. A cookie carries the
user name, the user's ``session_epoch`` (signing out or a reset ends every session), a
random session id, the sign-in stage and when the second factor was last entered (for
the step-up of CA actions). Every form carries a CSRF token: an HMAC of the session id
under the same key, checked in constant time on every POST, and a POST whose ``Origin``
is another site is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from enroll.context import AppContext
from enroll.crypto import sealing
from enroll.errors import ConfigError, EnrollError

from .. import store
from ..principal import Principal
from ..roles import Action, Role
from ..secrets_reseal import KEY_CONTEXT
from ..settings import AdminSettings

COOKIE = "enroll_session"
SESSION_KEY = "session"
STAGE_OK = "ok"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; img-src 'self' data:; style-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
SCOPE_KEY = "enroll.console"
BASE_KEY = "enroll.console.base"
ROUTER_KEY = "enroll.console.router"


class SignInRequired(EnrollError):
    """No live session: the page redirects to the sign-in form."""


class Refused(EnrollError):
    """A console action refused (bad CSRF token, role, step-up): 403 page."""


@dataclass
class Console:
    ctx: AppContext
    settings: AdminSettings
    env: jinja2.Environment = field(init=False)
    _key: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.ctx.config.ca_passphrase is None:
            raise ConfigError("admin.console", "the console seals its signing key and TOTP "
                              "seeds with the CA passphrase: set ca_passphrase_file, or "
                              "admin.console = false")
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                      autoescape=True, undefined=jinja2.StrictUndefined,
                                      trim_blocks=True, lstrip_blocks=True)

    def key(self) -> bytes:
        """The cookie-signing key (blocking: database, scrypt unseal once per worker)."""
        if self._key is None:
            self._key = _load_or_make_key(self.ctx)
        return self._key

    def serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.key(), salt="enroll-console-session")


def _load_or_make_key(ctx: AppContext) -> bytes:
    passphrase = ctx.config.ca_passphrase
    assert passphrase is not None  # noqa: S101 - Console refuses to exist without it
    context = KEY_CONTEXT + SESSION_KEY
    with ctx.db.read() as tx:
        sealed = store.get_key(tx, SESSION_KEY)
    if sealed is None:
        fresh = secrets.token_bytes(32)
        try:
            with ctx.db.write() as tx:
                store.add_key(tx, SESSION_KEY, sealing.seal(fresh, passphrase, context=context),
                              ctx.clock.now())
            return fresh
        except Exception:  # noqa: BLE001 - another worker's INSERT won: read it
            with ctx.db.read() as tx:
                sealed = store.get_key(tx, SESSION_KEY)
            if sealed is None:
                raise
    return sealing.unseal(sealed, passphrase, context=context)


def console_of(request: Request) -> Console:
    console: Console = request.scope[SCOPE_KEY]
    return console


def url(request: Request, name: str, **params: Any) -> str:
    """The path of a console route, under whatever prefix the console is mounted at
    (the embedding app's, then ``/ui``): the console's own router names it."""
    base: str = request.scope[BASE_KEY]
    return base + str(request.scope[ROUTER_KEY].url_path_for(name, **params))


# -- sessions -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Session:
    username: str
    epoch: int
    sid: str
    stage: str
    """``password`` (second factor still to give), ``enrol`` (TOTP to enrol) or ``ok``."""
    mfa_at: float | None = None

    def as_payload(self) -> dict[str, Any]:
        return {"u": self.username, "e": self.epoch, "s": self.sid, "st": self.stage,
                "m": self.mfa_at}


def read_session(request: Request) -> Session | None:
    """The cookie's session if its signature and age check out (not yet the epoch)."""
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > 2048:
        return None
    console = console_of(request)
    try:
        data = console.serializer().loads(raw, max_age=console.settings.session_seconds)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return Session(username=str(data["u"]), epoch=int(data["e"]), sid=str(data["s"]),
                       stage=str(data["st"]),
                       mfa_at=float(data["m"]) if data.get("m") is not None else None)
    except (KeyError, TypeError, ValueError):
        return None


def new_session(username: str, epoch: int, stage: str, mfa_at: float | None = None) -> Session:
    return Session(username=username, epoch=epoch, sid=secrets.token_urlsafe(16), stage=stage,
                   mfa_at=mfa_at)


def set_session(request: Request, response: Response, session: Session) -> None:
    console = console_of(request)
    response.set_cookie(COOKIE, console.serializer().dumps(session.as_payload()),
                        max_age=console.settings.session_seconds, path=url(request, "ui:home"),
                        secure=True, httponly=True, samesite="strict")


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path=url(request, "ui:home"), secure=True, httponly=True,
                           samesite="strict")


def live_user(console: Console, session: Session) -> store.User | None:
    """Blocking: the session's user if it still exists at the session's epoch."""
    with console.ctx.db.read() as tx:
        user = store.get_user(tx, session.username)
    if user is None or user.session_epoch != session.epoch:
        return None
    return user


async def principal(request: Request, action: Action = Action.READ) -> Principal:
    """The signed-in user, allowed `action`; `SignInRequired` or `Refused` otherwise."""
    session = read_session(request)
    if session is None or session.stage != STAGE_OK:
        raise SignInRequired("sign in")
    console = console_of(request)
    user = await console.ctx.frontend.blocking.run(live_user, console, session)
    if user is None:
        raise SignInRequired("sign in")
    who = Principal(name=f"user:{user.username}", role=Role(user.role), kind="user")
    request.state.session = session
    request.state.principal = who
    if not _allowed(who, action):
        raise Refused(f"the {who.role.value} role may not {action.value}")
    return who


def _allowed(who: Principal, action: Action) -> bool:
    from ..roles import allows

    return allows(who.role, action)


def step_up_fresh(request: Request) -> bool:
    """Whether the second factor was entered within ``[admin] step_up``."""
    session: Session | None = getattr(request.state, "session", None)
    if session is None or session.mfa_at is None:
        return False
    return time.time() - session.mfa_at <= console_of(request).settings.step_up_seconds


# -- CSRF -----------------------------------------------------------------------------

def csrf_token(request: Request) -> str:
    session = read_session(request)
    sid = session.sid if session is not None else "anonymous"
    key = console_of(request).key()
    return hmac.new(key, f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()


def check_csrf(request: Request, form: Mapping[str, Any]) -> None:
    """Refuse a POST without this session's token, or from another origin."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin != expected:
            raise Refused("this form came from another site")
    given = form.get("csrf")
    if not isinstance(given, str) or not hmac.compare_digest(given, csrf_token(request)):
        raise Refused("the form's security token is missing or stale: reload the page")


MAX_FIELD = 1024


def form_text(form: Mapping[str, Any], name: str, limit: int = MAX_FIELD) -> str:
    """A text field of a form, at most `limit` characters ("" if absent or a file)."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def query(request: Request, name: str, limit: int = 256) -> str | None:
    """A query parameter, stripped and bounded (None if absent or empty)."""
    value = request.query_params.get(name, "").strip()[:limit]
    return value or None


# -- rendering ------------------------------------------------------------------------

def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    console = console_of(request)
    who: Principal | None = getattr(request.state, "principal", None)
    page = console.env.get_template(template).render(
        request=request, principal=who, csrf=csrf_token(request),
        url=lambda name, **p: url(request, name, **p), **values)
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def redirect(request: Request, name: str, **params: Any) -> RedirectResponse:
    return RedirectResponse(url(request, name, **params), status_code=303,
                            headers=SECURITY_HEADERS)


def redirect_to(request: Request, path: str) -> RedirectResponse:
    """A 303 to `path`, a console path built by `url` (never client text)."""
    return RedirectResponse(path, status_code=303, headers=SECURITY_HEADERS)
