"""The README's examples run as written: every shell example that talks to a running Warden is
taken from README.md and run with bash, in order, against real `warden serve` and `warden
worker` processes on a database of their own with the demo data loaded (`warden seed`). Only the
address is changed (`localhost:8000` → the test's port). Examples that need what a test cannot
have (an identity provider's token, a phone's TOTP code, a production host) are named below and
left out."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.embedded import free_port
from tests.conftest import database, make_settings
from tests.helpers import sample_report
from tests.live import ROOT, Proc, env_for, until

pytestmark = pytest.mark.e2e

# Examples that need what no test has: said here, so nothing is skipped silently.
NOT_RUNNABLE = {
    "ID_TOKEN": "a token of a real identity provider",
    '"code":"123456"': "a TOTP code from a phone",
    "db.internal": "a production database and cache",
    "openapi-python-client generate": "the generated client (tests/contract runs it)",
    "ADMIN_PASSWORD": "an operator's password on a terminal (tests/identity runs it)",
}


def readme_examples() -> list[str]:
    """The README's `bash` blocks that call the API, in order, minus the unrunnable."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if "localhost:8000" in b and not any(k in b for k in NOT_RUNNABLE)]


@pytest.fixture(scope="module")
async def story(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    async for db in database.__wrapped__(servers):  # type: ignore[attr-defined]
        settings = make_settings(db, servers)
        tmp = tmp_path_factory.mktemp("readme")
        env = env_for(settings, WARDEN_ADMIN_DATABASE_URL=db["admin_url"])
        seeded = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "app", "seed"],
            cwd=ROOT,
            env=env,
            capture_output=True,
        )
        assert seeded.returncode == 0, seeded.stderr.decode()[-2000:]
        port = free_port()
        api = Proc("api", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp)
        worker = Proc("worker", ["worker"], env, tmp)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:

                async def ready() -> bool:
                    try:
                        return (await c.get("/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await until(ready, 30, "the API")
            yield port, tmp
        except BaseException:
            print(api.tail(), worker.tail(), sep="\n")
            raise
        finally:
            api.stop(signal.SIGTERM)
            worker.stop(signal.SIGTERM)


def _write(tmp: pathlib.Path, report: str, script: str) -> None:
    (tmp / "report.ocsf.json").write_text(report)
    (tmp / "readme.sh").write_text(script)


def test_the_examples_are_found():
    examples = readme_examples()
    assert len(examples) >= 4  # the story, idempotency, the query language, change management
    assert any("auth/register" in e for e in examples)


async def test_the_readme_examples_run_as_written(story):
    port, tmp = story
    # The report the story uploads: `prowler … --output-formats json-ocsf` for its account.
    report = sample_report("aws", "123456789012")
    script = "\n".join(readme_examples()).replace("localhost:8000", f"127.0.0.1:{port}")
    await asyncio.to_thread(_write, tmp, json.dumps(report), "set -euo pipefail\n" + script)
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    run = await asyncio.to_thread(
        subprocess.run,
        ["bash", "readme.sh"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout
    assert run.returncode == 0, (run.stderr[-3000:], out[-3000:])
    assert '"status":5' not in out and "Internal server error" not in out, out[-3000:]
    assert "null" not in out.splitlines()[0:1], out[:500]  # the registration answered
    assert re.search(r"(?i)idempotent-replayed: true", out), out  # the retry was replayed
    assert '"implemented"' in out and '"approved"' in out, out[-3000:]  # the change workflow
    assert "Separation of duties" in out, out[-3000:]  # the requester's own approval refused
