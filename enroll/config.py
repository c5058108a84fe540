"""Configuration: one TOML file, every value overridable by ``ENROLL_*`` variables.

`load(path, env)` is the only place that reads the environment. It returns a frozen
`Config`, or raises `ConfigError` naming the dotted key and what was expected, so a bad
value stops start-up instead of failing a request later.

Environment overrides: ``ENROLL_HTTP_PORT=9000`` sets the top-level ``http_port``;
``ENROLL_ACME_RESOLVER=127.0.0.1:53`` sets ``acme.resolver`` (first ``_`` splits the
section when the name is not a top-level key); ``ENROLL_PROFILES__IOT__VALIDITY=30d``
sets ``profiles.iot.validity`` (``__`` separates every level). Values from the
environment are strings; each setting converts them as it converts file values.

Every ``ENROLL_*`` variable must be a setting or one of `DIRECT_VARIABLES`: a variable
that maps to nothing (``ENROLL_DATABSE_URL``) stops start-up naming it. A variable that
lands in a section is checked by that section's parser (`enroll.config_sections`).
Variables starting with `RESERVED_PREFIX` belong to enroll's test suite and are ignored.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enroll.config_values import (
    KEY_TYPES,
    Secret,
    as_bool,
    as_duration,
    as_int,
    as_str,
    as_str_list,
    as_table,
    check_keys,
)
from enroll.errors import ConfigError
from enroll.profile_fleet import Migration, parse_endpoint_migrations

if TYPE_CHECKING:
    from enroll.profiles import Profile

__all__ = ["KEY_TYPES", "CASettings", "Config", "Secret", "load", "from_raw",
           "default_raw_config"]

DEFAULT_DATA_DIR = "enroll-data"
CONFIG_FILE_NAME = "enroll.toml"
ENV_PREFIX = "ENROLL_"
# Every ``ENROLL_*`` variable enroll reads that is not a setting, in one place.
DIRECT_VARIABLES = {
    "ENROLL_CONFIG": "the config file (read by `read_raw`, like --config)",
    "ENROLL_REQUIRE_INTEROP": "tests: a missing interop client fails instead of skipping",
}
RESERVED_PREFIX = "ENROLL_TEST_"
"""``ENROLL_TEST_*`` (e.g. ``ENROLL_TEST_DATABASE_URL``) is the test suite's; ignored."""
TOP_LEVEL_KEYS = {
    "data_dir", "host", "http_port", "https_port", "workers", "public_http_url",
    "public_https_url", "database_url", "ca_passphrase", "ca_passphrase_file",
    "log_format", "log_level", "log_requests", "plugins", "disable_plugins", "tls_names",
    "trusted_proxies", "max_body_bytes", "crl_check_interval", "recovery_grace",
    "recovery_interval",
}


# -- the validated configuration --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CASettings:
    name: str
    backend: str
    parent: str | None
    subject: str
    key_type: str
    validity_days: int
    crl_validity: int
    """Seconds between a CRL's thisUpdate and nextUpdate."""
    crl_refresh: int
    """Seconds after which a CRL is re-signed even without a revocation."""
    options: Mapping[str, Any]
    ocsp_validity: int = 86400
    """Seconds from signing to an OCSP response's nextUpdate (re-signed at half of it)."""
    ocsp_backdate: int = 300
    """Seconds an OCSP response's thisUpdate is set back, for relying parties' clock skew."""


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    host: str
    http_port: int
    https_port: int
    workers: int
    public_http_url: str
    public_https_url: str
    database_url: str
    ca_passphrase: Secret | None
    log_format: str
    log_level: str
    log_requests: bool
    """One log line per HTTP request (off by default: metrics count every request)."""
    plugins: tuple[str, ...]
    disable_plugins: tuple[str, ...]
    tls_names: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    max_body_bytes: int
    cas: Mapping[str, CASettings]
    profiles: Mapping[str, Profile]
    sections: Mapping[str, Mapping[str, Any]]
    """Raw tables for protocols and plugins (``scep``, ``est``, ``acme``, ``webhook``…);
    each validates its own table at start-up with the converters above."""
    source: Path | None = None
    recovery_grace: int = 60
    """Seconds a request may stay ``approved`` (or an ACME order ``processing``) before
    the recovery pass (`enroll.recovery`) takes it over from a signer presumed dead."""
    recovery_interval: int = 60
    """Seconds between two recovery passes of each worker (`enroll.scheduler`)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    env_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Dotted key -> the ``ENROLL_*`` variable that set it (to name it in errors)."""
    endpoint_migrations: Mapping[tuple[str, str], Migration] = field(default_factory=dict)
    """(protocol, endpoint label) -> ``[<protocol>.endpoints.<label>.migration]``
    (`enroll.profile_fleet.parse_endpoint_migrations`)."""
    parsed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Each protocol's section once parsed (`enroll.endpoints.cached`)."""

    def section(self, name: str) -> Mapping[str, Any]:
        return self.sections.get(name, {})


def default_raw_config() -> dict[str, Any]:
    """The embedded default: a root and an issuing CA (EC P-256), the RSA issuing CA the
    default SCEP endpoint uses, and three profiles."""
    return {
        "cas": {
            "root": {"backend": "local", "subject": "CN=enroll Root CA,O=enroll",
                     "key_type": "ec-p256", "validity_days": 3650},
            "issuing": {"backend": "local", "parent": "root",
                        "subject": "CN=enroll Issuing CA,O=enroll",
                        "key_type": "ec-p256", "validity_days": 1825},
            # SCEP's: GetCACert must carry the CA the devices' certificates chain to, and
            # SCEP clients envelope to every certificate there (RSA key transport only),
            # so the CA SCEP issues from has an RSA key (docs/scep.md).
            "scep": {"backend": "local", "parent": "root",
                     "subject": "CN=enroll SCEP Issuing CA,O=enroll",
                     "key_type": "rsa-2048", "validity_days": 1825},
        },
        "profiles": {
            "device": {
                "ca": "issuing", "validity": "365d",
                "key_usage": ["digital_signature", "key_encipherment"],
                "extended_key_usage": ["client_auth"],
                "identity": "subject.CN",
                "subject": {"CN": "csr", "O": "csr", "OU": "csr"},
                "san": {"dns": ["*"], "email": ["*"], "uri": ["*"], "ip": ["0.0.0.0/0", "::/0"],
                        "max_names": 10},
                "key_types": ["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"],
                "crl": True, "ocsp": True, "aia": True,
            },
            "server": {
                "ca": "issuing", "validity": "90d",
                "key_usage": ["digital_signature", "key_encipherment"],
                "extended_key_usage": ["server_auth", "client_auth"],
                "subject": {"CN": "csr"},
                "san": {"dns": ["*"], "ip": ["0.0.0.0/0", "::/0"], "max_names": 100,
                        "require": True},
                "key_types": ["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384",
                              "ed25519"],
                "crl": True, "ocsp": True, "aia": True,
            },
            "tls-listener": {
                "ca": "issuing", "validity": "365d", "identity": "requester",
                "key_usage": ["digital_signature"],
                "extended_key_usage": ["server_auth"],
                "subject": {"CN": "csr"},
                "san": {"dns": ["*"], "ip": ["0.0.0.0/0", "::/0"], "max_names": 20},
                "key_types": ["ec-p256"],
            },
        },
    }


def _env_path(name: str) -> list[str]:
    if "__" in name:
        return [p for p in name.split("__") if p]
    if name in TOP_LEVEL_KEYS:
        return [name]
    section, _, rest = name.partition("_")
    return [section, rest] if rest else [section]


def is_setting_variable(var: str) -> bool:
    """Is `var` an ``ENROLL_*`` variable that sets a configuration value?"""
    return (var.startswith(ENV_PREFIX) and var not in DIRECT_VARIABLES
            and not var.startswith(RESERVED_PREFIX))


def apply_env(raw: MutableMapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Overlay ``ENROLL_*`` variables on the raw table (strings; settings convert them).
    Returns dotted key -> variable, for every key a variable set."""
    origins: dict[str, str] = {}
    for var, value in sorted(env.items()):
        if not is_setting_variable(var):
            continue
        name = var[len(ENV_PREFIX):].lower()
        path = _env_path(name)
        if not path or not all(path):
            raise ConfigError(var, unknown_variable(var))
        origins[".".join(path)] = var
        table: MutableMapping[str, Any] = raw
        for part in path[:-1]:
            nxt = table.get(part)
            if not isinstance(nxt, MutableMapping):
                nxt = {}
                table[part] = nxt
            table = nxt
        table[path[-1]] = value
    return origins


def unknown_variable(var: str, sections: Iterable[str] = ()) -> str:
    """'unknown setting', with the closest known variable when one is close."""
    known = [ENV_PREFIX + k.upper() for k in TOP_LEVEL_KEYS] + list(DIRECT_VARIABLES)
    close = difflib.get_close_matches(var, known, n=1, cutoff=0.8)
    suggestion = close[0] if close else None
    name = var[len(ENV_PREFIX):]
    if suggestion is None and "_" in name:
        # A misspelt section: ENROLL_SCPE_CHALLENGE -> ENROLL_SCEP_CHALLENGE.
        head, sep, rest = name.partition("__") if "__" in name else name.partition("_")
        tables = [t.upper() for t in ("cas", "profiles", *sections)]
        near = difflib.get_close_matches(head, tables, n=1, cutoff=0.7)
        if near:
            suggestion = f"{ENV_PREFIX}{near[0]}{sep}{rest}"
    return "unknown setting" + (f" (did you mean {suggestion}?)" if suggestion else "")


def env_error(exc: ConfigError, env_keys: Mapping[str, str],
              sections: Iterable[str] = ()) -> ConfigError:
    """`exc` restated with the ``ENROLL_*`` variable that set its key, if one did. An
    unknown top-level key or table set by a variable is that variable's error."""
    var = env_keys.get(exc.key)
    unknown = exc.message.startswith("unknown setting")
    if unknown and "." not in exc.key:
        var = var or next((v for k, v in sorted(env_keys.items())
                           if k.startswith(exc.key + ".")), None)
        if var is not None:
            return ConfigError(var, unknown_variable(var, sections))
    if var is None:
        return exc
    if unknown:
        return ConfigError(var, f"{exc.key}: {exc.message}")
    return ConfigError(exc.key, f"{exc.message} (set by {var})")


def _merge(base: MutableMapping[str, Any], over: Mapping[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), MutableMapping):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def read_raw(path: Path | None, env: Mapping[str, str], data_dir: Path | None = None
             ) -> tuple[dict[str, Any], Path | None, dict[str, str]]:
    """The raw merged table: embedded defaults < file < environment.

    The file is `path`, else ``ENROLL_CONFIG``, else ``<data_dir>/enroll.toml`` if it
    exists; with none, the embedded default alone.
    """
    raw = default_raw_config()
    env_data_dir = env.get("ENROLL_DATA_DIR")
    base_dir = Path(data_dir or env_data_dir or DEFAULT_DATA_DIR)
    if path is None and env.get("ENROLL_CONFIG"):
        path = Path(env["ENROLL_CONFIG"])
    if path is None and (base_dir / CONFIG_FILE_NAME).is_file():
        path = base_dir / CONFIG_FILE_NAME
    if path is not None:
        try:
            with open(path, "rb") as fh:
                from_file = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError("", f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("", f"{path}: not valid TOML: {exc}") from exc
        # A file that defines its own CAs or profiles replaces the embedded ones.
        for table in ("cas", "profiles"):
            if table in from_file:
                raw[table] = {}
        _merge(raw, from_file)
        raw.setdefault("data_dir", str(path.parent))
    if data_dir is not None:
        raw["data_dir"] = str(data_dir)
    origins = apply_env(raw, env)
    return raw, path, origins


def load(path: Path | None = None, env: Mapping[str, str] | None = None, *,
         data_dir: Path | None = None) -> Config:
    """Read, merge and validate the configuration. Raises `ConfigError`."""
    raw, source, origins = read_raw(path, env or {}, data_dir)
    return from_raw(raw, source=source, env_keys=origins)


def from_raw(raw: Mapping[str, Any], source: Path | None = None,
             env_keys: Mapping[str, str] | None = None) -> Config:
    """Validate a raw table (as read from TOML) into a `Config`. `env_keys` (from
    `apply_env`) lets an error name the variable that set the bad key."""
    try:
        return _from_raw(raw, source, dict(env_keys or {}))
    except ConfigError as exc:
        raise env_error(exc, env_keys or {}) from exc


def _from_raw(raw: Mapping[str, Any], source: Path | None,
              env_keys: dict[str, str]) -> Config:
    from enroll.profiles import parse_profiles

    raw = copy.deepcopy(dict(raw))
    data_dir = Path(as_str(raw.get("data_dir", DEFAULT_DATA_DIR), "data_dir")).resolve()
    host = as_str(raw.get("host", "127.0.0.1"), "host")
    http_port = as_int(raw.get("http_port", 8080), "http_port", minimum=0, maximum=65535)
    https_port = as_int(raw.get("https_port", 8443), "https_port", minimum=0, maximum=65535)
    url_host = f"[{host}]" if ":" in host else host
    public_http = as_str(raw.get("public_http_url", f"http://{url_host}:{http_port}"),
                         "public_http_url").rstrip("/")
    public_https = as_str(raw.get("public_https_url", f"https://{url_host}:{https_port}"),
                          "public_https_url").rstrip("/")
    for key, url in (("public_http_url", public_http), ("public_https_url", public_https)):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(key, f"expected an http(s) URL, got {url!r}")
    database_url = as_str(raw.get("database_url", f"sqlite:///{data_dir / 'enroll.db'}"),
                          "database_url")
    if not database_url.startswith(("sqlite", "postgresql")):
        raise ConfigError("database_url", "expected a sqlite:/// or postgresql:// URL")

    passphrase: Secret | None = None
    if "ca_passphrase" in raw:
        passphrase = Secret(str(raw["ca_passphrase"]))
    elif "ca_passphrase_file" in raw:
        pfile = Path(as_str(raw["ca_passphrase_file"], "ca_passphrase_file"))
        try:
            passphrase = Secret(pfile.read_text().strip())
        except OSError as exc:
            raise ConfigError("ca_passphrase_file", f"cannot read {pfile}: {exc.strerror}") from exc
    if passphrase is not None and len(passphrase.reveal()) < 8:
        raise ConfigError("ca_passphrase", "must be at least 8 characters")

    log_format = as_str(raw.get("log_format", "text"), "log_format")
    if log_format not in ("text", "json"):
        raise ConfigError("log_format", "expected 'text' or 'json'")
    log_level = as_str(raw.get("log_level", "info"), "log_level").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("log_level", "expected debug, info, warning or error")

    cas = _parse_cas(as_table(raw.get("cas", {}), "cas"))
    profiles = parse_profiles(as_table(raw.get("profiles", {}), "profiles"),
                              {name: ca.validity_days for name, ca in cas.items()},
                              public_http)
    sections = {k: v for k, v in raw.items() if isinstance(v, Mapping)
                and k not in ("cas", "profiles")}
    unknown = [k for k in raw if k not in TOP_LEVEL_KEYS and k not in sections
               and k not in ("cas", "profiles")]
    if unknown:
        close = difflib.get_close_matches(unknown[0], TOP_LEVEL_KEYS, n=1)
        raise ConfigError(unknown[0], "unknown setting" + (
            f" (did you mean {close[0]}?)" if close else ""))
    return Config(
        data_dir=data_dir, host=host, http_port=http_port, https_port=https_port,
        workers=as_int(raw.get("workers", 1), "workers", minimum=1, maximum=64),
        public_http_url=public_http, public_https_url=public_https,
        database_url=database_url, ca_passphrase=passphrase,
        log_format=log_format, log_level=log_level,
        log_requests=as_bool(raw.get("log_requests", False), "log_requests"),
        plugins=as_str_list(raw.get("plugins", []), "plugins"),
        disable_plugins=as_str_list(raw.get("disable_plugins", []), "disable_plugins"),
        tls_names=as_str_list(raw.get("tls_names", ["localhost", "127.0.0.1", "::1"]),
                              "tls_names"),
        trusted_proxies=as_str_list(raw.get("trusted_proxies", []), "trusted_proxies"),
        max_body_bytes=as_int(raw.get("max_body_bytes", 256 * 1024), "max_body_bytes",
                              minimum=1024, maximum=16 * 1024 * 1024),
        cas=cas, profiles=profiles, sections=sections, source=source, raw=raw,
        endpoint_migrations=parse_endpoint_migrations(sections),
        env_keys=env_keys,
        recovery_grace=as_duration(raw.get("recovery_grace", "60s"), "recovery_grace",
                                   minimum=5, maximum=86400),
        recovery_interval=as_duration(raw.get("recovery_interval", "60s"),
                                      "recovery_interval", minimum=1, maximum=86400),
    )


_CA_KEYS = {"backend", "parent", "subject", "key_type", "validity_days", "crl_validity",
            "crl_refresh", "options", "ocsp_validity", "ocsp_backdate"}


def _parse_cas(table: Mapping[str, Any]) -> dict[str, CASettings]:
    from cryptography import x509

    cas: dict[str, CASettings] = {}
    if not table:
        raise ConfigError("cas", "at least one CA must be configured")
    for name, value in table.items():
        key = f"cas.{name}"
        entry = as_table(value, key)
        check_keys(entry, _CA_KEYS, key)
        subject = as_str(entry.get("subject", f"CN={name}"), f"{key}.subject")
        try:
            x509.Name.from_rfc4514_string(subject)
        except ValueError as exc:
            raise ConfigError(f"{key}.subject", f"not an RFC 4514 name: {exc}") from exc
        key_type = as_str(entry.get("key_type", "ec-p256"), f"{key}.key_type")
        if key_type not in KEY_TYPES:
            raise ConfigError(f"{key}.key_type", f"expected one of {', '.join(KEY_TYPES)}")
        parent = entry.get("parent")
        cas[name] = CASettings(
            name=name,
            backend=as_str(entry.get("backend", "local"), f"{key}.backend"),
            parent=as_str(parent, f"{key}.parent") if parent is not None else None,
            subject=subject,
            key_type=key_type,
            validity_days=as_int(entry.get("validity_days", 1825), f"{key}.validity_days",
                                 minimum=1, maximum=36500),
            crl_validity=as_duration(entry.get("crl_validity", "7d"), f"{key}.crl_validity",
                                     minimum=300),
            crl_refresh=as_duration(entry.get("crl_refresh", "1h"), f"{key}.crl_refresh",
                                    minimum=10),
            options=as_table(entry.get("options", {}), f"{key}.options"),
            ocsp_validity=as_duration(entry.get("ocsp_validity", "1d"),
                                      f"{key}.ocsp_validity", minimum=60),
            ocsp_backdate=as_duration(entry.get("ocsp_backdate", "5m"),
                                      f"{key}.ocsp_backdate", minimum=0, maximum=86400),
        )
    for name, ca in cas.items():
        if ca.parent is not None and ca.parent not in cas:
            raise ConfigError(f"cas.{name}.parent", f"no CA named {ca.parent!r}")
        seen = {name}
        cur = ca
        while cur.parent is not None:
            if cur.parent in seen:
                raise ConfigError(f"cas.{name}.parent", "CA parents form a cycle")
            seen.add(cur.parent)
            cur = cas[cur.parent]
    return cas
