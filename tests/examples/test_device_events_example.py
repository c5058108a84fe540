"""examples/device_events/forward.py against a real ``enroll serve``: an Intune and a
Jamf Pro off-boarding webhook, forwarded signed over HTTPS, revoke that device's
certificates, once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import child_env

from enroll import config as config_mod
from enroll.context import build_context
from enroll.model import CertificateStatus, Issued
from enroll.testing import make_csr, request

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "device_events"
SECRET = "example-shared-secret-5d1e0c"  # noqa: S105 - test value
ENV = {"ENROLL_EVENTS_HMAC_SECRET": SECRET,
       "ENROLL_PROFILES__DEVICE__DEVICE_ID": "subject.CN"}
INTUNE_DEVICE = "0f9b1c9e-5a3d-4c1f-9a57-2b7d1e6c4a10"
JAMF_SERIAL = "F9FXK1ZZJG5J"


def test_forwarder_revokes_intune_and_jamf_devices_once(
        tmp_path: Path, server_factory: Callable[..., Any]) -> None:
    server = server_factory(tmp_path / "data", extra_env=ENV)
    ctx = build_context(config_mod.load(None, ENV, data_dir=server.data_dir))
    try:
        serials = {}
        for cn, protocol in ((INTUNE_DEVICE, "scep"), (JAMF_SERIAL, "scep"),
                             ("bystander", "est")):
            issued = ctx.authority.submit(request(make_csr(cn=cn), protocol=protocol))
            assert isinstance(issued, Issued)
            serials[cn] = issued.serial_hex

        def forward(source: str, payload: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, str(EXAMPLE / "forward.py"), source, str(EXAMPLE / payload),
                 "--url", f"{server.https_url}/events/device", "--cacert", server.tls_ca],
                capture_output=True, text=True, timeout=60, check=False,
                env=child_env(EVENTS_SECRET=SECRET))

        def status(cn: str) -> CertificateStatus:
            record = ctx.authority.certificate(serials[cn])
            assert record is not None
            return record.status

        intune = forward("intune", "intune-managed-device-deleted.json")
        assert intune.returncode == 0, intune.stdout + intune.stderr
        assert f"device.retired {INTUNE_DEVICE}: 200" in intune.stdout
        assert serials[INTUNE_DEVICE] in intune.stdout
        assert status(INTUNE_DEVICE) is CertificateStatus.REVOKED
        assert status(JAMF_SERIAL) is CertificateStatus.VALID
        again = forward("intune", "intune-managed-device-deleted.json")
        assert again.returncode == 0 and '"duplicate":true' in again.stdout

        jamf = forward("jamf", "jamf-mobile-device-unenrolled.json")
        assert jamf.returncode == 0, jamf.stdout + jamf.stderr
        assert status(JAMF_SERIAL) is CertificateStatus.REVOKED
        assert status("bystander") is CertificateStatus.VALID
        record = ctx.authority.certificate(serials[JAMF_SERIAL])
        assert record is not None and record.revocation_reason is not None
        assert record.revocation_reason.name == "cessation_of_operation"

        # A forwarder with the wrong secret is refused and changes nothing.
        wrong = subprocess.run(
            [sys.executable, str(EXAMPLE / "forward.py"), "jamf",
             str(EXAMPLE / "jamf-mobile-device-unenrolled.json"),
             "--url", f"{server.https_url}/events/device", "--cacert", server.tls_ca],
            capture_output=True, text=True, timeout=60, check=False,
            env=child_env(EVENTS_SECRET="not-the-secret"))  # noqa: S106
        assert wrong.returncode == 1 and ": 401 " in wrong.stdout
    finally:
        ctx.db.dispose()
