"""A TCP proxy in front of PostgreSQL that can lose the answer to a COMMIT: the server commits,
the client sees its connection drop (what a network fault or a crash at the wrong moment does)."""

from __future__ import annotations

import asyncio
import contextlib
import struct

from app.embedded import free_port

SSL_REQUEST = 80877103
GSS_REQUEST = 80877104


class CommitCutter:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.armed = 0  # how many COMMITs to cut
        self.cut = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        commit_sent = asyncio.Event()
        downstream = asyncio.create_task(self._down(up_reader, writer, commit_sent))
        try:
            await self._up(reader, up_writer, commit_sent)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            downstream.cancel()
            with contextlib.suppress(BaseException):
                await downstream
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)

    async def _up(
        self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, commit_sent: asyncio.Event
    ) -> None:
        """Client to server: untyped start-up messages, then typed ones; note a COMMIT."""
        while True:  # SSL/GSS requests (answered with one byte), then the start-up message
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            rest = await reader.readexactly(length - 8)
            up.write(head + rest)
            await up.drain()
            if code not in (SSL_REQUEST, GSS_REQUEST):
                break
        while True:
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            payload = await reader.readexactly(length - 4)
            if kind == b"Q" and payload.rstrip(b"\0").strip().upper() == b"COMMIT" and self.armed:
                self.armed -= 1
                commit_sent.set()
            up.write(kind + struct.pack("!i", length) + payload)
            await up.drain()

    async def _down(
        self, up: asyncio.StreamReader, writer: asyncio.StreamWriter, commit_sent: asyncio.Event
    ) -> None:
        """Server to client; once a cut COMMIT was sent, its answer (CommandComplete and
        ReadyForQuery) is read and dropped, and the client's connection is closed."""
        while True:
            data = await up.read(65536)
            if not data:
                writer.close()
                return
            if commit_sent.is_set():
                while b"Z" not in data:  # until the server said it is ready again
                    more = await up.read(65536)
                    if not more:
                        break
                    data += more
                self.cut += 1
                writer.transport.abort()
                return
            writer.write(data)
            await writer.drain()
