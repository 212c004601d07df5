"""The one transaction API: a pooled connection whose BEGIN and COMMIT Warden issues itself, on
the driver, with the ORM session joined to it when code needs one. Requests, jobs, sign-in
flows and the cron jobs all run their work in one of these.

Invariant: everything one unit of work does (the `SET LOCAL`s, its ORM statements and prepared
reads, its audit record) runs in this one transaction, on this one connection; it commits only
when the block exits cleanly and rolls back otherwise, and `SET LOCAL` state ends with it, so a
pooled connection never carries one unit's context into the next. A connection that would come
back from the pool still inside a transaction is dropped, never used. Work registered with
`after_commit` (sending queued jobs) runs only once the COMMIT succeeded.

Why not `AsyncSession.begin()`: on the hottest path (a list request) SQLAlchemy's connection
and session machinery cost more than the queries. The connection is checked out of SQLAlchemy's
pool as a raw pooled connection (same pool, checkout checks and recycling as every other user);
compiled list queries and the audit INSERT run on its driver as prepared statements. Only when
code asks for the ORM session (`Transaction.session`) is a SQLAlchemy connection made over the
same pooled connection, in the driver's autocommit mode so that SQLAlchemy sends no BEGIN or
COMMIT of its own (the ORM's savepoints nest inside the transaction), with the same context in
`info`, so the central workspace filter applies to every ORM statement.

Round trips are the request's largest fixed cost (each is a send and a wake-up on both sides),
so BEGIN is not sent on its own when it can travel with the first statement: `begin_with`
sends it in one simple query with the `SET LOCAL`s (except on a Citus node, which would forward
that whole string to every worker connection: there BEGIN goes first, alone), and the
request-context lookup that decides those settings runs just before, as `lookup` (one read-only
statement of a STABLE function; in READ COMMITTED each statement takes its own snapshot, so it
sees exactly what it would see as the transaction's first statement). Any other statement, and
the ORM session, need the transaction open: `fetch`/`execute` open it first if nothing did yet.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.pool import PoolProxiedConnection

from app.unavailable import DATABASE, unavailable

log = logging.getLogger("warden.db")
# Key in a pooled connection's `info`: True when the server is a Citus node (noted once, when
# the connection is made).
CITUS = "citus"


class Transaction:
    """The open transaction of one unit of work.

    `info` holds the tenant context (the context functions fill it); the ORM session, when
    created, starts with a copy of it, which is what the central filter reads."""

    def __init__(
        self,
        engine: AsyncEngine,
        pooled: PoolProxiedConnection,
        driver: asyncpg.Connection,
        database: Any = None,
    ) -> None:
        self._engine = engine
        self.database = database
        self._pooled = pooled
        self.driver = driver
        self.dialect: Dialect = engine.dialect
        self.info: dict[str, Any] = {}
        self._conn: AsyncConnection | None = None
        self._session: AsyncSession | None = None
        self._after_commit: list[Callable[[], Awaitable[object]]] = []

    @property
    def session(self) -> AsyncSession:
        """The ORM session on this transaction's connection (created on first use)."""
        if self._session is None:
            if "user_id" not in self.info or not self.driver.is_in_transaction():
                # The context must be set (which opens the transaction) before any ORM
                # statement can run: in autocommit mode it would otherwise run outside it.
                raise RuntimeError("the tenant context is set before the session is used")
            autocommit = _autocommit(self._engine)
            sync = Connection(autocommit.sync_engine, connection=self._pooled)
            self._conn = AsyncConnection(autocommit, sync)
            self._session = AsyncSession(
                bind=self._conn, expire_on_commit=False, autoflush=True, info=dict(self.info)
            )
        return self._session

    def after_commit(self, work: Callable[[], Awaitable[object]]) -> None:
        """Run `work` once this transaction has committed (never after a rollback). A failure
        there is logged: the data is committed, and whoever registered it must cope (the
        outbox, for instance, is swept again later)."""
        self._after_commit.append(work)

    async def run_after_commit(self) -> None:
        work, self._after_commit = self._after_commit, []
        for item in work:
            try:
                await item()
            except Exception:  # noqa: BLE001 - committed data stands; the hook's owner retries
                log.exception("work after commit failed")

    async def lookup(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """A read-only statement run before the transaction opens (the request-context lookup,
        whose answer decides the `SET LOCAL`s); refused once the transaction is open."""
        if self.driver.is_in_transaction():
            raise RuntimeError("lookup runs before the transaction opens")
        return await self.driver.fetchrow(sql, *args)

    @property
    def on_citus(self) -> bool:
        """Whether this transaction's connection is to a Citus coordinator."""
        return bool(self._pooled.info.get(CITUS))

    async def begin_with(self, statements: str) -> None:
        """Run `statements` (simple-query SQL, no parameters) in the transaction, opening it in
        the same round trip if nothing did yet."""
        if self.driver.is_in_transaction():
            await self.driver.execute(statements)
        elif self._pooled.info.get(CITUS):
            await self.driver.execute("BEGIN")
            await self.driver.execute(statements)
        else:
            await self.driver.execute(f"BEGIN; {statements}")

    async def _open(self) -> None:
        if not self.driver.is_in_transaction():
            await self.driver.execute("BEGIN")

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        await self._open()
        return await self.driver.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        await self._open()
        return await self.driver.execute(sql, *args)

    async def flush(self) -> None:
        """Send the session's pending writes (before the audit record and the commit)."""
        if self._session is not None:
            await self._session.flush()

    async def _release(self) -> None:
        """Back to the pool: through the SQLAlchemy connection if one was made (it owns the
        pooled connection then), else directly."""
        if self._session is not None:
            await self._session.close()  # ends only the session's own bookkeeping
        if self._conn is not None:
            await self._conn.close()
        else:
            self._pooled.close()


@lru_cache(maxsize=8)
def _autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The engine (same pool) in the driver's autocommit mode, made once per engine."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@asynccontextmanager
async def transaction(engine: AsyncEngine, database: Any = None) -> AsyncIterator[Transaction]:
    """A transaction on a pooled connection of `engine` (opened by its first statement, see
    `Transaction.begin_with`): committed when the block exits cleanly, rolled back when it
    raises or when the commit fails."""
    pooled = await engine.raw_connection()
    driver = pooled.driver_connection
    assert driver is not None
    tx = Transaction(engine, pooled, driver, database)
    try:
        if driver.is_in_transaction():
            # Never happens by design (every exit below ends the transaction); if it did, the
            # connection might still carry another request's context: drop it, refuse.
            pooled.invalidate()
            raise RuntimeError("a pooled connection was still inside a transaction")
        try:
            yield tx
            await tx.flush()
            if driver.is_in_transaction():
                await driver.execute("COMMIT")
        except BaseException as exc:
            await _abort(tx, exc)
            raise
    finally:
        await tx._release()
    await tx.run_after_commit()


async def _abort(tx: Transaction, exc: BaseException) -> None:
    """Whatever failed, the connection goes back to the pool outside any transaction (its
    `SET LOCAL`s gone) or not at all. One the failure says is broken (the server restarted,
    the connection was reset or left mid-operation) is discarded at once, so the pool opens a
    fresh one instead of handing it to the next request."""
    driver = tx.driver
    lost = unavailable(exc)
    if driver.is_closed() or (lost is not None and lost.dependency == DATABASE):
        tx._pooled.invalidate()
        return
    try:
        if driver.is_in_transaction():
            await driver.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - unknown state: drop the connection instead
        tx._pooled.invalidate()
