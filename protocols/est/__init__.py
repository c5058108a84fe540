"""The EST front-end."""
