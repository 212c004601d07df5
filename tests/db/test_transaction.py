"""The request transaction (`app.db.transaction`): one connection, one explicit transaction that
commits only on a clean exit; whatever fails, the pooled connection goes back outside any
transaction, without the context, or not at all."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.db.models import Provider
from app.db.session import Database
from app.db.tenant import Visibility, apply_context
from app.db.transaction import transaction
from tests.conftest import make_settings
from tests.helpers import Api, aws_uid


@pytest.fixture
async def one_connection(database, servers):
    db = Database.from_settings(make_settings(database, servers, db_pool_size=1, db_max_overflow=0))
    yield db
    await db.dispose()


@pytest.fixture
async def member(client):
    api = Api(client)
    owner = await api.user("tx")
    slug = await api.workspace(owner)
    return uuid.UUID(await api.workspace_id(owner, slug)), uuid.UUID((await api.me(owner))["id"])


async def _state(db: Database) -> tuple[str, bool]:
    """The pooled connection as the next user gets it: inside a transaction? any context?"""
    async with db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        in_tx = driver.is_in_transaction()
        ws = await driver.fetchval(
            "SELECT coalesce(current_setting('app.current_workspace_id', true), '')"
        )
        return ws, in_tx


async def test_a_clean_exit_commits_and_leaves_no_context(one_connection, member):
    ws, user = member
    pid = None
    async with one_connection.transaction() as tx:
        await apply_context(tx, ws, user, Visibility(True))
        tx.session.add(Provider(provider_type="aws", uid=aws_uid(), alias="committed"))
        pid = await tx.driver.fetchval("SELECT pg_backend_pid()")
    async with one_connection.transaction() as tx:
        await apply_context(tx, ws, user, Visibility(True))
        assert await tx.driver.fetchval("SELECT pg_backend_pid()") == pid  # same connection
        rows = await tx.fetch("SELECT alias FROM provider")
        assert [r["alias"] for r in rows] == ["committed"]  # the session's write was flushed
    ws_now, in_tx = await _state(one_connection)
    assert (ws_now, in_tx) == ("", False)


async def test_an_error_rolls_back_and_leaves_no_context(one_connection, member):
    ws, user = member
    with pytest.raises(ZeroDivisionError):
        async with one_connection.transaction() as tx:
            await apply_context(tx, ws, user, Visibility(True))
            await tx.execute(
                "INSERT INTO provider (workspace_id, id, provider_type, uid, alias) "
                "VALUES ($1, $2, 'aws', $3, 'rolled-back')",
                ws,
                uuid.uuid4(),
                aws_uid(),
            )
            raise ZeroDivisionError
    assert await _state(one_connection) == ("", False)
    async with one_connection.transaction() as tx:
        await apply_context(tx, ws, user, Visibility(True))
        assert await tx.fetch("SELECT 1 FROM provider WHERE alias = 'rolled-back'") == []


async def test_a_failing_commit_raises_and_leaves_the_connection_clean(
    one_connection, member, admin_engine
):
    ws, user = member
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("""
            CREATE FUNCTION test_tx_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'deferred failure' USING ERRCODE = '40001'; END $$""")
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER test_tx_fail AFTER INSERT ON provider DEFERRABLE "
                "INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.alias = 'fail-at-commit') "
                "EXECUTE FUNCTION test_tx_fail()"
            )
        )
    try:
        with pytest.raises(Exception, match="deferred failure"):
            async with one_connection.transaction() as tx:
                await apply_context(tx, ws, user, Visibility(True))
                tx.session.add(Provider(provider_type="aws", uid=aws_uid(), alias="fail-at-commit"))
        assert await _state(one_connection) == ("", False)
    finally:
        async with admin_engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_tx_fail ON provider"))
            await conn.execute(text("DROP FUNCTION test_tx_fail()"))


async def test_a_connection_still_in_a_transaction_is_never_reused(one_connection, member):
    """If a pooled connection ever came back inside a transaction (and so possibly with
    another request's context), the next request transaction refuses it and drops it."""
    ws, user = member
    engine = one_connection.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.execute("BEGIN")
        await driver.execute(f"SET LOCAL app.current_workspace_id = '{ws}'")
        leaked_pid = await driver.fetchval("SELECT pg_backend_pid()")
    # Returned to the pool in autocommit mode: nothing rolled it back.
    with pytest.raises(RuntimeError, match="still inside a transaction"):
        async with transaction(engine):
            pass
    async with one_connection.transaction() as tx:
        assert await tx.driver.fetchval("SELECT pg_backend_pid()") != leaked_pid
        assert (
            await tx.driver.fetchval(
                "SELECT coalesce(current_setting('app.current_workspace_id', true), '')"
            )
            == ""
        )
    del user
