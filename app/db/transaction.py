"""The request transaction: one pooled connection whose BEGIN and COMMIT Warden issues itself,
on the driver, with the ORM session joined to it when a handler needs one.

Invariant: everything one request does (the request-context lookup, the `SET LOCAL`s, the
handler's ORM statements and prepared reads, the audit record) runs in this one transaction, on
this one connection; it commits only when the block exits cleanly and rolls back otherwise, and
`SET LOCAL` state ends with it, so a pooled connection never carries one request's context into
the next. The SQLAlchemy connection is put in the driver's autocommit mode, which means
SQLAlchemy never sends a BEGIN or COMMIT of its own: the explicit asyncpg transaction below is
the only one, and the ORM's savepoints (`begin_nested`) nest inside it.

Why not `AsyncSession.begin()` as elsewhere: on the hottest path (a list request) the session
costs more than the queries it would run. The context lookup, the `SET LOCAL` string and the
audit INSERT are fixed statements, so they run as prepared statements on the driver; the
session is only created when the handler asks for it (`Transaction.session`), bound to the same
connection and carrying the same context (`info`), so the central workspace filter of
`app.db.session` applies to every ORM statement exactly as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession


class Transaction:
    """The open transaction of one unit of work (a request, or a denial record).

    `info` holds the tenant context (`app.db.tenant.apply_context` fills it); the ORM session,
    when created, starts with a copy of it, which is what the central filter reads."""

    def __init__(self, conn: AsyncConnection, driver: asyncpg.Connection) -> None:
        self.conn = conn
        self.driver = driver
        self.info: dict[str, Any] = {}
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        """The ORM session on this transaction's connection (created on first use)."""
        if self._session is None:
            if "workspace_id" not in self.info and "user_id" not in self.info:
                # The context must be set before any ORM statement can run on this transaction.
                raise RuntimeError("the tenant context is set before the session is used")
            self._session = AsyncSession(
                bind=self.conn, expire_on_commit=False, autoflush=True, info=dict(self.info)
            )
        return self._session

    @property
    def session_info(self) -> dict[str, Any]:
        """What the handler's session recorded (e.g. outbox jobs to relay after commit)."""
        return self._session.info if self._session is not None else {}

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self.driver.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.driver.fetch(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        return await self.driver.execute(sql, *args)

    async def flush(self) -> None:
        """Send the session's pending writes (before the audit record and the commit)."""
        if self._session is not None:
            await self._session.flush()

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()  # ends only the session's own bookkeeping


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) with SQLAlchemy's own transaction handling switched off,
    for `transaction()` to drive BEGIN/COMMIT on the driver itself."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[Transaction]:
    """Open a transaction on a connection of `engine` (an `autocommit()` engine): commit when
    the block exits cleanly, roll back when it raises or when the commit fails."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        if driver.is_in_transaction():
            # Never happens by design (every exit below ends the transaction); if it did, the
            # connection might still carry another request's context: drop it, refuse.
            await conn.invalidate()
            raise RuntimeError("a pooled connection was still inside a transaction")
        await driver.execute("BEGIN")
        tx = Transaction(conn, driver)
        try:
            yield tx
            await tx.flush()
            await tx._close()
            await driver.execute("COMMIT")
        except BaseException:
            await _abort(conn, tx)
            raise


async def _abort(conn: AsyncConnection, tx: Transaction) -> None:
    """Whatever failed, the connection goes back to the pool outside any transaction (its
    `SET LOCAL`s gone) or not at all."""
    try:
        await tx._close()
    except Exception:  # noqa: BLE001, S110 - the original error is the one to report
        pass
    driver = tx.driver
    if driver.is_closed():
        return
    try:
        if driver.is_in_transaction():
            await driver.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - unknown state: drop the connection instead
        await conn.invalidate()
