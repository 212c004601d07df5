"""Part 5: many concurrent clients across many workspaces, every response checked.

`--clients` keep-alive connections (default 200) spread round-robin over `--client-workspaces`
workspaces (default 50), each with its own member's token, list their workspace's providers for
`--concurrency-duration` seconds (default 60). Every response body is parsed and every row
checked: its id must be one of that workspace's provider ids and its alias must carry that
workspace's slug. Target: zero errors, zero rows of another workspace.
"""

from __future__ import annotations

import orjson

from benchmarks.data import WorkspaceFixture
from benchmarks.loadgen import Check, Target, run_python
from benchmarks.scenarios.base import Context, Result


def checker(ws: WorkspaceFixture) -> Check:
    prefix = f"{ws.slug}-p"
    ids = ws.provider_ids

    def check(body: bytes) -> tuple[int, int]:
        rows = orjson.loads(body)["data"]
        bad = sum(1 for r in rows if r["id"] not in ids or not r["alias"].startswith(prefix))
        return len(rows), bad

    return check


class Concurrency:
    key = "concurrency"
    title = "Concurrency (many clients, many workspaces, every row checked)"
    target = "0 errors, 0 cross-workspace rows"

    async def missing(self, ctx: Context) -> str | None:
        return None

    async def run(self, ctx: Context) -> Result:
        opts = ctx.options
        workspaces = ctx.data.clients[: opts.client_workspaces]
        targets = [
            Target(
                "127.0.0.1",
                ctx.warden.port,
                ws.path,
                {"Authorization": f"Bearer {ws.token}"},
                check=checker(ws),
            )
            for ws in (workspaces[i % len(workspaces)] for i in range(opts.clients))
        ]
        ctx.log(
            f"  {opts.clients} clients over {len(workspaces)} workspaces for "
            f"{opts.concurrency_duration:.0f}s"
        )
        res = await run_python(targets, opts.concurrency_duration)
        ctx.log(
            f"  {res.requests} requests ({res.rps:.0f} req/s), errors {res.errors}, "
            f"cross-workspace rows {res.bad_rows} of {res.checked_rows} checked, "
            f"p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms"
        )
        for sample in res.error_samples:
            ctx.log(f"    error: {sample}")
        return Result(
            key=self.key,
            title=self.title,
            target=self.target,
            passed=res.errors == 0 and res.bad_rows == 0 and res.checked_rows > 0,
            summary=(
                f"{res.errors} errors, {res.bad_rows} cross-workspace rows in "
                f"{res.checked_rows} checked; p50 {res.p50_ms:.1f} ms, p99 {res.p99_ms:.1f} ms"
            ),
            rows=[
                {
                    "clients": opts.clients,
                    "workspaces": len(workspaces),
                    "seconds": f"{res.seconds:.0f}",
                    "requests": res.requests,
                    "req/s": f"{res.rps:.0f}",
                    "errors": res.errors,
                    "rows checked": res.checked_rows,
                    "cross-workspace rows": res.bad_rows,
                    "p50 ms": f"{res.p50_ms:.1f}",
                    "p99 ms": f"{res.p99_ms:.1f}",
                    "max ms": f"{res.max_ms:.1f}",
                }
            ],
            markdown=(
                "Python keep-alive client (it must read every body), one process; its own "
                "event-loop time is inside the latencies. Against `warden serve`, one worker."
            ),
            metrics={
                "requests": res.requests,
                "rps": res.rps,
                "errors": res.errors,
                "bad_rows": res.bad_rows,
                "checked_rows": res.checked_rows,
                "p50_ms": res.p50_ms,
                "p99_ms": res.p99_ms,
                "max_ms": res.max_ms,
                "error_samples": res.error_samples,
            },
        )


SCENARIO = Concurrency()
