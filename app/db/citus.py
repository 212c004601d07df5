"""Citus (distributed PostgreSQL): detection, and how Warden's tables are distributed.

Invariant: on a Citus coordinator every table of the public schema but the migration version
table is either a reference table (the global tables: users, workspaces) or hash-distributed by
the column its one policy keys on: workspace-scoped tables by `workspace_id`, all in one
co-location group, per-user tables by `user_id`, in another (`Scope.distribution_column`). The
distribution follows from the table's columns exactly as its policy does, so a new table needs
nothing beyond the migration helpers of `app.db.rls`.

Two moments distribute tables. `distribute_schema` (run by `warden migrate` after Alembic)
distributes every table that is still local: a fresh cluster's tables, created by migrations
written for one server with foreign keys between them, or a single-node installation restored
onto a coordinator. It drops the foreign keys that touch those tables, distributes parents and
children alike, and adds the keys back (Citus refuses a key between a local and a distributed
table). Once the schema is distributed, `distribute_table` runs right after a migration helper
creates a table, before anything references it.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.rls import expected_scopes

CITUS_SQL = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')"
# Tables that stay local on the coordinator (the runtime role has no privilege on them).
LOCAL_TABLES = frozenset({"alembic_version"})
# Within one transaction, Citus must use one connection per node once a table with a foreign
# key to a reference table was touched; DDL on many distributed tables needs it from the start.
SEQUENTIAL = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"
UNSAFE_TRIGGERS = "SET LOCAL citus.enable_unsafe_triggers TO on"


def is_citus(conn: Connection) -> bool:
    return bool(conn.execute(text(CITUS_SQL)).scalar())


def distribution_column(table: str, columns: set[str]) -> str | None:
    """The column `table` is hash-distributed by, or None for a reference table."""
    scopes = expected_scopes(columns, table)
    if not scopes:
        return None
    found = {scope.distribution_column for scope in scopes}
    if len(found) != 1:
        raise RuntimeError(f"{table}: its possible policies disagree on a distribution column")
    return found.pop()


def schema_distributed(conn: Connection) -> bool:
    """Whether this is a Citus database whose schema is distributed already (the workspace
    table is a reference table): new tables are then distributed as they are created."""
    if not is_citus(conn):
        return False
    found = conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition "
            "WHERE logicalrelid = to_regclass('public.workspace'))"
        )
    )
    return bool(found.scalar())


def prepare_migration(conn: Connection) -> None:
    """Run at the start of a migration transaction: sequential mode on Citus (see
    SEQUENTIAL); nothing on plain PostgreSQL."""
    if is_citus(conn):
        conn.execute(text(SEQUENTIAL))


# Distributed, or a reference table: what a table of Warden's must be. (A "Citus local" table,
# which Citus makes of a local table given a key to a reference table, is neither.)
_DONE = "p.partmethod = 'h' OR (p.partmethod = 'n' AND p.repmodel = 't')"

_TABLES = text(f"""
    SELECT c.oid, c.relname, array_agg(a.attname::text) AS columns,
           EXISTS (SELECT 1 FROM pg_dist_partition p
                   WHERE p.logicalrelid = c.oid AND ({_DONE})) AS distributed
    FROM pg_class c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    GROUP BY c.oid
    ORDER BY c.relname
""")

_FOREIGN_KEYS = text("""
    SELECT src.relname AS tbl, con.conname, pg_get_constraintdef(con.oid) AS definition
    FROM pg_constraint con JOIN pg_class src ON src.oid = con.conrelid
    WHERE con.contype = 'f' AND con.conparentid = 0
      AND (con.conrelid = ANY (:oids) OR con.confrelid = ANY (:oids))
    ORDER BY src.relname, con.conname
""")


def _colocated_with(conn: Connection, column: str) -> str:
    """An already distributed table of `column`'s group, or 'none' to start the group."""
    found = conn.execute(
        text(
            "SELECT c.relname FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid "
            "WHERE c.relnamespace = 'public'::regnamespace AND NOT c.relispartition "
            "AND p.partmethod = 'h' AND column_to_column_name(p.logicalrelid, p.partkey) = :col "
            "ORDER BY c.relname LIMIT 1"
        ),
        {"col": column},
    ).scalar()
    return str(found) if found else "none"


def _distribute(conn: Connection, table: str, column: str | None) -> None:
    if column is None:
        conn.execute(text("SELECT create_reference_table(:t)"), {"t": f"public.{table}"})
        return
    conn.execute(
        text("SELECT create_distributed_table(:t, :col, colocate_with => :with)"),
        {"t": f"public.{table}", "col": column, "with": _colocated_with(conn, column)},
    )


def distribute_table(conn: Connection, table: str, columns: set[str]) -> None:
    """Distribute one table (by its columns, see `distribution_column`) if it is not yet; its
    foreign keys to distributed tables must be added after this."""
    row = conn.execute(
        text(
            "SELECT c.relispartition, EXISTS (SELECT 1 FROM pg_dist_partition p "
            f"WHERE p.logicalrelid = c.oid AND ({_DONE})) AS done "
            "FROM pg_class c WHERE c.oid = to_regclass(:t)"
        ),
        {"t": f"public.{table}"},
    ).one()
    if row.relispartition or row.done:
        return  # partitions follow their parent
    _distribute(conn, table, distribution_column(table, columns))


def distribute_schema(conn: Connection) -> list[str]:
    """Distribute every table of the public schema that is still local (a no-op on plain
    PostgreSQL); returns their names. Runs in the caller's transaction, which must not have
    touched distributed tables yet."""
    if not is_citus(conn):
        return []
    tables = [
        r
        for r in conn.execute(_TABLES).all()
        if not r.distributed and r.relname not in LOCAL_TABLES
    ]
    if not tables:
        return []
    conn.execute(text(SEQUENTIAL))
    # The audit trail's tables carry a row trigger (their id, time and user), run on each shard.
    conn.execute(text(UNSAFE_TRIGGERS))
    keys = conn.execute(_FOREIGN_KEYS, {"oids": [r.oid for r in tables]}).all()
    for key in keys:
        conn.execute(text(f'ALTER TABLE public."{key.tbl}" DROP CONSTRAINT "{key.conname}"'))
    # Reference tables first: a distributed table's keys to them need them in place.
    ordered = sorted(tables, key=lambda r: distribution_column(r.relname, set(r.columns)) or "")
    for r in ordered:
        had_rows = conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM public."{r.relname}")'))
        local_rows = bool(had_rows.scalar())
        _distribute(conn, r.relname, distribution_column(r.relname, set(r.columns)))
        if local_rows:
            # The rows were copied into the shards; the coordinator's local copy is dead weight.
            conn.execute(
                text("SELECT truncate_local_data_after_distributing_table(:t)"),
                {"t": f"public.{r.relname}"},
            )
    for key in keys:
        conn.execute(
            text(f'ALTER TABLE public."{key.tbl}" ADD CONSTRAINT "{key.conname}" {key.definition}')
        )
    return [r.relname for r in ordered]


# The cluster as the catalog check sees it (`warden check --rls` on every node).


async def node_kind(conn: AsyncConnection) -> str | None:
    """'coordinator' or 'worker' on a Citus node, None on plain PostgreSQL."""
    if not (await conn.execute(text(CITUS_SQL))).scalar():
        return None
    coordinator = (await conn.execute(text("SELECT citus_is_coordinator()"))).scalar()
    return "coordinator" if coordinator else "worker"


async def reveal_shards(conn: AsyncConnection) -> dict[str, str]:
    """Make this node's shards visible in `pg_class` for the rest of the transaction (Citus
    hides them) and map each shard's name to its table's."""
    await conn.execute(text("SET LOCAL citus.override_table_visibility TO off"))
    rows = await conn.execute(
        text(
            "SELECT shard_name(s.logicalrelid, s.shardid) AS shard, c.relname AS tbl "
            "FROM pg_dist_shard s JOIN pg_class c ON c.oid = s.logicalrelid "
            "WHERE c.relnamespace = 'public'::regnamespace"
        )
    )
    return {str(r.shard).removeprefix("public."): str(r.tbl) for r in rows}


async def distribution_problems(conn: AsyncConnection) -> list[str]:
    """On the coordinator: every table but the local ones distributed as its policy keys it
    (see `distribution_column`), each distribution column's tables in one co-location group.
    Runs before `reveal_shards` (it reads the tables, not their shards)."""
    rows = await conn.execute(
        text("""
            SELECT c.relname, p.partmethod::text, p.repmodel::text, p.colocationid,
                   column_to_column_name(p.logicalrelid, p.partkey) AS dist_column,
                   ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid
                         AND a.attnum > 0 AND NOT a.attisdropped) AS columns
            FROM pg_class c
            LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
            ORDER BY c.relname
        """)
    )
    problems: list[str] = []
    groups: dict[str, set[int]] = {}
    for r in rows:
        if r.relname in LOCAL_TABLES:
            continue
        expected = distribution_column(r.relname, set(r.columns))
        if r.partmethod is None:
            problems.append(f"{r.relname}: a local table (neither distributed nor reference)")
        elif expected is None and (r.partmethod, r.repmodel) != ("n", "t"):
            problems.append(f"{r.relname}: expected a reference table")
        elif expected is not None and (r.partmethod, r.dist_column) != ("h", expected):
            problems.append(f"{r.relname}: expected distribution by {expected}")
        elif expected is not None:
            groups.setdefault(expected, set()).add(r.colocationid)
    problems += [
        f"tables distributed by {column} are not co-located (groups {sorted(ids)})"
        for column, ids in sorted(groups.items())
        if len(ids) > 1
    ]
    return problems
