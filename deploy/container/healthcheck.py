"""Container HEALTHCHECK: GET /health on the engine's plain-HTTP listener in this
container (ENROLL_HTTP_PORT, default 8080); exit 0 when it answers 200, else 1."""

import os
import sys
import urllib.request

port = int(os.environ.get("ENROLL_HTTP_PORT", "8080"))
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=4) as answer:  # noqa: S310
        sys.exit(0 if answer.status == 200 else 1)
except OSError:
    sys.exit(1)
