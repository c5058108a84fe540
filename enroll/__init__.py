"""enroll: one certificate authority engine behind SCEP, EST and ACME."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["create_app", "__version__"]

if TYPE_CHECKING:
    from enroll.app import EnrollApp
    from enroll.config import Config


def create_app(config: Config | None = None, **kwargs: Any) -> EnrollApp:
    """Build the ASGI app (see `enroll.app.create_app`)."""
    from enroll.app import create_app as _create_app

    return _create_app(config, **kwargs)
