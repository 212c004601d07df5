"""The `warden` command: parser, production checks, idempotent migrate, platform-admin."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.checks import run_checks, settings_problems
from app.cli import build_parser, main
from app.config import Settings
from app.db.catalog import rls_problems
from app.db.migrate import migrate
from tests.conftest import make_settings


def test_parser_defaults():
    args = build_parser().parse_args(["dev"])
    assert (args.host, args.port, args.data_dir) == ("127.0.0.1", 8000, ".warden")
    args = build_parser().parse_args(["serve", "--port", "9000"])
    assert (args.host, args.port) == ("127.0.0.1", 9000)
    for command in ("migrate", "seed", "check", "platform-admin"):
        assert command in build_parser().format_help()


def test_check_refuses_unsafe_settings():
    unsafe = Settings(_env_file=None, environment="development", debug=True, signup_enabled=True)
    problems = settings_problems(unsafe)
    joined = "\n".join(problems)
    for needle in (
        "WARDEN_DEBUG",
        "development",
        "development secret",
        "REQUIRE_TLS",
        "SIGNUP",
        "WARDEN_DATABASE_URL",
        "WARDEN_REDIS_URL",
    ):
        assert needle in joined, (needle, problems)


async def test_check_rls_on_the_test_database(database, servers):
    settings = make_settings(
        database, servers, environment="production", signup_enabled=False, require_tls=True
    )
    assert await run_checks(settings, rls=True, database_urls=[]) == []
    # Pointed at the database as a superuser runtime URL, the role check fails.
    unsafe = settings.model_copy(update={"database_url": database["admin_url"]})
    problems = await run_checks(unsafe, rls=False, database_urls=[])
    assert any("superuser" in p for p in problems)


async def test_migrate_is_idempotent(database, admin_engine):
    await migrate(
        database["admin_url"],
        database["runtime_url"],
        database["definer_role"],
        database["platform_role"],
        maintenance_url=database["maintenance_url"],
    )
    async with admin_engine.connect() as conn:
        assert (
            await rls_problems(conn, database["runtime_role"], database["maintenance_role"]) == []
        )
        head = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    from alembic.script import ScriptDirectory

    from app.db.migrate import alembic_config

    assert head == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_platform_admin_command(api_user_email, database, monkeypatch, capsys):
    monkeypatch.setenv("WARDEN_ADMIN_DATABASE_URL", database["admin_url"])
    assert main(["platform-admin", api_user_email]) == 0
    assert "granted" in capsys.readouterr().out
    assert main(["platform-admin", "nobody@example.com"]) == 1
    assert main(["platform-admin", api_user_email, "--revoke"]) == 0


@pytest.fixture
async def api_user_email(api):
    return (await api.user("cli")).email
