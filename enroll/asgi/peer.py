"""`peer_address(scope)`: the address a request came from, for per-address limits.

``enroll serve`` records the socket's peer in the ``enroll.transport`` scope extension
(`enroll.asgi.tls_client_cert`) before anything can rewrite ``scope["client"]``; under
another ASGI server the embedder's ``client`` is all there is. This is a *counting* key
(rate limits), never a proof of identity: trust decisions (forwarded client
certificates) read the transport extension alone.
It is also the client address in the audit trail of refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_ADDRESS = 64


def peer_address(scope: Mapping[str, Any]) -> str | None:
    extensions = scope.get("extensions")
    transport = extensions.get("enroll.transport") if isinstance(extensions, Mapping) \
        else None
    peer = transport.get("peer") if isinstance(transport, Mapping) else scope.get("client")
    if isinstance(peer, list | tuple) and peer:
        return str(peer[0])[:MAX_ADDRESS]
    return None
