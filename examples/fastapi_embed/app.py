"""Embedding enroll inside a FastAPI application under /pki.

    pip install fastapi uvicorn
    ENROLL_DATA_DIR=./pki-data uvicorn app:app --port 8000   (run from this folder)

The parent app's own routes and enroll's routes share one server; enroll's URLs (the
ACME directory, CA and CRL links) include the /pki prefix. enroll does not need the
parent's lifespan: `create_app` is ready when it returns.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

import enroll
from enroll.embedded import init_data_dir
from enroll.plugin_loader import build_plugin_manager

data_dir = Path(os.environ.get("ENROLL_DATA_DIR", "pki-data"))
# First start: generate config, CA passphrase and protocol secrets, as `enroll init` does.
init_data_dir(data_dir, build_plugin_manager())

app = FastAPI(title="my service with a built-in CA")
pki = enroll.create_app(data_dir=data_dir, env=dict(os.environ))
app.mount("/pki", pki)


@app.get("/")
def index() -> dict[str, str]:
    return {"pki": "/pki/ca", "health": "/pki/health"}
