"""The migration helpers a new table is made with (`app.db.rls.create_table`): on plain
PostgreSQL the same DDL as `op.create_table` + `scope_table`; on a distributed Citus schema the
table is distributed as it is created, co-located with its group, before its keys are added.
Either way the catalog check passes with the new tables in place."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import Connection

from alembic import op
from app.db.catalog import rls_problems
from app.db.rls import Scope, create_table, scope_table


def _future_tables(conn: Connection) -> None:
    """What later migrations will add: a workspace table bound to a provider, a per-user table
    and a per-user table inside a workspace, with keys to existing tables; and a global one."""
    with Operations.context(MigrationContext.configure(conn)):
        create_table(
            "rogue_change",
            sa.Column("workspace_id", UUID, sa.ForeignKey("workspace.id"), nullable=False),
            sa.Column("id", UUID, nullable=False),
            sa.Column("provider_id", UUID, nullable=False),
            sa.Column("requested_by", UUID, sa.ForeignKey("app_user.id"), nullable=False),
            sa.Column("title", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("workspace_id", "id"),
            sa.ForeignKeyConstraint(
                ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
            ),
            sa.Index("ix_rogue_change_workspace_id_title", "workspace_id", "title"),
            scope=Scope.WORKSPACE_PROVIDER,
        )
        create_table(
            "rogue_key",
            sa.Column("user_id", UUID, sa.ForeignKey("app_user.id"), nullable=False),
            sa.Column("id", UUID, nullable=False),
            sa.PrimaryKeyConstraint("user_id", "id"),
            scope=Scope.USER,
        )
        create_table(
            "rogue_note",
            sa.Column("workspace_id", UUID, sa.ForeignKey("workspace.id"), nullable=False),
            sa.Column("id", UUID, nullable=False),
            sa.Column("user_id", UUID, sa.ForeignKey("app_user.id"), nullable=False),
            sa.Column("change_id", UUID),
            sa.PrimaryKeyConstraint("workspace_id", "id"),
            sa.ForeignKeyConstraint(
                ["workspace_id", "change_id"],
                ["rogue_change.workspace_id", "rogue_change.id"],
                ondelete="CASCADE",
            ),
            scope=Scope.WORKSPACE_USER,
        )
        create_table("rogue_global", sa.Column("id", UUID, primary_key=True), scope=None)
        # The older way: op.create_table (a key to the workspace only), then scope_table.
        op.create_table(
            "rogue_legacy",
            sa.Column("workspace_id", UUID, sa.ForeignKey("workspace.id"), nullable=False),
            sa.Column("id", UUID, nullable=False),
            sa.PrimaryKeyConstraint("workspace_id", "id"),
        )
        scope_table("rogue_legacy", Scope.WORKSPACE)


async def _catalog(conn: Any) -> dict[str, Any]:
    rows = await conn.execute(
        text("""
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   ARRAY(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
                         WHERE k.conrelid = c.oid ORDER BY 1) AS keys,
                   ARRAY(SELECT polname FROM pg_policy WHERE polrelid = c.oid) AS policies
            FROM pg_class c WHERE c.relname = ANY (:names) AND c.relkind = 'r'
            ORDER BY c.relname
        """),
        {"names": ["rogue_change", "rogue_key", "rogue_note", "rogue_global", "rogue_legacy"]},
    )
    return {r.relname: tuple(r)[1:] for r in rows}


async def test_new_tables_are_scoped_and_pass_the_check(admin_engine, database):
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            if database["citus"]:
                await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
            await conn.run_sync(_future_tables)
            # A new global table must also be declared one (the catalog's list says why); on
            # Citus the coordinator's copy of the reference table is named too.
            problems = await rls_problems(conn, database["runtime_role"])
            assert problems and all(
                p.startswith("rogue_global")
                and p.endswith("neither workspace_id nor user_id, and not a global table")
                for p in problems
            ), problems
            made = await _catalog(conn)
        finally:
            await trans.rollback()
    assert set(made) == {"rogue_change", "rogue_key", "rogue_note", "rogue_global", "rogue_legacy"}
    for name in ("rogue_change", "rogue_key", "rogue_note", "rogue_legacy"):
        assert made[name][:2] == (True, True) and made[name][3] == ["tenant_isolation"]
    assert made["rogue_global"][:2] == (False, False)
    assert any("REFERENCES provider(workspace_id, id)" in k for k in made["rogue_change"][2])
    assert any("ON DELETE CASCADE" in k for k in made["rogue_note"][2])


async def test_on_citus_they_are_distributed_by_their_policy_column(admin_engine, database):
    if not database["citus"]:
        return  # plain PostgreSQL: nothing to distribute (the test above covers the DDL)
    async with admin_engine.connect() as conn:
        trans = await conn.begin()
        try:
            await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
            await conn.run_sync(_future_tables)
            rows = await conn.execute(
                text(
                    "SELECT logicalrelid::text AS tbl, partmethod::text AS m, colocationid AS g, "
                    "column_to_column_name(logicalrelid, partkey) AS c FROM pg_dist_partition "
                    "WHERE logicalrelid::text IN ('rogue_change', 'rogue_key', 'rogue_note', "
                    "'rogue_global', 'rogue_legacy', 'provider', 'auth_session')"
                )
            )
            found = {r.tbl: (r.m, r.c, r.g) for r in rows}
        finally:
            await trans.rollback()
    assert found["rogue_change"] == ("h", "workspace_id", found["provider"][2])
    assert found["rogue_note"] == ("h", "workspace_id", found["provider"][2])
    assert found["rogue_legacy"] == ("h", "workspace_id", found["provider"][2])
    assert found["rogue_key"] == ("h", "user_id", found["auth_session"][2])
    assert found["rogue_global"][:2] == ("n", None)
