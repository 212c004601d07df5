"""Removing a deleted workspace's rows, in batches, as the runtime role under RLS.

Invariant: every statement here runs inside the deletion job's `with_rls_context` transaction
for that workspace, so RLS bounds it to that workspace even if this code had a bug (the
statements also name the workspace explicitly). The tables and their order come from the
live catalog — every table with a `workspace_id`, children before the tables their foreign keys
point at — so a table added later is purged without touching this module. The member rows, and
what they reference, go last, removed by the final `warden_drop_workspace()` with the workspace
row, because the job re-checks its user's membership before each batch. The audit trail goes
only once the deletion is older than the grace period the database enforces (`TrailKept`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db.roles import quote_ident
from app.security.principal import WorkspaceContext
from app.unavailable import causes

LAST = "membership"
# Removed by `warden_drop_workspace()` itself, with the workspace row: the member rows and what
# they reference. (On Citus the rows that the workspace row's keys are checked against must be
# removed by the role that removes it: another role's connection would still see them.)
DROPPED_WITH_WORKSPACE = frozenset({"membership", "custom_role"})
GLOBAL = frozenset({"workspace"})
# Append-only for the runtime role: removed through `warden_purge_audit()` instead.
# The chain's head outlives the workspace (sequence numbers never restart, and it is the last
# word on the trail); the runtime role cannot remove it.
APPEND_ONLY = frozenset({"audit_record", "audit_cut", "audit_head"})
KEPT = "55000"  # warden_purge_audit: the deletion is younger than the grace period

_TABLES = text("""
    SELECT c.relname AS name,
           ARRAY(SELECT a.attname::text FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY a.attnum) AS pkey,
           ARRAY(SELECT DISTINCT d.relname::text FROM pg_constraint f
                 JOIN pg_class d ON d.oid = f.confrelid
                 WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid) AS refs
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = 'workspace_id' AND NOT a.attisdropped)
    ORDER BY c.relname
""")


@dataclass(frozen=True)
class PurgeTable:
    name: str
    pkey: tuple[str, ...]
    refs: frozenset[str]


def _children_first(tables: dict[str, PurgeTable]) -> list[PurgeTable]:
    order: list[PurgeTable] = []
    placed: set[str] = set()
    while len(order) < len(tables):
        left = {n: t for n, t in tables.items() if n not in placed}
        ready = [
            t
            for n, t in left.items()
            if not any(n in other.refs for m, other in left.items() if m != n)
        ]
        if not ready:
            raise RuntimeError("foreign keys between scoped tables form a cycle")
        for t in ready:
            order.append(t)
            placed.add(t.name)
    return order


async def purge_plan(ctx: WorkspaceContext) -> tuple[list[PurgeTable], list[PurgeTable]]:
    """(tables purged batch by batch, tables purged in the final transaction)."""
    rows = (await ctx.session.execute(_TABLES)).all()
    tables = {
        r.name: PurgeTable(r.name, tuple(r.pkey), frozenset(r.refs) - GLOBAL)
        for r in rows
        if r.name not in GLOBAL | APPEND_ONLY
    }
    final = {LAST} & set(tables)
    while True:  # the member rows' own references (custom roles, ...) must outlive them
        grown = final | {ref for name in final for ref in tables[name].refs if ref in tables}
        if grown == final:
            break
        final = grown
    ordered = _children_first(tables)
    return [t for t in ordered if t.name not in final], [t for t in ordered if t.name in final]


async def delete_batch(ctx: WorkspaceContext, table: PurgeTable, limit: int) -> int:
    """Delete up to `limit` of the workspace's rows from `table`; return how many went."""
    name = quote_ident(table.name)
    key = ", ".join(quote_ident(c) for c in table.pkey) or "ctid"
    result = await ctx.session.execute(
        text(
            f"DELETE FROM {name} WHERE workspace_id = :ws AND ({key}) IN "
            f"(SELECT {key} FROM {name} WHERE workspace_id = :ws LIMIT :n)"
        ),
        {"ws": ctx.workspace_id, "n": limit},
    )
    return int(getattr(result, "rowcount", 0) or 0)


class TrailKept(Exception):  # noqa: N818 - an outcome, not a failure
    """The deleted workspace's audit trail is kept until its grace period is over."""


async def purge_audit_batch(ctx: WorkspaceContext, limit: int) -> int:
    """Remove up to `limit` of the deleted workspace's audit records (then its retention cuts);
    `TrailKept` while the deletion is younger than the grace period the database enforces."""
    try:
        result = await ctx.session.execute(
            text("SELECT warden_purge_audit(:ws, :n)"), {"ws": ctx.workspace_id, "n": limit}
        )
    except DBAPIError as exc:
        for cause in causes(exc):
            if getattr(cause, "sqlstate", None) == KEPT:
                raise TrailKept(getattr(cause, "message", None) or str(cause)) from None
        raise
    return int(result.scalar_one())


async def finish(ctx: WorkspaceContext, tables: list[PurgeTable]) -> int:
    """The member rows and what they reference, then the workspace row itself: one call of the
    definer function, which removes exactly `DROPPED_WITH_WORKSPACE`."""
    left = {t.name for t in tables} - DROPPED_WITH_WORKSPACE
    if left:
        raise RuntimeError(f"{sorted(left)} must be removed with the workspace row")
    result = await ctx.session.execute(
        text("SELECT warden_drop_workspace(:id)"), {"id": ctx.workspace_id}
    )
    return int(result.scalar_one())
