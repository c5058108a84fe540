"""Entry point of the local CA backend (``backend = "local"`` in ``[cas.<name>]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from enroll.hookspecs import hookimpl

from .backend import BACKEND, open_ca

if TYPE_CHECKING:
    from enroll.ca import CABackend, CAStore
    from enroll.config import CASettings, Config
    from enroll.config_values import Secret
    from enroll.store.transaction import Tx


@hookimpl
def enroll_ca_backend(name: str, settings: CASettings, store: CAStore,
                      parent: CABackend | None, config: Config, create: bool,
                      unseal: bool) -> CABackend | None:
    if settings.backend != BACKEND:
        return None
    return open_ca(name, settings, store, parent, config, create=create, unseal=unseal)


@hookimpl
def enroll_reseal_secrets(tx: Tx, old: Secret, new: Secret) -> Mapping[str, int]:
    from .backend import reseal_keys

    return {"CA keys": reseal_keys(tx, old, new)}
