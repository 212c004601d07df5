"""Part 2: what the RLS policy costs on the hot queries.

Each query runs as the runtime role (NOBYPASSRLS: the policy applies) and as a BYPASSRLS
benchmark role (no policy), with the same explicit `workspace_id` filter and the same
`SET LOCAL` context inside a transaction, as prepared statements over the same kind of
connection. Sides alternate per workspace batch. Reported per query: median client-side
latency (what the app waits for), median server `Execution Time` (EXPLAIN ANALYZE, timing off),
the backend's CPU time per execution (bind, executor start-up, execution, result; read from
`/proc/<backend pid>/schedstat` around each batch when PostgreSQL runs on this machine), their
ratios, and the plan shapes (index scan, the settings as a one-time filter).

Why the backend CPU too: the client latency is a round trip, and on a virtual machine whose
wake-ups are slow it is bimodal; a reply that arrives before the client has gone back to sleep
is read at once, a few microseconds later it costs a wake-up. A difference of a few µs of
server work can so show as tens of µs of latency. The backend's CPU time per execution is a
second view without the client's side of that threshold (it still holds the kernel's work of
waking the backend, which on such a machine is most of a 1-row query's cost).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from app.db.partitions import add_months, floor_uuid7, new_uuid7
from app.db.tenant import Visibility, context_statement
from app.schemas.scan import FindingOut
from benchmarks.data import _UUID7, REGIONS, WorkspaceFixture
from benchmarks.scenarios.base import Context, Result, median
from benchmarks.scenarios.scale import MONTHS

TARGET_RATIO = 1.05
# The statements Warden's compiled list path and its get-by-id emit (app.query.plan,
# app.services): the app layer's own workspace filter, keyset order, LIMIT page + 1.
PROVIDER_COLUMNS = (
    "provider.id, provider.provider_type, provider.uid, provider.alias, provider.region, "
    "provider.created_at, provider.updated_at"
)
FINDING_COLUMNS = ", ".join(f"finding.{c}" for c in FindingOut.model_fields)
FINDINGS_PER_WORKSPACE = 1000


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    param: str = ""  # the second parameter: "", "id", "region" or "since"

    def args(self, ws: WorkspaceFixture, n: int, since: uuid.UUID) -> tuple[Any, ...]:
        if self.param == "id":
            ids = sorted(ws.provider_ids)
            return (ws.workspace_id, uuid.UUID(ids[n % len(ids)]))
        if self.param == "region":
            return (ws.workspace_id, REGIONS[n % len(REGIONS)])
        if self.param == "since":
            return (ws.workspace_id, since)
        return (ws.workspace_id,)


QUERIES = (
    Query(
        "scoped list",
        f"SELECT {PROVIDER_COLUMNS} FROM provider WHERE provider.deleted_at IS NULL "
        "AND provider.workspace_id = $1::UUID ORDER BY provider.id ASC LIMIT 51",
    ),
    Query(
        "get by id",
        "SELECT provider.workspace_id, provider.id, provider.provider_type, provider.uid, "
        "provider.alias, provider.region, provider.deleted_at, provider.created_at, "
        "provider.updated_at FROM provider WHERE provider.deleted_at IS NULL "
        "AND provider.id = $2::UUID AND provider.workspace_id = $1::UUID",
        "id",
    ),
    Query(
        "filtered list",
        f"SELECT {PROVIDER_COLUMNS} FROM provider WHERE provider.deleted_at IS NULL "
        "AND provider.region = $2::VARCHAR AND provider.workspace_id = $1::UUID "
        "ORDER BY provider.id ASC LIMIT 51",
        "region",
    ),
    Query(
        "findings time-range list",
        f"SELECT {FINDING_COLUMNS} FROM finding WHERE finding.severity = 'high' "
        "AND finding.id >= $2::UUID AND finding.workspace_id = $1::UUID "
        "ORDER BY finding.id ASC LIMIT 51",
        "since",
    ),
)
# Findings for the measured workspaces, over this month and the two before (SQL, as the owner;
# removed again after the measurement so later scenarios start from an empty table).
_FINDINGS = """
INSERT INTO finding (workspace_id, id, scan_id, provider_id, uid, check_id, title, severity,
                     status, muted, region, raw, observed_at, inserted_at)
SELECT $1::uuid, pg_temp.uuid7(t.ts), $2::uuid, ($3::uuid[])[1 + g % array_length($3::uuid[], 1)],
       'rls-' || g,
       'check_' || (g % 400), 'Bench finding',
       (ARRAY['critical','high','medium','low','informational'])[1 + g % 5],
       (ARRAY['FAIL','PASS','MANUAL'])[1 + g % 3], false, 'eu-west-1', '{"b":1}'::jsonb,
       t.ts, t.ts
FROM generate_series(1, $4::int) AS g,
     LATERAL (SELECT $5::timestamptz + (g::float8 / $4) * (now() - $5::timestamptz) AS ts) t
"""
SIDES = ("runtime", "bypass")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _local_backend(conn: asyncpg.Connection) -> int | None:
    """The connection's backend pid, if that process is a PostgreSQL backend on this machine
    whose CPU time can be read (a remote server's pid may name an unrelated local process)."""
    pid = conn.get_server_pid()
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        Path(f"/proc/{pid}/schedstat").read_text()
    except OSError:
        return None
    return pid if b"postgres" in cmdline else None


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU time the process has run, in seconds (the first field of schedstat, ns)."""
    if pid is None:
        return None
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return None


def _context(ws: WorkspaceFixture) -> str:
    return context_statement(ws.workspace_id, ws.user_id, Visibility(unlimited=True))


class RlsOverhead:
    key = "rls"
    title = "RLS overhead (runtime role vs BYPASSRLS role, same explicit filter)"
    target = f"<= {TARGET_RATIO}x"

    async def missing(self, ctx: Context) -> str | None:
        return None

    async def _timed(
        self,
        conn: asyncpg.Connection,
        q: Query,
        workspaces: list[WorkspaceFixture],
        n: int,
        since: uuid.UUID,
    ) -> tuple[list[float], list[float], list[float]]:
        stmt = await conn.prepare(q.sql)
        explain = await conn.prepare(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {q.sql}")
        pid = _local_backend(conn)
        client: list[float] = []
        server: list[float] = []
        backend: list[float] = []
        per_ws = max(1, n // len(workspaces))
        for ws in workspaces:
            async with conn.transaction():
                await conn.execute(_context(ws))
                cpu = _cpu_seconds(pid)
                for i in range(per_ws):
                    args = q.args(ws, i, since)
                    start = time.perf_counter()
                    rows = await stmt.fetch(*args)
                    client.append(time.perf_counter() - start)
                    if not rows:
                        raise RuntimeError(f"{q.name}: no rows (context not applied?)")
                after = _cpu_seconds(pid)
                if cpu is not None and after is not None:
                    backend.append((after - cpu) / per_ws)
                for i in range(max(1, per_ws // 10)):
                    plan = json.loads(await explain.fetchval(*q.args(ws, i, since)))
                    server.append(plan[0]["Execution Time"] / 1000)
        return client, server, backend

    async def _plan(
        self, conn: asyncpg.Connection, q: Query, ws: WorkspaceFixture, since: uuid.UUID
    ) -> str:
        async with conn.transaction():
            await conn.execute(_context(ws))
            sql = f"EXPLAIN (COSTS OFF) {q.sql}"
            rows = await conn.fetch(sql, *q.args(ws, 0, since))
        return "\n".join(r[0] for r in rows)

    async def _findings(
        self, ctx: Context, workspaces: list[WorkspaceFixture]
    ) -> tuple[uuid.UUID, list[uuid.UUID]]:
        """Findings for the measured workspaces (and the partitions they need); the id of the
        first millisecond of this month, the time-range filter's lower bound."""
        now = datetime.now(UTC)
        this_month = now.date().replace(day=1)
        first = add_months(this_month, -(MONTHS - 1))
        conn = await asyncpg.connect(ctx.db.dsn("admin"))
        scans = []
        try:
            await conn.execute(_UUID7)
            for ahead in range(MONTHS):
                await conn.execute(
                    "SELECT warden_create_finding_partition($1::date)", add_months(first, ahead)
                )
            for ws in workspaces:
                scan_id = new_uuid7()
                ids = sorted(uuid.UUID(i) for i in ws.provider_ids)
                await conn.execute(
                    "INSERT INTO scan (workspace_id, id, provider_id, state, file_name, "
                    "file_size, file_sha256, created_by) VALUES ($1, $2, $3, 'completed', "
                    "'rls.ocsf.json', 0, repeat('0', 64), $4)",
                    ws.workspace_id,
                    scan_id,
                    ids[0],
                    ws.user_id,
                )
                since = datetime(first.year, first.month, 1, tzinfo=UTC)
                await conn.execute(
                    _FINDINGS, ws.workspace_id, scan_id, ids, FINDINGS_PER_WORKSPACE, since
                )
                scans.append(scan_id)
            await conn.execute("ANALYZE finding")
        finally:
            await conn.close()
        start = datetime(this_month.year, this_month.month, 1, tzinfo=UTC)
        return floor_uuid7(start), scans

    async def _drop_findings(self, ctx: Context, scans: list[uuid.UUID]) -> None:
        conn = await asyncpg.connect(ctx.db.dsn("admin"))
        try:
            await conn.execute("DELETE FROM finding WHERE scan_id = ANY($1::uuid[])", scans)
            await conn.execute("DELETE FROM scan WHERE id = ANY($1::uuid[])", scans)
        finally:
            await conn.close()

    async def run(self, ctx: Context) -> Result:
        opts = ctx.options
        workspaces = list(ctx.data.clients[:10])
        since, scans = await self._findings(ctx, workspaces)
        conns = {side: await asyncpg.connect(ctx.db.dsn(side)) for side in SIDES}
        try:
            client: dict[tuple[str, str], list[float]] = {}
            server: dict[tuple[str, str], list[float]] = {}
            backend: dict[tuple[str, str], list[float]] = {}
            for q in QUERIES:  # warm-up: prepare, fill caches
                for side in SIDES:
                    await self._timed(conns[side], q, workspaces, len(workspaces), since)
            per_ws = max(1, opts.rls_iterations // len(workspaces))
            for r in range(opts.rounds):
                for q in QUERIES:
                    # Sides alternate per workspace batch (ABBA…): drift hits both alike.
                    for k, ws in enumerate(workspaces):
                        for side in SIDES if (r + k) % 2 == 0 else SIDES[::-1]:
                            c, s, b = await self._timed(conns[side], q, [ws], per_ws, since)
                            client.setdefault((q.name, side), []).extend(c)
                            server.setdefault((q.name, side), []).extend(s)
                            backend.setdefault((q.name, side), []).extend(b)
            plans = {
                (q.name, side): await self._plan(conns[side], q, workspaces[0], since)
                for q in QUERIES
                for side in SIDES
            }
            for (name, side), plan in plans.items():
                ctx.log(f"  plan: {name}, {side} role\n" + _indent(plan, "    "))
        finally:
            for conn in conns.values():
                await conn.close()
            await self._drop_findings(ctx, scans)
        return self._result(ctx, client, server, backend, plans)

    def _result(
        self,
        ctx: Context,
        client: dict[tuple[str, str], list[float]],
        server: dict[tuple[str, str], list[float]],
        backend: dict[tuple[str, str], list[float]],
        plans: dict[tuple[str, str], str],
    ) -> Result:
        rows = []
        metrics: dict[str, Any] = {}
        worst = 0.0
        for q in QUERIES:
            c = {side: median(client[(q.name, side)]) * 1000 for side in SIDES}
            s = {side: median(server[(q.name, side)]) * 1000 for side in SIDES}
            ratio = c["runtime"] / c["bypass"] if c["bypass"] else 0.0
            s_ratio = s["runtime"] / s["bypass"] if s["bypass"] else 0.0
            b = {side: median(backend[(q.name, side)]) * 1e6 for side in SIDES}
            b_ratio = b["runtime"] / b["bypass"] if b["bypass"] else 0.0
            worst = max(worst, ratio)
            metrics[q.name] = {
                "client_ms": c,
                "server_ms": s,
                "backend_cpu_us": b,
                "ratio": ratio,
                "server_ratio": s_ratio,
                "backend_cpu_ratio": b_ratio,
            }
            rows.append(
                {
                    "query": q.name,
                    "RLS ms": f"{c['runtime']:.3f}",
                    "BYPASSRLS ms": f"{c['bypass']:.3f}",
                    "ratio": f"{ratio:.3f}",
                    "server RLS ms": f"{s['runtime']:.3f}",
                    "server BYPASSRLS ms": f"{s['bypass']:.3f}",
                    "server ratio": f"{s_ratio:.3f}",
                    "backend CPU µs RLS / BYPASSRLS": (
                        f"{b['runtime']:.1f} / {b['bypass']:.1f}" if b["bypass"] else "n/a"
                    ),
                    "backend CPU ratio": f"{b_ratio:.3f}" if b["bypass"] else "n/a",
                }
            )
        plan_md = [
            "Plans (`EXPLAIN (COSTS OFF)`, prepared, inside the request context):",
            "",
        ]
        for q in QUERIES:
            for side in SIDES:
                plan_md += [
                    f"*{q.name}, {side} role:*",
                    "",
                    "```",
                    plans[(q.name, side)],
                    "```",
                    "",
                ]
        o = ctx.options
        return Result(
            key=self.key,
            title=self.title,
            target=self.target,
            passed=worst <= TARGET_RATIO,
            summary=f"worst {worst:.3f}x ("
            + ", ".join(f"{k} {v['ratio']:.3f}x" for k, v in metrics.items())
            + ")",
            rows=rows,
            markdown=(
                f"{ctx.data.total_providers} providers in {ctx.data.workspaces} workspaces; "
                f"{o.rounds} rounds x {o.rls_iterations} executions per query and side, over "
                f"{min(10, len(ctx.data.clients))} workspaces; medians. The ratio (target) is "
                "the client-side latency; the server ratio is PostgreSQL's own execution time "
                "(sub-0.1 ms, so noisier); the backend CPU is the backend process's CPU time per "
                "execution (bind to result; n/a when PostgreSQL is not on this machine).\n\n"
                + "\n".join(plan_md)
            ),
            metrics={"worst_ratio": worst, "queries": metrics},
        )


SCENARIO = RlsOverhead()
