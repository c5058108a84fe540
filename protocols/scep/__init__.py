"""The SCEP front-end."""
