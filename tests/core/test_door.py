"""The one door: front-ends get a `FrontEnd`, label their own requests, bring their own
tables, and read their settings through the kit once."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client import generate_latest

from enroll import config as config_mod
from enroll import endpoints, metrics
from enroll.app import create_app
from enroll.authority import Authority
from enroll.door import Door, FrontEnd
from enroll.errors import ConfigError
from enroll.hookspecs import hookimpl
from enroll.store import migrate

ROOT = Path(__file__).resolve().parents[2]


def _get(app: Any, url: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            return await client.get(url)

    return anyio.run(go)


def test_front_ends_never_import_the_composition_root() -> None:
    """Only the CLI modules (the operator's door) may open an `AppContext`."""
    offenders = []
    for path in sorted((ROOT / "protocols").rglob("*.py")):
        if path.name == "cli.py" or path.name == "plugin.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "enroll.context":
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_plugin_hooks_that_build_a_front_end_take_a_frontend() -> None:
    import inspect

    from enroll import hookspecs

    for name in ("enroll_routes", "enroll_endpoint_info", "enroll_tls_client_cas",
                 "enroll_recover"):
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        assert params[0] == "frontend", name


def test_the_authority_is_the_door() -> None:
    wanted = {"profile", "check", "submit", "status", "find_transaction", "lookup",
              "certificate", "chain", "revoke", "verify_challenge", "crl"}
    declared = {n for n in vars(Door) if not n.startswith("_")}
    assert wanted <= declared
    assert all(callable(getattr(Authority, n)) for n in declared)


def test_a_custom_scep_path_is_counted_under_scep(
        make_config: Callable[..., config_mod.Config]) -> None:
    app = create_app(make_config(scep={"endpoints": {"mdm": {"path": "/mdm/scep"}}}))
    try:
        def scep_requests() -> float:
            for line in generate_latest(metrics.REGISTRY).decode().splitlines():
                if line.startswith('enroll_http_requests_total{protocol="scep",status="2xx"}'):
                    return float(line.split()[-1])
            return 0.0

        before = scep_requests()
        r = _get(app, "/mdm/scep?operation=GetCACaps")
        assert r.status_code == 200 and "AES" in r.text
        assert "x-request-id" in r.headers
        assert scep_requests() == before + 1
    finally:
        app.state.enroll.db.dispose()


def test_an_escaped_exception_is_a_bare_500_with_the_request_id(
        make_config: Callable[..., config_mod.Config]) -> None:
    from starlette.routing import Route

    class Broken:
        @hookimpl
        def enroll_routes(self, frontend: FrontEnd) -> list[Route]:
            def boom(request: Any) -> Any:
                raise RuntimeError("secret detail")

            return [Route("/boom", boom)]

    app = create_app(make_config(), extra_plugins=[Broken()])
    try:
        r = _get(app, "/boom")
        assert r.status_code == 500
        assert "secret detail" not in r.text
        assert r.headers["x-request-id"] in r.text
    finally:
        app.state.enroll.db.dispose()


def test_a_plugin_brings_its_own_tables_and_migrations(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from enroll.plugin_loader import build_plugin_manager
    from enroll.store.db import Database
    from enroll.store.schema import metadata

    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0100_widgets.py").write_text(
        'revision = "0100_widgets"\ndown_revision = None\nbranch_labels = ("widgets",)\n'
        'depends_on = "0001_core"\nimport sqlalchemy as sa\nfrom alembic import op\n'
        'def upgrade() -> None:\n'
        '    op.create_table("widget_things", sa.Column("id", sa.Integer, primary_key=True))\n'
        'def downgrade() -> None:\n    op.drop_table("widget_things")\n')
    table = metadata.tables.get("widget_things") or sa.Table(
        "widget_things", metadata, sa.Column("id", sa.Integer, primary_key=True))

    class Widgets:
        @hookimpl
        def enroll_tables(self) -> list[sa.Table]:
            return [table]

        @hookimpl
        def enroll_migration_dirs(self) -> list[Path]:
            return [versions]

    pm = build_plugin_manager((), (), [Widgets()])
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        migrate.upgrade(db, pm)
        with db.write() as tx:
            tx.run("INSERT INTO widget_things (id) VALUES (?)", (7,))
        with db.read() as tx:
            assert tx.one("SELECT id FROM widget_things") == {"id": 7}
        assert "0100_widgets" in migrate.current_heads(db)
    finally:
        db.dispose()
        metadata.remove(table)


def test_the_settings_kit_checks_labels_paths_and_parses_once(
        make_config: Callable[..., config_mod.Config]) -> None:
    for bad in ("relative", "/a//b", "/a/../b", "/a b", "/" + "x" * 300, "/{x}"):
        with pytest.raises(ConfigError):
            endpoints.path(bad, "k")
    with pytest.raises(ConfigError, match="resource name"):
        endpoints.label("directory", "k", reserved={"directory"})
    with pytest.raises(ConfigError, match="letters"):
        endpoints.label("a/b", "k")
    from enroll.protocols.scep import settings

    with pytest.raises(ConfigError, match="no profile") as info:
        settings.parse(make_config(scep={"endpoints": {"x": {"profile": "nope"}}}))
    assert info.value.key == "scep.endpoints.x.profile"
    cfg = make_config(scep={"endpoints": {"a": {"path": "/s"}, "b": {"path": "/s"}}})
    with pytest.raises(ConfigError, match="used by endpoint"):
        settings.parse(cfg)
    good = make_config()
    assert settings.parse(good) is settings.parse(good)
