"""EST front-end plugin: routes, CLI and endpoints.json entry (work in progress)."""
