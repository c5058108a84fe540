"""Webhook challenge verifier (work in progress)."""
