"""The RLS conformance check (`warden check --rls`, and the catalog meta-test).

Reads the catalog of one database and lists every violation of SPEC section 2. An empty list
means: every table is either on the short global list or scoped with RLS enabled + forced and
exactly the one expected permissive policy; no restrictive policy exists; keys between scoped
tables carry `workspace_id`; the runtime role cannot bypass anything; views run as the invoker;
SECURITY DEFINER functions pin `search_path` with `pg_temp` last; partitions carry the same
enabled + forced RLS and policy as any scoped table, and the runtime role holds no privilege on
them. Beyond tables (`app.db.hardening`): only the maintenance role may execute the maintenance
functions, and it may do nothing else; no login role (nor PUBLIC) may create temporary tables
or use large objects; the runtime role has its statement and idle-in-transaction timeouts.

On a Citus node the same holds for every shard the node stores (Citus hides them from
`pg_class`; the check reveals them and judges each by its table), the extension's own objects
are left out, and on the coordinator every table must be distributed as its policy keys it
(`app.db.citus`). Run it against every node of a cluster.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.citus import distribution_problems, node_kind, reveal_shards
from app.db.hardening import LARGE_OBJECT_FUNCTIONS
from app.db.rls import POLICY_NAME, expected_scopes, normalize_predicate
from app.db.roles import MAINTENANCE_FUNCTIONS

# Tables without tenant scope, each for a reason.
GLOBAL_TABLES = {
    "alembic_version": "migration bookkeeping; the runtime role has no privilege on it",
}

FORBIDDEN_PRIVILEGES = ("TRUNCATE", "REFERENCES", "TRIGGER")

# Objects an extension (Citus) created are its own, not Warden's schema.
NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "
    "AND d.objid = {oid} AND d.deptype = 'e')"
)


async def _rows(conn: AsyncConnection, sql: str, **params: object) -> list:
    return list((await conn.execute(text(sql), params)).mappings().all())


async def rls_problems(
    conn: AsyncConnection, runtime_role: str, maintenance_role: str | None = None
) -> list[str]:
    """Every violation; the maintenance role's own checks only when it is named."""
    problems: list[str] = []
    node = await node_kind(conn)
    if node == "coordinator":
        problems += await distribution_problems(conn)
    shards = await reveal_shards(conn) if node else {}
    tables = await _rows(
        conn,
        f"""
        SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relispartition,
               array_agg(a.attname::text) AS columns,
               coalesce(array_agg(a.attname::text) FILTER (WHERE NOT a.attnotnull), '{{}}')
                 AS nullable
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
        GROUP BY c.oid
        """,
    )
    policies = await _rows(
        conn,
        """
        SELECT c.relname, p.polname, p.polpermissive, p.polcmd::text AS polcmd,
               p.polroles = '{0}'::oid[] AS to_public,
               pg_get_expr(p.polqual, p.polrelid) AS qual,
               pg_get_expr(p.polwithcheck, p.polrelid) AS check
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
        """,
    )
    by_table: dict[str, list] = {}
    for pol in policies:
        by_table.setdefault(pol["relname"], []).append(pol)
        if not pol["polpermissive"]:
            problems.append(f"{pol['relname']}: restrictive policy {pol['polname']} exists")

    scoped: set[str] = set()
    for t in tables:
        name, columns = t["relname"], set(t["columns"])
        table = shards.get(name, name)  # a shard is judged by its table
        label = f"{name} (shard of {table})" if name in shards else name
        allowed = expected_scopes(columns, table, frozenset(t["nullable"]))
        if not allowed:
            if table not in GLOBAL_TABLES:
                problems.append(
                    f"{label}: neither workspace_id nor user_id, and not a global table"
                )
            continue
        scoped.add(name)
        if not t["relrowsecurity"]:
            problems.append(f"{label}: row level security is not enabled")
        if not t["relforcerowsecurity"]:
            problems.append(f"{label}: row level security is not forced")
        pols = by_table.get(name, [])
        if len(pols) != 1:
            problems.append(f"{label}: expected exactly one policy, found {len(pols)}")
            continue
        pol = pols[0]
        wanted = {normalize_predicate(s.value) for s in allowed}
        if pol["polname"] != POLICY_NAME:
            problems.append(f"{label}: policy is named {pol['polname']}, expected {POLICY_NAME}")
        if pol["polcmd"] != "*" or not pol["to_public"]:
            problems.append(f"{label}: policy must be FOR ALL TO PUBLIC")
        for part in ("qual", "check"):
            if pol[part] is None or normalize_predicate(pol[part]) not in wanted:
                problems.append(
                    f"{label}: policy {part} is {pol[part]!r}, not the tenant predicate"
                )

    problems += await _key_problems(conn, scoped)
    problems += await _role_problems(conn, runtime_role)
    problems += await _object_problems(conn)
    problems += await _login_problems(conn, runtime_role, maintenance_role)
    return problems


async def _key_problems(conn: AsyncConnection, scoped: set[str]) -> list[str]:
    problems = []
    uniques = await _rows(
        conn,
        """
        SELECT c.relname AS tbl, i.relname AS idx,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                       AND a.attname = 'workspace_id' AND a.attnum = ANY (x.indkey)) AS has_ws,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                       AND a.attname = 'workspace_id') AS table_has_ws
        FROM pg_index x
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND x.indisunique
        """,
    )
    for u in uniques:
        if u["tbl"] in scoped and u["table_has_ws"] and not u["has_ws"]:
            problems.append(f"{u['tbl']}: unique index {u['idx']} does not include workspace_id")
    fks = await _rows(
        conn,
        """
        SELECT con.conname, src.relname AS src, dst.relname AS dst,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.conrelid
                       AND a.attname = 'workspace_id' AND a.attnum = ANY (con.conkey)) AS has_ws,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.confrelid
                       AND a.attname = 'workspace_id') AS dst_has_ws
        FROM pg_constraint con
        JOIN pg_class src ON src.oid = con.conrelid
        JOIN pg_class dst ON dst.oid = con.confrelid
        JOIN pg_namespace n ON n.oid = src.relnamespace
        WHERE n.nspname = 'public' AND con.contype = 'f'
        """,
    )
    for fk in fks:
        if fk["src"] in scoped and fk["dst_has_ws"] and not fk["has_ws"]:
            problems.append(
                f"{fk['src']}: foreign key {fk['conname']} to {fk['dst']} lacks workspace_id"
            )
    return problems


async def _role_problems(conn: AsyncConnection, role: str) -> list[str]:
    problems = []
    rows = await _rows(
        conn, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r", r=role
    )
    if not rows:
        return [f"runtime role {role} does not exist"]
    if rows[0]["rolsuper"]:
        problems.append(f"runtime role {role} is a superuser")
    if rows[0]["rolbypassrls"]:
        problems.append(f"runtime role {role} has BYPASSRLS")
    owned = await _rows(
        conn,
        """
        SELECT c.relname AS name FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
        WHERE r.rolname = :r
        UNION ALL
        SELECT p.proname FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE r.rolname = :r
        UNION ALL
        SELECT n.nspname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
        WHERE r.rolname = :r
        """,
        r=role,
    )
    problems += [f"runtime role {role} owns {o['name']}" for o in owned]
    for privilege in FORBIDDEN_PRIVILEGES:
        held = await _rows(
            conn,
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
              AND has_table_privilege(:r, c.oid, :p)
            """,
            r=role,
            p=privilege,
        )
        problems += [f"runtime role {role} has {privilege} on {h['relname']}" for h in held]
    partitions = await _rows(
        conn,
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relispartition
          AND has_table_privilege(:r, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
        """,
        r=role,
    )
    problems += [
        f"runtime role {role} has privileges on partition {p['relname']} (use the parent)"
        for p in partitions
    ]
    return problems


async def _object_problems(conn: AsyncConnection) -> list[str]:
    problems = []
    views = await _rows(
        conn,
        f"""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'v'
          AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)
          AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
        """,
    )
    problems += [f"view {v['relname']} is not security_invoker" for v in views]
    definers = await _rows(
        conn,
        f"""
        SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prosecdef
          AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{{}}')) cfg
                          WHERE cfg LIKE 'search_path=%')
          AND {NOT_EXTENSION.format(catalog="pg_proc", oid="p.oid")}
        """,
    )
    problems += [
        f"SECURITY DEFINER function {d['proname']} does not pin search_path" for d in definers
    ]
    paths = await _rows(
        conn,
        f"""
        SELECT p.proname, substring(cfg FROM '^search_path=(.*)$') AS path
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
             unnest(p.proconfig) cfg
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prosecdef
          AND cfg LIKE 'search_path=%'
          AND {NOT_EXTENSION.format(catalog="pg_proc", oid="p.oid")}
        """,
    )
    for p in paths:
        schemas = [part.strip().strip('"') for part in p["path"].split(",")]
        if schemas[-1] != "pg_temp":
            problems.append(
                f"SECURITY DEFINER function {p['proname']} does not put pg_temp last in its "
                f"search_path ({p['path']})"
            )
    return problems


TIMEOUTS = ("statement_timeout", "idle_in_transaction_session_timeout")


async def _login_problems(
    conn: AsyncConnection, runtime_role: str, maintenance_role: str | None
) -> list[str]:
    """What the login roles may do beyond tables: the maintenance functions (the maintenance
    role's alone), temporary tables and large objects (nobody's), the runtime role's timeouts,
    and the maintenance role's lack of anything else."""
    problems: list[str] = []
    maintenance = sorted(MAINTENANCE_FUNCTIONS)
    logins = [("runtime", runtime_role)]
    if maintenance_role:
        found = await _rows(
            conn,
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
            "WHERE rolname = :r",
            r=maintenance_role,
        )
        if not found:
            problems.append(f"maintenance role {maintenance_role} does not exist")
            maintenance_role = None
        else:
            for attribute, held in found[0].items():
                if held:
                    problems.append(f"maintenance role {maintenance_role} has {attribute[3:]}")
            logins.append(("maintenance", maintenance_role))
    for fn in maintenance:
        if (await conn.execute(text("SELECT to_regprocedure(:f)"), {"f": fn})).scalar() is None:
            continue  # an earlier revision
        held = (
            await _rows(
                conn,
                "SELECT has_function_privilege(:r, :f, 'EXECUTE') AS rt, "
                "has_function_privilege('public', :f, 'EXECUTE') AS pub",
                r=runtime_role,
                f=fn,
            )
        )[0]
        if held["rt"]:
            problems.append(f"runtime role {runtime_role} may execute maintenance function {fn}")
        if held["pub"]:
            problems.append(f"PUBLIC may execute maintenance function {fn}")
        if maintenance_role:
            ok = await conn.execute(
                text("SELECT has_function_privilege(:r, :f, 'EXECUTE')"),
                {"r": maintenance_role, "f": fn},
            )
            if not ok.scalar():
                problems.append(f"maintenance role {maintenance_role} may not execute {fn}")
    if maintenance_role:
        problems += await _maintenance_problems(conn, maintenance_role, maintenance)
    for kind, role in [*logins, ("PUBLIC", "public")]:
        label = "PUBLIC" if kind == "PUBLIC" else f"{kind} role {role}"
        temp = await conn.execute(
            text("SELECT has_database_privilege(:r, current_database(), 'TEMPORARY')"),
            {"r": role},
        )
        if temp.scalar():
            problems.append(f"{label} may create temporary tables")
        large = await _rows(
            conn,
            """
            SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
            WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY (:names)
              AND has_function_privilege(:r, p.oid, 'EXECUTE')
            """,
            r=role,
            names=list(LARGE_OBJECT_FUNCTIONS),
        )
        problems += [f"{label} may execute large-object function {x['fn']}" for x in large]
    settings = await conn.execute(
        text(
            "SELECT s.setconfig FROM pg_db_role_setting s "
            "JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase "
            "WHERE r.rolname = :r AND d.datname = current_database()"
        ),
        {"r": runtime_role},
    )
    configured = dict(item.split("=", 1) for item in (settings.scalar() or []) if "=" in item)
    for name in TIMEOUTS:
        if configured.get(name, "0") in ("0", ""):
            problems.append(f"runtime role {runtime_role} has no {name} in this database")
    return problems


async def _maintenance_problems(
    conn: AsyncConnection, role: str, maintenance: list[str]
) -> list[str]:
    """The maintenance role holds nothing but EXECUTE on the maintenance functions."""
    tables = await _rows(
        conn,
        f"""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
          AND has_table_privilege(:r, c.oid,
                'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
          AND {NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")}
        """,
        r=role,
    )
    problems = [f"maintenance role {role} has privileges on {t['relname']}" for t in tables]
    others = await _rows(
        conn,
        f"""
        SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
          AND has_function_privilege(:r, p.oid, 'EXECUTE')
          AND p.oid NOT IN (SELECT to_regprocedure(x)::oid
                            FROM unnest(CAST(:maintenance AS text[])) x
                            WHERE to_regprocedure(x) IS NOT NULL)
          AND {NOT_EXTENSION.format(catalog="pg_proc", oid="p.oid")}
        """,
        r=role,
        maintenance=maintenance,
    )
    problems += [f"maintenance role {role} may execute {o['fn']}" for o in others]
    owned = await _rows(
        conn,
        "SELECT c.relname AS name FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner "
        "WHERE o.rolname = :r UNION ALL SELECT p.proname FROM pg_proc p "
        "JOIN pg_roles o ON o.oid = p.proowner WHERE o.rolname = :r",
        r=role,
    )
    problems += [f"maintenance role {role} owns {o['name']}" for o in owned]
    return problems


async def runtime_role_refusal(conn: AsyncConnection) -> str | None:
    """Why the connected role must not serve requests (None when it is fit to)."""
    row = (
        (
            await conn.execute(
                text(
                    "SELECT r.rolname, r.rolsuper, r.rolbypassrls, "
                    "EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid "
                    "        AND c.relnamespace = 'public'::regnamespace) AS owns "
                    "FROM pg_roles r WHERE r.rolname = current_user"
                )
            )
        )
        .mappings()
        .one()
    )
    if row["rolsuper"]:
        return f"database role {row['rolname']} is a superuser"
    if row["rolbypassrls"]:
        return f"database role {row['rolname']} has BYPASSRLS"
    if row["owns"]:
        return f"database role {row['rolname']} owns tables (owners can bypass RLS)"
    return None
