"""Behind PgBouncer in transaction mode: the context is transaction-scoped, so consecutive and
concurrent requests of different workspaces sharing server connections never see each other."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.embedded import free_port
from tests.conftest import make_settings
from tests.helpers import Api, serve

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (Debian package 'pgbouncer')"
)


@pytest.fixture
def pgbouncer(database):
    admin = make_url(database["admin_url"])
    runtime = make_url(database["runtime_url"])
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="warden-pgb-") as tmp:
        ini = Path(tmp) / "pgbouncer.ini"
        users = Path(tmp) / "users.txt"
        users.write_text(f'"{runtime.username}" "{runtime.password}"\n')
        ini.write_text(
            "[databases]\n"
            f"{runtime.database} = host={admin.host or '127.0.0.1'} port={admin.port or 5432} "
            f"dbname={runtime.database}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
            f"unix_socket_dir =\nauth_type = plain\nauth_file = {users}\n"
            "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 50\n"
            f"logfile = {tmp}/pgbouncer.log\n"
        )
        import os
        import pwd

        kwargs = {}
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            user = pwd.getpwnam("postgres") if _has_user("postgres") else pwd.getpwnam("nobody")
            os.chown(tmp, user.pw_uid, user.pw_gid)
            for f in (ini, users):
                os.chown(f, user.pw_uid, user.pw_gid)
            kwargs = {"user": user.pw_uid, "group": user.pw_gid}
        proc = subprocess.Popen([PGBOUNCER, str(ini)], **kwargs)
        try:
            deadline = time.monotonic() + 10
            import socket

            while time.monotonic() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            yield runtime.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


async def test_isolation_through_pgbouncer_transaction_mode(pgbouncer, database, servers):
    settings = make_settings(
        database, servers, database_url=pgbouncer, db_pgbouncer=True, db_pool_size=6
    )
    async with serve(settings) as (_, client):
        api = Api(client)
        users = [await api.user(f"pgb{i}") for i in range(4)]
        slugs = [await api.workspace(u) for u in users]
        mine = {}
        for u, slug in zip(users, slugs, strict=True):
            mine[slug] = {(await api.provider(u, slug, alias=slug))["id"] for _ in range(3)}

        async def read(u, slug):
            r = await client.get(f"/ws/{slug}/api/v1/providers", headers=u.headers)
            assert r.status_code == 200, r.text
            got = {p["id"] for p in r.json()["data"]}
            assert got == mine[slug], (slug, got)

        # 6 app connections multiplexed onto 2 server connections, many rounds.
        for _ in range(10):
            await asyncio.gather(*(read(u, s) for u, s in zip(users, slugs, strict=True)))
