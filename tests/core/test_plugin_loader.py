"""Building the plugin manager: entry points, import paths, and loud failures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from enroll.errors import ConfigError
from enroll.hookspecs import hookimpl
from enroll.plugin_loader import build_plugin_manager


class Misspelt:
    @hookimpl
    def enroll_policy_votes(self, request: Any, profile: Any) -> None:  # not a hook
        return None


def test_misspelt_hookimpl_fails_start_up() -> None:
    with pytest.raises(ConfigError) as info:
        build_plugin_manager(extra=[Misspelt()])
    assert info.value.key == "plugins"
    assert "enroll_policy_votes" in info.value.message


def test_built_in_plugins_load_from_the_entry_point_group() -> None:
    pm = build_plugin_manager()
    names = {pm.get_name(p) for p in pm.get_plugins()}
    assert {"localca", "webhook", "scep", "est", "acme"} <= names
    assert pm.hook.enroll_ca_backend.get_hookimpls()


def test_disabled_plugin_is_not_loaded() -> None:
    pm = build_plugin_manager(disabled=["webhook"])
    assert "webhook" not in {pm.get_name(p) for p in pm.get_plugins()}


def test_plugin_from_an_import_path_is_registered(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "enroll_test_policy_mod.py").write_text(
        "from enroll.hookspecs import hookimpl\n"
        "from enroll.model import Decision\n"
        "class Policy:\n"
        "    @hookimpl\n"
        "    def enroll_policy_vote(self, request, profile):\n"
        "        return Decision.deny('from import path')\n"
        "policy = Policy()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        pm = build_plugin_manager(["enroll_test_policy_mod:policy"])
        votes = pm.hook.enroll_policy_vote(request=None, profile=None)
        assert [v.reason for v in votes if v is not None] == ["from import path"]
    finally:
        sys.modules.pop("enroll_test_policy_mod", None)


def test_unimportable_plugin_path_names_the_plugins_key() -> None:
    with pytest.raises(ConfigError) as info:
        build_plugin_manager(["no_such_module_for_enroll:thing"])
    assert info.value.key == "plugins"
    assert "no_such_module_for_enroll" in info.value.message
