"""Part 3: list latency as the findings table grows (10k → 10M findings).

A tenant's query cost must not grow with other tenants' data, so the measured tenant (the first
client, a viewer, in a workspace of Zipf rank ~ workspaces / 10) holds the same
`MEASURED_FINDINGS` findings at every size, and the table grows around it: the other workspaces
are topped up, size by size, to their Zipf (s = 1) share of the total (the workspace of rank r
holds ∝ 1/r). Findings are generated with SQL as the database owner straight into the real
partitioned `finding` table: valid UUIDv7 ids spread over the last `MONTHS` monthly partitions
(created first with `warden_create_finding_partition`), a tiny `raw`, one scan per workspace,
on `GENERATORS` connections at once (one INSERT … SELECT uses one core). At each size, after
ANALYZE, `warden serve` is measured with keep-alive connections on:

- the scoped providers list (`GET /ws/{slug}/api/v1/providers`, 50 rows);
- a filtered findings list (`GET /ws/{slug}/api/v1/findings?severity=high&inserted_at__gte=
  <this month's start>`, a full page): the query language, RLS, and partition pruning on the
  id range.

Reported: p50/p99 per size and list, and p50 at the largest size / p50 at the smallest.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from app.db.partitions import add_months
from benchmarks.data import _UUID7
from benchmarks.loadgen import LoadResult, Target, run_python
from benchmarks.scenarios.base import Context, Result, get

TARGET_RATIO = 1.2
MONTHS = 3  # this month and the two before it
FULL_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (2_000, 4_000)
MEASURED_FINDINGS = 1_500  # the measured workspace's findings, the same at every size
GENERATORS = 2  # connections generating findings at once

# The workspaces, their Zipf share of the findings of others, and one scan each. A plain
# (unlogged) table, not a temporary one: every generating connection reads it.
_SETUP = (
    """CREATE UNLOGGED TABLE bench_scale_ws AS
       SELECT w.id AS ws_id, m.user_id, p.ids,
              ((row_number() OVER (ORDER BY w.slug) - 1 + $1::int) % $2::int) + 1 AS rank
       FROM workspace w
       JOIN membership m ON m.workspace_id = w.id
       JOIN LATERAL (SELECT array_agg(id ORDER BY id) AS ids FROM provider
                     WHERE workspace_id = w.id) p ON true
       WHERE w.slug LIKE 'bench-%'""",
    """ALTER TABLE bench_scale_ws ADD COLUMN scan_id uuid, ADD COLUMN share float8,
       ADD COLUMN measured boolean NOT NULL DEFAULT false,
       ADD COLUMN done bigint NOT NULL DEFAULT 0""",
    "UPDATE bench_scale_ws SET measured = (ws_id = $1)",
    """UPDATE bench_scale_ws SET scan_id = pg_temp.uuid7(now() - interval '100 days'),
       share = CASE WHEN measured THEN 0 ELSE (1.0 / rank) / (
                   SELECT sum(1.0 / rank) FROM bench_scale_ws WHERE NOT measured) END""",
    """INSERT INTO scan (workspace_id, id, provider_id, state, file_name, file_size, file_sha256,
                        created_by)
       SELECT ws_id, scan_id, ids[1], 'completed', 'bench.ocsf.json', 0, repeat('0', 64), user_id
       FROM bench_scale_ws""",
)

# Findings g = done + 1 … target of each chosen workspace, their times spread evenly over
# [$2, now) in the order of g: ids ascend within a step, so the indexes grow at their ends
# (random ids made 10M rows several times slower to generate than the table takes to fill).
_FINDINGS = """
INSERT INTO finding (workspace_id, id, scan_id, provider_id, uid, check_id, title, severity,
                     status, muted, region, raw, observed_at, inserted_at)
SELECT w.ws_id, pg_temp.uuid7(t.ts), w.scan_id, w.ids[1 + g % array_length(w.ids, 1)],
       'bench-' || g, 'check_' || (g % 400), 'Bench finding',
       (ARRAY['critical','high','medium','low','informational'])[1 + g % 5],
       (ARRAY['FAIL','PASS','MANUAL'])[1 + g % 3], false,
       (ARRAY['eu-west-1','us-east-1','ap-southeast-2'])[1 + g % 3],
       '{{"b":1}}'::jsonb, t.ts, t.ts
FROM bench_scale_ws w,
     LATERAL (SELECT {target} AS target) n,
     generate_series(w.done + 1, n.target) AS g,
     LATERAL (SELECT $2::timestamptz + (g::float8 / n.target) * (now() - $2::timestamptz)
              AS ts) t
WHERE {which}
"""
# The others: topped up to their share of `$1` (minus the measured workspace's findings; the
# rounding leaves the total within a workspace count of the size), on connection $3 of $4.
_TOP_UP = _FINDINGS.format(
    target="round(($1::bigint - $5::bigint) * w.share)::bigint",
    which="NOT w.measured AND w.rank % $4::int = $3::int",
)
_MEASURED = _FINDINGS.format(target="$1::bigint", which="w.measured AND $3::int = $4::int")
_DONE = """UPDATE bench_scale_ws SET done = CASE WHEN measured THEN $2::bigint
                                            ELSE round(($1::bigint - $2::bigint) * share)::bigint
                                            END"""


def sizes(ctx: Context) -> list[int]:
    opts = ctx.options
    if getattr(opts, "scale_sizes", None):
        return sorted(
            int(s.replace("_", "")) for s in str(opts.scale_sizes).split(",") if s.strip()
        )
    return list(QUICK_SIZES if opts.quick else FULL_SIZES)


class Scale:
    key = "scale"
    title = "Scale: providers list and filtered findings list at growing finding counts"
    target = f"p50 at the largest size <= {TARGET_RATIO}x p50 at the smallest"

    async def missing(self, ctx: Context) -> str | None:
        if not await ctx.table_exists("finding"):
            return "needs the `finding` table"
        return None

    async def _generate(
        self, ctx: Context, total: int, since: datetime, fixed: int, first: bool
    ) -> float:
        """Top the table up to `total` findings, `GENERATORS` connections at once, in one
        transaction each; the measured workspace gets its `fixed` findings in the first step."""
        started = time.perf_counter()

        async def part(k: int) -> None:
            conn = await asyncpg.connect(ctx.db.dsn("admin"))
            try:
                await conn.execute(_UUID7)
                async with conn.transaction():
                    await conn.execute(_TOP_UP, total, since, k, GENERATORS, fixed)
                    if first:
                        await conn.execute(_MEASURED, fixed, since, k, GENERATORS - 1)
            finally:
                await conn.close()

        await asyncio.gather(*(part(k) for k in range(GENERATORS)))
        conn = await asyncpg.connect(ctx.db.dsn("admin"))
        try:
            await conn.execute(_DONE, total, fixed)
            # Steady state before measuring: statistics, the visibility map, and no autovacuum
            # or checkpoint of millions of fresh rows running during the measurement (at 10M
            # both slowed even the providers list, which reads no finding, by 40%).
            await conn.execute("VACUUM (ANALYZE) finding")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()
        return time.perf_counter() - started

    async def _measure(self, ctx: Context, path: str, token: str) -> tuple[LoadResult, int]:
        opts = ctx.options
        headers = {"Authorization": f"Bearer {token}"}
        status, body = get(ctx.warden.port, path, headers)
        if status != 200:
            raise RuntimeError(f"warden answered {status} on {path}: {body[:300]!r}")
        page = len(orjson.loads(body)["data"])
        target = Target("127.0.0.1", ctx.warden.port, path, headers)
        connections = max(1, min(4, opts.connections))
        await run_python([target] * connections, min(opts.warmup, opts.scale_duration))
        return await run_python([target] * connections, opts.scale_duration), page

    async def run(self, ctx: Context) -> Result:
        ws = ctx.data.clients[0]
        now = datetime.now(UTC)
        this_month = now.date().replace(day=1)
        first = add_months(this_month, -(MONTHS - 1))
        since = datetime(first.year, first.month, 1, tzinfo=UTC)
        findings_path = (
            f"/ws/{ws.slug}/api/v1/findings?severity=high"
            f"&inserted_at__gte={this_month.isoformat()}T00:00:00Z"
        )
        conn = await asyncpg.connect(ctx.db.dsn("admin"))
        rows: list[dict[str, Any]] = []
        try:
            await conn.execute(_UUID7)
            for ahead in range(MONTHS):
                month = add_months(first, ahead)
                await conn.execute("SELECT warden_create_finding_partition($1::date)", month)
            workspaces = ctx.data.workspaces
            await conn.execute(_SETUP[0], max(0, workspaces // 10 - 1), workspaces)
            await conn.execute(_SETUP[1])
            await conn.execute(_SETUP[2], ws.workspace_id)
            for statement in _SETUP[3:]:
                await conn.execute(statement)
            steps = sizes(ctx)
            fixed = min(MEASURED_FINDINGS, steps[0] // 2)  # never more than the table holds
            for i, size in enumerate(steps):
                gen_s = await self._generate(ctx, size, since, fixed, first=i == 0)
                if i == 0:  # a warm server for the first size too (pool, prepared statements)
                    for path in (ws.path, findings_path):
                        await self._measure(ctx, path, ws.token)
                total = await conn.fetchval("SELECT count(*) FROM finding")
                mine = await conn.fetchval(
                    "SELECT count(*) FROM finding WHERE workspace_id = $1", ws.workspace_id
                )
                ctx.log(f"  {total:,} findings ({mine:,} in {ws.slug}), generated in {gen_s:.1f}s")
                providers = await self._measure(ctx, ws.path, ws.token)
                found = await self._measure(ctx, findings_path, ws.token)
                for name, (res, page) in (("providers list", providers), ("findings list", found)):
                    rows.append(
                        {
                            "findings": total,
                            "in workspace": mine,
                            "list": name,
                            "rows": page,
                            "p50 ms": round(res.p50_ms, 2),
                            "p99 ms": round(res.p99_ms, 2),
                            "req/s": round(res.rps),
                            "errors": res.errors,
                            "generated s": round(gen_s, 1),
                        }
                    )
                    ctx.log(
                        f"    {name}: p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms, "
                        f"{res.rps:.0f} req/s, {res.errors} errors"
                    )
        finally:
            await conn.execute("DROP TABLE IF EXISTS bench_scale_ws")
            await conn.close()
        return self._result(rows)

    def _result(self, rows: list[dict[str, Any]]) -> Result:
        ratios: dict[str, float] = {}
        for name in ("providers list", "findings list"):
            mine = [r for r in rows if r["list"] == name]
            if len(mine) >= 2 and mine[0]["p50 ms"]:
                ratios[name] = round(mine[-1]["p50 ms"] / mine[0]["p50 ms"], 2)
        errors = sum(r["errors"] for r in rows)
        passed = bool(ratios) and errors == 0 and max(ratios.values()) <= TARGET_RATIO
        smallest, largest = (rows[0]["findings"], rows[-1]["findings"]) if rows else (0, 0)
        summary = ", ".join(f"{k} p50 {v}x" for k, v in ratios.items())
        summary = f"{summary} ({smallest:,} → {largest:,} findings), {errors} errors"
        return Result(
            self.key,
            self.title,
            self.target,
            passed=passed,
            summary=summary,
            rows=rows,
            metrics={"ratios": ratios, "errors": errors, "sizes": [r["findings"] for r in rows]},
        )


SCENARIO = Scale()
