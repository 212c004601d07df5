"""The two servers under load, each one uvicorn worker process on a free port of 127.0.0.1:
A = the real `warden serve`, B = the bare baseline app (`benchmarks/bare_app.py`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from app.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]


class ServerProcess:
    """A server child process; `start()` returns once `GET /healthz` answers 200."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.env = env
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server process has used (Linux /proc; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        # Only the settings given here: none leak in from the caller's WARDEN_* environment.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
        env = {**inherited, **self.env, "PYTHONPATH": str(ROOT)}
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                self.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}); see {self.log_file}"
                )
            if _healthy(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not answer /healthz in {timeout:.0f}s; see {self.log_file}"
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def warden_server(env: dict[str, str], log_file: Path) -> ServerProcess:
    """`warden serve` itself (`python -m app serve` is the same entry point)."""
    argv = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", "{port}"]
    return ServerProcess("warden", argv, env, log_file)


def bare_server(env: dict[str, str], log_file: Path) -> ServerProcess:
    argv = [sys.executable, "-m", "benchmarks.bare_app", "--port", "{port}"]
    return ServerProcess("bare", argv, env, log_file)
