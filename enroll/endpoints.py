"""The settings kit: what every protocol's ``[<protocol>.endpoints.<label>]`` table has in
common, checked one way, and each protocol section parsed once per configuration.

An endpoint binds (protocol, label, path, profile, CA). Every front-end reads these four
with `endpoint_base`, and its own keys with the converters in `enroll.config_values` and
the few helpers here (`choice`, `choices`, `networks`). `cached(config, "acme", parse)`
runs a protocol's parser the first time it is asked for that configuration and hands the
same frozen result to every later hook (routes, endpoints.json, TLS client CAs, CLI).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from enroll.config import Config
from enroll.config_values import as_str, as_str_list
from enroll.errors import ConfigError

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_LABEL = "default"
MAX_LABEL = 64
MAX_PATH = 200
CORE_KEYS = frozenset({"migration"})
"""Keys of every endpoint table that the core reads, not the protocol: the source
endpoint's migration policy (`enroll.profile_fleet.parse_endpoint_migrations`). Each
protocol allows them in its key check."""
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~")


@dataclass(frozen=True, slots=True)
class EndpointBase:
    """The part of an endpoint every protocol has."""

    label: str
    path: str
    """Absolute path prefix, no trailing slash."""
    profile: str
    ca: str
    """The endpoint's CA: configured, or the profile's."""


def label(value: str, key: str, *, reserved: Iterable[str] = ()) -> str:
    """An endpoint label: one path segment of letters, digits, ``-`` and ``_``."""
    if not value or not value.replace("-", "").replace("_", "").isalnum() \
            or not value.isascii() or len(value) > MAX_LABEL:
        raise ConfigError(key, "endpoint labels are letters, digits, - and _")
    if value in set(reserved):
        raise ConfigError(key, f"{value!r} is a resource name of this protocol, "
                               "not a usable label")
    return value


def path(value: Any, key: str) -> str:
    """An absolute URL path (``/scep``, ``/mdm/scep``), without a trailing slash."""
    text = as_str(value, key).rstrip("/")
    if not text.startswith("/") or len(text) > MAX_PATH or not set(text) <= _PATH_CHARS \
            or "//" in text or "/../" in f"{text}/":
        raise ConfigError(key, "expected an absolute path like /scep or /mdm/scep")
    return text


def profile_name(value: Any, key: str, config: Config) -> str:
    name = as_str(value, key)
    if name not in config.profiles:
        raise ConfigError(key, f"no profile named {name!r}")
    return name


def ca_name(value: Any, key: str, config: Config) -> str:
    name = as_str(value, key)
    if name not in config.cas:
        raise ConfigError(key, f"no CA named {name!r}")
    return name


def endpoint_base(label_value: str, table: Mapping[str, Any], *, section: str,
                  config: Config, default_path: str, default_profile: str,
                  reserved: Iterable[str] = ()) -> EndpointBase:
    """Label, path, profile and CA of ``[<section>.endpoints.<label>]``. `default_path`
    is this endpoint's path when the table sets none."""
    key = f"{section}.endpoints.{label_value}"
    name = label(label_value, key, reserved=reserved)
    profile = profile_name(table.get("profile", default_profile), f"{key}.profile", config)
    ca = ca_name(table.get("ca", config.profiles[profile].ca), f"{key}.ca", config)
    where = path(table.get("path", default_path), f"{key}.path")
    return EndpointBase(label=name, path=where, profile=profile, ca=ca)


class Placed(Protocol):
    """Anything with an endpoint's label and path (every protocol's endpoint settings)."""

    @property
    def label(self) -> str: ...

    @property
    def path(self) -> str: ...


def unique_paths(section: str, endpoints: Iterable[Placed]) -> None:
    """Two endpoints of one protocol cannot share a path."""
    seen: dict[str, str] = {}
    for e in endpoints:
        if e.path in seen:
            raise ConfigError(f"{section}.endpoints.{e.label}.path",
                              f"{e.path} is used by endpoint {seen[e.path]!r} too")
        seen[e.path] = e.label


def choice(value: Any, key: str, allowed: Iterable[str]) -> str:
    options = tuple(allowed)
    text = as_str(value, key)
    if text not in options:
        raise ConfigError(key, f"expected one of {', '.join(options)}")
    return text


def choices(value: Any, key: str, allowed: Iterable[str]) -> tuple[str, ...]:
    """A non-empty list drawn from `allowed`, in the order given, without repeats."""
    options = tuple(allowed)
    picked = as_str_list(value, key)
    if not picked or any(p not in options for p in picked):
        raise ConfigError(key, f"expected a list of {', '.join(options)}")
    return tuple(dict.fromkeys(picked))


def networks(value: Any, key: str) -> tuple[Network, ...]:
    """A list of CIDR networks (a bare address is its /32 or /128)."""
    out = []
    for text in as_str_list(value, key):
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ConfigError(key, f"not a network: {text[:64]!r}") from None
    return tuple(out)


def cached(config: Config, section: str, parse: Callable[[Config], T]) -> T:
    """`parse(config)`, run once per configuration and section: start-up checks every
    section once, and every later hook gets the same frozen settings."""
    store = config.parsed
    if section not in store:
        store[section] = parse(config)
    result: T = store[section]
    return result
