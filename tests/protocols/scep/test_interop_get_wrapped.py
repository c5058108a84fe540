"""sscep-style GET PKIOperation over a real `enroll serve`: curl sends the base64 message
broken into 64-character lines, the line breaks percent-encoded (``%0A``, ``%0D%0A``), as
sscep does. tests/protocols/scep/test_client_variants.py covers the same in-app; this is
the same request through uvicorn's URL parsing and a real socket."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
from enroll.protocols.scep import signeddata
from enroll.protocols.scep.pkimessage import PKIStatus
from harness import child_env, require_binary

from enroll.testing.scep_client import ScepClient, csr_with_challenge

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _ra(url: str) -> Any:
    r = httpx.get(url, params={"operation": "GetCACert"}, timeout=10, trust_env=False)
    assert r.status_code == 200, r.text
    certs, _ = signeddata.degenerate_contents(r.content)
    return certs[0]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_curl_get_with_line_wrapped_base64_enrols(enroll_server: Any, tmp_path: Path,
                                                  newline: str) -> None:
    curl = require_binary("curl")
    scep = enroll_server.endpoints["scep"]
    client = ScepClient(_ra(scep["url"]))
    message, _ = client.pkcs_req(csr_with_challenge(client.key, "sscep-get", scep["challenge"]))
    text = base64.b64encode(message).decode()
    wrapped = newline.join(text[i:i + 64] for i in range(0, len(text), 64)) + newline
    query = "operation=PKIOperation&message=" + urllib.parse.quote(wrapped, safe="")
    assert query.count("%0D%0A" if newline == "\r\n" else "%0A") > 10
    answer = tmp_path / "certrep.der"
    done = subprocess.run([curl, "-sS", "-o", str(answer), "-w", "%{http_code} %{content_type}",
                           f"{scep['url']}?{query}"], capture_output=True, text=True,
                          timeout=30, env=child_env(), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "200 application/x-pki-message", done.stdout
    reply = client.read(answer.read_bytes())
    assert reply.status is PKIStatus.SUCCESS, reply.certrep.fail_text
    assert reply.certificate is not None
    out = enroll_server.enroll("certs", "show", format(reply.certificate.serial_number, "x"),
                               "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["protocol"] == "scep"


def test_curl_get_with_other_whitespace_is_refused(enroll_server: Any) -> None:
    curl = require_binary("curl")
    url = enroll_server.endpoints["scep"]["url"]
    done = subprocess.run([curl, "-sS", "-w", "%{http_code}",
                           f"{url}?operation=PKIOperation&message=QUJD%09REVG"],
                          capture_output=True, text=True, timeout=30, env=child_env(),
                          check=False)
    assert done.stdout == "message is not base64\n400"
