"""The recovery pass: finish what a dead worker left half done.

Run at ``enroll serve`` start-up (in the parent, before the workers) and on a schedule
in every worker (`enroll.scheduler`), so it must be safe with several workers and hosts
at once: every item is claimed by a conditional UPDATE of a lease timestamp before
anyone acts on it.

- The core: requests left ``approved`` (signed, not stored) longer than
  ``recovery_grace`` are signed under a new serial and stored
  (`enroll.authority.Authority.recover_stale`); the client's retry (SCEP with the same
  transactionID, EST's retried request, an ACME order poll) then gets that certificate.
- Each protocol through the ``enroll_recover`` hook (ACME: orders stuck in
  ``processing`` are submitted again from the CSR that finalize stored).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from enroll.context import AppContext

log = logging.getLogger("enroll.recovery")


@dataclass(frozen=True, slots=True)
class Recovered:
    requests: int
    """Core requests resolved (issued, or failed with a reason the client sees)."""
    protocols: int
    """Items the protocols' ``enroll_recover`` hooks resolved."""


def run(ctx: AppContext) -> Recovered:
    """One recovery pass over the store. Failures are logged, never raised: the next
    pass (or the next start) tries again."""
    try:
        requests = len(ctx.authority.recover_stale())
    except Exception:
        log.exception("recovery of requests left approved failed")
        requests = 0
    resolved = 0
    grace = ctx.authority.recovery_grace.total_seconds()
    for impl in ctx.pm.hook.enroll_recover.get_hookimpls():
        try:
            count = impl.function(frontend=ctx.frontend, grace=grace)
        except Exception:
            log.exception("recovery of plugin %s failed", impl.plugin_name)
            continue
        resolved += count if isinstance(count, int) else 0
    if requests or resolved:
        log.warning("recovery pass resolved %d request(s) and %d protocol item(s)",
                    requests, resolved)
    return Recovered(requests, resolved)
