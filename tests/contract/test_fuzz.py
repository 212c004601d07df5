"""Schemathesis over the whole API, as a real owner with data, against live processes.

Every documented operation is called with generated (valid and invalid) inputs; each answer
must be no server error, a documented status with its documented content type and headers,
and a body that validates against the documented schema. Bounded in time for the test suite
(`FUZZ_MAX_EXAMPLES`, `FUZZ_MAX_SECONDS`); `make fuzz` runs it longer.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys

import pytest

from tests.contract.conftest import Live
from tests.live import ROOT

pytestmark = pytest.mark.e2e

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "8")
MAX_SECONDS = int(os.environ.get("FUZZ_MAX_SECONDS", "150"))
PHASES = os.environ.get("FUZZ_PHASES", "examples,fuzzing")


def _config(live: Live, path: pathlib.Path) -> None:
    """Path parameters name the seeded resources, so operations reach real rows."""
    ids = live.ids
    values = {
        "path.slug": live.slug,
        "path.resource_type": "provider",
        **{f"path.{name}": ids[name] for name in ids if name != "owner_id"},
    }
    lines = ["[parameters]", *(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items())]
    path.write_text("\n".join(lines) + "\n")


async def test_schemathesis_finds_no_contract_violation(live: Live, tmp_path: pathlib.Path) -> None:
    _config(live, tmp_path / "schemathesis.toml")
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.fuzz_hooks",
        "PYTHONPATH": str(ROOT),
        "FUZZ_BASE_URL": live.base,
        "FUZZ_OWNER_TOKEN": live.token,
    }
    args = [
        str(pathlib.Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{live.base}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-examples",
        MAX_EXAMPLES,
        "--max-time",
        str(MAX_SECONDS),
        "--seed",
        os.environ.get("FUZZ_SEED", "20240501"),
        "--generation-database",
        "none",
        "--no-color",
        "--suppress-health-check",
        "all",
    ]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=MAX_SECONDS + 120)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-20_000:]
    print(report[-6_000:])
    assert "Tested:" in report, report[-5_000:]
