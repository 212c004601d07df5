"""A throwaway database on every node of a Citus cluster, for tests that run on Citus.

`TEST_CITUS_URL` names a database on the coordinator whose nodes are registered (as the cluster
script leaves it); the workers are read from its `pg_dist_node`. The test database gets the
extension on every node and the same nodes registered, like a fresh installation.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import URL, make_url


@dataclass(frozen=True)
class Node:
    host: str
    port: int


def _dsn(url: URL, node: Node, database: str) -> str:
    return url.set(
        drivername="postgresql", host=node.host, port=node.port, database=database
    ).render_as_string(hide_password=False)


async def nodes(citus_url: str) -> list[Node]:
    """The coordinator first, then the workers, as registered in `citus_url`'s database."""
    url = make_url(citus_url)
    conn = await asyncpg.connect(
        _dsn(url, Node(url.host or "127.0.0.1", url.port or 5432), str(url.database))
    )
    try:
        rows = await conn.fetch(
            "SELECT nodename, nodeport, groupid FROM pg_dist_node "
            "WHERE noderole = 'primary' ORDER BY groupid, nodeport"
        )
    finally:
        await conn.close()
    found = [Node(r["nodename"], r["nodeport"]) for r in rows]
    coordinator = Node(url.host or "127.0.0.1", url.port or 5432)
    return [coordinator, *[n for n in found if n != coordinator]]


async def create_database(citus_url: str, name: str) -> list[str]:
    """Create `name` on every node with the extension, register the nodes; the superuser URL
    of each node's copy, coordinator first."""
    url = make_url(citus_url)
    cluster = await nodes(citus_url)
    for node in cluster:
        conn = await asyncpg.connect(_dsn(url, node, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(_dsn(url, node, name))
        try:
            await conn.execute("CREATE EXTENSION citus")
        finally:
            await conn.close()
    coordinator, *workers = cluster
    conn = await asyncpg.connect(_dsn(url, coordinator, name))
    try:
        await conn.execute(
            "SELECT citus_set_coordinator_host($1, $2)", coordinator.host, coordinator.port
        )
        for worker in workers:
            await conn.execute("SELECT citus_add_node($1, $2)", worker.host, worker.port)
    finally:
        await conn.close()
    return [
        url.set(
            drivername="postgresql+asyncpg", host=n.host, port=n.port, database=name
        ).render_as_string(hide_password=False)
        for n in cluster
    ]


async def drop_database(citus_url: str, name: str, roles: list[str]) -> None:
    """Drop `name` on every node, then the roles (created on every node by propagation)."""
    url = make_url(citus_url)
    for node in await nodes(citus_url):
        conn = await asyncpg.connect(_dsn(url, node, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in roles:
                await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await conn.close()
