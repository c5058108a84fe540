"""Values in the configuration: converters that check a raw TOML/``ENROLL_*`` value and
name the dotted key when it is wrong, and `Secret`, whose repr never shows the value.

Shared by the core's `config`, `profiles`, the settings kit (`enroll.endpoints`) and every
protocol's and plugin's own section; it imports nothing of enroll but the errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enroll.errors import ConfigError

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519")


class Secret:
    """A secret string whose repr never shows the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def as_str(value: Any, key: str) -> str:
    if isinstance(value, str):
        return value
    raise ConfigError(key, f"expected a string, got {type(value).__name__}")


def as_int(value: Any, key: str, *, minimum: int | None = None,
           maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(key, "expected an integer, got a boolean")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        value = int(value.strip())
    if not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(key, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(key, f"must be <= {maximum}, got {value}")
    return value


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(key, f"expected true or false, got {value!r}")


def as_str_list(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(key, "expected a list of strings")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def as_duration(value: Any, key: str, *, minimum: int = 1,
                maximum: int = 100 * 365 * 86400) -> int:
    """Seconds from ``90d``, ``12h``, ``30m``, ``45s`` or a bare integer of seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and 1 < len(value.strip()) <= 12:
        text = value.strip().lower()
        number, unit = text[:-1], text[-1]
        if unit.isdigit():
            number, unit = text, "s"
        if not number.isdigit() or unit not in _UNITS:
            raise ConfigError(key, f"expected a duration like 90d, 12h, 30m or 45s, got {value!r}")
        seconds = int(number) * _UNITS[unit]
    else:
        raise ConfigError(key, f"expected a duration like 90d, 12h, 30m or 45s, got {value!r}")
    if not minimum <= seconds <= maximum:
        raise ConfigError(key, f"duration out of range ({minimum}s..{maximum}s): {value!r}")
    return seconds


def as_table(value: Any, key: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise ConfigError(key, "expected a table")


def check_keys(table: Mapping[str, Any], allowed: set[str], key: str) -> None:
    """Refuse unknown keys, so a misspelt setting fails loudly instead of being ignored."""
    for name in table:
        if name not in allowed:
            raise ConfigError(f"{key}.{name}" if key else name,
                              f"unknown setting (expected one of: {', '.join(sorted(allowed))})")
