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


def test_trusted_proxies_alone_stop_start_up_saying_what_to_add(make_config: Any) -> None:
    from enroll.app import create_app

    with pytest.raises(ConfigError) as info:
        create_app(make_config(trusted_proxies=["127.0.0.2"]))
    assert info.value.key == "trusted_proxies"
    assert "[est.proxy]" in str(info.value) and "client_certs" in str(info.value)
    assert "secret_file" in str(info.value)


def _proxy_cases(tmp: Any) -> list[tuple[dict[str, Any], list[str], str]]:
    short = tmp / "short"
    short.write_text("too-short")
    good = tmp / "good"
    good.write_text("s" * 40)
    return [
        ({}, ["127.0.0.2"], "est.proxy"),
        ({"secret_file": str(good)}, [], "est.proxy"),
        ({"secret_file": str(short)}, ["127.0.0.2"], "est.proxy.secret_file"),
        ({"secret_file": str(tmp / "missing")}, ["127.0.0.2"], "est.proxy.secret_file"),
        ({"client_certs": [str(tmp / "missing.pem")]}, ["127.0.0.2"],
         "est.proxy.client_certs"),
        ({"secret_file": str(good), "secret_header": "bad header"}, ["127.0.0.2"],
         "est.proxy.secret_header"),
        ({"secret_file": str(good), "secret_header": "X-SSL-Client-Cert"}, ["127.0.0.2"],
         "est.proxy.secret_header"),
        ({"secret_file": str(good), "addresses": ["x"]}, ["127.0.0.2"],
         "est.proxy.addresses"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_bad_proxy_settings_name_the_key(make_config: Any, tmp_path: Any, case: int) -> None:
    from enroll.app import create_app

    proxy, networks, key = _proxy_cases(tmp_path)[case]
    with pytest.raises(ConfigError) as info:
        create_app(make_config(trusted_proxies=networks, est={"proxy": proxy}))
    assert info.value.key == key, str(info.value)
    assert "s" * 40 not in str(info.value)  # never the secret
