"""Part 3: list latency as the findings table grows (10k → 1M findings by default, 10M on request).

Findings are generated with SQL as the database owner straight into the real partitioned
`finding` table: valid UUIDv7 ids spread over the last `MONTHS` monthly partitions (created
first with `warden_create_finding_partition`), a tiny `raw`, one scan per workspace. Their
split over the workspaces is Zipf-skewed (s = 1): the workspace of rank r holds ∝ 1/r of them.
The measured member's workspace (the first client, a viewer) has rank ~ workspaces / 10, a
mid-sized tenant. The table is topped up size by size (ascending), ANALYZEd, and at each size
`warden serve` is measured with keep-alive connections on:

- the scoped providers list (`GET /ws/{slug}/api/v1/providers`, 50 rows);
- a filtered findings list (`GET /ws/{slug}/api/v1/findings?severity=high&inserted_at__gte=
  <this month's start>`): the query language, RLS, and partition pruning on the id range.

Reported: p50/p99 per size and list, and p50 at the largest size / p50 at the smallest.
"""

from __future__ import annotations

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
# 10M is left out of the default run: generating it takes more than 5 minutes on the 2-core
# machine the numbers in README come from (see there); ask for it with --scale-sizes.
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (200, 2_000)

# One scan per workspace (findings reference it), and each workspace's Zipf share.
_SETUP = (
    """CREATE TEMP TABLE scale_ws AS
       SELECT w.id AS ws_id, m.user_id, p.ids,
              ((row_number() OVER (ORDER BY w.slug) - 1 + $1::int) % $2::int) + 1 AS rank
       FROM workspace w
       JOIN membership m ON m.workspace_id = w.id
       JOIN LATERAL (SELECT array_agg(id ORDER BY id) AS ids FROM provider
                     WHERE workspace_id = w.id) p ON true
       WHERE w.slug LIKE 'bench-%'""",
    """ALTER TABLE scale_ws ADD COLUMN scan_id uuid, ADD COLUMN share float8,
       ADD COLUMN done bigint NOT NULL DEFAULT 0""",
    """UPDATE scale_ws SET scan_id = pg_temp.uuid7(now() - interval '100 days'),
       share = (1.0 / rank) / (SELECT sum(1.0 / rank) FROM scale_ws)""",
    """INSERT INTO scan (workspace_id, id, provider_id, state, file_name, file_size, file_sha256,
                        created_by)
       SELECT ws_id, scan_id, ids[1], 'completed', 'bench.ocsf.json', 0, repeat('0', 64), user_id
       FROM scale_ws""",
)

# Top every workspace up to its share of `$1` findings (the rounding leaves the total within
# a workspace count of the size). Times are uniform over [$2, now).
_TOP_UP = """
INSERT INTO finding (workspace_id, id, scan_id, provider_id, uid, check_id, title, severity,
                     status, muted, region, raw, observed_at, inserted_at)
SELECT w.ws_id, pg_temp.uuid7(t.ts), w.scan_id, w.ids[1 + g % array_length(w.ids, 1)],
       'bench-' || g, 'check_' || (g % 400), 'Bench finding',
       (ARRAY['critical','high','medium','low','informational'])[1 + g % 5],
       (ARRAY['FAIL','PASS','MANUAL'])[1 + g % 3], false,
       (ARRAY['eu-west-1','us-east-1','ap-southeast-2'])[1 + g % 3],
       '{"b":1}'::jsonb, t.ts, t.ts
FROM scale_ws w,
     generate_series(w.done + 1, round($1::bigint * w.share)::bigint) AS g,
     LATERAL (SELECT $2::timestamptz + random() * (now() - $2::timestamptz) + g * interval '0'
              AS ts) t
"""


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

    async def _generate(self, conn: asyncpg.Connection, total: int, since: datetime) -> float:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(_TOP_UP, total, since)
            await conn.execute(
                "UPDATE scale_ws SET done = round($1::bigint * share)::bigint", total
            )
        await conn.execute("ANALYZE finding")
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
            for statement in _SETUP[1:]:
                await conn.execute(statement)
            for size in sizes(ctx):
                gen_s = await self._generate(conn, size, since)
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
