"""The operators' door: the admin API (``/api/v1``) and the web console (``/ui``).

Installed as ``enroll.admin`` and loaded as the plugin ``admin`` (entry point group
``enroll``), like the protocol front-ends: an embedder leaves it out with
``disable_plugins = ["admin"]``. It calls the same core services as the CLI.
"""
