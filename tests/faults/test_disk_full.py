"""F4: the disk under the SQLite database fills up.

A 4 MiB tmpfs the test mounts holds enroll's data dir (database, WAL, lock file). Once
it is full, an enrolment is refused with the protocol's "try later" (EST 503 +
Retry-After, a SCEP FAILURE), never a 500; nothing is half-written (the database opens
and passes ``PRAGMA integrity_check``, every certificate a client received is stored);
and enrolment works again as soon as space is freed.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import CHALLENGE, Harness, est_enroll, est_section, scep_client, scep_operation
from harness import scep_section as scep_table

from enroll import recovery
from enroll.app import create_app
from enroll.model import CertificateStatus
from enroll.testing import make_csr, test_config
from enroll.testing.est_client import certs_from
from enroll.testing.scep_client import csr_with_challenge

pytestmark = pytest.mark.slow


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root, as the suite runs in CI), unmounted at teardown."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"F4 mounts a tmpfs and needs root (CAP_SYS_ADMIN): {done.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def _fill(fs: Path) -> Path:
    """Fill the filesystem to the last byte; returns the filler file."""
    filler = fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):  # down to what is left of the last block
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_f4_disk_full_under_sqlite(small_fs: Path) -> None:
    data = small_fs / "data"
    db_file = data / "enroll.db"
    cfg = test_config(data, f"sqlite:///{db_file}", **est_section(), **scep_table())
    h = Harness(create_app(cfg), "https://testserver", listener=True)
    received = []
    try:
        device = scep_client(h)
        r = est_enroll(h, make_csr(cn="before.example", dns=[]))
        assert r.status_code == 200, r.text
        received.append(certs_from(r.content)[0])
        filler = _fill(small_fs)

        # The WAL may still have room in pages it already holds: enrol until the disk
        # refuses, which must be a protocol answer, within a bounded number of tries.
        refused = None
        for i in range(300):
            r = est_enroll(h, make_csr(cn=f"full{i}.example", dns=[]))
            if r.status_code == 200:
                received.append(certs_from(r.content)[0])
                continue
            refused = r
            break
        assert refused is not None, "the full disk never refused a write"
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert "retry later" in refused.text

        from enroll.protocols.scep.pkimessage import PKIStatus

        message, _ = device.pkcs_req(csr_with_challenge(device.key, "full-device", CHALLENGE))
        answer = scep_operation(h, message)
        assert answer.status_code == 200
        reply = device.read(answer.content)
        assert reply.status is PKIStatus.FAILURE, reply.status
        assert "retry later" in (reply.certrep.fail_text or "")

        # Nothing half-written: a second connection opens the file and checks it.
        check = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        try:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            check.close()

        os.unlink(filler)  # space is back: so is service
        r = est_enroll(h, make_csr(cn="after.example", dns=[]))
        assert r.status_code == 200, r.text
        received.append(certs_from(r.content)[0])
        for cert in received:
            record = h.ctx.authority.lookup(cert)
            assert record is not None, f"certificate {cert.serial_number:x} not stored"
            assert record.status is CertificateStatus.VALID
        assert len({c.serial_number for c in received}) == len(received)
        with h.ctx.db.read() as tx:
            assert tx.scalar("PRAGMA integrity_check") == "ok"
        # A refusal between storing the request and storing its certificate left the
        # request `approved` with no certificate: the recovery pass (what a worker runs
        # after `recovery_grace`) signs and stores it, and none is left.
        h.ctx.authority.recovery_grace = dt.timedelta(0)
        assert recovery.run(h.ctx).requests <= 2  # at most one per refused enrolment
        with h.ctx.db.read() as tx:
            assert tx.all("SELECT id FROM requests WHERE status = 'approved'") == []
    finally:
        h.close()
    reopened = sqlite3.connect(db_file)
    try:
        assert reopened.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        reopened.close()
