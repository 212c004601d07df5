"""The tenant context: the one function that issues the `SET LOCAL`s.

Invariant: the settings are set only with literal `SET LOCAL` (never `set_config`, never
session-level `SET`), from strictly parsed UUIDs, in one statement string that holds nothing
but the `SET LOCAL`s, inside an already-open transaction. They vanish at commit/rollback, so a
pooled connection never carries one request's context into the next.

Callers: `app.security.deps` (HTTP) and `workers.context` (jobs). Nothing else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.rls import (
    UNLIMITED_SETTING,
    USER_SETTING,
    VISIBLE_PROVIDERS_SETTING,
    WORKSPACE_SETTING,
)
from app.db.transaction import Transaction


@dataclass(frozen=True)
class Visibility:
    """Provider-group visibility: everything, or only these provider ids."""

    unlimited: bool
    provider_ids: tuple[uuid.UUID, ...] = ()


def context_statement(
    workspace_id: uuid.UUID | None, user_id: uuid.UUID, visibility: Visibility | None = None
) -> str:
    """Build the `SET LOCAL` string. UUIDs are re-parsed so only canonical literals get in."""
    parts = []
    if workspace_id is not None:
        parts.append(f"SET LOCAL {WORKSPACE_SETTING} = '{uuid.UUID(str(workspace_id))}'")
    parts.append(f"SET LOCAL {USER_SETTING} = '{uuid.UUID(str(user_id))}'")
    if visibility is not None:
        if visibility.unlimited:
            parts.append(f"SET LOCAL {UNLIMITED_SETTING} = 'on'")
        else:
            ids = ",".join(str(uuid.UUID(str(p))) for p in visibility.provider_ids)
            parts.append(f"SET LOCAL {VISIBLE_PROVIDERS_SETTING} = '{{{ids}}}'")
    return "; ".join(parts)


async def apply_context(
    target: Transaction | AsyncSession,
    workspace_id: uuid.UUID | None,
    user_id: uuid.UUID,
    visibility: Visibility | None = None,
) -> None:
    """Set the tenant context on the current transaction of a request `Transaction` (HTTP) or
    of an `AsyncSession` inside `session.begin()` (jobs, auth), and record it in its `info`,
    where the central ORM filter reads it.

    Runs through the driver's simple-query protocol (the only one that takes several statements
    in one string); on a request `Transaction` that has not sent a statement yet, its BEGIN goes
    in the same string. With a session, the driver opens its transaction lazily, on the first
    statement; if none ran yet, one is run so that `SET LOCAL` lands inside the transaction
    instead of being a no-op.
    """
    statement = context_statement(workspace_id, user_id, visibility)
    if isinstance(target, Transaction):
        await target.begin_with(statement)  # BEGIN travels with it when nothing opened it yet
    else:
        if not target.in_transaction():
            raise RuntimeError("tenant context must be set inside session.begin()")
        conn = await target.connection()
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        driver = raw.driver_connection
        if not driver.is_in_transaction():
            await conn.execute(text("SELECT 1"))
        if not driver.is_in_transaction():
            raise RuntimeError("tenant context must be set inside an open transaction")
        await driver.execute(statement)
    target.info["workspace_id"] = workspace_id
    target.info["user_id"] = user_id
    target.info["visibility"] = visibility
