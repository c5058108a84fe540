"""Signing in: a password, then the second factor (TOTP), enrolled at the first sign-in.

    GET/POST /login         user name and password (scrypt, `admin.users`)
    GET/POST /login/enrol   first sign-in: a new TOTP seed as a QR code, confirmed by a code
    GET/POST /login/code    the code of the enrolled second factor
    POST     /logout        ends every session of the user (its epoch moves on)

Failures (an unknown user, a wrong password, a wrong or replayed code) are counted by
the engine's shared rate limits per user name and per source address (``[admin]
rate_limits``); at the rate every attempt of that name or address is refused with 429
until the window slides, before any scrypt is spent. An unknown user and a wrong
password get the same page, status and (scrypt on a dummy hash) the same time. Each
failure and each sign-in is audited (``admin.sign_in.failed``, ``admin.sign_in``).
"""

from __future__ import annotations

import time
from dataclasses import replace

import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll.asgi.peer import peer_address
from enroll.errors import RateLimited
from enroll.rate_limits import Limit

from .. import audit, store, users
from . import web

BAD_CREDENTIALS = "Wrong user name or password."  # noqa: S105 - a message, not a secret
BAD_CODE = "That code is wrong, expired or already used."


def limits(request: Request, username: str) -> list[Limit]:
    """The failure counters a sign-in of `username` from this address is checked against."""
    rates = web.console_of(request).settings.rate_limits
    out = [Limit("admin.sign_in_failures", f"user|{username.lower()[:128]}",
                 rates["sign_in_failures_per_user"], "failed sign-ins for this user")]
    source = peer_address(request.scope)
    if source is not None:
        out.append(Limit("admin.sign_in_failures", f"address|{source}",
                         rates["sign_in_failures_per_address"],
                         "failed sign-ins from this address"))
    return out


async def _check_limits(request: Request, username: str) -> None:
    console = web.console_of(request)
    await console.ctx.frontend.blocking.run(console.ctx.frontend.limits.check,
                                            limits(request, username), "failed sign-ins")


async def failed(request: Request, username: str, why: str) -> None:
    console = web.console_of(request)
    ctx = console.ctx
    await ctx.frontend.blocking.run(ctx.frontend.limits.hit, limits(request, username))
    await ctx.frontend.blocking.run(
        lambda: audit.record(ctx, f"user:{username[:128]}", "sign_in.failed",
                             details={"why": why, "source": peer_address(request.scope)}))


def _throttled(request: Request, template: str, exc: RateLimited, **values: object
               ) -> Response:
    page = web.render(request, template, status=429, error=str(exc), **values)
    page.headers["Retry-After"] = str(exc.retry_after)
    return page


# -- password -------------------------------------------------------------------------

async def login(request: Request) -> Response:
    session = web.read_session(request)
    if session is not None and session.stage == web.STAGE_OK:
        return web.redirect(request, "ui:home")
    return web.render(request, "login.html", error=None, username="")


async def login_post(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    username, password = web.form_text(form, "username").strip(), web.form_text(form, "password")
    try:
        await _check_limits(request, username)
    except RateLimited as exc:
        return _throttled(request, "login.html", exc, username=username)
    console = web.console_of(request)

    def verify() -> store.User | None:
        with console.ctx.db.read() as tx:
            user = store.get_user(tx, username) if username else None
        good = users.verify_password(user.password_hash if user else None, password)
        return user if good else None

    user = await console.ctx.frontend.blocking.run(verify)
    if user is None:
        await failed(request, username, "password")
        return web.render(request, "login.html", status=401, error=BAD_CREDENTIALS,
                          username=username)
    stage = "password" if user.totp_enrolled_at is not None else "enrol"
    response = web.redirect(request, "ui:code" if stage == "password" else "ui:enrol")
    web.set_session(request, response, web.new_session(user.username, user.session_epoch,
                                                       stage))
    return response


# -- second factor --------------------------------------------------------------------

async def _staged(request: Request, stage: str) -> tuple[web.Session, store.User] | None:
    session = web.read_session(request)
    if session is None or session.stage != stage:
        return None
    console = web.console_of(request)
    user = await console.ctx.frontend.blocking.run(web.live_user, console, session)
    return None if user is None else (session, user)


def _pending_seed(console: web.Console, user: store.User) -> str:
    """The seed being enrolled: the one stored but not confirmed yet, or a new one."""
    passphrase = console.ctx.config.ca_passphrase
    assert passphrase is not None  # noqa: S101 - Console requires it
    if user.totp_sealed is not None and user.totp_enrolled_at is None:
        seed = users.open_seed(user, passphrase)
        if seed is not None:
            return seed
    seed = users.new_totp_seed()
    with console.ctx.db.write() as tx:
        store.set_totp(tx, user.username, users.seal_seed(seed, user.username, passphrase),
                       None)
    return seed


async def enrol(request: Request) -> Response:
    staged = await _staged(request, "enrol")
    if staged is None:
        return web.redirect(request, "ui:login")
    return await _enrol_page(request, staged[1], None, 200)


async def _enrol_page(request: Request, user: store.User, error: str | None,
                      status: int) -> Response:
    console = web.console_of(request)
    seed = await console.ctx.frontend.blocking.run(_pending_seed, console, user)
    uri = users.provisioning_uri(seed, user.username)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    grouped = " ".join(seed[i:i + 4] for i in range(0, len(seed), 4))
    return web.render(request, "enrol.html", status=status, error=error, qr=qr,
                      secret=grouped, uri=uri, username=user.username)


async def enrol_post(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    staged = await _staged(request, "enrol")
    if staged is None:
        return web.redirect(request, "ui:login")
    session, user = staged
    try:
        await _check_limits(request, user.username)
    except RateLimited as exc:
        return _throttled(request, "login.html", exc, username=user.username)
    console = web.console_of(request)
    code = web.form_text(form, "code")

    def confirm() -> bool:
        passphrase = console.ctx.config.ca_passphrase
        assert passphrase is not None  # noqa: S101 - Console requires it
        with console.ctx.db.write() as tx:
            current = store.get_user(tx, user.username)
            if current is None or current.totp_sealed is None or current.totp_enrolled_at:
                return False
            seed = users.open_seed(current, passphrase)
            step = users.code_step(seed, code, console.ctx.clock.now()) if seed else None
            if step is None:
                return False
            store.set_totp(tx, user.username, current.totp_sealed, console.ctx.clock.now())
            return store.use_totp_step(tx, user.username, step)

    if not await console.ctx.frontend.blocking.run(confirm):
        await failed(request, user.username, "enrolment code")
        return await _enrol_page(request, user, BAD_CODE, 401)
    await console.ctx.frontend.blocking.run(
        lambda: audit.record(console.ctx, f"user:{user.username}", "totp.enrolled"))
    return await _signed_in(request, session)


async def code(request: Request) -> Response:
    staged = await _staged(request, "password")
    if staged is None:
        return web.redirect(request, "ui:login")
    return web.render(request, "code.html", error=None)


def check_code(console: web.Console, username: str, code: str) -> bool:
    """Blocking: `code` is right for `username`'s enrolled second factor, and unused."""
    passphrase = console.ctx.config.ca_passphrase
    assert passphrase is not None  # noqa: S101 - Console requires it
    with console.ctx.db.write() as tx:
        user = store.get_user(tx, username)
        if user is None or user.totp_enrolled_at is None:
            return False
        return users.check_code(tx, user, passphrase, code, console.ctx.clock.now())


async def code_post(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    staged = await _staged(request, "password")
    if staged is None:
        return web.redirect(request, "ui:login")
    session, user = staged
    try:
        await _check_limits(request, user.username)
    except RateLimited as exc:
        return _throttled(request, "code.html", exc)
    console = web.console_of(request)
    if not await console.ctx.frontend.blocking.run(check_code, console, user.username,
                                                   web.form_text(form, "code")):
        await failed(request, user.username, "code")
        return web.render(request, "code.html", status=401, error=BAD_CODE)
    return await _signed_in(request, session)


async def _signed_in(request: Request, session: web.Session) -> Response:
    """The second factor checked: a fresh session id (no fixation) at stage ``ok``.
    The step-up clock does not start here: a CA-admin action asks for a code again."""
    console = web.console_of(request)
    await console.ctx.frontend.blocking.run(
        lambda: audit.record(console.ctx, f"user:{session.username}", "sign_in",
                             details={"source": peer_address(request.scope)}))
    response = web.redirect(request, "ui:home")
    web.set_session(request, response, web.new_session(session.username, session.epoch,
                                                       web.STAGE_OK))
    return response


async def logout(request: Request) -> Response:
    form = await request.form()
    web.check_csrf(request, form)
    session = web.read_session(request)
    response = web.redirect(request, "ui:login")
    if session is not None:
        console = web.console_of(request)

        def end() -> None:
            with console.ctx.db.write() as tx:
                user = store.get_user(tx, session.username)
                if user is not None and user.session_epoch == session.epoch:
                    store.bump_epoch(tx, session.username)

        await console.ctx.frontend.blocking.run(end)
    web.clear_session(request, response)
    return response


def stepped_up(session: web.Session, now: float | None = None) -> web.Session:
    """`session` with its second factor entered now (the step-up of CA-admin actions)."""
    return replace(session, mfa_at=time.time() if now is None else now)


def routes() -> list[BaseRoute]:
    return [Route("/login", login, name="ui:login"),
            Route("/login", login_post, methods=["POST"], name="ui:login_post"),
            Route("/login/enrol", enrol, name="ui:enrol"),
            Route("/login/enrol", enrol_post, methods=["POST"], name="ui:enrol_post"),
            Route("/login/code", code, name="ui:code"),
            Route("/login/code", code_post, methods=["POST"], name="ui:code_post"),
            Route("/logout", logout, methods=["POST"], name="ui:logout")]
