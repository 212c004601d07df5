"""Load generators: `wrk` (low overhead, fixed connections) and a pure-Python keep-alive client
(used when wrk is missing, and for the concurrency scenario, which must read every body)."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WRK_HINT = (
    "wrk not found: install it with `apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`;"
    " using the built-in Python client meanwhile (more client overhead, same comparison)"
)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0  # the Python client only (wrk's distribution has no 95th)
    p99_ms: float = 0.0
    max_ms: float = 0.0
    bad_rows: int = 0  # rows of another workspace (checked clients only)
    checked_rows: int = 0
    client: str = "python"
    error_samples: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return float(sorted_values[rank - 1])


def wrk_path() -> str | None:
    return shutil.which("wrk")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str, seconds: float) -> LoadResult:
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)", output, re.M))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        errors += sum(int(g) for g in m.groups())
    max_ms = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.M)
    return LoadResult(
        requests=requests,
        seconds=seconds,
        errors=errors,
        p50_ms=_ms(pct["50"]),
        p99_ms=_ms(pct["99"]),
        max_ms=_ms(max_ms.group(1)) if max_ms else 0.0,
        client="wrk",
    )


def run_wrk(url: str, headers: dict[str, str], connections: int, seconds: float) -> LoadResult:
    """One wrk run: one thread (the machine is small; the server needs the cores), fixed
    keep-alive connections, latency distribution on."""
    wrk = wrk_path()
    assert wrk is not None
    duration = max(1, round(seconds))
    argv = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    out = subprocess.run(  # noqa: S603 - fixed binary, our arguments
        [*argv, url], capture_output=True, text=True, check=True, timeout=duration + 30
    )
    return parse_wrk(out.stdout, duration)


# The pure-Python client: raw HTTP/1.1 over asyncio streams, one request in flight per
# connection, keep-alive. Small on purpose: its overhead is part of what it measures.

Check = Callable[[bytes], tuple[int, int]]  # body -> (rows checked, rows of another workspace)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    headers: dict[str, str]
    check: Check | None = None

    def request(self) -> bytes:
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    return status, await reader.readexactly(length or 0)


async def _connection(
    target: Target, deadline: float, latencies: list[float], result: LoadResult
) -> None:
    request = target.request()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            status, body = await _read_response(reader)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"HTTP {status}: {body[:200]!r}")
                continue
            if target.check is not None:
                checked, bad = target.check(body)
                result.checked_rows += checked
                result.bad_rows += bad
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        result.errors += 1
        if len(result.error_samples) < 5:
            result.error_samples.append(f"{type(exc).__name__}: {exc}")
    finally:
        if writer is not None:
            writer.close()


async def run_python(targets: Sequence[Target], seconds: float) -> LoadResult:
    """One keep-alive connection per target, each sending its request in a loop for `seconds`."""
    latencies: list[float] = []
    result = LoadResult(requests=0, seconds=seconds)
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(_connection(t, deadline, latencies, result) for t in targets))
    result.seconds = time.perf_counter() - start
    latencies.sort()
    result.requests = len(latencies)
    result.p50_ms = percentile(latencies, 50) * 1000
    result.p95_ms = percentile(latencies, 95) * 1000
    result.p99_ms = percentile(latencies, 99) * 1000
    result.max_ms = (latencies[-1] * 1000) if latencies else 0.0
    return result
