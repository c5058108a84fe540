"""The operators' door's credentials, on a real store (SQLite file and PostgreSQL):
API tokens, console passwords and TOTP codes, the role table, and passphrase rotation of
what the console seals."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyotp
import pytest
from enroll.admin import roles, store, tokens, users
from enroll.admin.roles import Action, Role

from enroll.config_values import Secret
from enroll.passphrase_rotation import rotate
from enroll.testing import TEST_PASSPHRASE


def _now(ctx: Any) -> dt.datetime:
    now: dt.datetime = ctx.clock.now()
    return now


def test_a_token_authenticates_only_while_live(context: Any) -> None:
    now = _now(context)
    with context.db.write() as tx:
        text = tokens.create(tx, name="ci-bot", role=Role.APPROVER, created_by="test",
                             now=now, expires_at=now + dt.timedelta(days=1))
        short = tokens.create(tx, name="short", role=Role.VIEWER, created_by="test",
                              now=now, expires_at=now + dt.timedelta(seconds=1))
    assert text.startswith("enr.") and len(text) == 4 + 16 + 1 + 43
    with context.db.read() as tx:
        found = tokens.authenticate(tx, text, now)
        assert found is not None and found.name == "ci-bot" and found.role == "approver"
        # The stored row holds a digest, never the secret.
        assert text.split(".")[2] not in repr(store.list_tokens(tx))
        wrong = text[:-1] + ("A" if text[-1] != "A" else "B")
        for presented in (wrong, "enr.0000000000000000." + "a" * 43, "garbage", "",
                          "x" * 10_000, text + "x"):
            assert tokens.authenticate(tx, presented, now) is None
        assert tokens.authenticate(tx, short, now + dt.timedelta(seconds=2)) is None
    with context.db.write() as tx:
        assert store.revoke_token(tx, "ci-bot", now)
        assert not store.revoke_token(tx, "ci-bot", now)
    with context.db.read() as tx:
        assert tokens.authenticate(tx, text, now) is None


def test_token_names_are_unique_and_bounded(context: Any) -> None:
    from enroll.errors import ConfigError, Conflict

    now = _now(context)
    with context.db.write() as tx:
        tokens.create(tx, name="ops", role=Role.ADMIN, created_by="t", now=now, expires_at=None)
    with pytest.raises(Conflict), context.db.write() as tx:
        tokens.create(tx, name="ops", role=Role.ADMIN, created_by="t", now=now, expires_at=None)
    for bad in ("", "-x", "a b", "x" * 200, "é"):
        with pytest.raises(ConfigError):
            tokens.check_name(bad)


def test_roles_are_not_ranked() -> None:
    assert roles.allows(Role.APPROVER, Action.APPROVE)
    assert not roles.allows(Role.APPROVER, Action.REVOKE)
    assert roles.allows(Role.REVOKER, Action.REVOKE)
    assert not roles.allows(Role.REVOKER, Action.APPROVE)
    assert not any(roles.allows(Role.VIEWER, a) for a in Action if a is not Action.READ)
    assert all(roles.allows(Role.ADMIN, a) for a in Action)


def test_passwords_hash_with_scrypt_and_verify() -> None:
    hashed = users.hash_password("correct horse battery")
    assert hashed.startswith("scrypt$32768$8$1$")
    assert users.verify_password(hashed, "correct horse battery")
    assert not users.verify_password(hashed, "correct horse batterY")
    assert not users.verify_password(None, "correct horse battery")
    assert not users.verify_password("scrypt$bad", "x")
    assert not users.verify_password("scrypt$" + "9" * 9 + "$8$1$AA==$AA==", "x")


def test_a_totp_code_works_once_and_near_its_step(context: Any) -> None:
    now = _now(context)
    passphrase = context.config.ca_passphrase
    seed = users.new_totp_seed()
    with context.db.write() as tx:
        store.put_user(tx, "alice", "approver", users.hash_password("p" * 12), now)
        store.set_totp(tx, "alice", users.seal_seed(seed, "alice", passphrase), now)
    with context.db.read() as tx:
        user = store.get_user(tx, "alice")
    assert user is not None and user.totp_sealed is not None
    assert seed.encode() not in user.totp_sealed
    assert "otpauth://totp/enroll:alice?" in users.provisioning_uri(seed, "alice")
    code = pyotp.TOTP(seed).at(now)
    with context.db.write() as tx:
        assert users.check_code(tx, user, passphrase, code, now)
    with context.db.write() as tx:
        assert not users.check_code(tx, user, passphrase, code, now)  # replayed
    later = now + dt.timedelta(seconds=30)
    with context.db.write() as tx:
        assert users.check_code(tx, user, passphrase, pyotp.TOTP(seed).at(later), later)
    far = now + dt.timedelta(minutes=5)
    with context.db.write() as tx:
        assert not users.check_code(tx, user, passphrase, pyotp.TOTP(seed).at(now), far)
        assert not users.check_code(tx, user, passphrase, "12345x", far)


def test_passphrase_rotation_reseals_totp_seeds(context: Any) -> None:
    now = _now(context)
    old = context.config.ca_passphrase
    seed = users.new_totp_seed()
    with context.db.write() as tx:
        store.put_user(tx, "bob", "admin", users.hash_password("p" * 12), now)
        store.set_totp(tx, "bob", users.seal_seed(seed, "bob", old), now)
    new = Secret("a new passphrase for the test")
    counts = rotate(context.db, context.pm, context.clock, old, new)
    assert counts["console TOTP seeds"] == 1
    with context.db.read() as tx:
        user = store.get_user(tx, "bob")
    assert user is not None and users.open_seed(user, new) == seed


def _cli(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENROLL_CA_PASSPHRASE": TEST_PASSPHRASE}
    return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir", str(data_dir),
                           *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_the_cli_makes_lists_and_revokes_tokens_and_users(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli(data, "init").returncode == 0
    made = _cli(data, "admin", "token", "new", "--name", "ci", "--role", "viewer",
                "--expires", "90d")
    assert made.returncode == 0, made.stderr
    text = made.stdout.strip()
    assert text.startswith("enr.") and "shown once" in made.stderr
    listed = _cli(data, "admin", "token", "list", "--json")
    assert '"name": "ci"' in listed.stdout and text.split(".")[2] not in listed.stdout
    assert _cli(data, "admin", "token", "revoke", "ci").returncode == 0
    assert '"state": "revoked"' in _cli(data, "admin", "token", "list", "--json").stdout
    assert _cli(data, "admin", "token", "revoke", "ci").returncode != 0
    assert _cli(data, "admin", "token", "new", "--name", "x", "--role", "root").returncode != 0

    short = _cli(data, "admin", "user", "add", "carol", "--role", "approver", stdin="short\n")
    assert short.returncode != 0
    added = _cli(data, "admin", "user", "add", "carol", "--role", "approver",
                 stdin="a long enough password\n")
    assert added.returncode == 0, added.stderr
    assert '"totp": "not enrolled"' in _cli(data, "admin", "user", "list", "--json").stdout
    exported = _cli(data, "audit", "export").stdout
    assert "admin.token.created" in exported and "admin.user.added" in exported
    assert "a long enough password" not in exported and text not in exported
    assert _cli(data, "admin", "user", "remove", "carol").returncode == 0
