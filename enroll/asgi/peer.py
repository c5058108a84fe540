"""The client address of a request, for the audit trail of refusals.

``enroll serve``'s transport extension carries the real socket peer (immune to proxy
headers and to an ASGI server that rewrites ``scope["client"]``); embedded elsewhere, the
ASGI ``client`` is all there is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_ADDRESS = 64


def socket_peer(scope: Mapping[str, Any]) -> str | None:
    extensions = scope.get("extensions")
    transport = extensions.get("enroll.transport") if isinstance(extensions, Mapping) \
        else None
    peer = transport.get("peer") if isinstance(transport, Mapping) else scope.get("client")
    if not peer:
        return None
    return str(peer[0])[:MAX_ADDRESS]
