"""Part 6: one tenant's latency while another client spams logins from one address.

A second `warden serve` (one uvicorn worker, the same database and token secret as the harness's
server) runs with the **production** argon2 cost (time 3, memory 64 MiB, default hashing
threads) and a per-address limit out of reach, so every spam login is really hashed. A tenant
(a bench viewer with its token) lists its providers on one keep-alive connection, requests back
to back; `--rounds` rounds alternate `--spam-duration` seconds at rest with as long under spam:
`--spam-clients` connections from 127.0.0.1 posting logins with random emails back to back (the
hashing thread is always busy). A spam phase is measured once its first logins were answered;
it ends by letting every login in flight finish, so the next rest phase is at rest. Reported:
the tenant's p50/p95 at rest and under spam (medians over rounds), their ratios, the logins
hashed per second. With hashing on the event loop, or logins holding a pooled connection while
they wait for the hashing thread, the p50 ratio is in the hundreds.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
from collections import Counter
from collections.abc import AsyncIterator

import httpx
from redis.asyncio import Redis

from benchmarks.loadgen import LoadResult, Target, run_python
from benchmarks.scenarios.base import Context, Result, median
from benchmarks.servers import ServerProcess, warden_server

TARGET_RATIO = 3.0  # the hashing thread takes a whole core (of two, on the reference machine)
PRODUCTION_ARGON2 = {"WARDEN_ARGON2_TIME_COST": "3", "WARDEN_ARGON2_MEMORY_COST": "65536"}
SPAM_PASSWORD = "not-the-password-of-anyone"  # noqa: S105 - the spam's wrong password


class Spam:
    """`clients` connections from one address logging in with random emails back to back;
    `stop()` lets each finish the login it has in flight."""

    def __init__(self, base: str, clients: int) -> None:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        self.client = httpx.AsyncClient(base_url=base, timeout=300, limits=limits)
        self.codes: Counter[int] = Counter()
        self.errors: list[str] = []
        self._running = True
        self._answered = asyncio.Event()
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(clients)]

    async def _loop(self) -> None:
        while self._running:
            body = {"email": f"spam-{secrets.token_hex(6)}@example.com", "password": SPAM_PASSWORD}
            try:
                r = await self.client.post("/api/v1/auth/login", json=body)
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self._answered.set()
                return
            self.codes[r.status_code] += 1
            if sum(self.codes.values()) >= 2:
                self._answered.set()

    async def started(self) -> None:
        """Once the first logins came back, hashed: the hashing thread is busy."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await self._answered.wait()

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks)
        await self.client.aclose()


@contextlib.asynccontextmanager
async def _spam_server(ctx: Context) -> AsyncIterator[ServerProcess]:
    """The harness's Warden environment at the production hashing cost, its Redis keys its
    own (deleted afterwards)."""
    prefix = f"warden:bench:{ctx.db.name}:login-spam"
    env = {
        **ctx.warden.env,
        **PRODUCTION_ARGON2,
        "WARDEN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS": "100000000",
        "WARDEN_LOGIN_LOCKOUT_SECONDS": "600",
        "WARDEN_REDIS_KEY_PREFIX": prefix,
    }
    logs = ctx.options.results_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = warden_server(env, logs / "warden-login-spam.log")
    try:
        with server:
            yield server
    finally:
        redis = Redis.from_url(ctx.settings.redis_url)
        try:
            keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
        finally:
            await redis.aclose()


def _row(phase: str, round_no: int, res: LoadResult, hashed: float | None) -> dict[str, object]:
    return {
        "round": round_no,
        "phase": phase,
        "requests": res.requests,
        "errors": res.errors,
        "p50 ms": round(res.p50_ms, 2),
        "p95 ms": round(res.p95_ms, 2),
        "p99 ms": round(res.p99_ms, 2),
        "logins hashed/s": "" if hashed is None else f"{hashed:.1f}",
    }


class LoginSpam:
    key = "login_spam"
    title = "Login spam (one tenant's latency while one address spams logins)"
    target = f"tenant p50 under spam <= {TARGET_RATIO:g}x at rest, 0 errors"

    async def missing(self, ctx: Context) -> str | None:
        return None if ctx.data.clients else "no workspace with a token"

    async def run(self, ctx: Context) -> Result:
        opts = ctx.options
        ws = ctx.data.clients[0]
        seconds = opts.spam_duration
        async with _spam_server(ctx) as server:
            tenant = Target(
                "127.0.0.1", server.port, ws.path, {"Authorization": f"Bearer {ws.token}"}
            )
            ctx.log(
                f"  tenant {ws.slug}, one connection; {opts.spam_clients} spam clients from one "
                f"address; {opts.rounds} rounds of {seconds:g}s at rest / {seconds:g}s under spam"
            )
            await run_python([tenant], min(opts.warmup, 2.0))
            rest: list[LoadResult] = []
            spam: list[LoadResult] = []
            rates: list[float] = []
            codes: Counter[int] = Counter()
            spam_errors: list[str] = []
            rows = []
            for n in range(1, opts.rounds + 1):
                rest.append(await run_python([tenant], seconds))
                rows.append(_row("at rest", n, rest[-1], None))
                spammer = Spam(server.url(), opts.spam_clients)
                try:
                    await spammer.started()
                    before = spammer.codes[401]
                    spam.append(await run_python([tenant], seconds))
                    rates.append((spammer.codes[401] - before) / spam[-1].seconds)
                finally:
                    await spammer.stop()
                codes += spammer.codes
                spam_errors += spammer.errors
                rows.append(_row("under spam", n, spam[-1], rates[-1]))
                ctx.log(
                    f"  round {n}: p50 {rest[-1].p50_ms:.1f} -> {spam[-1].p50_ms:.1f} ms, "
                    f"p95 {rest[-1].p95_ms:.1f} -> {spam[-1].p95_ms:.1f} ms, "
                    f"{rates[-1]:.1f} logins hashed/s"
                )
        p50_rest, p50_spam = median([r.p50_ms for r in rest]), median([r.p50_ms for r in spam])
        p95_rest, p95_spam = median([r.p95_ms for r in rest]), median([r.p95_ms for r in spam])
        p50_ratio = p50_spam / p50_rest if p50_rest else 0.0
        p95_ratio = p95_spam / p95_rest if p95_rest else 0.0
        errors = sum(r.errors for r in rest + spam)
        refused = sum(n for code, n in codes.items() if code != 401)
        samples = [s for r in rest + spam for s in r.error_samples][:5]
        samples += spam_errors[:5]
        for sample in samples:
            ctx.log(f"    error: {sample}")
        return Result(
            key=self.key,
            title=self.title,
            target=self.target,
            passed=p50_ratio <= TARGET_RATIO and errors == 0 and refused == 0 and not spam_errors,
            summary=(
                f"tenant p50 {p50_rest:.1f} -> {p50_spam:.1f} ms (**{p50_ratio:.2f}x**), "
                f"p95 {p95_rest:.1f} -> {p95_spam:.1f} ms ({p95_ratio:.2f}x) under "
                f"{statistics.median(rates):.1f} logins hashed/s from one address; "
                f"{errors} errors"
            ),
            rows=rows,
            markdown=(
                "A second `warden serve` at the production argon2 cost (time 3, 64 MiB, "
                "default hashing threads), per-address limit out of reach: every spam login "
                f"is hashed ({dict(codes)} answers to the spam). The tenant's client is the "
                "harness's Python client, one connection, requests back to back; the spam "
                "client (httpx) runs in the same process."
            ),
            metrics={
                "p50_rest_ms": p50_rest,
                "p50_spam_ms": p50_spam,
                "p95_rest_ms": p95_rest,
                "p95_spam_ms": p95_spam,
                "p50_ratio": p50_ratio,
                "p95_ratio": p95_ratio,
                "logins_hashed_per_s": statistics.median(rates),
                "spam_answers": {str(k): v for k, v in codes.items()},
                "errors": errors + len(spam_errors),
                "error_samples": samples,
            },
        )


SCENARIO = LoginSpam()
