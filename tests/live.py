"""Real `warden serve` and `warden worker` processes for end-to-end tests: their environment
(the test database and Redis, a queue of their own), start, stop, logs, readiness."""

from __future__ import annotations

import asyncio
import os
import pathlib
import subprocess
import sys
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]


def env_for(settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        {
            "WARDEN_ENVIRONMENT": "test",
            "WARDEN_DATABASE_URL": settings.database_url,
            "WARDEN_DEFINER_ROLE": settings.definer_role,
            "WARDEN_PLATFORM_ROLE": settings.platform_role,
            "WARDEN_REDIS_URL": settings.redis_url,
            "WARDEN_REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "WARDEN_DENIALS_PER_ADDRESS_PER_MINUTE": str(settings.denials_per_address_per_minute),
            "WARDEN_JWT_SECRET": settings.jwt_secret.get_secret_value(),
            "WARDEN_SIGNUP_ENABLED": "true",
            "WARDEN_ARGON2_TIME_COST": "1",
            "WARDEN_ARGON2_MEMORY_COST": "8192",
            # Its own queue: the in-process workers of other tests never see these jobs.
            "WARDEN_JOB_QUEUE_NAME": f"{settings.job_queue_name}:e2e:{uuid.uuid4().hex[:8]}",
            "WARDEN_WORKER_POLL_DELAY": "0.1",
            "PYTHONPATH": str(ROOT),
            **(
                {"WARDEN_MAINTENANCE_DATABASE_URL": settings.maintenance_database_url}
                if settings.maintenance_database_url
                else {}
            ),
            **extra,
        }
    )
    return env


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], tmp: pathlib.Path):
        self.name, self.log = name, tmp / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "app", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + "\n".join(self.log.read_text().splitlines()[-40:])

    def stop(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


async def until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
