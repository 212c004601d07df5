"""What every scenario gets (the running servers, the data, the options) and gives back."""

from __future__ import annotations

import http.client
import statistics
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from benchmarks.data import BenchData
from benchmarks.env import BenchDatabase
from benchmarks.servers import ServerProcess


@dataclass
class Context:
    options: Namespace
    db: BenchDatabase
    data: BenchData
    warden: ServerProcess
    bare: ServerProcess
    use_wrk: bool
    settings: Any = None  # the server's Settings, in-process (for a burst worker)

    def log(self, message: str) -> None:
        print(message, flush=True)

    async def table_exists(self, name: str) -> bool:
        conn = await asyncpg.connect(self.db.dsn("admin"))
        try:
            return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))
        finally:
            await conn.close()


@dataclass
class Result:
    key: str
    title: str
    target: str
    passed: bool | None = None  # None: informational, or skipped
    skipped: str | None = None
    summary: str = ""  # one line for the console and the headline table
    rows: list[dict[str, Any]] = field(default_factory=list)  # the detail table
    markdown: str = ""  # extra report text (plans, notes)
    metrics: dict[str, Any] = field(default_factory=dict)  # for results.json and the chart


class Scenario(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def target(self) -> str: ...

    async def missing(self, ctx: Context) -> str | None: ...

    async def run(self, ctx: Context) -> Result: ...


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def get(url_port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One plain GET (for checks before the load starts)."""
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
