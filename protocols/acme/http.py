"""HTTP transport for ACME: routes, JWS request handling and problem responses.

Every POST is read (bounded by the app's body limit and `jws.MAX_JWS_BYTES`), then
parsed, authenticated and executed in ONE worker-thread call, so the event loop never
waits on crypto or the database. Validation runs as an asyncio task; its result lands in
the database, so any worker answers the client's polling."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from enroll import refusals
from enroll.asgi.error_headers import add_on_errors
from enroll.asgi.peer import peer_address
from enroll.asgi.plain_http import refuse_plain_http
from enroll.asgi.types import ASGIApp
from enroll.errors import EnrollError, NotFound
from enroll.profile_fleet import Fleet
from enroll.renewal_states import DEFAULT_FLEET

from . import accounts, ari, authorizations, certificates, limits, messages, orders, store
from .endpoint import AcmeEndpoint
from .jws import MAX_JWS_BYTES, parse
from .problems import AcmeProblem, from_error, internal, malformed, not_found

log = logging.getLogger("enroll.acme")
JOSE = "application/jose+json"


def plain_http_refusal(url: str) -> ASGIApp:
    """The answer on ``enroll serve``'s plain-HTTP listener: a problem document naming
    the HTTPS URL (the Replay-Nonce is added with every other error answer's)."""
    problem = AcmeProblem("malformed", f"ACME is served over HTTPS only (RFC 8555 "
                          f"section 6.1): {url}", 403)
    return Response(json.dumps(problem.document()), status_code=403,
                    media_type="application/problem+json",
                    headers={"Cache-Control": "no-store"})


def _request_id(request: Request) -> str:
    """The id `enroll.asgi.request_frame` gave this request (logged with the error)."""
    return str(request.scope.get("state", {}).get("request_id", "-"))


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"
    after: Callable[[], Coroutine[Any, Any, Reply | None]] | None = None
    """Work to finish before answering (a validation); its Reply, if any, is sent
    instead. It runs as its own task, so a client that goes away does not cancel it."""


class AcmeHttp:
    """Handlers for one endpoint."""

    def __init__(self, ep: AcmeEndpoint, descriptions: dict[str, str]) -> None:
        self.ep = ep
        self.descriptions = descriptions
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- plumbing -------------------------------------------------------------------------

    def base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/") + self.ep.settings.path

    def _headers(self, base: str, extra: dict[str, str]) -> dict[str, str]:
        headers = {"Replay-Nonce": self.ep.nonces.new(self.ep.clock.now()),
                   "Cache-Control": "no-store",
                   "Link": f'<{base}/directory>;rel="index"'}
        for key, value in extra.items():
            if key == "Link":
                headers["Link"] += ", " + value
            else:
                headers[key] = value
        return headers

    def _render(self, reply: Reply, base: str) -> Response:
        headers = self._headers(base, reply.headers)
        if reply.body is None:
            return Response(status_code=reply.status, headers=headers)
        content = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
        return Response(content, status_code=reply.status, headers=headers,
                        media_type=reply.media_type)

    def _problem(self, problem: AcmeProblem, base: str) -> Response:
        return Response(json.dumps(problem.document()), status_code=problem.status,
                        headers=self._headers(base, problem.headers),
                        media_type="application/problem+json")

    def _internal(self, request: Request, base: str, what: str) -> Response:
        """Log the exception being handled; answer serverInternal with the request id."""
        request_id = _request_id(request)
        log.exception(what, extra={"request_id": request_id})
        return self._problem(internal(request_id), base)

    async def _handle(self, request: Request, want: str, suffix: str,
                      op: Callable[[accounts.Verified, str, str], Reply],
                      first: Callable[[], None] | None = None) -> Response:
        """Verify the JWS, run `op` in a worker thread; `first` (a cheap refusal such
        as a rate limit) runs there before anything is verified."""
        base = self.base(request)
        try:
            if request.headers.get("content-type", "").split(";")[0].strip() != JOSE:
                raise AcmeProblem("malformed", f"Content-Type must be {JOSE}", 415)
            body = await request.body()
            if len(body) > MAX_JWS_BYTES:
                raise malformed("request too large")
            url = base + suffix

            def work() -> Reply:
                if first is not None:
                    first()
                v = accounts.authenticate(self.ep, parse(body), url, base, want=want)
                if v.account is None:
                    return op(v, base, url)
                with refusals.attributed(
                        f"acme-account:{accounts.account_url(base, v.account.id)}"):
                    return op(v, base, url)

            reply = await self.ep.blocking.run(work)
        except EnrollError as exc:
            problem = from_error(exc)
            await self._record_refusal(request, problem, exc, suffix)
            return self._problem(problem, base)
        except Exception:
            return self._internal(request, base, "ACME request failed")
        if reply.after is not None:
            task = asyncio.get_running_loop().create_task(reply.after())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            try:
                fresh = await asyncio.shield(task)
            except Exception:
                # Storing the result failed (the database): a problem document, not a
                # bare 500; the challenge stays `processing` for the client to poll.
                return self._internal(request, base, "ACME validation result not stored")
            if fresh is not None:
                reply = fresh
        return self._render(reply, base)

    async def _record_refusal(self, request: Request, problem: AcmeProblem,
                              exc: EnrollError, suffix: str) -> None:
        """Audit a refused request, except a stale nonce: RFC 8555 §6.5 makes badNonce
        part of the normal flow (the client retries with the nonce it was just given)."""
        if problem.typ == "badNonce":
            return
        resource = suffix.strip("/").split("/", 1)[0] or "-"
        await self.ep.blocking.run(
            self.ep.authority.record_refusal, f"acme:{self.ep.label}",
            f"acme_{problem.typ}"[:64], peer_address(request.scope), refusals.actor_of(exc),
            {"resource": resource, "detail": problem.detail})

    # -- unauthenticated resources ----------------------------------------------------------

    async def directory(self, request: Request) -> Response:
        base = self.base(request)
        body = messages.directory(base, self.ep.settings, self.descriptions)
        return Response(json.dumps(body), media_type="application/json",
                        headers={"Cache-Control": "public, max-age=0"})

    async def new_nonce(self, request: Request) -> Response:
        # RFC 8555 §7.2: 200 for HEAD, 204 for GET, never cached.
        response = self._render(Reply(200 if request.method == "HEAD" else 204),
                                self.base(request))
        return response

    def _fleet(self, profile: str) -> Fleet:
        """The profile's fleet settings; the default window for a profile no longer
        configured."""
        try:
            return self.ep.authority.profile(profile).fleet
        except NotFound:
            return DEFAULT_FLEET

    async def renewal_info(self, request: Request) -> Response:
        base = self.base(request)
        text = request.path_params["cert_id"]

        def work() -> Reply:
            aki, serial = ari.parse_cert_id(text)
            record = self.ep.authority.certificate(serial)
            if record is None or not ari.matches(record, aki):
                raise not_found("no such certificate")
            return Reply(200, ari.window(record, self.ep.clock.now(),
                                         self._fleet(record.profile)),
                         {"Retry-After": str(ari.RETRY_AFTER)})

        try:
            return self._render(await self.ep.blocking.run(work), base)
        except EnrollError as exc:
            return self._problem(from_error(exc), base)
        except Exception:
            return self._internal(request, base, "ACME renewal-info failed")

    # -- JWS resources ----------------------------------------------------------------------

    async def new_account(self, request: Request) -> Response:
        per_address = limits.new_account(self.ep, peer_address(request.scope))

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            account, created = accounts.new_account(self.ep, v, url)
            if created:
                self.ep.limits.hit(per_address)
            return Reply(201 if created else 200, messages.account(account, base),
                         {"Location": accounts.account_url(base, account.id)})

        def first() -> None:  # before the JWS is verified or its nonce spent
            self.ep.limits.check(per_address, "new accounts from this address")
        return await self._handle(request, "jwk", "/new-account", op, first)

    async def account(self, request: Request) -> Response:
        account_id = request.path_params["id"]

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            account = accounts.update_account(self.ep, v, account_id)
            return Reply(200, messages.account(account, base),
                         {"Location": accounts.account_url(base, account.id)})
        return await self._handle(request, "kid", f"/acct/{account_id}", op)

    async def account_orders(self, request: Request) -> Response:
        account_id = request.path_params["id"]

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            if v.account is None or v.account.id != account_id:
                raise AcmeProblem("unauthorized", "not your account", 403)
            with self.ep.db.read() as conn:
                ids = store.account_orders(conn, account_id)
            return Reply(200, {"orders": [f"{base}/order/{i}" for i in ids]})
        return await self._handle(request, "kid", f"/acct/{account_id}/orders", op)

    async def key_change(self, request: Request) -> Response:
        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            account = accounts.key_change(self.ep, v, url, base)
            return Reply(200, messages.account(account, base),
                         {"Location": accounts.account_url(base, account.id)})
        return await self._handle(request, "kid", "/key-change", op)

    async def new_order(self, request: Request) -> Response:
        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            order, authz_ids = orders.new_order(self.ep, v)
            return Reply(201, messages.order(order, authz_ids, base),
                         {"Location": f"{base}/order/{order.id}"})
        return await self._handle(request, "kid", "/new-order", op)

    def _order_reply(self, order: store.Order, base: str) -> Reply:
        headers = {"Location": f"{base}/order/{order.id}"}
        if order.status == "processing":
            headers["Retry-After"] = str(orders.RETRY_AFTER)
        return Reply(200, messages.order(order, orders.authz_ids(self.ep, order.id), base),
                     headers)

    async def order(self, request: Request) -> Response:
        order_id = request.path_params["id"]

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            if not v.jws.post_as_get:
                raise malformed("orders are read with POST-as-GET")
            return self._order_reply(orders.load_order(self.ep, v, order_id), base)
        return await self._handle(request, "kid", f"/order/{order_id}", op)

    async def finalize(self, request: Request) -> Response:
        order_id = request.path_params["id"]

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            return self._order_reply(orders.finalize(self.ep, v, order_id, base), base)
        return await self._handle(request, "kid", f"/order/{order_id}/finalize", op)

    async def authz(self, request: Request) -> Response:
        authz_id = request.path_params["id"]

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            authz, challenges = authorizations.update_authz(self.ep, v, authz_id)
            headers = {}
            if authz.status == "pending" and any(c.status == "processing"
                                                 for c in challenges):
                headers["Retry-After"] = "1"
            return Reply(200, messages.authorization(authz, challenges, base), headers)
        return await self._handle(request, "kid", f"/authz/{authz_id}", op)

    async def challenge(self, request: Request) -> Response:
        challenge_id = request.path_params["id"]

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            challenge, authz, start = authorizations.respond(self.ep, v, challenge_id)
            reply = Reply(200, messages.challenge(challenge, base),
                          {"Link": f'<{base}/authz/{authz.id}>;rel="up"'})
            if challenge.status == "processing":
                reply.headers["Retry-After"] = "1"
            if start:
                assert v.account is not None
                jwk = v.account.jwk
                payload = v.jws.payload()  # device-attest-01's attObj

                # RFC 8555 §7.5.1 lets the server validate before it answers: the
                # challenge comes back valid or invalid, which spares the client its
                # polls (the authorization and order still say the same to a poller).
                async def run() -> Reply | None:
                    attested = None
                    try:
                        error, attested = await authorizations.validate(
                            self.ep, challenge, authz, jwk, payload)
                    except Exception:
                        request_id = _request_id(request)
                        log.exception("validation crashed", extra={"request_id": request_id})
                        error = internal(request_id).document()
                    finally:
                        limits.release_validation_slot(self.ep)
                    done = await self.ep.blocking.run(authorizations.record_result, self.ep,
                                                      challenge.id, error, attested)
                    if done is None:
                        return None
                    return Reply(200, messages.challenge(done, base),
                                 {"Link": f'<{base}/authz/{authz.id}>;rel="up"'})
                reply.after = run
            return reply
        return await self._handle(request, "kid", f"/chall/{challenge_id}", op)

    async def certificate(self, request: Request) -> Response:
        order_id = request.path_params["id"]
        index = int(request.path_params.get("n", 0))
        suffix = f"/cert/{order_id}" + (f"/{index}" if "n" in request.path_params else "")

        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            if not v.jws.post_as_get:
                raise malformed("certificates are read with POST-as-GET")
            pems = certificates.chains(self.ep, v, order_id)
            if index >= len(pems):
                raise not_found("no such chain")
            links = [f'<{base}/cert/{order_id}/{i}>;rel="alternate"'
                     for i in range(len(pems)) if i != index]
            # RFC 8555 §7.4.2: alternate chains through Link rel="alternate".
            headers = {"Link": ", ".join(links)} if links else {}
            return Reply(200, pems[index], headers, certificates.PEM_CHAIN)
        return await self._handle(request, "kid", suffix, op)

    async def revoke(self, request: Request) -> Response:
        def op(v: accounts.Verified, base: str, url: str) -> Reply:
            certificates.revoke(self.ep, v)
            return Reply(200)
        return await self._handle(request, "any", "/revoke-cert", op)

    def error_headers(self) -> dict[str, str]:
        """What every answer under this endpoint carries, also the 404, 405, 413 and
        500 answers the app's outer layers make (`enroll.asgi.error_headers`)."""
        return {"Replay-Nonce": self.ep.nonces.new(self.ep.clock.now()),
                "Cache-Control": "no-store"}

    def routes(self) -> list[BaseRoute]:
        """This endpoint's routes, HTTPS-only (RFC 8555 §6.1) with a problem document as
        the plain-HTTP refusal, and a Replay-Nonce on every error answer under its path
        (RFC 8555 §6.5), wherever in the app the answer is made."""
        routes = refuse_plain_http(self._routes(), plain_http_refusal)
        return add_on_errors(routes, self.ep.settings.path, self.error_headers)

    def _routes(self) -> list[BaseRoute]:
        p = self.ep.settings.path
        return [
            Route(f"{p}/directory", self.directory, methods=["GET"]),
            Route(f"{p}/new-nonce", self.new_nonce, methods=["GET", "HEAD"]),
            Route(f"{p}/new-account", self.new_account, methods=["POST"]),
            Route(f"{p}/acct/{{id}}", self.account, methods=["POST"]),
            Route(f"{p}/acct/{{id}}/orders", self.account_orders, methods=["POST"]),
            Route(f"{p}/key-change", self.key_change, methods=["POST"]),
            Route(f"{p}/new-order", self.new_order, methods=["POST"]),
            Route(f"{p}/order/{{id}}", self.order, methods=["POST"]),
            Route(f"{p}/order/{{id}}/finalize", self.finalize, methods=["POST"]),
            Route(f"{p}/authz/{{id}}", self.authz, methods=["POST"]),
            Route(f"{p}/chall/{{id}}", self.challenge, methods=["POST"]),
            Route(f"{p}/cert/{{id}}", self.certificate, methods=["POST"]),
            Route(f"{p}/cert/{{id}}/{{n:int}}", self.certificate, methods=["POST"]),
            Route(f"{p}/revoke-cert", self.revoke, methods=["POST"]),
            Route(f"{p}/renewal-info/{{cert_id}}", self.renewal_info, methods=["GET"]),
        ]
