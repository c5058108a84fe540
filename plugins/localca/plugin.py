"""Entry point of the local CA backend (``backend = "local"`` in ``[cas.<name>]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enroll.hookspecs import hookimpl

from .backend import BACKEND, open_ca

if TYPE_CHECKING:
    from enroll.ca import CABackend, CAStore
    from enroll.config import CASettings, Config


@hookimpl
def enroll_ca_backend(name: str, settings: CASettings, store: CAStore,
                      parent: CABackend | None, config: Config, create: bool,
                      unseal: bool) -> CABackend | None:
    if settings.backend != BACKEND:
        return None
    return open_ca(name, settings, store, parent, config, create=create, unseal=unseal)
