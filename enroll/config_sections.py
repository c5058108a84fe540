"""Who owns each top-level table of the configuration, and checking them all at start-up.

The core owns ``[cas]``, ``[profiles]`` and ``[events]`` (`CORE_SECTIONS`, the MDM events
receiver's secrets, parsed here like a plugin's table); every other table must be claimed by a
loaded protocol or plugin through `enroll_config_sections` (``{"scep": parse}``). A
table nobody claims (``[scpe]``, or ``ENROLL_DATABSE_URL`` read as ``[databse] url``)
stops start-up naming it. Each claimed table present in the configuration is parsed
by its owner's parser right away, so every command — not only ``enroll serve`` — refuses
a misspelt key inside a section (the parsers' `check_keys`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import pluggy

from enroll import device_events
from enroll.config import Config, env_error
from enroll.errors import ConfigError

CORE_TABLES = ("cas", "profiles")
CORE_SECTIONS: dict[str, Callable[[Config], Any] | None] = {
    device_events.SECTION: device_events.settings}


def claimed(pm: pluggy.PluginManager) -> dict[str, Callable[[Config], Any] | None]:
    """Table name -> its owner's parser (None: claimed, parsed elsewhere)."""
    owners: dict[str, Callable[[Config], Any] | None] = dict(CORE_SECTIONS)
    for answer in pm.hook.enroll_config_sections():
        owners.update(answer or {})
    return owners


def check_sections(config: Config, pm: pluggy.PluginManager, *, parse: bool = True) -> None:
    """Refuse unclaimed tables; run the parser of every claimed table present (unless
    not `parse`: checking variables before ``enroll init`` has written the config)."""
    owners = claimed(pm)
    known = [*CORE_TABLES, *owners]
    try:
        for name in config.sections:
            if name not in owners:
                close = difflib.get_close_matches(name, known, n=1)
                raise ConfigError(name, "unknown setting: no loaded protocol or plugin "
                                  "reads this table" + (f" (did you mean [{close[0]}]?)"
                                                        if close else ""))
        for name, parser in owners.items():
            if parse and parser is not None and name in config.sections:
                parser(config)
    except ConfigError as exc:
        raise env_error(exc, config.env_keys, owners) from exc
