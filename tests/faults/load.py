"""A small HTTP load for fault tests: concurrent clients looping over requests, every outcome
kept (status, or the transport error a dropped connection gives) with its time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class Outcome:
    number: int  # the request's number (what `request` was called with)
    at: float  # seconds since the load started
    status: int | None  # None: no HTTP answer (connection dropped, refused, timed out)
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def run_load(
    base_url: str,
    request: Request,
    *,
    clients: int,
    stop: asyncio.Event,
    request_timeout: float = 15.0,
    keep: list[Outcome] | None = None,
) -> list[Outcome]:
    """Each of `clients` keep-alive connections sends `request` again and again until `stop`;
    the outcomes are appended to `keep` (when given) as they come."""
    outcomes: list[Outcome] = [] if keep is None else keep
    started = time.monotonic()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base_url, timeout=request_timeout, limits=limits) as http:

        async def client(number: int) -> None:
            sequence = 0
            while not stop.is_set():
                sequence += 1
                n = number * 1_000_000 + sequence
                try:
                    response = await request(http, n)
                except httpx.HTTPError as exc:
                    outcomes.append(
                        Outcome(n, time.monotonic() - started, None, type(exc).__name__)
                    )
                    await asyncio.sleep(0.05)
                    continue
                outcomes.append(
                    Outcome(
                        n,
                        time.monotonic() - started,
                        response.status_code,
                        headers=dict(response.headers),
                        body=response.content if response.status_code >= 300 else b"",
                    )
                )
                if response.status_code == 503:
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client(n) for n in range(clients)))
    return outcomes


def summary(outcomes: list[Outcome]) -> Counter[str]:
    return Counter(
        str(o.status) if o.status is not None else (o.error or "?").split(":")[0] for o in outcomes
    )
