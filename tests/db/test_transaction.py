"""The request transaction (`app.db.transaction`): one connection, one explicit transaction that
commits only on a clean exit; whatever fails, the pooled connection goes back outside any
transaction, without the context, or not at all."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from app.db.models import Provider
from app.db.session import Database
from app.db.tenant import Visibility, apply_context
from app.db.transaction import CITUS, Transaction, transaction
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
    one_connection, member, admin_engine, database
):
    if database["citus"]:
        pytest.skip("the failure is made by a trigger, which Citus refuses on distributed tables")
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


@pytest.fixture
def sent(monkeypatch):
    """Every statement the request transactions send, in order (asyncpg's query logger on each
    connection a transaction uses, removed afterwards)."""
    statements: list[str] = []
    logged: dict[int, object] = {}
    original = Transaction.__init__

    def init(self, engine, pooled, driver, database=None):
        original(self, engine, pooled, driver, database)
        if id(driver) not in logged:
            logged[id(driver)] = driver
            driver.add_query_logger(log)

    def log(record):
        statements.append(record.query)

    monkeypatch.setattr(Transaction, "__init__", init)
    yield statements
    for driver in logged.values():
        driver.remove_query_logger(log)


async def test_each_connection_knows_its_deployment(one_connection, database):
    """Whether the server is a Citus node is noted once per connection, when it is made."""
    async with one_connection.transaction() as tx:
        assert tx._pooled.info[CITUS] is database["citus"]


async def test_begin_travels_with_the_context(one_connection, member, sent, database):
    """The context lookup runs just before the transaction opens; BEGIN goes in the same round
    trip as the SET LOCALs (on its own before them on Citus, which would forward the whole
    string to every worker connection); a lookup inside the open transaction is refused."""
    ws, user = member
    async with one_connection.transaction() as tx:
        assert await tx.lookup("SELECT 1") is not None
        assert not tx.driver.is_in_transaction()
        await apply_context(tx, ws, user, Visibility(True))
        assert tx.driver.is_in_transaction()
        with pytest.raises(RuntimeError, match="before the transaction opens"):
            await tx.lookup("SELECT 1")
        assert await tx.driver.fetchval("SELECT current_setting('app.current_workspace_id')") == (
            str(ws)
        )
    await asyncio.sleep(0)  # the logger is called soon after each statement
    assert sent[0] == "SELECT 1"
    if database["citus"]:
        assert sent[1] == "BEGIN"
        assert sent[2].startswith("SET LOCAL app.current_workspace_id")
    else:
        assert sent[1].startswith("BEGIN; SET LOCAL app.current_workspace_id")
    assert sent[-1] == "COMMIT"
    assert await _state(one_connection) == ("", False)


async def test_begin_goes_alone_on_a_citus_connection(one_connection, member, sent):
    """The Citus form, on whatever server this is: BEGIN, then the SET LOCAL string, the same
    context in force."""
    ws, user = member
    async with one_connection.transaction() as tx:
        tx._pooled.info[CITUS] = True
        try:
            await apply_context(tx, ws, user, Visibility(True))
            assert tx.driver.is_in_transaction()
            setting = "SELECT current_setting('app.current_workspace_id')"
            assert await tx.driver.fetchval(setting) == str(ws)
        finally:
            tx._pooled.info.pop(CITUS)
    await asyncio.sleep(0)
    assert sent[0] == "BEGIN"
    assert sent[1].startswith("SET LOCAL app.current_workspace_id")
    assert sent[-1] == "COMMIT"


async def test_statements_outside_a_context_open_the_transaction(one_connection, member, sent):
    """A statement sent before any context (a denial record, say) still runs inside the
    transaction: it opens it; the ORM session is refused until a context is set."""
    ws, user = member
    with pytest.raises(ZeroDivisionError):
        async with one_connection.transaction() as tx:
            with pytest.raises(RuntimeError, match="context is set before"):
                tx.session  # noqa: B018 - the property is what is tested
            await tx.execute("SELECT 1")
            assert tx.driver.is_in_transaction()
            raise ZeroDivisionError
    await asyncio.sleep(0)
    assert sent == ["BEGIN", "SELECT 1", "ROLLBACK"]
    async with one_connection.transaction():
        pass  # nothing sent, nothing to commit
    await asyncio.sleep(0)
    assert sent[3:] == []
    del ws, user


async def test_a_scoped_list_is_five_round_trips(api, client, sent, database):
    """A workspace list request sends: the context lookup, BEGIN with the SET LOCALs, the list,
    the audit record, COMMIT. (A round trip is the largest fixed cost of a request.) On Citus
    BEGIN is its own round trip: six."""
    owner = await api.user("rt")
    slug = await api.workspace(owner)
    await api.provider(owner, slug)
    await asyncio.sleep(0)
    sent.clear()
    r = await client.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
    assert r.status_code == 200 and len(r.json()["data"]) == 1
    await asyncio.sleep(0)
    if database["citus"]:
        assert sent.pop(1) == "BEGIN"
        sent[1] = "BEGIN; " + sent[1]
    assert len(sent) == 5, sent
    assert "warden_request_context" in sent[0]
    assert sent[1].startswith("BEGIN; SET LOCAL ")
    assert sent[2].lstrip().upper().startswith("SELECT") and "provider" in sent[2]
    assert sent[3].startswith("INSERT INTO audit_record ")
    assert sent[4] == "COMMIT"
