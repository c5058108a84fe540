"""Building the plugin manager: hookspecs, entry points, import paths from the config.

Built-in plugins are entry points of the ``enroll`` group like any third-party plugin,
so the built-ins prove the contract is enough. `check_pending()` runs last, so a hook
implementation with a misspelt name fails start-up instead of silently never running.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import pluggy

from enroll import hookspecs
from enroll.errors import ConfigError

GROUP = "enroll"


def build_plugin_manager(import_paths: Iterable[str] = (), disabled: Iterable[str] = (),
                         extra: Iterable[object] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    pm.load_setuptools_entrypoints(GROUP)
    for path in import_paths:
        module_name, _, attr = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError("plugins", f"cannot import plugin {path!r}: {exc}") from exc
        plugin = getattr(module, attr) if attr else module
        if pm.is_registered(plugin):
            continue
        pm.register(plugin, name=path)
    for plugin in extra:
        if not pm.is_registered(plugin):
            pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError("plugins", str(exc)) from exc
    return pm
