"""The whole plugin contract of enroll.

Every hook is prefixed ``enroll_``. Hooks marked *firstresult* stop at the first
implementation that returns something other than None; all others collect every
implementation's answer. Built-in plugins (the local CA, the SCEP/EST/ACME front-ends,
the webhook verifier) implement these hooks exactly like third-party plugins do, and load
through the same entry-point group ``enroll``.

An exception raised by a plugin propagates: an `enroll.errors.EnrollError` reaches the
client as that error; anything else is an internal error (logged, generic to the client).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sqlalchemy import Table
    from starlette.routing import BaseRoute

    from enroll.attestation import AttestationContext, AttestedIdentity
    from enroll.ca import CABackend, CAStore
    from enroll.config import CASettings, Config
    from enroll.config_values import Secret
    from enroll.context import AppContext
    from enroll.door import FrontEnd
    from enroll.model import (
        CertificateDraft,
        CertificateRecord,
        ChallengeContext,
        Decision,
        EnrollmentRequest,
        RequestRecord,
    )
    from enroll.profile_fleet import Migration
    from enroll.profiles import Profile
    from enroll.store.transaction import Tx

hookspec = pluggy.HookspecMarker("enroll")
hookimpl = pluggy.HookimplMarker("enroll")


# -- CA backends ------------------------------------------------------------------------

@hookspec(firstresult=True)
def enroll_ca_backend(name: str, settings: CASettings, store: CAStore,
                      parent: CABackend | None, config: Config, create: bool,
                      unseal: bool) -> CABackend | None:
    """Open (creating on first use when `create`) the CA called `name`.

    Called once per configured CA at start-up, parents before children. Return a
    `enroll.ca.CABackend` if ``settings.backend`` names your backend, else None. `store`
    keeps the CA's certificate, chain and opaque key blob in the database, so every
    worker opens the same CA; `parent` is the already-opened parent CA (None for a root).

    `create` is True for ``enroll init``, ``enroll serve`` and `enroll.create_app`; for
    every other CLI command it is False and a CA that does not exist yet must raise
    `enroll.errors.NotInitialised` (``store.put`` raises it too). `unseal` asks for the
    signing key now, so a missing or wrong passphrase stops start-up; when False (read-only
    commands) open the key only when the CA first signs, so no passphrase is needed.
    """


@hookspec
def enroll_reseal_secrets(tx: Tx, old: Secret, new: Secret) -> Mapping[str, int] | None:
    """Re-seal every secret your plugin keeps sealed under the CA passphrase.

    Called by ``enroll ca rotate-passphrase`` inside the core's one write transaction
    `tx` (every plugin's rows change together or not at all). Read your rows through
    `tx`, open each blob with `old` and write it back sealed with `new`
    (`enroll.crypto.sealing.reseal` does both, and converts older formats to the current
    one); change nothing else. Return how many secrets of each kind you re-sealed
    (``{"scep RA keys": 2}``), or None if you keep none. Raise
    `enroll.crypto.sealing.UnsealError` naming the secret if one does not open: the
    whole rotation is rolled back and everything stays under `old`.
    """


# -- policy -----------------------------------------------------------------------------

@hookspec
def enroll_policy_vote(request: EnrollmentRequest, profile: Profile) -> Decision | None:
    """Vote on a request that passed the profile's rules. Every plugin votes.

    Return `Decision.allow()`, `Decision.pending(reason)` or `Decision.deny(reason)`, or
    None to abstain. Deny beats pending beats allow; a pending vote sends the request to
    the manual approval queue even under an auto-approval profile. The deny reason is
    shown to the client. Each vote is kept with your plugin's registered name in the
    request's audit event (`enroll.policy_votes`), and ``enroll profiles check`` asks
    you too (without storing anything), so a vote should have no side effects.
    """


@hookspec(firstresult=True)
def enroll_verify_attestation(context: AttestationContext) -> AttestedIdentity | None:
    """Verify a device attestation statement (ACME device-attest-01). *firstresult*.

    Return None if ``context.fmt`` is not your format. Otherwise check the statement's
    chain to ``context.roots`` (None: your format's default anchor) and its freshness
    (bound to ``context.token`` / ``context.key_authorization``), and return the
    `enroll.attestation.AttestedIdentity` it proves, or raise
    `enroll.attestation.AttestationRefused` with the reason shown to the client. The
    built-in ``apple`` verifier is `enroll.plugins.attestation.apple`.
    """


@hookspec(firstresult=True)
def enroll_verify_challenge(context: ChallengeContext, config: Config | None) -> bool | None:
    """Is this challenge password valid for this endpoint? *firstresult*.

    Return True to accept, False to refuse, None if the endpoint's challenge settings are
    not yours. If no plugin answers, the challenge is refused. Raise
    `enroll.errors.Unavailable` when a remote verifier cannot be reached. `config` is the
    running configuration (a verifier reads its own section; None in a bare `Authority`).
    """


@hookspec
def enroll_amend_certificate(draft: CertificateDraft, request: EnrollmentRequest,
                             profile: Profile) -> None:
    """Edit the certificate being built, in place (add an extension, shorten validity).

    Runs after the profile built the draft and before signing. Basic constraints are
    re-imposed from the profile afterwards and validity is capped at the issuer's.
    """


# -- events -----------------------------------------------------------------------------

@hookspec
def enroll_certificate_issued(certificate: CertificateRecord, request: RequestRecord,
                              config: Config | None) -> None:
    """A certificate was signed and stored (after the transaction committed, before the
    front-end answers the client)."""


@hookspec
def enroll_certificate_revoked(certificate: CertificateRecord, actor: str) -> None:
    """A certificate was revoked (after the transaction committed)."""


@hookspec
def enroll_request_pending(request: RequestRecord) -> None:
    """A request entered the manual approval queue."""


@hookspec
def enroll_request_rejected(request: RequestRecord, actor: str, reason: str) -> None:
    """A request was rejected by an operator or denied by policy, or expired waiting
    for approval (``actor`` is then ``system:expiry``; the request's status is
    ``expired``)."""


@hookspec
def enroll_request_refused(request: EnrollmentRequest, reason: str,
                           config: Config | None) -> None:
    """A submitted request was refused before anything was issued (profile rules, policy
    denial, CA failure): `reason` is what the client is told. Runs before the front-end
    answers; what the front-end itself refused (a bad challenge) never gets here."""


# -- lifecycle events (enroll.lifecycle) -------------------------------------------------
#
# Emitted by the ``lifecycle`` scheduler job (one worker per interval across hosts), each
# (certificate or profile, notice) at most once ever: the notice is recorded in the
# database (table ``lifecycle_notices``) before any listener is called, so a listener
# that fails or a worker that dies mid-run loses that notice rather than sending it
# twice. Each listener is called on its own: an exception is logged and does not stop
# the others. `config` is the running configuration (a listener reads its own section).

@hookspec
def enroll_certificate_expiring(certificate: CertificateRecord, remaining: int,
                                threshold: int, profile: Profile, config: Config) -> None:
    """An identity's current certificate crossed one of its profile's
    ``expiry_notices`` (`threshold` seconds before its notAfter) and has not been renewed;
    `remaining` is the seconds left. Each threshold fires once per certificate; one first
    seen inside several thresholds fires only the nearest (smallest)."""


@hookspec
def enroll_certificate_expired(certificate: CertificateRecord, profile: Profile,
                               config: Config) -> None:
    """An identity's current certificate passed its notAfter without a renewal (within
    the last `enroll.lifecycle.EXPIRED_LOOKBACK`); fires once per certificate."""


@hookspec
def enroll_migration_deadline(profile: Profile, migration: Migration, stragglers: int,
                              config: Config) -> None:
    """`profile`'s ``migration.after`` has come: `stragglers` identities still hold a live
    certificate from another protocol (or endpoint) than ``migration.to``. Fires once
    per profile and deadline (a changed ``after`` fires again)."""


# -- recovery ---------------------------------------------------------------------------

@hookspec
def enroll_recover(frontend: FrontEnd, grace: float) -> int | None:
    """Finish your protocol's work that a dead worker left half done (an ACME order
    stuck in ``processing``…), older than `grace` seconds. Every plugin is called.

    Runs in the recovery pass (`enroll.recovery`): at ``enroll serve`` start-up before
    the workers, then on a schedule in every worker, so several workers and hosts run it
    at once: claim each row with a conditional UPDATE (a lease timestamp) so exactly one
    acts on it. The core's own recovery (requests left ``approved``) has run first.
    Return how many items you resolved (None: nothing to do). An exception is logged and
    does not stop the other plugins' recovery."""


# -- composition: tables, routes, defaults, CLI, endpoints.json -------------------------

@hookspec
def enroll_config_sections() -> Mapping[str, Callable[[Config], Any] | None] | None:
    """The top-level config tables your plugin reads, each with its parser (or None).

    ``{"scep": settings.parse}``: a table no loaded plugin claims is a start-up error
    (`enroll.config_sections`), and each parser runs on the configuration at start-up
    of every command, raising `enroll.errors.ConfigError` for a bad or unknown key."""


@hookspec
def enroll_tables() -> Sequence[Table] | None:
    """The tables your plugin owns, declared on `enroll.store.schema.metadata`.

    Called before migrations run (and by alembic's environment), so schema checks and
    autogenerate see every protocol's tables without the core naming any protocol."""


@hookspec
def enroll_migration_dirs() -> Sequence[Path] | None:
    """Folders of alembic revisions for your tables, each history a branch off the
    core's ``0001_core``, when they do not ship in enroll's own ``migrations/versions``.
    ``enroll db upgrade`` runs every branch to its head."""


@hookspec
def enroll_routes(frontend: FrontEnd) -> Sequence[BaseRoute] | None:
    """Routes a front-end adds to the ASGI app (``/scep``, ``/.well-known/est``,
    ``/acme``…). Called once by `enroll.create_app`. `frontend` is the door into the
    core plus the config, clock, database (for the protocol's own tables) and the
    secret-sealing passphrase (`enroll.door.FrontEnd`); the composition root is not
    handed out. Requests to the returned routes are counted and logged under the
    plugin's registered name. Validate your config section here (`enroll.endpoints`)
    and raise `enroll.errors.ConfigError` with the dotted key if it is wrong."""


@hookspec
def enroll_operator_routes(context: AppContext) -> Sequence[BaseRoute] | None:
    """Routes of an operators' front-end (the admin API and console of
    ``enroll.admin``). Unlike a protocol, an operators' door acts on the whole engine
    (approval queue, revocation, inventory, audit, the protocols' credentials), as the
    CLI does, so it is handed the composition root; leave the plugin out
    (``disable_plugins = ["admin"]``) and the engine has no such door. Labelled, counted
    and kept off the plain-HTTP listener like `enroll_routes`."""


@hookspec
def enroll_default_config(data_dir: Path) -> Mapping[str, Any] | None:
    """Tables to write into the generated ``enroll.toml`` on first start (``enroll
    init``), e.g. ``{"scep": {...}}`` with a freshly generated challenge."""


@hookspec
def enroll_endpoint_info(frontend: FrontEnd, http_url: str,
                         https_url: str) -> Mapping[str, Any] | None:
    """Entries for ``endpoints.json`` and the start-up banner, keyed by protocol
    (``{"scep": {"url": ..., "challenge": ...}}``). `http_url`/`https_url` are the
    listeners' base URLs."""


@hookspec
def enroll_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add sub-commands to the ``enroll`` CLI. Set ``func=callable(args, opener)`` as
    the parser default; it receives the parsed args and an `enroll.cli.commands.Opener`
    whose ``context()`` opens the `AppContext` (and ``config()`` only the config) when
    the command needs it. ``context()`` opens the store as it is (it migrates nothing and
    creates no CA) and unseals CA keys only when they sign; a command that signs calls
    ``context(sign=True)``. Return an exit code (0 = success)."""


@hookspec
def enroll_tls_client_cas(frontend: FrontEnd) -> Sequence[Any] | None:
    """CA certificates (cryptography objects) whose client certificates the HTTPS
    listener should ask for. The front-end still decides what it accepts."""


