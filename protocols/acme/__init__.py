"""The ACME front-end."""
