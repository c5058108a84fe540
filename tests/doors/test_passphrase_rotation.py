"""``enroll ca rotate-passphrase`` through the real CLI, on a SQLite file and PostgreSQL:
every sealed secret (CA keys, the SCEP RA key, EST kept keys, ACME EAB keys) moves to
the new passphrase in one transaction, older formats come out as v2, the engine then
starts and issues through SCEP, EST and ACME with the new passphrase only, and a
rotation that fails part-way leaves everything under the old one."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cryptography.hazmat.primitives import serialization
from door_drivers import DOORS, DoorDriver
from enroll.protocols.acme import eab
from enroll.protocols.acme import store as acme_store
from enroll.protocols.acme.endpoint import deployment_secret
from enroll.protocols.acme.jws import b64e, jwk_of
from enroll.protocols.est import store as est_store
from enroll.protocols.est.serverkeygen import open_key, seal_key
from harness import (
    ACME_BASE,
    ALICE,
    Harness,
    LocalDns,
    acme_section,
    child_env,
    est_section,
    scep_section,
)

from enroll.config import Secret
from enroll.crypto import sealing
from enroll.errors import ConfigError
from enroll.hookspecs import hookimpl
from enroll.passphrase_rotation import rotate
from enroll.store import queries
from enroll.testing import TEST_PASSPHRASE, make_csr
from enroll.testing.acme_client import AcmeClient, Http01Responder
from enroll.testing.est_client import PKCS10_HEADERS, WELL_KNOWN, csr_body, serverkeygen_parts

OLD = Secret(TEST_PASSPHRASE)
NEW_TEXT = "the passphrase after rotation"
NEW = Secret(NEW_TEXT)
PROFILE: dict[str, Any] = {"ca": "issuing", "san": {"dns": ["*.test.example"]},
                           "key_types": ["rsa-2048", "ec-p256"],
                           "extended_key_usage": ["server_auth", "client_auth"]}
Make = Callable[..., Harness]


@pytest.fixture
def make(harness_factory: Make, local_dns: LocalDns, responder: Http01Responder) -> Make:
    """`make(**overrides)`: SCEP, EST (keys archived) and ACME (a default endpoint and
    ``corp``, which requires EAB) on profile ``p``, on the parametrised database."""

    def factory(**overrides: Any) -> Harness:
        acme = {"endpoints": {"default": {"profile": "p"},
                              "corp": {"profile": "p", "eab_required": True}}}
        return harness_factory(
            base_url=ACME_BASE, listener=True, extra_profiles={"p": PROFILE},
            **scep_section(profile="p"), **est_section(profile="p", archive_keys=True),
            **acme_section(local_dns, responder.port, **acme), **overrides)

    return factory


def _config_file(h: Harness, tmp_path: Path) -> Path:
    """The harness's configuration as an operator's file, passphrase in a 0600 file."""
    raw = dict(h.ctx.config.raw)
    pfile = tmp_path / "ca-passphrase"
    pfile.write_text(str(raw.pop("ca_passphrase")) + "\n")
    pfile.chmod(0o600)
    raw["ca_passphrase_file"] = str(pfile)
    path = tmp_path / "enroll.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def _cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--config", str(config),
                           *args], input=stdin, capture_output=True, text=True, timeout=120,
                          env=child_env(), check=False)


def _blobs(h: Harness) -> dict[str, bytes | None]:
    """Every sealed blob in the store, by table and row."""
    found: dict[str, bytes | None] = {}
    for table, key, column in (("cas", "name", "key_blob"),
                               ("scep_ra_keys", "endpoint", "key_blob"),
                               ("est_server_keys", "request_id", "encrypted_key"),
                               ("acme_eab_keys", "kid", "hmac_key")):
        for row in h.rows(table):
            value = row[column]
            found[f"{table}/{row[key]}"] = None if value is None else bytes(value)
    return found


def _audit(h: Harness) -> list[Any]:
    with h.ctx.db.read() as tx:
        return [e for e in queries.list_audit(tx) if e.type == "ca.passphrase_rotated"]


def _binding(client: AcmeClient, directory: dict[str, Any], kid: str,
             key_b64: str) -> dict[str, str]:
    import base64
    import hashlib
    import hmac
    import json

    key = base64.urlsafe_b64decode(key_b64 + "=" * (-len(key_b64) % 4))
    protected = b64e(json.dumps({"alg": "HS256", "kid": kid,
                                 "url": directory["newAccount"]}).encode())
    payload = b64e(json.dumps(jwk_of(client.key.public_key())).encode())
    sig = hmac.new(key, f"{protected}.{payload}".encode(), hashlib.sha256).digest()
    return {"protected": protected, "payload": payload, "signature": b64e(sig)}


async def _eab_account(h: Harness, responder: Http01Responder, kid: str, key: str) -> None:
    client = AcmeClient(h.http, f"{ACME_BASE}/acme/corp/directory")
    d = await client.directory()
    r = await client.register(externalAccountBinding=_binding(client, d, kid, key))
    assert r.json()["externalAccountBinding"]["kid"] == kid
    await client.issue(["eab.test.example"], responder)


async def _serverkeygen(h: Harness, cn: str) -> tuple[bytes, int]:
    r = await h.http.post(f"{WELL_KNOWN}/serverkeygen", headers=PKCS10_HEADERS, auth=ALICE,
                          content=csr_body(make_csr(cn=f"{cn}.test.example",
                                                         dns=[f"{cn}.test.example"])))
    assert r.status_code == 200, r.text
    key_der, [cert] = serverkeygen_parts(r.content, r.headers["content-type"])
    return key_der, cert.serial_number


def _pre_v1_pem(key: Any) -> bytes:
    """A CA key as the local CA stored it before the shared sealing (PBKDF2 PEM)."""
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(TEST_PASSPHRASE.encode()))


async def test_rotation_through_the_cli_moves_every_secret_and_all_doors_issue_after(
        make: Make, responder: Http01Responder, tmp_path: Path) -> None:
    before = make()
    for door in DOORS:  # the SCEP RA key is made and sealed here
        assert (await DoorDriver(door, before, responder).enroll(
            dns=[f"{door}.test.example"])).ok
    kept_der, kept_serial = await _serverkeygen(before, "kept")
    root: Any = before.ctx.cas.get("root")
    with before.ctx.db.write() as tx:  # the root's key as a pre-v1 database holds it
        tx.run("UPDATE cas SET key_blob = ? WHERE name = 'root'", (_pre_v1_pem(root._key),))
        legacy_kid = eab.new_kid()  # an EAB key made before keys were sealed
        acme_store.add_eab_key(tx, legacy_kid, "corp", None, dt.datetime.now(dt.UTC))
    legacy_key = b64e(eab.derive_key(deployment_secret(before.ctx.db, "eab"), legacy_kid))
    config = _config_file(before, tmp_path)
    made = _cli(config, "acme", "eab", "new", "--endpoint", "corp")
    assert made.returncode == 0, made.stderr
    fields = dict(line.split(": ", 1) for line in made.stdout.splitlines())
    sealed_kid, sealed_key = fields["kid"], fields["hmac"]

    done = _cli(config, "ca", "rotate-passphrase", stdin=NEW_TEXT + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "every sealed secret is now under the new passphrase (one transaction): "
        "2 ACME EAB keys, 3 CA keys, 1 EST kept keys, 1 SCEP RA keys, "
        "0 console TOTP seeds, 1 console keys")
    assert f"the file {tmp_path / 'ca-passphrase'}" in done.stdout
    assert NEW_TEXT not in done.stdout + done.stderr

    # The old passphrase no longer opens the store: not for the engine, not for the CLI.
    with pytest.raises(ConfigError, match="wrong passphrase"):
        make()
    refused = _cli(config, "crl", "--refresh")
    assert refused.returncode == 2 and "wrong passphrase" in refused.stderr

    after = make(ca_passphrase=NEW_TEXT)
    assert "eab" not in [r["name"] for r in after.rows("acme_secrets")]  # nothing derives
    blobs = _blobs(after)
    assert len(blobs) == 7 and all(b is not None and sealing.is_current(b)
                                   for b in blobs.values()), blobs
    for door in DOORS:
        assert (await DoorDriver(door, after, responder).enroll(
            dns=[f"{door}-after.test.example"])).ok
    await _serverkeygen(after, "after")
    await _eab_account(after, responder, sealed_kid, sealed_key)
    await _eab_account(after, responder, legacy_kid, legacy_key)  # now sealed, same key
    with after.ctx.db.read() as tx:
        kept = est_store.get_key_by_serial(tx, format(kept_serial, "x"))
    assert kept is not None and open_key(kept.encrypted_key, NEW, kept.request_id) == kept_der
    assert [e.details for e in _audit(after)] == [{"resealed": {
        "CA keys": 3, "SCEP RA keys": 1, "EST kept keys": 1, "ACME EAB keys": 2,
        "console TOTP seeds": 0, "console keys": 1}}]


class _FailsLast:
    """A plugin whose secrets cannot be re-sealed, asked after every built-in one."""

    @hookimpl(trylast=True)
    def enroll_reseal_secrets(self, tx: Any, old: Secret, new: Secret) -> None:
        raise RuntimeError("disk full")


async def test_a_rotation_failing_part_way_leaves_everything_under_the_old_passphrase(
        make: Make, responder: Http01Responder, tmp_path: Path) -> None:
    h = make()
    assert (await DoorDriver("scep", h, responder).enroll(dns=["scep.test.example"])).ok
    await _serverkeygen(h, "kept")
    with h.ctx.db.write() as tx:
        eab.create(tx, "corp", None, OLD, dt.datetime.now(dt.UTC))
    blobs = _blobs(h)
    assert len(blobs) == 6

    failing = _FailsLast()
    h.ctx.pm.register(failing)
    with pytest.raises(RuntimeError, match="disk full"):
        rotate(h.ctx.db, h.ctx.pm, h.ctx.clock, OLD, NEW)
    h.ctx.pm.unregister(failing)
    assert _blobs(h) == blobs  # the other plugins' re-sealed rows were rolled back

    # Through the CLI: one kept key that does not open stops the whole rotation.
    with h.ctx.db.write() as tx:
        est_store.insert_key(tx, request_id="broken", endpoint="default", serial=None,
                             key_type="ec-p256", archived=True, now=dt.datetime.now(dt.UTC),
                             encrypted_key=seal_key(b"x", Secret("a third passphrase"),
                                                    "broken"))
    blobs = _blobs(h)
    config = _config_file(h, tmp_path)
    failed = _cli(config, "ca", "rotate-passphrase", stdin=NEW_TEXT + "\n")
    assert failed.returncode == 2
    assert failed.stderr.strip() == ("configuration error: ca_passphrase: nothing was "
                                     "changed: est/server-key/broken does not open with the "
                                     "current passphrase")
    assert _blobs(h) == blobs
    for name in ("root", "issuing"):
        assert sealing.unseal_key(blobs[f"cas/{name}"] or b"", OLD,
                                  context=f"localca/ca-key/{name}")
    assert _audit(h) == []


async def test_running_it_again_picks_up_a_secret_sealed_under_the_old_passphrase_later(
        make: Make, responder: Http01Responder, tmp_path: Path) -> None:
    h = make()
    assert (await DoorDriver("scep", h, responder).enroll(dns=["scep.test.example"])).ok
    config = _config_file(h, tmp_path)
    assert _cli(config, "ca", "rotate-passphrase", stdin=NEW_TEXT + "\n").returncode == 0
    # A worker that was not stopped keeps a key under the old passphrase afterwards.
    with h.ctx.db.write() as tx:
        eab.create(tx, "corp", None, OLD, dt.datetime.now(dt.UTC))
    with h.ctx.db.read() as tx:
        [(kid, straggler)] = acme_store.eab_key_blobs(tx)
    assert straggler is not None
    sealing.unseal(straggler, OLD, context=eab.context(kid))
    again = _cli(config, "ca", "rotate-passphrase", stdin=NEW_TEXT + "\n")
    assert again.returncode == 0, again.stderr
    assert "1 ACME EAB keys, 3 CA keys" in again.stdout
    with h.ctx.db.read() as tx:
        [(_, resealed)] = acme_store.eab_key_blobs(tx)
    assert sealing.unseal(resealed or b"", NEW, context=eab.context(kid)) == \
        sealing.unseal(straggler, OLD, context=eab.context(kid))
    make(ca_passphrase=NEW_TEXT)  # starts: every blob opens with the new passphrase


def test_the_new_passphrase_is_never_an_argument_and_must_be_acceptable(
        make: Make, tmp_path: Path) -> None:
    h = make()
    config = _config_file(h, tmp_path)
    short = _cli(config, "ca", "rotate-passphrase", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    same = _cli(config, "ca", "rotate-passphrase", stdin=TEST_PASSPHRASE + "\n")
    assert same.returncode == 2 and "is the current passphrase" in same.stderr
    argv = _cli(config, "ca", "rotate-passphrase", NEW_TEXT)
    assert argv.returncode == 2 and "unrecognized arguments" in argv.stderr
    new_file = tmp_path / "new-passphrase"
    new_file.write_text(NEW_TEXT + "\n")
    wrote = _cli(config, "ca", "rotate-passphrase", "--new-passphrase-file", str(new_file),
                 "--update-passphrase-file")
    assert wrote.returncode == 0, wrote.stderr
    assert (tmp_path / "ca-passphrase").read_text() == NEW_TEXT + "\n"
    assert (tmp_path / "ca-passphrase").stat().st_mode & 0o777 == 0o600
    assert _cli(config, "crl", "--refresh").returncode == 0  # the config now opens it
