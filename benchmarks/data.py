"""Benchmark data, generated with SQL (not HTTP): workspaces, one member each, providers.

Every workspace `bench-00001 …` gets one user, a **viewer** with a `region` attribute covering
all regions. A viewer exercises the whole authorization path on a provider list: the row grant
(`region IN (…)`) and the field rule (`uid` removed) both apply, yet the list still holds every
provider of the workspace. Each provider's alias starts with its workspace's slug, so a client
can check any response for rows of another workspace. Tokens come from the real login service
(`app.services.auth.login`), i.e. a real `auth_session` row and a real JWT per user.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg

from app.config import Settings
from app.db.session import Database
from app.security.passwords import hash_password_sync
from app.services import auth

PASSWORD = "warden-bench-password"  # noqa: S105 - throwaway users in a throwaway database
REGIONS = ("eu", "us", "ap")
ROLE = "viewer"

# UUIDv7 in SQL (PostgreSQL 15 has no uuidv7()): 48-bit ms timestamp, version 7, variant 10.
_UUID7 = """
CREATE FUNCTION pg_temp.uuid7(ts timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
         substring(int8send(floor(extract(epoch FROM ts) * 1000)::bigint) FROM 3)
         FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$"""

_GENERATE = (
    """CREATE TEMP TABLE bench_ws AS
       SELECT i, format('bench-%s', lpad(i::text, 5, '0')) AS slug,
              pg_temp.uuid7(now() - interval '30 days' + i * interval '1 ms') AS ws_id,
              pg_temp.uuid7(now() - interval '30 days' + i * interval '1 ms') AS user_id
       FROM generate_series(1, $1::int) AS i""",
    """INSERT INTO workspace (id, slug, name)
       SELECT ws_id, slug, format('Bench workspace %s', i) FROM bench_ws""",
    """INSERT INTO app_user (id, email, name, password_hash)
       SELECT user_id, slug || '@bench.example.com', format('Bench user %s', i), $1::text
       FROM bench_ws""",
    """INSERT INTO membership (workspace_id, user_id, role, attributes)
       SELECT ws_id, user_id, $1::text, $2::jsonb FROM bench_ws""",
    """INSERT INTO provider (workspace_id, id, provider_type, uid, alias, region)
       SELECT ws_id, pg_temp.uuid7(now() - interval '20 days' + (i * 1000 + j) * interval '1 s'),
              'aws', lpad((i::bigint * 10000 + j)::text, 12, '0'),
              slug || '-p' || j, ($2::text[])[1 + j % array_length($2::text[], 1)]
       FROM bench_ws, generate_series(1, $1::int) AS j""",
)


@dataclass(frozen=True)
class WorkspaceFixture:
    slug: str
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    token: str
    provider_ids: frozenset[str]

    @property
    def path(self) -> str:
        return f"/ws/{self.slug}/api/v1/providers"


@dataclass(frozen=True)
class BenchData:
    workspaces: int
    providers_per_workspace: int
    clients: tuple[WorkspaceFixture, ...]  # the workspaces HTTP clients use, with tokens

    @property
    def total_providers(self) -> int:
        return self.workspaces * self.providers_per_workspace

    def bare_config(self) -> str:
        """What the bare app needs instead of authentication: slug -> context."""
        return json.dumps(
            {
                w.slug: {
                    "workspace_id": str(w.workspace_id),
                    "user_id": str(w.user_id),
                    "regions": list(REGIONS),
                }
                for w in self.clients
            }
        )


async def generate(
    admin_dsn: str, settings: Settings, workspaces: int, per_workspace: int, with_tokens: int
) -> BenchData:
    """Fill the (empty, migrated) bench database; log in the first `with_tokens` users."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(_UUID7)
        async with conn.transaction():
            create_ws, ins_ws, ins_user, ins_member, ins_provider = _GENERATE
            await conn.execute(create_ws, workspaces)
            await conn.execute(ins_ws)
            await conn.execute(ins_user, hash_password_sync(settings, PASSWORD))
            await conn.execute(ins_member, ROLE, json.dumps({"region": list(REGIONS)}))
            await conn.execute(ins_provider, per_workspace, list(REGIONS))
        await conn.execute("ANALYZE")
        rows = await conn.fetch(
            """SELECT w.slug, w.ws_id, w.user_id, array_agg(p.id::text) AS ids
               FROM bench_ws w JOIN provider p ON p.workspace_id = w.ws_id
               WHERE w.i <= $1 GROUP BY 1, 2, 3 ORDER BY 1""",
            with_tokens,
        )
    finally:
        await conn.close()
    clients = []
    db = Database.from_settings(settings, pool_size=2)
    try:
        for row in rows:
            tokens = await auth.login(
                db,
                None,
                settings,
                f"{row['slug']}@bench.example.com",
                PASSWORD,
                auth.Client(ip="127.0.0.1", user_agent="warden-bench"),
            )
            assert isinstance(tokens, auth.Tokens)
            clients.append(
                WorkspaceFixture(
                    slug=row["slug"],
                    workspace_id=row["ws_id"],
                    user_id=row["user_id"],
                    token=tokens.access_token,
                    provider_ids=frozenset(row["ids"]),
                )
            )
    finally:
        await db.dispose()
    return BenchData(workspaces, per_workspace, tuple(clients))
