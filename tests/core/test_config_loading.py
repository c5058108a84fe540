"""Configuration: bad values stop start-up with the dotted key; ENROLL_* overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from enroll import config as config_mod
from enroll.errors import ConfigError


def raw(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    table = copy.deepcopy(config_mod.default_raw_config())
    table["data_dir"] = str(tmp_path)
    table.update(overrides)
    return table


def config_error(table: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config_mod.from_raw(table)
    return info.value


def test_embedded_default_is_valid(tmp_path: Path) -> None:
    cfg = config_mod.from_raw(raw(tmp_path))
    assert set(cfg.cas) == {"root", "issuing", "scep"}
    assert set(cfg.profiles) == {"device", "server", "tls-listener"}
    assert cfg.profiles["device"].validity == 365 * 86400


def test_unknown_top_level_setting_names_the_key(tmp_path: Path) -> None:
    err = config_error(raw(tmp_path, htttp_port=80))
    assert err.key == "htttp_port"
    assert "unknown setting" in str(err)


def test_unknown_profile_setting_names_the_dotted_key(tmp_path: Path) -> None:
    table = raw(tmp_path)
    table["profiles"]["device"]["validty"] = "30d"
    err = config_error(table)
    assert err.key == "profiles.device.validty"
    assert "unknown setting" in err.message


def test_unknown_san_setting_names_the_dotted_key(tmp_path: Path) -> None:
    table = raw(tmp_path)
    table["profiles"]["server"]["san"]["dsn"] = ["*"]
    assert config_error(table).key == "profiles.server.san.dsn"


@pytest.mark.parametrize("value", ["ninety days", "90x", "", "-5d", True])
def test_bad_duration_names_the_dotted_key(tmp_path: Path, value: Any) -> None:
    table = raw(tmp_path)
    table["profiles"]["device"]["validity"] = value
    err = config_error(table)
    assert err.key == "profiles.device.validity"
    assert "duration" in err.message


def test_validity_longer_than_the_ca_is_refused_at_start_up(tmp_path: Path) -> None:
    table = raw(tmp_path)
    table["profiles"]["device"]["validity"] = "3650d"
    err = config_error(table)
    assert err.key == "profiles.device.validity"
    assert "out of range" in err.message


def test_profile_naming_an_unknown_ca_names_the_dotted_key(tmp_path: Path) -> None:
    table = raw(tmp_path)
    table["profiles"]["device"]["ca"] = "nosuch"
    err = config_error(table)
    assert (err.key, err.message) == ("profiles.device.ca", "no CA named 'nosuch'")


@pytest.mark.parametrize(("path", "value", "key"), [
    (("profiles", "device", "key_usage"), ["digital_signature", "sign_everything"],
     "profiles.device.key_usage"),
    (("profiles", "device", "key_usage"), ["key_cert_sign"], "profiles.device.key_usage"),
    (("profiles", "device", "extended_key_usage"), ["any_purpose"],
     "profiles.device.extended_key_usage"),
    (("profiles", "device", "key_types"), ["rsa-1024"], "profiles.device.key_types"),
    (("profiles", "device", "key_types"), [], "profiles.device.key_types"),
    (("profiles", "device", "approval"), "sometimes", "profiles.device.approval"),
    (("profiles", "device", "signature_hash"), "md5", "profiles.device.signature_hash"),
    (("profiles", "device", "subject"), {"XX": "csr"}, "profiles.device.subject.XX"),
    (("profiles", "device", "san", "ip"), ["10.0.0.300/8"], "profiles.device.san.ip"),
    (("profiles", "device", "san", "dns"), ["a.*.example"], "profiles.device.san.dns"),
    (("profiles", "device", "san", "max_names"), "many", "profiles.device.san.max_names"),
    (("cas", "issuing", "parent"), "nowhere", "cas.issuing.parent"),
    (("cas", "root", "parent"), "issuing", "cas.root.parent"),
    (("cas", "issuing", "key_type"), "dsa-1024", "cas.issuing.key_type"),
    (("cas", "issuing", "subject"), "not a name", "cas.issuing.subject"),
    (("http_port",), 70000, "http_port"),
    (("log_format",), "xml", "log_format"),
    (("database_url",), "mysql://x", "database_url"),
    (("ca_passphrase",), "short", "ca_passphrase"),
])
def test_each_bad_value_names_its_dotted_key(tmp_path: Path, path: tuple[str, ...],
                                             value: Any, key: str) -> None:
    table = raw(tmp_path)
    target = table
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert config_error(table).key == key


def test_invalid_toml_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "enroll.toml"
    path.write_text("http_port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_mod.load(path, {})


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config_mod.load(tmp_path / "absent.toml", {})


def test_environment_overrides_file_values_and_is_converted_like_them(tmp_path: Path) -> None:
    path = tmp_path / "enroll.toml"
    path.write_text('http_port = 9000\n[scep]\nchallenge = "from-file"\n')
    cfg = config_mod.load(path, {"ENROLL_HTTP_PORT": "9100",
                                 "ENROLL_PROFILES__DEVICE__VALIDITY": "30d",
                                 "ENROLL_PROFILES__DEVICE__APPROVAL": "manual",
                                 "ENROLL_SCEP_CHALLENGE": "from-env"})
    assert cfg.http_port == 9100
    assert cfg.profiles["device"].validity == 30 * 86400
    assert cfg.profiles["device"].approval == "manual"
    assert cfg.section("scep")["challenge"] == "from-env"
    assert cfg.public_http_url == "http://127.0.0.1:9100"


def test_bad_environment_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config_mod.load(None, {"ENROLL_HTTP_PORT": "eighty"}, data_dir=tmp_path)
    assert info.value.key == "http_port"
    with pytest.raises(ConfigError) as info:
        config_mod.load(None, {"ENROLL_PROFILES__SERVER__VALIDITY": "forever"},
                        data_dir=tmp_path)
    assert info.value.key == "profiles.server.validity"


def test_a_file_with_its_own_profiles_replaces_the_embedded_ones(tmp_path: Path) -> None:
    path = tmp_path / "enroll.toml"
    path.write_text('[profiles.iot]\nca = "issuing"\nvalidity = "7d"\n')
    cfg = config_mod.load(path, {})
    assert set(cfg.profiles) == {"iot"}
    assert cfg.profiles["iot"].validity == 7 * 86400


def test_passphrase_is_read_from_a_file_and_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("correct horse battery staple\n")
    table = raw(tmp_path, ca_passphrase_file=str(secret))
    cfg = config_mod.from_raw(table)
    assert cfg.ca_passphrase is not None
    assert cfg.ca_passphrase.reveal() == "correct horse battery staple"
    assert "horse" not in repr(cfg) and "horse" not in str(cfg.ca_passphrase)


def test_unreadable_passphrase_file_names_the_key(tmp_path: Path) -> None:
    err = config_error(raw(tmp_path, ca_passphrase_file=str(tmp_path / "missing")))
    assert err.key == "ca_passphrase_file"


# -- every ENROLL_* variable and every table must mean something (issue 10) -------------

def _checked(tmp_path: Path, env: dict[str, str], extra: tuple[object, ...] = ()
             ) -> config_mod.Config:
    from enroll.config_sections import check_sections
    from enroll.plugin_loader import build_plugin_manager

    cfg = config_mod.load(None, env, data_dir=tmp_path)
    check_sections(cfg, build_plugin_manager(extra=extra))
    return cfg


@pytest.mark.parametrize(("var", "hint"), [
    ("ENROLL_DATABSE_URL", "ENROLL_DATABASE_URL"),
    ("ENROLL_HTTPS_PROT", "ENROLL_HTTPS_PORT"),
    ("ENROLL_CA_PASSPHARSE", "ENROLL_CA_PASSPHRASE"),
    ("ENROLL_CONFIGG", "ENROLL_CONFIG"),
    ("ENROLL_ACMEE_RESOLVER", "ENROLL_ACME_RESOLVER"),
    ("ENROLL_PROFILS__DEVICE__VALIDITY", "ENROLL_PROFILES__DEVICE__VALIDITY"),
])
def test_an_unknown_variable_is_named_with_the_closest_known_one(
        tmp_path: Path, var: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        _checked(tmp_path, {var: "postgresql://x" if "URL" in var else "1"})
    assert info.value.key == var
    assert str(info.value) == f"{var}: unknown setting (did you mean {hint}?)"


def test_an_unknown_variable_far_from_any_setting_gets_no_guess(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _checked(tmp_path, {"ENROLL_SOMETHING_ELSE": "1"})
    assert str(info.value) == "ENROLL_SOMETHING_ELSE: unknown setting"
    with pytest.raises(ConfigError, match="^ENROLL___: unknown setting$"):
        _checked(tmp_path, {"ENROLL___": "1"})


def test_variables_into_sections_are_checked_by_the_sections_parser(tmp_path: Path) -> None:
    for var, key in (("ENROLL_EST__ENDPOINTS__DEFAULT__ARCHIVE_KEYZ",
                      "est.endpoints.default.archive_keyz"),
                     ("ENROLL_ACME_RESOLVR", "acme.resolvr"),
                     ("ENROLL_PROFILES__DEVICE__VALIDTY", "profiles.device.validty"),
                     ("ENROLL_CAS__ROOT__KEYTYPE", "cas.root.keytype")):
        with pytest.raises(ConfigError) as info:
            _checked(tmp_path, {var: "1"})
        assert info.value.key == var
        assert str(info.value).startswith(f"{var}: {key}: unknown setting (expected one of")
    # A known key in a section, and values from variables, still go through.
    cfg = _checked(tmp_path, {"ENROLL_SCEP__ENDPOINTS__DEFAULT__CHALLENGE": "from-env",
                              "ENROLL_ACME_RESOLVER": "127.0.0.1:53"})
    assert cfg.section("scep")["endpoints"]["default"]["challenge"] == "from-env"
    with pytest.raises(ConfigError) as info:
        _checked(tmp_path, {"ENROLL_WORKERS": "many"})
    assert info.value.key == "workers"
    assert str(info.value).endswith("(set by ENROLL_WORKERS)")


def test_reserved_and_direct_variables_are_not_settings(tmp_path: Path) -> None:
    path = tmp_path / "enroll.toml"
    path.write_text("http_port = 9001\n")
    cfg = _checked(tmp_path, {"ENROLL_TEST_DATABASE_URL": "postgresql://elsewhere",
                              "ENROLL_TEST_ANYTHING": "x", "ENROLL_REQUIRE_INTEROP": "1",
                              "ENROLL_CONFIG": str(path), "ENROLL_DATA_DIR": str(tmp_path)})
    assert cfg.http_port == 9001
    assert "elsewhere" not in cfg.database_url
    assert set(config_mod.DIRECT_VARIABLES) == {"ENROLL_CONFIG", "ENROLL_REQUIRE_INTEROP"}


def test_a_table_is_known_when_core_a_protocol_or_a_plugin_claims_it(tmp_path: Path) -> None:
    from enroll.hookspecs import hookimpl

    path = tmp_path / "enroll.toml"
    path.write_text('[scep.endpoints.default]\nchallenge = "x"\n'
                    '[inventory]\nurl = "http://127.0.0.1"\n')
    env = {"ENROLL_CONFIG": str(path)}
    with pytest.raises(ConfigError) as info:
        _checked(tmp_path, env)
    assert info.value.key == "inventory"
    assert "no loaded protocol or plugin reads this table" in str(info.value)

    seen: list[object] = []

    class Inventory:
        @hookimpl
        def enroll_config_sections(self) -> dict[str, Any]:
            def parse(config: config_mod.Config) -> None:
                seen.append(dict(config.section("inventory")))
                if set(config.section("inventory")) - {"url"}:
                    raise ConfigError("inventory", "unknown setting")

            return {"inventory": parse}

    cfg = _checked(tmp_path, env, (Inventory(),))
    assert seen == [{"url": "http://127.0.0.1"}]
    with pytest.raises(ConfigError) as info:
        _checked(tmp_path, env | {"ENROLL_INVENTORY_TOKEN": "t"}, (Inventory(),))
    assert info.value.key == "ENROLL_INVENTORY_TOKEN"
    assert cfg.section("scep")["endpoints"]["default"]["challenge"] == "x"
