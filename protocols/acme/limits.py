"""ACME's rate limits and quotas, on the core's shared facility (`enroll.rate_limits`).

- ``new_accounts_per_address`` (rate, per source address): checked at newAccount before
  the JWS is verified or its nonce spent; counted when an account is created.
- ``new_orders_per_account`` (rate): checked at newOrder; counted per order created.
- ``failed_validations_per_account_and_name`` (rate): checked at newOrder for each
  identifier; counted when a validation fails.
- ``max_pending_authorizations`` (quota per account, counted in the ACME tables): newOrder.
- ``max_concurrent_validations`` (quota per account): the challenge response.
- ``acme.validation_concurrency`` (per worker): the challenge response.

Every refusal is ``rateLimited`` (429) with Retry-After (RFC 8555 §6.7).
"""

from __future__ import annotations

from collections.abc import Iterable

from enroll.errors import RateLimited
from enroll.rate_limits import Limit
from enroll.store.transaction import Tx

from . import store
from .endpoint import AcmeEndpoint

QUOTA_RETRY = 60
BUSY_RETRY = 2


def new_account(ep: AcmeEndpoint, source: str | None) -> list[Limit]:
    if source is None:
        return []
    return [Limit("acme.new_accounts", f"{ep.label}|{source}",
                  ep.settings.rate_limits["new_accounts_per_address"])]


def _orders(ep: AcmeEndpoint, account_id: str) -> Limit:
    return Limit("acme.new_orders", account_id, ep.settings.rate_limits["new_orders_per_account"],
                 "new orders for this account")


def _failures(ep: AcmeEndpoint, account_id: str, name: str) -> Limit:
    base = name[2:] if name.startswith("*.") else name
    return Limit("acme.failed_validations", f"{account_id}|{base.lower()}",
                 ep.settings.rate_limits["failed_validations_per_account_and_name"],
                 "failed validations for this account and identifier")


def check_new_order(ep: AcmeEndpoint, account_id: str, values: Iterable[str]) -> None:
    """newOrder's limits, before anything is written (one read for the rates)."""
    names = list(values)
    ep.limits.check([_orders(ep, account_id), *(_failures(ep, account_id, n) for n in names)],
                    "requests")
    with ep.db.read() as conn:
        pending = store.pending_authz_count(conn, account_id, ep.clock.now())
    if pending + len(names) > ep.settings.max_pending_authorizations:
        raise RateLimited(
            f"this account has {pending} pending authorizations, at most "
            f"{ep.settings.max_pending_authorizations} are allowed; complete or deactivate "
            "some first", retry_after=QUOTA_RETRY, limit="acme.pending_authorizations")


def order_created(ep: AcmeEndpoint, account_id: str, tx: Tx) -> None:
    """Count the order in the transaction that stores it."""
    ep.limits.hit([_orders(ep, account_id)], tx)


def validation_failed(ep: AcmeEndpoint, account_id: str, name: str) -> None:
    ep.limits.hit([_failures(ep, account_id, name)])


def take_validation_slot(ep: AcmeEndpoint, account_id: str) -> None:
    """Hold one of this worker's validation slots (release with `release_validation_slot`)
    if the account is under its cap of validations in progress; `RateLimited` if not."""
    with ep.db.read() as conn:
        running = store.processing_challenge_count(conn, account_id, ep.clock.now())
    if running >= ep.settings.max_concurrent_validations:
        raise RateLimited(f"this account has {running} validations in progress; retry "
                          "when they finish", retry_after=BUSY_RETRY,
                          limit="acme.concurrent_validations")
    if not ep.validation_slots.acquire(blocking=False):
        raise RateLimited("this server is running as many validations as it may; retry "
                          "shortly", retry_after=BUSY_RETRY, limit="acme.validation_concurrency")


def release_validation_slot(ep: AcmeEndpoint) -> None:
    ep.validation_slots.release()
