"""Findings ingest benchmark: a generated N-finding JSON-OCSF report through the real path.

    python benchmarks/ingest.py [--findings 100000] [--batch-size 1000]

Servers: BENCH_DATABASE_URL (a superuser URL, database "postgres") and BENCH_REDIS_URL, else
TEST_DATABASE_URL / TEST_REDIS_URL, else embedded servers in a temporary folder. A database and
roles with unique names are created, migrated with `warden migrate`'s code, and dropped.

Measured, in one run on the same database:
- the real job path: HTTP upload (POST /scans) → outbox → Redis → an arq worker →
  `scan.import` under `with_rls_context` (streaming parse, mapping, dedup, RLS-checked
  `executemany` in batches, one transaction). Rate = findings / job time (task started →
  finished), plus the upload time;
- a baseline: the same rows (mapped beforehand, not timed) inserted by asyncpg `executemany`
  as a superuser (no RLS, no parsing), same statement, same batch size.
The ratio job rate / baseline rate is what RLS, streaming and mapping cost.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.migrate import migrate  # noqa: E402
from app.db.partitions import new_uuid7, uuid7_time  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services.ingest import COLUMNS, INSERT_SQL  # noqa: E402
from app.services.ocsf import map_record  # noqa: E402

SEVERITIES = ("critical", "high", "medium", "low", "informational")
STATUSES = ("FAIL", "PASS", "MANUAL")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-2")
TEMPLATE = ROOT / "tests" / "data" / "ocsf" / "example_output_aws.ocsf.json"


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


@asynccontextmanager
async def servers(
    db: str | None = None, redis: str | None = None
) -> AsyncIterator[tuple[str, str]]:
    db = db or os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    redis = redis or os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL")
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as tmp:
        started: list[Any] = []
        try:
            if not db:
                from app.embedded import EmbeddedPostgres

                started.append(EmbeddedPostgres(Path(tmp) / "pg"))
                db = started[-1].start()
            if not redis:
                from app.embedded import EmbeddedRedis

                started.append(EmbeddedRedis(Path(tmp) / "redis"))
                redis = started[-1].start()
            yield make_url(db).set(drivername="postgresql+asyncpg").render_as_string(
                hide_password=False
            ), redis
        finally:
            for server in reversed(started):
                server.stop()


@asynccontextmanager
async def database(server_url: str) -> AsyncIterator[dict[str, str]]:
    suffix = secrets.token_hex(4)
    name, runtime = f"warden_bench_{suffix}", f"warden_bench_app_{suffix}"
    definer, platform = f"warden_bench_def_{suffix}", f"warden_bench_plat_{suffix}"
    password = secrets.token_hex(12)
    root = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with root.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    server = make_url(server_url)
    admin_url = server.set(database=name).render_as_string(hide_password=False)
    runtime_url = server.set(database=name, username=runtime, password=password)
    try:
        await migrate(admin_url, runtime_url.render_as_string(hide_password=False), definer,
                      platform)
        yield {"admin": admin_url, "runtime": runtime_url.render_as_string(hide_password=False),
               "definer": definer, "platform": platform, "name": name}
    finally:
        async with root.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            for role in (runtime, definer, platform):
                await conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        await root.dispose()


async def job_path(settings: Settings, report: Path) -> dict[str, Any]:
    """Upload over HTTP (in-process ASGI), then a real arq worker runs the import."""
    from workers.settings import create_worker

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                     timeout=600) as c:
            email, password = f"bench-{secrets.token_hex(4)}@example.com", "bench password 123"
            await c.post("/api/v1/auth/register",
                         json={"email": email, "password": password, "name": "Bench"})
            login = await c.post("/api/v1/auth/login", json={"email": email, "password": password})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            await c.post("/api/v1/workspaces", json={"slug": "bench", "name": "Bench"},
                         headers=headers)
            provider = (await c.post("/ws/bench/api/v1/providers", headers=headers,
                                     json={"provider_type": "aws", "uid": ACCOUNT})).json()
            started = time.perf_counter()
            with report.open("rb") as fh:
                r = await c.post("/ws/bench/api/v1/scans", headers=headers,
                                 data={"provider_id": provider["id"]},
                                 files={"file": ("bench.ocsf.json", fh, "application/json")})
            upload_s = time.perf_counter() - started
            assert r.status_code == 202, r.text
            worker = create_worker(settings, burst=True, handle_signals=False, cron_jobs=[])
            started = time.perf_counter()
            try:
                await worker.async_run()
            finally:
                await worker.close()
            wall_s = time.perf_counter() - started
            task = (await c.get(r.headers["content-location"], headers=headers)).json()
    assert task["state"] == "succeeded", task
    return {"upload_s": upload_s, "job_s": task["duration_seconds"], "worker_wall_s": wall_s,
            "imported": task["result"]["imported"], "workspace_provider": provider["id"]}


async def baseline(admin_url: str, count: int, batch_size: int) -> dict[str, Any]:
    """The same rows, mapped up front, inserted by asyncpg executemany as a superuser."""
    conn = await asyncpg.connect(make_url(admin_url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False))
    try:
        ws = await conn.fetchval("SELECT id FROM workspace WHERE slug = 'bench'")
        provider_id, scan_id = await conn.fetchrow(
            "SELECT provider_id, id FROM scan WHERE workspace_id = $1 LIMIT 1", ws
        )
        rows = []
        for i, record in enumerate(records(count, ACCOUNT)):  # the report's records
            f = map_record(record, i)
            fid = new_uuid7()
            rows.append((ws, fid, scan_id, provider_id, f.uid + "-baseline", f.check_id,
                         f.title, f.severity, f.status, f.status_extended, f.muted, f.region,
                         f.resource_uid, f.resource_name, f.resource_type, f.compliance,
                         f.remediation, f.raw, f.observed_at, uuid7_time(fid)))
        assert len(COLUMNS) == len(rows[0])
        started = time.perf_counter()
        async with conn.transaction():
            for start in range(0, len(rows), batch_size):
                await conn.executemany(INSERT_SQL, rows[start:start + batch_size])
        return {"baseline_s": time.perf_counter() - started, "rows": len(rows)}
    finally:
        await conn.close()


ACCOUNT = "123456789012"


async def run(
    count: int,
    batch_size: int,
    *,
    quiet: bool = False,
    server_url: str | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    say = (lambda *a: None) if quiet else print
    async with servers(server_url, redis_url) as (server_url, redis_url), database(
        server_url
    ) as db:
        settings = Settings(
            _env_file=None, environment="test", database_url=db["runtime"],  # type: ignore[call-arg]
            definer_role=db["definer"], platform_role=db["platform"], redis_url=redis_url,
            jwt_secret=secrets.token_urlsafe(40), signup_enabled=True, argon2_time_cost=1,
            argon2_memory_cost=8192, job_queue_name=f"warden:bench:{db['name']}",
            import_batch_size=batch_size, job_soft_time_limit=7200, job_hard_time_limit=7200,
            max_upload_bytes=8 * 1024**3, worker_poll_delay=0.05,
        )
        with tempfile.TemporaryDirectory(prefix="warden-bench-report-") as tmp:
            report = Path(tmp) / "report.ocsf.json"
            started = time.perf_counter()
            size = write_report(report, count, ACCOUNT)
            say(f"generated {count} findings, {size / 1e6:.1f} MB "
                f"in {time.perf_counter() - started:.1f}s")
            job = await job_path(settings, report)
            base = await baseline(db["admin"], count, batch_size)
    job_rate = job["imported"] / job["job_s"]
    base_rate = base["rows"] / base["baseline_s"]
    result = {
        "findings": job["imported"], "report_mb": round(size / 1e6, 1),
        "upload_s": round(job["upload_s"], 2), "job_s": job["job_s"],
        "job_findings_per_s": round(job_rate), "baseline_s": round(base["baseline_s"], 2),
        "baseline_findings_per_s": round(base_rate), "ratio": round(job_rate / base_rate, 2),
    }
    say(f"upload (HTTP, stored in chunks): {result['upload_s']}s")
    say(f"import job (parse + map + RLS executemany, one transaction): {result['job_s']}s "
        f"→ {result['job_findings_per_s']} findings/s")
    say(f"baseline (superuser executemany of pre-mapped rows): {result['baseline_s']}s "
        f"→ {result['baseline_findings_per_s']} findings/s")
    say(f"ratio job / baseline: {result['ratio']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.findings, args.batch_size))


if __name__ == "__main__":
    main()
