"""The admin API's ASGI app, mounted at ``<prefix>/api/v1``.

Each resource module lists its `Operation`s (method, path, the `Action` its role must
allow, declared inputs, the response schema, a blocking handler). `ApiApp` routes a
request to its operation and runs the same steps for every one: authenticate (token, or
admin client certificate), check the role, read and check the inputs, run the handler
in the blocking pool, answer JSON, turn any refusal into a problem document
(`problems.from_error`), and append one ``admin.api`` audit event naming the caller,
the method, the route template and the status (never a secret, never the token).
``GET /openapi.json`` describes it all (`openapi.build`) and needs no credential.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from enroll import bounded_json
from enroll.asgi.types import Receive, Scope, Send
from enroll.context import AppContext

from .. import audit
from ..principal import Principal
from ..roles import Action
from ..settings import AdminSettings
from . import auth, inputs
from .inputs import Field
from .problems import Problem, from_error, unauthenticated

MAX_BODY = 16 * 1024
JSON = "application/json"
log = logging.getLogger("enroll.admin.api")


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: the context, the caller and its checked inputs."""

    ctx: AppContext
    who: Principal
    path: dict[str, Any]
    query: dict[str, Any]
    body: dict[str, Any]
    base_url: str
    """The API's own URL (``https://host:port/<prefix>/api/v1``)."""


Handler = Callable[[Call], Any]
"""Blocking; returns a JSON value (answered with the operation's status) or a Response."""


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    action: Action
    handler: Handler
    summary: str
    tag: str
    response: str | None
    """The component schema of a JSON answer; None: `media` describes a file."""
    path_fields: tuple[Field, ...] = ()
    query: tuple[Field, ...] = ()
    body: tuple[Field, ...] | None = None
    status: int = 200
    media: tuple[str, ...] = (JSON,)
    errors: tuple[int, ...] = (400, 404)
    """Problem statuses besides 401/403 (every operation has those)."""
    description: str = ""

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


@dataclass
class Api:
    ctx: AppContext
    settings: AdminSettings
    operations: list[Operation]
    document: dict[str, Any] = field(default_factory=dict)


class ApiApp:
    def __init__(self, api: Api) -> None:
        self.api = api
        by_path: dict[str, dict[str, Operation]] = {}
        for op in api.operations:
            by_path.setdefault(op.path, {})[op.method] = op
        routes = [Route("/openapi.json", self._openapi, methods=["GET"])]
        # A literal path (/certificates/revoke-identity) before a template that would
        # also match it (/certificates/{serial}).
        ordered = sorted(by_path.items(), key=lambda item: item[0].count("{"))
        routes += [Route(path, _PathApp(self, ops)) for path, ops in ordered]
        self.router = Router(routes=routes, default=self._not_found)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    async def _openapi(self, request: Request) -> Response:
        document = {**self.api.document, "servers": [{"url": _base_url(request)}]}
        return JSONResponse(document, headers={"Cache-Control": "no-store"})

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        await Problem(404, "no such API route").response()(scope, receive, send)

    async def run(self, op: Operation, request: Request) -> Response:
        ctx = self.api.ctx
        who: Principal | None = None
        try:
            who = await self._principal(request)
            who.require(op.action)
            call = Call(ctx, who, inputs.path(request.path_params, op.path_fields),
                        inputs.query(request.query_params, len(request.url.query),
                                     op.query),
                        await self._body(op, request), _base_url(request))
            result = await ctx.frontend.blocking.run(op.handler, call)
            response = result if isinstance(result, Response) else JSONResponse(
                result, status_code=op.status, headers={"Cache-Control": "no-store"})
        except Exception as exc:  # noqa: BLE001 - every refusal becomes a problem
            response = from_error(exc).response()
        if who is not None:
            try:
                await ctx.frontend.blocking.run(
                    audit.record, ctx, who, "api",
                    details={"method": op.method, "route": op.path,
                             "status": response.status_code})
            except Exception:  # noqa: BLE001 - the answer stands; the log says why
                log.exception("admin api: the audit event of %s %s was not stored",
                              op.method, op.path)
                response = Problem(503, "the audit trail is unavailable").response()
        else:
            log.info("admin api: %s %s refused: %s", op.method, op.path,
                     response.status_code)
        return response

    async def _principal(self, request: Request) -> Principal:
        ctx, settings = self.api.ctx, self.api.settings
        token = auth.bearer(request.scope.get("headers") or [])
        if token is not None:
            return await ctx.frontend.blocking.run(auth.from_token, ctx, token)
        if settings.client_ca is not None:
            cert = auth.client_certificate(request.scope)
            if cert is not None:
                return await ctx.frontend.blocking.run(auth.from_certificate, ctx,
                                                       settings, cert)
        raise unauthenticated()

    async def _body(self, op: Operation, request: Request) -> dict[str, Any]:
        if op.body is None:
            return {}
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise Problem(413, f"the body is larger than {MAX_BODY} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                raise Problem(413, f"the body is larger than {MAX_BODY} bytes")
        if not raw:
            raw = b"{}"
        elif media != JSON:
            raise Problem(415, "the body must be application/json")
        return inputs.body(bounded_json.loads(raw, what="the body", max_bytes=MAX_BODY),
                           op.body)


class _PathApp:
    """The operations of one path, as an ASGI app (so Starlette hands it every method):
    the operation of the request's method, or a 405 problem."""

    def __init__(self, api: ApiApp, ops: dict[str, Operation]) -> None:
        self.api = api
        self.ops = ops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        op = self.ops.get(request.method)
        if op is None:
            allow = ", ".join(sorted(self.ops))
            response: Response = Problem(405, f"this route takes {allow}",
                                         headers={"Allow": allow}).response()
        else:
            response = await self.api.run(op, request)
        await response(scope, receive, send)


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


def mount(ctx: AppContext, settings: AdminSettings,
          modules: Iterable[Callable[[], Sequence[Operation]]]) -> Mount:
    from . import openapi

    operations = [op for module in modules for op in module()]
    api = Api(ctx, settings, operations)
    api.document = openapi.build(operations, settings)
    return Mount("/api/v1", app=ApiApp(api))
