"""JSON from clients: bounded size and nesting depth, parsed once, typed refusals.

The standard library's parser recurses once per nesting level, so 64 KiB of ``[``
raise `RecursionError` (not a `ValueError`), and a deeply nested value that does parse
makes every later walk over it deep too. `loads` refuses both with `MalformedInput`,
as it refuses anything else that is not JSON (bad UTF-8, a number of more than 4300
digits, trailing data): nothing else escapes it.
"""

from __future__ import annotations

import json
from typing import Any

from enroll.errors import MalformedInput

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
"""RFC 8555 objects nest at most four deep (a newOrder payload: object, identifiers
list, identifier object); 16 leaves room for extensions and refuses the pathological."""


def loads(data: bytes | str, *, what: str = "JSON", max_bytes: int = MAX_JSON_BYTES,
          max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The value `data` encodes. Raises `MalformedInput` (naming `what`) for more than
    `max_bytes`, nesting deeper than `max_depth`, or anything that is not JSON."""
    if not isinstance(data, bytes | str):
        raise MalformedInput(f"{what} is not JSON")
    if len(data) > max_bytes:
        raise MalformedInput(f"{what} is larger than {max_bytes} bytes")
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    # Fewer openers than the limit cannot nest past it: the common case costs two
    # byte counts and no walk.
    openers = raw.count(b"[") + raw.count(b"{")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError, TypeError):
        raise MalformedInput(f"{what} is not JSON") from None
    if openers > max_depth and _depth(value) > max_depth:
        raise MalformedInput(f"{what} nests deeper than {max_depth} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest
