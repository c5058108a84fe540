"""The [est] section is checked at start-up and fails with the dotted key."""

from __future__ import annotations

from typing import Any

import pytest

from enroll.errors import ConfigError


@pytest.mark.parametrize(("est", "key"), [
    ({"endpoints": {"default": {"profile": "nope"}}}, "est.endpoints.default.profile"),
    ({"endpoints": {"default": {"ca": "nope"}}}, "est.endpoints.default.ca"),
    ({"endpoints": {"default": {"auth": ["kerberos"]}}}, "est.endpoints.default.auth"),
    ({"endpoints": {"default": {"users": {"a": "plaintext"}}}},
     "est.endpoints.default.users.a"),
    ({"endpoints": {"default": {"tls_unique": "maybe"}}}, "est.endpoints.default.tls_unique"),
    ({"endpoints": {"default": {"colour": "blue"}}}, "est.endpoints.default.colour"),
    ({"endpoints": {"cacerts": {}}}, "est.endpoints.cacerts"),
    ({"endpoints": {"a/b": {}}}, "est.endpoints.a/b"),
    ({"endpoints": {"default": {"client_cert_cas": ["/nonexistent.pem"]}}},
     "est.endpoints.default.client_cert_cas"),
    ({"path": "relative"}, "est.path"),
    ({"client_cert_header": "bad header!"}, "est.client_cert_header"),
    ({"bogus": 1}, "est.bogus"),
])
def test_bad_est_settings_name_the_key(make_config: Any, est: dict[str, Any],
                                       key: str) -> None:
    from enroll.app import create_app

    with pytest.raises(ConfigError) as info:
        create_app(make_config(est=est))
    assert info.value.key == key


def test_bad_trusted_proxy_is_a_config_error(make_config: Any) -> None:
    from enroll.app import create_app

    with pytest.raises(ConfigError) as info:
        create_app(make_config(trusted_proxies=["not-an-address"]))
    assert info.value.key == "trusted_proxies"


def test_disabled_est_serves_nothing(make_config: Any) -> None:
    from enroll.app import create_app

    app = create_app(make_config(est={"enabled": False}))
    try:
        paths = {getattr(r, "path", "") for r in app.routes}
        assert not any(p.startswith("/.well-known/est") for p in paths)
    finally:
        app.state.enroll.db.dispose()
