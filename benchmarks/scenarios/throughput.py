"""Part 1: scoped list throughput, `warden serve` (A) against the bare app (B).

Both serve `GET /ws/{slug}/api/v1/providers` (one workspace, 50 rows) from one uvicorn worker
with the same pool. After a check that both return the same rows, each side is warmed up, then
measured in several rounds alternating A/B (ABBA…), so drift on a noisy machine hits both sides
alike. Reported: median req/s, p50, p99 and server CPU per request over the rounds, and the
ratio of the median req/s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from benchmarks.loadgen import LoadResult, Target, run_python, run_wrk
from benchmarks.scenarios.base import Context, Result, get, median
from benchmarks.servers import ServerProcess

TARGET_RATIO = 0.8


class Throughput:
    key = "throughput"
    title = "Scoped list throughput (Warden vs bare FastAPI + asyncpg)"
    target = f"Warden >= {TARGET_RATIO}x bare req/s"

    async def missing(self, ctx: Context) -> str | None:
        return None

    async def _measured(
        self, ctx: Context, server: ServerProcess, seconds: float
    ) -> tuple[LoadResult, float | None]:
        """A load run, and the server's CPU milliseconds per request during it: less sensitive
        than req/s to other work on the machine, since it counts only the server's own time."""
        before = server.cpu_seconds()
        res = await self._load(ctx, server, seconds)
        after = server.cpu_seconds()
        if before is None or after is None or not res.requests:
            return res, None
        return res, (after - before) * 1000 / res.requests

    async def _load(self, ctx: Context, server: ServerProcess, seconds: float) -> LoadResult:
        ws = ctx.data.clients[0]
        headers = {"Authorization": f"Bearer {ws.token}"}
        if ctx.use_wrk:
            url = server.url(ws.path)
            return await asyncio.to_thread(run_wrk, url, headers, ctx.options.connections, seconds)
        target = Target("127.0.0.1", server.port, ws.path, headers)
        return await run_python([target] * ctx.options.connections, seconds)

    def _same_rows(self, ctx: Context) -> None:
        ws = ctx.data.clients[0]
        headers = {"Authorization": f"Bearer {ws.token}"}
        bodies = {}
        for server in (ctx.warden, ctx.bare):
            status, body = get(server.port, ws.path, headers)
            if status != 200:
                raise RuntimeError(f"{server.name} answered {status}: {body[:300]!r}")
            bodies[server.name] = orjson.loads(body)
        a, b = bodies["warden"], bodies["bare"]
        if [r["id"] for r in a["data"]] != [r["id"] for r in b["data"]] or (
            a["data"] and set(a["data"][0]) != set(b["data"][0])
        ):
            raise RuntimeError("Warden and the bare app disagree on the rows: not comparable")
        if len(a["data"]) != min(ctx.data.providers_per_workspace, 50):
            raise RuntimeError(f"expected a full page, got {len(a['data'])} rows")

    async def run(self, ctx: Context) -> Result:
        opts = ctx.options
        self._same_rows(ctx)
        sides = {"warden": ctx.warden, "bare": ctx.bare}
        for name, server in sides.items():
            ctx.log(f"  warm-up {name} {opts.warmup:.0f}s")
            await self._load(ctx, server, opts.warmup)
        runs: dict[str, list[LoadResult]] = {"warden": [], "bare": []}
        cpu: dict[str, list[float]] = {"warden": [], "bare": []}
        for r in range(opts.rounds):
            order = ("warden", "bare") if r % 2 == 0 else ("bare", "warden")
            for name in order:
                res, cpu_ms = await self._measured(ctx, sides[name], opts.duration)
                runs[name].append(res)
                if cpu_ms is not None:
                    cpu[name].append(cpu_ms)
                ctx.log(
                    f"  round {r + 1}/{opts.rounds} {name:6} {res.rps:8.0f} req/s  "
                    f"p50 {res.p50_ms:6.2f} ms  p99 {res.p99_ms:6.2f} ms  errors {res.errors}"
                    + (f"  server CPU {cpu_ms:.2f} ms/req" if cpu_ms is not None else "")
                )
        return self._result(ctx, runs, cpu)

    def _result(
        self, ctx: Context, runs: dict[str, list[LoadResult]], cpu: dict[str, list[float]]
    ) -> Result:
        med: dict[str, dict[str, Any]] = {
            name: {
                "rps": median([x.rps for x in rs]),
                "p50_ms": median([x.p50_ms for x in rs]),
                "p99_ms": median([x.p99_ms for x in rs]),
                "errors": sum(x.errors for x in rs),
                "cpu_ms_per_request": median(cpu[name]) if cpu[name] else None,
                "rounds_rps": [round(x.rps, 1) for x in rs],
            }
            for name, rs in runs.items()
        }
        ratio = med["warden"]["rps"] / med["bare"]["rps"] if med["bare"]["rps"] else 0.0
        errors = med["warden"]["errors"] + med["bare"]["errors"]
        rows = [
            {
                "server": name,
                "req/s (median)": f"{m['rps']:.0f}",
                "p50 ms": f"{m['p50_ms']:.2f}",
                "p99 ms": f"{m['p99_ms']:.2f}",
                "errors": m["errors"],
                "server CPU ms/req": (
                    f"{m['cpu_ms_per_request']:.2f}" if m["cpu_ms_per_request"] else "n/a"
                ),
                "req/s per round": ", ".join(f"{v:.0f}" for v in m["rounds_rps"]),
            }
            for name, m in med.items()
        ]
        client = "wrk -t1" if ctx.use_wrk else "python client"
        o = ctx.options
        return Result(
            key=self.key,
            title=self.title,
            target=self.target,
            passed=ratio >= TARGET_RATIO and errors == 0,
            summary=(
                f"{ratio:.2f}x ({med['warden']['rps']:.0f} vs {med['bare']['rps']:.0f} req/s; "
                f"p99 {med['warden']['p99_ms']:.1f} vs {med['bare']['p99_ms']:.1f} ms)"
            ),
            rows=rows,
            markdown=(
                f"{client}, {o.connections} keep-alive connections, {o.warmup:.0f} s warm-up per "
                f"side, {o.rounds} rounds x {o.duration:.0f} s per side, alternating; medians "
                "over rounds. Both serve one uvicorn worker with the same pool; a viewer's list "
                "of 50 providers (row grant and field rule active)."
            ),
            metrics={"ratio": ratio, **{k: v for k, v in med.items()}},
        )


SCENARIO = Throughput()
