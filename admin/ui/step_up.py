"""The step-up: a CA-admin action (``Action.CA_ADMIN``: revoking a CA) asks for the
second factor again, unless one was re-entered within ``[admin] step_up``.

The action's form posts as usual; when the session's step-up is stale the handler gets
back the step-up page instead: the same form (its fields carried as hidden inputs, the
CSRF token with them) plus a code field, posting to the same action. With a right,
unused code the action runs and the session records when (`signin.stepped_up`), so
further CA-admin actions within ``step_up`` do not ask. The code of the sign-in itself
does not count: the first CA-admin action of a session always asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from enroll.errors import RateLimited

from .. import audit
from . import signin, web


async def check(request: Request, form: Mapping[str, Any], what: str, action: str,
                fields: Mapping[str, str]) -> tuple[Response | None, web.Session | None]:
    """``(page, None)``: show `page` (the code is wanted, or was wrong); ``(None,
    session)``: go ahead, and set `session` (stepped up now) on the response; ``(None,
    None)``: go ahead, the step-up is still fresh. Call after `web.principal`."""
    if web.step_up_fresh(request):
        return None, None
    session: web.Session = request.state.session
    code = web.form_text(form, "step_up_code")
    if not code:
        return _page(request, what, action, fields, None, 200), None
    console = web.console_of(request)
    try:
        await console.ctx.frontend.blocking.run(console.ctx.frontend.limits.check,
                                                signin.limits(request, session.username),
                                                "failed sign-ins")
    except RateLimited as exc:
        return _page(request, what, action, fields, str(exc), 429), None
    if not await console.ctx.frontend.blocking.run(signin.check_code, console,
                                                   session.username, code):
        await signin.failed(request, session.username, "step-up code")
        return _page(request, what, action, fields, signin.BAD_CODE, 401), None
    await console.ctx.frontend.blocking.run(
        lambda: audit.record(console.ctx, request.state.principal, "step_up",
                             details={"for": what}))
    return None, signin.stepped_up(session)


def _page(request: Request, what: str, action: str, fields: Mapping[str, str],
          error: str | None, status: int) -> Response:
    return web.render(request, "step_up.html", status=status, what=what, error=error,
                      action=action, fields=sorted(fields.items()))
