"""Operator mistakes stop the CLI (issue 10): unknown ``ENROLL_*`` variables and tables,
commands run against a store nobody initialised, and passphrase-free read-only commands.

Every test runs the real CLI as a subprocess on a real SQLite file or PostgreSQL schema.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy
from alembic import command
from harness import child_env

from enroll import config as config_mod
from enroll.context import AppContext, build_context
from enroll.embedded import init_data_dir
from enroll.model import Issued, Pending, RequestStatus
from enroll.plugin_loader import build_plugin_manager
from enroll.store import migrate
from enroll.store.db import Database, normalise_url
from enroll.testing import make_csr, request

Run = Callable[..., subprocess.CompletedProcess[str]]
TYPO = "configuration error: ENROLL_DATABSE_URL: unknown setting " \
       "(did you mean ENROLL_DATABASE_URL?)"


def _cli(data_dir: Path, *args: str, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enroll.cli.main", "--data-dir",
                           str(data_dir), *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(**(env or {})), check=False)


def _serve(data_dir: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    # Each case must stop before listening; a serve that starts times out the test.
    return _cli(data_dir, "serve", "--http-port", "0", "--https-port", "0", env=env,
                timeout=30)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    """A data dir with its generated config and nothing else (no database yet)."""
    data = tmp_path / "data"
    assert init_data_dir(data, build_plugin_manager()) is not None
    return data


@pytest.fixture
def initialised(configured: Path) -> Path:
    """A data dir as ``enroll init`` leaves it: config, schema, CAs."""
    build_context(config_mod.load(None, {}, data_dir=configured)).db.dispose()
    return configured


# -- unknown variables and tables -------------------------------------------------------

def test_a_misspelt_variable_stops_serve_and_other_commands_and_creates_nothing(
        configured: Path) -> None:
    before = _files(configured)
    env = {"ENROLL_DATABSE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    for done in (_serve(configured, env), _cli(configured, "certs", "list", env=env),
                 _cli(configured, "db", "upgrade", env=env)):
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == TYPO
    assert _files(configured) == before  # no enroll.db, no TLS files, no CA


def test_a_misspelt_variable_on_an_empty_data_dir_writes_no_config(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    done = _serve(data, {"ENROLL_HTTP_PROT": "9000"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("configuration error: ENROLL_HTTP_PROT: unknown setting "
                                   "(did you mean ENROLL_HTTP_PORT?)")
    assert not data.exists()


def test_a_misspelt_key_inside_a_section_is_refused_by_every_command(
        initialised: Path) -> None:
    env = {"ENROLL_SCEP__ENDPOINTS__DEFAULT__CHALENGE": "x"}
    for done in (_serve(initialised, env), _cli(initialised, "ca", "list", env=env)):
        assert done.returncode == 2
        assert done.stderr.startswith(
            "configuration error: ENROLL_SCEP__ENDPOINTS__DEFAULT__CHALENGE: "
            "scep.endpoints.default.chalenge: unknown setting (expected one of: ")
    misspelt_section = _cli(initialised, "ca", "list", env={"ENROLL_SCPE_CHALLENGE": "x"})
    assert misspelt_section.returncode == 2
    assert misspelt_section.stderr.strip() == (
        "configuration error: ENROLL_SCPE_CHALLENGE: unknown setting "
        "(did you mean ENROLL_SCEP_CHALLENGE?)")


def test_an_unknown_table_stops_serve_and_other_commands(initialised: Path) -> None:
    config = initialised / "enroll.toml"
    config.write_text(config.read_text() + '\n[scpe]\nchallenge = "x"\n')
    for done in (_serve(initialised), _cli(initialised, "requests", "list")):
        assert done.returncode == 2
        assert done.stderr.strip() == (
            "configuration error: scpe: unknown setting: no loaded protocol or plugin reads "
            "this table (did you mean [scep]?)")
    assert not (initialised / "tls").exists()  # serve stopped before anything


def test_the_test_suites_own_variables_are_ignored(initialised: Path) -> None:
    env = {"ENROLL_TEST_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
           "ENROLL_REQUIRE_INTEROP": "1"}
    done = _cli(initialised, "ca", "list", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert [r["name"] for r in json.loads(done.stdout)] == ["root", "issuing", "scep"]


# -- only init and serve migrate and create CAs -----------------------------------------

def test_certs_list_on_an_empty_data_dir_creates_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _cli(empty, "certs", "list")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f'error: the database at {empty.resolve() / "enroll.db"} has no enroll schema: run '
        '"enroll init" or "enroll serve" first')
    assert _files(empty) == set()
    absent = tmp_path / "absent"
    assert _cli(absent, "ca", "list").returncode == 1
    assert not absent.exists()


def test_commands_on_a_configured_but_uninitialised_dir_create_no_database(
        configured: Path) -> None:
    before = _files(configured)
    for args in (("certs", "list"), ("requests", "list"), ("ca", "list"),
                 ("audit", "export"), ("est", "user", "list"), ("crl",)):
        done = _cli(configured, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert "has no enroll schema" in done.stderr
    assert _files(configured) == before


@pytest.mark.postgres
def test_certs_list_on_an_empty_postgres_schema_creates_no_table(
        configured: Path, pg_url: str) -> None:
    env = {"ENROLL_DATABASE_URL": pg_url}
    done = _cli(configured, "certs", "list", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("error: the database at postgresql+psycopg://")
    assert done.stderr.strip().endswith(
        'has no enroll schema: run "enroll init" or "enroll serve" first')
    engine = sqlalchemy.create_engine(normalise_url(pg_url))
    try:
        with engine.connect() as conn:
            count = conn.exec_driver_sql(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = current_schema()").scalar()
        assert count == 0
    finally:
        engine.dispose()
    # init creates it; afterwards the same command works.
    assert _cli(configured, "init", env=env).returncode == 0
    listed = _cli(configured, "certs", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [c["profile"] for c in json.loads(listed.stdout)] == ["tls-listener"]


def test_a_schema_behind_this_enroll_asks_for_db_upgrade(configured: Path) -> None:
    cfg = config_mod.load(None, {}, data_dir=configured)
    db = Database(cfg.database_url)
    try:
        command.upgrade(migrate.alembic_config(db), "0001_core")
        wanted = ", ".join(sorted(migrate.expected_heads(db)))
    finally:
        db.dispose()
    done = _cli(configured, "requests", "list")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: the database at {configured.resolve() / 'enroll.db'}: schema is at "
        f'revision 0001_core, this enroll needs {wanted}: run "enroll db upgrade"')
    upgraded = _cli(configured, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    # Still no CA: only init and serve create them.
    no_ca = _cli(configured, "ca", "list")
    assert no_ca.returncode == 1
    assert no_ca.stderr.strip() == ("error: CA 'root' is configured but not in the "
                                    'database: run "enroll init" or "enroll serve" first')
    db = Database(cfg.database_url)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM cas").scalar() == 0
    finally:
        db.dispose()


# -- read-only commands need no CA passphrase -------------------------------------------

def _forget_passphrase(data_dir: Path) -> None:
    config = data_dir / "enroll.toml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join(x for x in lines if not x.startswith("ca_passphrase_file"))
                      + "\n")


def test_read_only_commands_need_no_passphrase_and_signing_ones_stop_cleanly(
        initialised: Path, open_data_dir: Callable[..., AppContext]) -> None:
    manual = {"ENROLL_PROFILES__DEVICE__APPROVAL": "manual"}
    ctx = open_data_dir(initialised, manual)
    pending = ctx.authority.submit(request(make_csr(cn="p.example.com"), protocol="scep"))
    issued = ctx.authority.submit(request(make_csr(cn="c.example.com", dns=["c.example.com"]),
                                          "server", protocol="acme"))
    assert isinstance(pending, Pending) and isinstance(issued, Issued)
    _forget_passphrase(initialised)
    assert config_mod.load(None, {}, data_dir=initialised).ca_passphrase is None

    for args in (("requests", "list", "--json"), ("certs", "list", "--json"),
                 ("certs", "show", issued.serial_hex, "--json"), ("audit", "export"),
                 ("ca", "list"), ("ca", "export", "issuing", "--chain"),
                 ("est", "user", "list"), ("acme", "eab", "list")):
        done = _cli(initialised, *args, env=manual)
        assert done.returncode == 0, (args, done.stderr)
    listed = json.loads(_cli(initialised, "requests", "list", "--json", env=manual).stdout)
    assert [r["id"] for r in listed] == [pending.request_id]
    events = _cli(initialised, "audit", "export").stdout.splitlines()
    assert any(json.loads(e)["type"] == "certificate.issued" for e in events)

    missing = ("configuration error: ca_passphrase: CA private keys are encrypted at rest: "
               "set ca_passphrase_file in the config or ENROLL_CA_PASSPHRASE")
    for args in (("requests", "approve", pending.request_id),
                 ("certs", "revoke", issued.serial_hex), ("crl", "--refresh"),
                 ("acme", "eab", "new")):  # an EAB key is sealed under the passphrase
        done = _cli(initialised, *args, env=manual)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip() == missing
    rotated = _cli(initialised, "ca", "rotate-passphrase", env=manual)
    assert rotated.returncode == 2
    assert rotated.stderr.strip() == ("configuration error: ca_passphrase: no CA passphrase "
                                      "is configured, so nothing is sealed under one")
    with ctx.db.read() as tx:
        assert tx.scalar("SELECT count(*) FROM acme_eab_keys") == 0
    # Nothing changed: the request is still pending, the certificate still valid.
    assert [r.id for r in ctx.authority.list_requests(RequestStatus.PENDING, 10)] == [
        pending.request_id]
    cert = ctx.authority.certificate(issued.serial_hex)
    assert cert is not None and cert.status.value == "valid"

    # With the passphrase the same commands sign.
    secret = (initialised / "ca-passphrase").read_text().strip()
    approved = _cli(initialised, "requests", "approve", pending.request_id,
                    env=manual | {"ENROLL_CA_PASSPHRASE": secret})
    assert approved.returncode == 0, approved.stderr
