"""The tenant context: the one function that issues the `SET LOCAL`s.

Invariant: the settings are set only with literal `SET LOCAL` (never `set_config`, never
session-level `SET`), from strictly parsed UUIDs, in one statement string that holds nothing
but the `SET LOCAL`s, inside the unit of work's transaction. They vanish at commit/rollback, so
a pooled connection never carries one unit's context into the next.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

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
    tx: Transaction,
    workspace_id: uuid.UUID | None,
    user_id: uuid.UUID,
    visibility: Visibility | None = None,
) -> None:
    """Set the tenant context on `tx` and record it in its `info`, where the central ORM filter
    reads it. Runs through the driver's simple-query protocol (the only one that takes several
    statements in one string); when nothing has opened the transaction yet, its BEGIN goes in
    the same string."""
    await tx.begin_with(context_statement(workspace_id, user_id, visibility))
    tx.info["workspace_id"] = workspace_id
    tx.info["user_id"] = user_id
    tx.info["visibility"] = visibility
