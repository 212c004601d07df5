"""A takeover of the application process: arbitrary SQL as the runtime role, tried here over a
raw connection with the runtime URL, and refused.

What this role can never do: read any user's `password_hash` from the table (nor update any
column of any user row), list users in bulk, run the cross-workspace maintenance functions
(they are the maintenance role's, a login the API never holds), create a temporary table or a
large object, or make a definer function resolve a name through its own search_path.

What it can do, said plainly. The tenant settings are plain `SET LOCAL`s: a role that runs
arbitrary SQL sets them to anything, so per-user RLS cannot stop it from setting
`app.current_user_id` to a victim's id, and then reading that one user's email, name and
attributes (one row per guessed id: no listing). Knowing a user's exact email, it can read their
password hash through the login lookup (`warden_login_lookup`, which login needs: the hash is
verified in the application; argon2id keeps it expensive to attack offline) and, with that hash,
set a new one through the compare-and-swap (`warden_change_password`). Knowing a pair of a
workspace and one of its members' ids, it can list that workspace's members, and with a user's
id that user's workspaces: each step needs an id already in hand (nothing lists at once). The
role's `statement_timeout` and `idle_in_transaction_session_timeout` are defaults a session may
change: they stop runaway work, not an attacker.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.hardening import DatabaseLimits, apply_limits
from app.db.roles import DEFINER_FUNCTIONS, MAINTENANCE_FUNCTIONS, Roles
from app.security.passwords import hash_password_sync
from tests.helpers import Api, User, report_bytes, run_jobs, sample_report, upload_scan

# The large-object functions that create, open or change one (every one is revoked).
LARGE_OBJECT_CALLS = (
    "SELECT lo_create(0)",
    "SELECT lo_creat(-1)",
    "SELECT lo_from_bytea(0, '\\x00'::bytea)",
    "SELECT lo_open(1, 131072)",
    "SELECT lowrite(0, '\\x00'::bytea)",
    "SELECT lo_put(1, 0, '\\x00'::bytea)",
    "SELECT lo_unlink(1)",
    "SELECT lo_import('/etc/hostname')",
)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def attacker(database: dict[str, Any]) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the runtime role: what a takeover of the process holds."""
    conn = await asyncpg.connect(_dsn(database["runtime_url"]))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def people(api: Api) -> dict[str, Any]:
    """The attacker's own account (a member of their workspace) and a victim in a workspace of
    their own (sharing none with the attacker)."""
    me, victim = await api.user("attacker"), await api.user("victim")
    mine, theirs = await api.workspace(me), await api.workspace(victim)
    me.id, victim.id = (await api.me(me))["id"], (await api.me(victim))["id"]
    return {
        "me": me,
        "victim": victim,
        "my_ws": await api.workspace_id(me, mine),
        "victim_ws": await api.workspace_id(victim, theirs),
    }


async def _as(conn: asyncpg.Connection, user: str | None = None, ws: str | None = None) -> None:
    """What the attacker does first: set the tenant settings to whatever it likes."""
    await conn.execute(
        "SELECT set_config('app.current_user_id', $1, false), "
        "set_config('app.current_workspace_id', $2, false)",
        user or "",
        ws or "",
    )


async def test_no_bulk_listing_of_users(attacker, people):
    for user, ws in ((None, None), (people["me"].id, people["my_ws"])):
        await _as(attacker, user, ws)
        rows = await attacker.fetch("SELECT id, email FROM app_user")
        assert [str(r["id"]) for r in rows] == ([user] if user else [])
    await _as(attacker, people["victim"].id)  # a guessed id: that one row, no more
    rows = await attacker.fetch("SELECT id, email FROM app_user")
    assert [str(r["id"]) for r in rows] == [people["victim"].id]


@pytest.mark.parametrize("as_victim", [False, True])
async def test_no_password_hash_read(attacker, people, as_victim):
    await _as(attacker, people["victim"].id if as_victim else people["me"].id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await attacker.fetch("SELECT password_hash FROM app_user")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await attacker.fetch("SELECT * FROM app_user")


@pytest.mark.parametrize(
    "change",
    [
        "password_hash = 'x'",
        "email = 'attacker@example.com'",
        "is_active = false",
        "is_platform_admin = true",
        "name = 'x'",
    ],
)
@pytest.mark.parametrize("as_victim", [False, True])
async def test_no_user_row_update(attacker, people, admin_engine, change, as_victim):
    victim = people["victim"]
    await _as(attacker, victim.id if as_victim else people["me"].id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await attacker.execute(f"UPDATE app_user SET {change} WHERE id = $1", uuid.UUID(victim.id))
    async with admin_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT email, is_active FROM app_user WHERE id = :u"), {"u": victim.id}
            )
        ).one()
    assert tuple(row) == (victim.email, True)


async def test_user_functions_stay_narrow(attacker, people, settings):
    me, victim = people["me"], people["victim"]
    # Without a context, or in a workspace the user in context is not a member of: nothing.
    for user, ws in ((None, None), (me.id, None), (me.id, people["victim_ws"])):
        await _as(attacker, user, ws)
        assert await attacker.fetch("SELECT * FROM warden_member_users(NULL)") == []
        assert await attacker.fetch("SELECT * FROM warden_user_by_email($1)", victim.email) == []
    # In the attacker's own workspace: its members only (the victim shares none).
    await _as(attacker, me.id, people["my_ws"])
    members = await attacker.fetch("SELECT user_id FROM warden_member_users(NULL)")
    assert [str(r["user_id"]) for r in members] == [me.id]
    # A password changes only from the hash it has now.
    await _as(attacker, victim.id)
    swapped = await attacker.fetchval(
        "SELECT warden_change_password($1, $2)", "guess", hash_password_sync(settings, "owned")
    )
    assert swapped is False


async def test_victim_login_still_works_after_the_attempts(api, people):
    await api.login(people["victim"].email)


def _null_call(signature: str) -> str:
    name, args = re.fullmatch(r"(\w+)\((.*)\)", signature).groups()  # type: ignore[union-attr]
    types = [t.strip() for t in args.split(",") if t.strip()]
    return f"SELECT {name}({', '.join(f'NULL::{t}' for t in types)})"


@pytest.mark.parametrize("signature", sorted(MAINTENANCE_FUNCTIONS))
async def test_no_maintenance_function(attacker, signature):
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await attacker.execute(_null_call(signature))


@pytest.mark.parametrize("signature", sorted(MAINTENANCE_FUNCTIONS))
async def test_the_maintenance_role_runs_them_and_reaches_no_table(database, signature):
    conn = await asyncpg.connect(_dsn(database["maintenance_url"]))
    try:
        assert await conn.fetchval(
            "SELECT has_function_privilege(current_user, $1, 'EXECUTE')", signature
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT 1 FROM outbox LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("SELECT warden_schema_version()")
    finally:
        await conn.close()


async def test_maintenance_arguments_are_bounded(
    api, client, settings, database, admin_engine, maintenance_db
):
    """Task retention never shorter than the configured one, whatever is passed; batches
    capped."""
    owner = await api.user("bounded")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("aws", provider["uid"]))
    )
    await run_jobs(settings)
    task_id = r.json()["id"]
    days = settings.task_retention_days
    async with admin_engine.begin() as conn:
        await conn.execute(
            text("UPDATE task SET finished_at = now() - make_interval(days => :d) WHERE id = :t"),
            {"d": days - 1, "t": task_id},
        )
    async with maintenance_db.transaction() as tx:
        await tx.fetch("SELECT warden_prune_tasks(0, 1000000)")
        await tx.fetch("SELECT warden_expire_stuck_tasks(0)")
    async with admin_engine.connect() as conn:
        state = (
            await conn.execute(text("SELECT state FROM task WHERE id = :t"), {"t": task_id})
        ).scalar_one()
    assert state == "succeeded"  # kept: younger than the configured retention
    ids = [uuid.uuid4() for _ in range(1001)]
    with pytest.raises(asyncpg.InvalidParameterValueError):
        async with maintenance_db.transaction() as tx:
            await tx.fetch("SELECT warden_outbox_mark_sent($1::uuid[])", ids)


async def test_no_temporary_table(attacker):
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="temporary"):
        await attacker.execute("CREATE TEMP TABLE stash (x text)")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await attacker.execute("CREATE FUNCTION pg_temp.lower(text) RETURNS text AS 'SELECT 1'")


@pytest.mark.parametrize("call", LARGE_OBJECT_CALLS)
async def test_no_large_object(attacker, call):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await attacker.execute(call)


def test_the_app_needs_no_large_object():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "app").rglob("*.py"), *(root / "workers").rglob("*.py")]
    used = [
        str(p)
        for p in sources
        if re.search(
            r"\blo_(create|creat|from_bytea|import|export|put|get|open|unlink)\(|"
            r"\blowrite\(|\bloread\(",
            p.read_text(),
        )
    ]
    assert used == []


async def test_every_definer_function_pins_pg_temp_last(admin_engine):
    async with admin_engine.connect() as conn:
        for fn in DEFINER_FUNCTIONS:
            row = (
                await conn.execute(
                    text(
                        "SELECT prosecdef, proconfig FROM pg_proc WHERE oid = to_regprocedure(:f)"
                    ),
                    {"f": fn.signature},
                )
            ).one()
            assert row.prosecdef, fn.signature
            paths = [c for c in row.proconfig or () if c.startswith("search_path=")]
            assert paths, fn.signature
            assert paths[0].split("=", 1)[1].split(",")[-1].strip() == "pg_temp", fn.signature


async def test_a_hostile_search_path_does_not_reach_definer_functions(
    attacker, people, admin_engine, database
):
    """Even with an object of its own on its search_path (here made for it: the role may create
    none), the caller does not change what a definer function resolves."""
    schema = f"hostile_{uuid.uuid4().hex[:8]}"
    rt = f'"{database["runtime_role"]}"'
    async with admin_engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.execute(
            text(f"CREATE FUNCTION {schema}.lower(text) RETURNS text LANGUAGE sql AS $$SELECT ''$$")
        )
        await conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {rt}"))
    try:
        me: User = people["me"]
        await attacker.execute(f"SET search_path = {schema}, pg_catalog, public")
        assert await attacker.fetchval("SELECT lower('X')") == ""  # the caller's own lookup
        rows = await attacker.fetch("SELECT user_id FROM warden_login_lookup($1)", me.email.upper())
        assert [str(r["user_id"]) for r in rows] == [me.id]  # pg_catalog.lower, as pinned
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await attacker.execute("CREATE FUNCTION public.lower(text) RETURNS text AS 'SELECT 1'")
    finally:
        async with admin_engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
async def short_limits(database: dict[str, Any]) -> AsyncIterator[None]:
    """The runtime role's timeouts, set by the very code `warden migrate` runs, short for the
    test's length (new connections get them), then back to the defaults."""
    roles = Roles(database["runtime_role"], database["definer_role"], database["platform_role"])
    engine = create_async_engine(database["admin_url"])

    async def apply(limits: DatabaseLimits) -> None:
        async with engine.begin() as conn:
            await apply_limits(conn, roles, limits)

    try:
        await apply(DatabaseLimits(statement_timeout_ms=500, idle_in_transaction_timeout_ms=500))
        yield
    finally:
        await apply(DatabaseLimits())
        await engine.dispose()


async def test_the_timeouts_are_the_roles(attacker, settings):
    assert await attacker.fetchval("SHOW statement_timeout") == "30s"
    assert await attacker.fetchval("SHOW idle_in_transaction_session_timeout") == "1min"
    assert settings.db_statement_timeout_ms == 30000


async def test_a_long_statement_is_cut(database, short_limits):
    conn = await asyncpg.connect(_dsn(database["runtime_url"]))
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncpg.QueryCanceledError, match="statement timeout"):
            await conn.execute("SELECT pg_sleep(10)")
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await conn.close()


async def test_an_idle_transaction_is_ended(database, short_limits):
    conn = await asyncpg.connect(_dsn(database["runtime_url"]))
    try:
        await conn.execute("BEGIN")
        await asyncio.sleep(1.5)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


async def test_the_member_list_reads_identity_through_the_narrow_function(api, client):
    """Names and emails of a workspace's members come from `warden_member_users`: sorted,
    filtered, searched, listed distinct and paged as before, and only the workspace's own."""
    owner, a, b, outsider = [await api.user(n) for n in ("owner", "anna", "bert", "outsider")]
    slug = await api.workspace(owner)
    await api.workspace(outsider)
    for member in (a, b):
        await api.add_member(owner, slug, member, "viewer")
    base, h = f"/ws/{slug}/api/v1/members", owner.headers
    listed = (await client.get(base, params={"sort": "-name"}, headers=h)).json()["data"]
    assert [m["name"] for m in listed] == ["owner", "bert", "anna"]
    assert {m["email"] for m in listed} == {owner.email, a.email, b.email}
    only = (await client.get(base, params={"email": a.email}, headers=h)).json()["data"]
    assert [m["name"] for m in only] == ["anna"]
    found = (await client.post(f"{base}/search/name", json=["bert"], headers=h)).json()["data"]
    assert [m["email"] for m in found] == [b.email]
    distinct = (await client.get(f"{base}/distinct/email", headers=h)).json()["data"]
    assert sorted(distinct) == sorted([owner.email, a.email, b.email])
    assert outsider.email not in distinct
    page = (await client.get(base, params={"limit": 1, "sort": "name"}, headers=h)).json()
    second = await client.get(
        base, params={"limit": 1, "sort": "name", "cursor": page["next_cursor"]}, headers=h
    )
    assert [m["name"] for m in page["data"] + second.json()["data"]] == ["anna", "bert"]
    one = (await client.get(f"{base}/{b.id}", headers=h)).json()
    assert (one["name"], one["email"]) == ("bert", b.email)
