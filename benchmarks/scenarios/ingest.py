"""Part 4: the findings import rate through the real job path, against a baseline.

A JSON-OCSF report of N distinct findings is generated from the shipped AWS sample (not timed).
A workspace `ingest-bench` with an AWS provider is made with SQL, the first bench user its
**owner**. Then, measured:

- the job path: multipart upload (`POST /ws/ingest-bench/api/v1/scans`) to the running
  `warden serve` → outbox → Redis → an in-process arq burst worker (the real `WorkerSettings`,
  the server's settings and queue) → `scan.import` under `with_rls_context` (streaming parse,
  mapping, dedup, RLS-checked multi-row INSERTs in batches, one transaction) → task `succeeded`.
  Rate = imported findings / the task's own duration (started → finished); the upload time and
  the worker's wall time are reported too;
- a baseline in the same run: the same records, mapped beforehand (not timed), inserted by
  asyncpg as the superuser (no RLS, no parsing), the same INSERT statements and batch size,
  one transaction.

The ratio job / baseline is what RLS, streaming and mapping cost.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.db.partitions import new_uuid7
from app.services.ingest import COLUMNS, finding_row, insert_statements
from app.services.ocsf import map_record
from benchmarks.scenarios.base import Context, Result

TARGET_RATE = 50_000
SLUG = "ingest-bench"
ACCOUNT = "123456789012"
SEVERITIES = ("critical", "high", "medium", "low", "informational")
STATUSES = ("FAIL", "PASS", "MANUAL")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-2")
# The sample shipped with the tests (no dependency on a folder beside the checkout).
TEMPLATE = (
    Path(__file__).resolve().parents[2] / "tests" / "data" / "ocsf" / "example_output_aws.ocsf.json"
)


def records(count: int, account: str) -> Iterator[dict[str, Any]]:
    """`count` distinct, realistic records built from the shipped AWS sample."""
    samples = json.loads(TEMPLATE.read_text().replace("<account_uid>", account))
    for i in range(count):
        record = copy.deepcopy(samples[i % len(samples)])
        region = REGIONS[i % len(REGIONS)]
        check = f"{record['metadata']['event_code']}_{i % 400}"
        record["metadata"]["event_code"] = check
        record["finding_info"]["uid"] = f"prowler-aws-{check}-{account}-{region}-{i}"
        record["severity"] = SEVERITIES[i % 5].capitalize()
        record["status_code"] = STATUSES[i % 3]
        record["cloud"]["region"] = region
        resource = record["resources"][0]
        resource["region"] = region
        resource["uid"] = f"arn:aws:iam::{account}:resource/{i}"
        resource["name"] = f"resource-{i}"
        yield record


def write_report(path: Path, count: int, account: str) -> int:
    with path.open("w") as out:
        out.write("[")
        for i, record in enumerate(records(count, account)):
            out.write(("," if i else "") + json.dumps(record))
        out.write("]")
    return path.stat().st_size


_SETUP = (
    "INSERT INTO workspace (id, slug, name) VALUES ($1, $2, 'Ingest bench')",
    """INSERT INTO membership (workspace_id, user_id, role, attributes)
       VALUES ($1, $2, 'owner', '{}'::jsonb)""",
    """INSERT INTO provider (workspace_id, id, provider_type, uid, alias, region)
       VALUES ($1, $2, 'aws', $3, 'ingest-bench-aws', 'eu')""",
)


class Ingest:
    key = "ingest"
    title = "Ingest: findings import through the job path vs raw asyncpg"
    target = f">= {TARGET_RATE:,} findings/s"

    async def missing(self, ctx: Context) -> str | None:
        if not await ctx.table_exists("finding"):
            return "needs the `finding` table"
        if ctx.settings is None:
            return "no in-process settings for the worker"
        return None

    async def _job(
        self, ctx: Context, report: Path, provider_id: str, token: str, slug: str = SLUG
    ) -> dict[str, Any]:
        from workers.settings import create_worker

        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=ctx.warden.url(), timeout=600) as client:
            started = time.perf_counter()
            with report.open("rb") as fh:
                r = await client.post(
                    f"/ws/{slug}/api/v1/scans",
                    headers=headers,
                    data={"provider_id": provider_id},
                    files={"file": ("bench.ocsf.json", fh, "application/json")},
                )
            upload_s = time.perf_counter() - started
            if r.status_code != 202:
                raise RuntimeError(f"upload answered {r.status_code}: {r.text[:300]}")
            worker = create_worker(ctx.settings, burst=True, handle_signals=False, cron_jobs=[])
            started = time.perf_counter()
            try:
                await worker.async_run()
            finally:
                await worker.close()
            wall_s = time.perf_counter() - started
            task = (await client.get(r.headers["content-location"], headers=headers)).json()
        if task.get("state") != "succeeded":
            raise RuntimeError(f"import task did not succeed: {task}")
        return {
            "upload_s": upload_s,
            "job_s": task["duration_seconds"],
            "worker_wall_s": wall_s,
            "imported": task["result"]["imported"],
        }

    async def _baseline(self, conn: asyncpg.Connection, ws_id: Any, count: int) -> dict[str, Any]:
        batch = self.batch_size
        provider_id, scan_id = await conn.fetchrow(
            "SELECT provider_id, id FROM scan WHERE workspace_id = $1 LIMIT 1", ws_id
        )
        rows = []
        for i, record in enumerate(records(count, ACCOUNT)):
            f = map_record(record, i)
            fid = new_uuid7()
            baseline = dataclasses.replace(f, uid=f.uid + "-baseline")
            rows.append(finding_row(ws_id, fid, scan_id, provider_id, baseline))
        assert len(COLUMNS) == len(rows[0])
        started = time.perf_counter()
        async with conn.transaction():
            for start in range(0, len(rows), batch):
                for sql, args in insert_statements(rows[start : start + batch]):
                    await conn.execute(sql, *args)
        return {"baseline_s": time.perf_counter() - started, "rows": len(rows)}

    async def run(self, ctx: Context) -> Result:
        assert ctx.settings is not None
        count = ctx.options.ingest_findings
        self.batch_size = ctx.settings.import_batch_size
        owner = ctx.data.clients[0]
        ws_id, provider_id = new_uuid7(), new_uuid7()
        conn = await asyncpg.connect(ctx.db.dsn("admin"))
        try:
            await conn.execute(_SETUP[0], ws_id, SLUG)
            await conn.execute(_SETUP[1], ws_id, owner.user_id)
            await conn.execute(_SETUP[2], ws_id, provider_id, ACCOUNT)
            with tempfile.TemporaryDirectory(prefix="warden-bench-ingest-") as tmp:
                report = Path(tmp) / "report.ocsf.json"
                started = time.perf_counter()
                size = write_report(report, count, ACCOUNT)
                ctx.log(
                    f"  report: {count:,} findings, {size / 1e6:.1f} MB, "
                    f"generated in {time.perf_counter() - started:.1f}s"
                )
                job = await self._job(ctx, report, str(provider_id), owner.token)
            base = await self._baseline(conn, ws_id, count)
        finally:
            await conn.close()
        job_rate = job["imported"] / job["job_s"] if job["job_s"] else 0.0
        base_rate = base["rows"] / base["baseline_s"] if base["baseline_s"] else 0.0
        ratio = round(job_rate / base_rate, 2) if base_rate else 0.0
        row = {
            "findings": job["imported"],
            "report MB": round(size / 1e6, 1),
            "upload s": round(job["upload_s"], 2),
            "job s": round(job["job_s"], 2),
            "worker wall s": round(job["worker_wall_s"], 2),
            "job findings/s": round(job_rate),
            "baseline s": round(base["baseline_s"], 2),
            "baseline findings/s": round(base_rate),
            "job / baseline": ratio,
        }
        ctx.log(
            f"  job {row['job findings/s']:,} findings/s ({row['job s']}s, upload "
            f"{row['upload s']}s); baseline {row['baseline findings/s']:,} findings/s; "
            f"ratio {ratio}"
        )
        return Result(
            self.key,
            self.title,
            self.target,
            passed=job["imported"] == count and job_rate >= TARGET_RATE,
            summary=(
                f"{round(job_rate):,} findings/s through the job ({count:,} findings), "
                f"baseline {round(base_rate):,}/s: {ratio}x"
            ),
            rows=[row],
            metrics={
                "findings": job["imported"],
                "job_findings_per_s": round(job_rate),
                "baseline_findings_per_s": round(base_rate),
                "ratio": ratio,
                "upload_s": round(job["upload_s"], 2),
            },
        )


SCENARIO = Ingest()
