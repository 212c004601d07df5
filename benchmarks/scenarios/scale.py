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
  <last month's start>`, a full page on any day of the month: at least half the measured
  tenant's findings are that recent): the query language, RLS, and partition pruning on the
  id range.

and, as a control for the machine's own drift over the run (sizes cannot alternate: the table
only grows), the bare app's providers list of the same workspace, the lists taken in turn.
Reported: p50/p99 per size and list, and p50 at the largest size / p50 at the smallest, as
measured and corrected by the control's drift.
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
from benchmarks.scenarios.base import Context, Result, get, median
from benchmarks.servers import ServerProcess

TARGET_RATIO = 1.2
MONTHS = 3  # this month and the two before it
FULL_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (2_000, 4_000)
MEASURED_FINDINGS = 1_500  # the measured workspace's findings, the same at every size
GENERATORS = 2  # connections generating findings at once
PASSES = 2  # per size, taking the lists in turn
LISTS = ("providers list", "findings list")
CONTROL = "control: bare providers list"

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

    async def _measure(
        self, ctx: Context, server: ServerProcess, path: str, token: str
    ) -> tuple[LoadResult, int]:
        opts = ctx.options
        headers = {"Authorization": f"Bearer {token}"}
        status, body = get(server.port, path, headers)
        if status != 200:
            raise RuntimeError(f"{server.name} answered {status} on {path}: {body[:300]!r}")
        page = len(orjson.loads(body)["data"])
        target = Target("127.0.0.1", server.port, path, headers)
        connections = max(1, min(4, opts.connections))
        await run_python([target] * connections, min(opts.warmup, opts.scale_duration))
        return await run_python([target] * connections, opts.scale_duration), page

    async def _size(
        self, ctx: Context, lists: dict[str, tuple[ServerProcess, str]], token: str
    ) -> dict[str, tuple[float, float, float, int, int]]:
        """p50, p99, req/s, errors and page rows per list at one size: the median over
        `PASSES` passes that take the lists in turn, so that drift of the machine's speed
        during a size hits every list alike."""
        runs: dict[str, list[LoadResult]] = {name: [] for name in lists}
        pages: dict[str, int] = {}
        for p in range(PASSES):
            order = list(lists) if p % 2 == 0 else list(lists)[::-1]
            for name in order:
                server, path = lists[name]
                res, pages[name] = await self._measure(ctx, server, path, token)
                runs[name].append(res)
        return {
            name: (
                median([r.p50_ms for r in rs]),
                median([r.p99_ms for r in rs]),
                median([r.rps for r in rs]),
                sum(r.errors for r in rs),
                pages[name],
            )
            for name, rs in runs.items()
        }

    async def run(self, ctx: Context) -> Result:
        ws = ctx.data.clients[0]
        now = datetime.now(UTC)
        this_month = now.date().replace(day=1)
        first = add_months(this_month, -(MONTHS - 1))
        since = datetime(first.year, first.month, 1, tzinfo=UTC)
        last_month = add_months(this_month, -1)
        findings_path = (
            f"/ws/{ws.slug}/api/v1/findings?severity=high"
            f"&inserted_at__gte={last_month.isoformat()}T00:00:00Z"
        )
        lists = {
            "providers list": (ctx.warden, ws.path),
            "findings list": (ctx.warden, findings_path),
            CONTROL: (ctx.bare, ws.path),
        }
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
                if i == 0:  # warm servers for the first size too (pool, prepared statements)
                    await self._size(ctx, lists, ws.token)
                total = await conn.fetchval("SELECT count(*) FROM finding")
                mine = await conn.fetchval(
                    "SELECT count(*) FROM finding WHERE workspace_id = $1", ws.workspace_id
                )
                ctx.log(f"  {total:,} findings ({mine:,} in {ws.slug}), generated in {gen_s:.1f}s")
                for name, (p50, p99, rps, errors, page) in (
                    await self._size(ctx, lists, ws.token)
                ).items():
                    rows.append(
                        {
                            "findings": total,
                            "in workspace": mine,
                            "list": name,
                            "rows": page,
                            "p50 ms": round(p50, 2),
                            "p99 ms": round(p99, 2),
                            "req/s": round(rps),
                            "errors": errors,
                            "generated s": round(gen_s, 1),
                        }
                    )
                    ctx.log(
                        f"    {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {rps:.0f} req/s, "
                        f"{errors} errors"
                    )
        finally:
            await conn.execute("DROP TABLE IF EXISTS bench_scale_ws")
            await conn.close()
        return self._result(rows)

    def _result(self, rows: list[dict[str, Any]]) -> Result:
        """Per list: p50 at the largest size over p50 at the smallest, as measured, and
        corrected for the machine's drift between the two moments by the control (the bare
        app's providers list, measured alongside, reads no finding): the target is judged on
        the corrected ratio."""
        raw: dict[str, float] = {}
        corrected: dict[str, float] = {}
        by_list = {name: [r for r in rows if r["list"] == name] for name in LISTS + (CONTROL,)}
        control = by_list[CONTROL]
        for name in LISTS:
            mine = by_list[name]
            if len(mine) >= 2 and mine[0]["p50 ms"] and control[0]["p50 ms"]:
                raw[name] = round(mine[-1]["p50 ms"] / mine[0]["p50 ms"], 2)
                drift = control[-1]["p50 ms"] / control[0]["p50 ms"]
                corrected[name] = round(raw[name] / drift, 2)
        errors = sum(r["errors"] for r in rows)
        passed = bool(corrected) and errors == 0 and max(corrected.values()) <= TARGET_RATIO
        smallest, largest = (rows[0]["findings"], rows[-1]["findings"]) if rows else (0, 0)
        summary = ", ".join(f"{k} p50 {corrected[k]}x (as measured {raw[k]}x)" for k in corrected)
        summary = f"{summary} ({smallest:,} → {largest:,} findings), {errors} errors"
        return Result(
            self.key,
            self.title,
            self.target,
            passed=passed,
            summary=summary,
            rows=rows,
            markdown=(
                "Each size: the lists taken in turn, "
                f"{PASSES} passes, medians; the control is the bare app's providers list of the "
                "same workspace (no findings read), measured alongside: the ratio is corrected "
                "by its drift between the smallest and the largest size."
            ),
            metrics={
                "ratios": corrected,
                "raw_ratios": raw,
                "errors": errors,
                "sizes": [r["findings"] for r in rows],
            },
        )


SCENARIO = Scale()
