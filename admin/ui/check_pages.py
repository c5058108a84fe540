"""Check a CSR (``/check``): paste a PEM CSR, pick a profile (and the door it would come
through), and see every verdict the pipeline would give it, the policy votes, the
decision and the certificate it would get (`operations.check_csr`, as ``enroll profiles
check``). Nothing is stored and nothing is signed; the POST carries the CSRF token like
every form."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll.errors import EnrollError, MalformedInput

from .. import csr_text, operations
from ..principal import Forbidden
from . import web

MAX_FORM = 3 * csr_text.MAX_TEXT + 4096
"""Bytes of the posted form (the CSR URL-encoded, the token, the choices)."""
VERDICT_CLASSES = {"passed": "verdict-allow", "refused": "verdict-deny",
                   "not run": "muted", "allow": "verdict-allow", "pending": "verdict-pending",
                   "deny": "verdict-deny", "abstain": "muted"}
DECISION_CLASSES = {"would issue": "verdict-allow", "would wait for approval": "verdict-pending",
                    "would refuse": "verdict-deny"}


def _page(request: Request, status: int = 200, **values: Any) -> Response:
    ctx = web.console_of(request).ctx
    defaults: dict[str, Any] = {
        "profiles": sorted(ctx.authority.profiles), "protocols": operations.CHECK_PROTOCOLS,
        "chosen": {}, "result": None, "error": None, "csr_text": "",
        "verdicts": VERDICT_CLASSES, "decisions": DECISION_CLASSES}
    return web.render(request, "check.html", status=status, **{**defaults, **values})


async def form(request: Request) -> Response:
    await web.principal(request)
    return _page(request)


async def check(request: Request) -> Response:
    who = await web.principal(request)
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > MAX_FORM:
        raise MalformedInput(f"the form must declare its length, at most {MAX_FORM} bytes")
    submitted = await request.form()
    web.check_csrf(request, submitted)
    ctx = web.console_of(request).ctx
    raw = submitted.get("csr")
    text = raw if isinstance(raw, str) else ""
    chosen = {"profile": web.form_text(submitted, "profile", 64),
              "protocol": web.form_text(submitted, "protocol", 16) or "est",
              "endpoint": web.form_text(submitted, "endpoint", 64).strip() or "default"}
    if chosen["protocol"] not in operations.CHECK_PROTOCOLS:
        chosen["protocol"] = "est"
    shown = text[:csr_text.MAX_TEXT]

    def run() -> Any:
        csr = csr_text.load(text)
        return operations.check_csr(ctx, who, csr, chosen["profile"],
                                    protocol=chosen["protocol"],
                                    endpoint=chosen["endpoint"])

    try:
        result = await ctx.frontend.blocking.run(run)
    except EnrollError as exc:
        if isinstance(exc, web.Refused | Forbidden):
            raise
        return _page(request, 400, chosen=chosen, csr_text=shown, error=str(exc))
    return _page(request, chosen=chosen, csr_text=shown, result=result)


def routes() -> list[BaseRoute]:
    return [Route("/check", form, name="ui:check"),
            Route("/check", check, methods=["POST"], name="ui:check_post")]
