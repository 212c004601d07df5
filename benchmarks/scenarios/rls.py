"""Part 2: what the RLS policy costs on the hot queries.

Each query runs as the runtime role (NOBYPASSRLS: the policy applies) and as a BYPASSRLS
benchmark role (no policy), with the same explicit `workspace_id` filter and the same
`SET LOCAL` context inside a transaction, as prepared statements over the same kind of
connection. Sides alternate per workspace batch. Reported per query: median client-side
latency (what the app waits for), median server `Execution Time` (EXPLAIN ANALYZE, timing off)
and both ratios, plus the plan shapes (index scan, the settings as a one-time filter).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.db.tenant import Visibility, context_statement
from benchmarks.data import REGIONS, WorkspaceFixture
from benchmarks.scenarios.base import Context, Result, median

TARGET_RATIO = 1.05
COLUMNS = "workspace_id, id, provider_type, uid, alias, region, deleted_at, created_at, updated_at"


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    param: str = ""  # the second parameter: "", "id" or "region"

    def args(self, ws: WorkspaceFixture, n: int) -> tuple[Any, ...]:
        if self.param == "id":
            ids = sorted(ws.provider_ids)
            return (ws.workspace_id, uuid.UUID(ids[n % len(ids)]))
        if self.param == "region":
            return (ws.workspace_id, REGIONS[n % len(REGIONS)])
        return (ws.workspace_id,)


QUERIES = (
    Query(
        "scoped list",
        f"SELECT {COLUMNS} FROM provider WHERE deleted_at IS NULL AND workspace_id = $1 "
        "ORDER BY id LIMIT 50",
    ),
    Query(
        "get by id",
        f"SELECT {COLUMNS} FROM provider WHERE deleted_at IS NULL AND workspace_id = $1 "
        "AND id = $2",
        "id",
    ),
    Query(
        "filtered list",
        f"SELECT {COLUMNS} FROM provider WHERE deleted_at IS NULL AND workspace_id = $1 "
        "AND region = $2 ORDER BY id LIMIT 50",
        "region",
    ),
)
SIDES = ("runtime", "bypass")


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _context(ws: WorkspaceFixture) -> str:
    return context_statement(ws.workspace_id, ws.user_id, Visibility(unlimited=True))


class RlsOverhead:
    key = "rls"
    title = "RLS overhead (runtime role vs BYPASSRLS role, same explicit filter)"
    target = f"<= {TARGET_RATIO}x"

    async def missing(self, ctx: Context) -> str | None:
        return None

    async def _timed(
        self, conn: asyncpg.Connection, q: Query, workspaces: list[WorkspaceFixture], n: int
    ) -> tuple[list[float], list[float]]:
        stmt = await conn.prepare(q.sql)
        explain = await conn.prepare(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {q.sql}")
        client: list[float] = []
        server: list[float] = []
        per_ws = max(1, n // len(workspaces))
        for ws in workspaces:
            async with conn.transaction():
                await conn.execute(_context(ws))
                for i in range(per_ws):
                    args = q.args(ws, i)
                    start = time.perf_counter()
                    rows = await stmt.fetch(*args)
                    client.append(time.perf_counter() - start)
                    if not rows:
                        raise RuntimeError(f"{q.name}: no rows (context not applied?)")
                for i in range(max(1, per_ws // 10)):
                    plan = json.loads(await explain.fetchval(*q.args(ws, i)))
                    server.append(plan[0]["Execution Time"] / 1000)
        return client, server

    async def _plan(self, conn: asyncpg.Connection, q: Query, ws: WorkspaceFixture) -> str:
        async with conn.transaction():
            await conn.execute(_context(ws))
            sql = f"EXPLAIN (COSTS OFF) {q.sql}"
            rows = await conn.fetch(sql, *q.args(ws, 0))
        return "\n".join(r[0] for r in rows)

    async def run(self, ctx: Context) -> Result:
        opts = ctx.options
        workspaces = list(ctx.data.clients[:10])
        conns = {side: await asyncpg.connect(ctx.db.dsn(side)) for side in SIDES}
        try:
            client: dict[tuple[str, str], list[float]] = {}
            server: dict[tuple[str, str], list[float]] = {}
            for q in QUERIES:  # warm-up: prepare, fill caches
                for side in SIDES:
                    await self._timed(conns[side], q, workspaces, len(workspaces))
            per_ws = max(1, opts.rls_iterations // len(workspaces))
            for r in range(opts.rounds):
                for q in QUERIES:
                    # Sides alternate per workspace batch (ABBA…): drift hits both alike.
                    for k, ws in enumerate(workspaces):
                        for side in SIDES if (r + k) % 2 == 0 else SIDES[::-1]:
                            c, s = await self._timed(conns[side], q, [ws], per_ws)
                            client.setdefault((q.name, side), []).extend(c)
                            server.setdefault((q.name, side), []).extend(s)
            plans = {
                (q.name, side): await self._plan(conns[side], q, workspaces[0])
                for q in QUERIES
                for side in SIDES
            }
            for (name, side), plan in plans.items():
                ctx.log(f"  plan: {name}, {side} role\n" + _indent(plan, "    "))
        finally:
            for conn in conns.values():
                await conn.close()
        return self._result(ctx, client, server, plans)

    def _result(
        self,
        ctx: Context,
        client: dict[tuple[str, str], list[float]],
        server: dict[tuple[str, str], list[float]],
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
            worst = max(worst, ratio)
            metrics[q.name] = {
                "client_ms": c,
                "server_ms": s,
                "ratio": ratio,
                "server_ratio": s_ratio,
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
                }
            )
        rows.append({"query": "findings time-range list", "ratio": "pending (no `finding` table)"})
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
                "(sub-0.1 ms, so noisier).\n\n" + "\n".join(plan_md)
            ),
            metrics={"worst_ratio": worst, "queries": metrics},
        )


SCENARIO = RlsOverhead()
