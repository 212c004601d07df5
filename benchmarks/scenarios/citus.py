"""Part 6: scale-out. The scoped list and the findings import on a local Citus cluster, beside
single-node PostgreSQL, in the same run.

With `--citus-url` (or `BENCH_CITUS_URL`: a coordinator's database whose workers are
registered, as `cluster.sh start -d warden` leaves it), a second bench database is made on
every node of the cluster, migrated by `warden migrate` (so distributed), filled with the same
generated data and served by a second `warden serve` (same settings, one uvicorn worker). Then:

- list: the throughput scenario's load (a viewer's providers list, 50 rows) on each side,
  warmed up, in rounds alternating single node / cluster; median req/s, p50, p99 and Warden's
  CPU per request;
- import: one generated report (`--ingest-findings`) uploaded to each side and imported by an
  in-process burst worker with that side's settings (the real job path), twice per side,
  alternating; findings per second of the task's own duration.

The ratio cluster / single node is the cost of distribution on this machine: the cluster's
three PostgreSQL servers share its cores, and every shard query is a loopback round trip.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.db.migrate import migrate
from app.db.partitions import new_uuid7
from benchmarks.data import generate
from benchmarks.env import BenchDatabase, asyncpg_dsn, sqlalchemy_url
from benchmarks.loadgen import LoadResult
from benchmarks.scenarios.base import Context, Result, median
from benchmarks.scenarios.ingest import ACCOUNT, write_report
from benchmarks.scenarios.ingest import SCENARIO as INGEST
from benchmarks.scenarios.throughput import SCENARIO as THROUGHPUT
from benchmarks.servers import warden_server
from tests import cluster

SLUG = "citus-bench"
IMPORT_ROUNDS = 2
SIDES = ("single node", "citus")


def citus_url(ctx: Context) -> str | None:
    return getattr(ctx.options, "citus_url", None) or os.environ.get("BENCH_CITUS_URL")


@asynccontextmanager
async def cluster_side(ctx: Context, url: str) -> AsyncIterator[Context]:
    """The single-node side's context with the cluster's database, data, settings and server."""
    from benchmarks.run import server_env, settings_from

    name = f"warden_bench_{secrets.token_hex(4)}"
    roles = {
        k: f"warden_bench_{k}_{secrets.token_hex(4)}"
        for k in ("app", "definer", "platform", "maintenance")
    }
    password = secrets.token_hex(12)
    admin = (await cluster.create_database(asyncpg_dsn(url), name))[0]
    runtime = sqlalchemy_url(
        make_url(admin)
        .set(username=roles["app"], password=password)
        .render_as_string(hide_password=False)
    )
    db = BenchDatabase(
        name=name,
        admin_url=admin,
        runtime_url=runtime,
        bypass_url=runtime,  # (no RLS baseline on this side)
        runtime_role=roles["app"],
        definer_role=roles["definer"],
        platform_role=roles["platform"],
        bypass_role=roles["app"],
        maintenance_url=sqlalchemy_url(
            make_url(admin)
            .set(username=roles["maintenance"], password=password)
            .render_as_string(hide_password=False)
        ),
        maintenance_role=roles["maintenance"],
    )
    try:
        ctx.log(f"  migrating {name} on the cluster (every table distributed)")
        await migrate(
            db.admin_url,
            db.runtime_url,
            db.definer_role,
            db.platform_role,
            maintenance_url=db.maintenance_url,
        )
        assert ctx.settings is not None
        env = server_env(db, str(ctx.settings.redis_url))
        settings = settings_from(env)
        o = ctx.options
        ctx.log(f"  generating {o.workspaces} workspaces x {o.providers} providers on it")
        data = await generate(db.dsn("admin"), settings, o.workspaces, o.providers, with_tokens=1)
        logs = o.results_dir / "logs"
        with warden_server(env, logs / "warden-citus.log") as server:
            yield dataclasses.replace(ctx, db=db, data=data, warden=server, settings=settings)
    finally:
        await cluster.drop_database(asyncpg_dsn(url), name, list(roles.values()))


class ScaleOut:
    key = "citus"
    title = "Scale-out: list and import on a local 3-node Citus cluster vs single-node PostgreSQL"
    target = "measured (the cost of distribution on one machine)"

    async def missing(self, ctx: Context) -> str | None:
        if not citus_url(ctx):
            return "no Citus cluster (--citus-url or BENCH_CITUS_URL)"
        if ctx.settings is None:
            return "no in-process settings for the worker"
        return None

    async def run(self, ctx: Context) -> Result:
        url = citus_url(ctx)
        assert url is not None
        async with cluster_side(ctx, url) as other:
            sides = {SIDES[0]: ctx, SIDES[1]: other}
            lists = await self._lists(ctx, sides)
            imports = await self._imports(ctx, sides)
        return self._result(lists, imports)

    async def _lists(self, ctx: Context, sides: dict[str, Context]) -> dict[str, dict[str, Any]]:
        opts = ctx.options
        for name, side in sides.items():
            ctx.log(f"  list warm-up {name} {opts.warmup:.0f}s")
            await THROUGHPUT._load(side, side.warden, opts.warmup)
        runs: dict[str, list[LoadResult]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(opts.rounds):
            for name in SIDES if r % 2 == 0 else SIDES[::-1]:
                side = sides[name]
                res, cpu_ms = await THROUGHPUT._measured(side, side.warden, opts.duration)
                runs[name].append(res)
                if cpu_ms is not None:
                    cpu[name].append(cpu_ms)
                ctx.log(
                    f"  list round {r + 1}/{opts.rounds} {name:11} {res.rps:7.0f} req/s  "
                    f"p50 {res.p50_ms:6.2f} ms  p99 {res.p99_ms:6.2f} ms  errors {res.errors}"
                )
        return {
            name: {
                "rps": median([x.rps for x in rs]),
                "p50_ms": median([x.p50_ms for x in rs]),
                "p99_ms": median([x.p99_ms for x in rs]),
                "errors": sum(x.errors for x in rs),
                "cpu_ms": median(cpu[name]) if cpu[name] else None,
            }
            for name, rs in runs.items()
        }

    async def _imports(self, ctx: Context, sides: dict[str, Context]) -> dict[str, dict[str, Any]]:
        count = ctx.options.ingest_findings
        provider = {}
        for name, side in sides.items():
            provider[name] = await _ingest_workspace(side)
        rates: dict[str, list[float]] = {name: [] for name in sides}
        with tempfile.TemporaryDirectory(prefix="warden-bench-citus-") as tmp:
            report = Path(tmp) / "report.ocsf.json"
            write_report(report, count, ACCOUNT)
            for r in range(IMPORT_ROUNDS):
                for name in SIDES if r % 2 == 0 else SIDES[::-1]:
                    side = sides[name]
                    job = await INGEST._job(
                        side, report, provider[name], side.data.clients[0].token, slug=SLUG
                    )
                    rate = job["imported"] / job["job_s"] if job["job_s"] else 0.0
                    rates[name].append(rate)
                    ctx.log(
                        f"  import round {r + 1}/{IMPORT_ROUNDS} {name:11} {rate:8.0f} "
                        f"findings/s ({job['imported']:,} in {job['job_s']:.2f}s)"
                    )
        return {name: {"findings_per_s": median(v), "rounds": v} for name, v in rates.items()}

    def _result(
        self, lists: dict[str, dict[str, Any]], imports: dict[str, dict[str, Any]]
    ) -> Result:
        single, spread = SIDES
        list_ratio = lists[spread]["rps"] / lists[single]["rps"] if lists[single]["rps"] else 0.0
        import_ratio = (
            imports[spread]["findings_per_s"] / imports[single]["findings_per_s"]
            if imports[single]["findings_per_s"]
            else 0.0
        )
        rows = [
            {
                "deployment": name,
                "list req/s": f"{lists[name]['rps']:.0f}",
                "list p50 ms": f"{lists[name]['p50_ms']:.2f}",
                "list p99 ms": f"{lists[name]['p99_ms']:.2f}",
                "Warden CPU ms/req": (
                    f"{lists[name]['cpu_ms']:.2f}" if lists[name]["cpu_ms"] else "n/a"
                ),
                "list errors": lists[name]["errors"],
                "import findings/s": f"{imports[name]['findings_per_s']:.0f}",
                "import per round": ", ".join(f"{v:.0f}" for v in imports[name]["rounds"]),
            }
            for name in SIDES
        ]
        errors = sum(v["errors"] for v in lists.values())
        return Result(
            key=self.key,
            title=self.title,
            target=self.target,
            passed=None if errors == 0 else False,
            summary=(
                f"list {list_ratio:.2f}x of single node ({lists[spread]['rps']:.0f} vs "
                f"{lists[single]['rps']:.0f} req/s), import {import_ratio:.2f}x "
                f"({imports[spread]['findings_per_s']:.0f} vs "
                f"{imports[single]['findings_per_s']:.0f} findings/s)"
            ),
            rows=rows,
            markdown=(
                "Both sides: the same generated data, one `warden serve` (one uvicorn worker), "
                "the same viewer's providers list and the same report; the cluster is a "
                "coordinator and two workers on this machine (`../shared/citus/cluster.sh`)."
            ),
            metrics={
                "list_ratio": round(list_ratio, 2),
                "import_ratio": round(import_ratio, 2),
                "lists": lists,
                "imports": {k: v["findings_per_s"] for k, v in imports.items()},
            },
        )


async def _ingest_workspace(side: Context) -> str:
    """A workspace with an AWS provider for the import, its first bench user the owner."""
    ws_id, provider_id = new_uuid7(), new_uuid7()
    conn = await asyncpg.connect(side.db.dsn("admin"))
    try:
        await conn.execute(
            "INSERT INTO workspace (id, slug, name) VALUES ($1, $2, 'Citus bench')", ws_id, SLUG
        )
        await conn.execute(
            "INSERT INTO membership (workspace_id, user_id, role) VALUES ($1, $2, 'owner')",
            ws_id,
            side.data.clients[0].user_id,
        )
        await conn.execute(
            "INSERT INTO provider (workspace_id, id, provider_type, uid, alias, region) "
            "VALUES ($1, $2, 'aws', $3, 'citus-bench-aws', 'eu')",
            ws_id,
            provider_id,
            ACCOUNT,
        )
    finally:
        await conn.close()
    return str(provider_id)


SCENARIO = ScaleOut()
