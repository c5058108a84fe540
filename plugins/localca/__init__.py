"""The local software CA backend."""
