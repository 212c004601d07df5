"""The worker's own `/metrics` (and `/healthz`, for container health checks), served on its
event loop at `WARDEN_WORKER_METRICS_PORT`: a minimal HTTP/1.0 responder, GET only."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app import metrics
from app.config import Settings

log = logging.getLogger("warden.worker")
MAX_HEAD = 16_384


def _response(status: str, body: bytes, media_type: str = "text/plain; charset=utf-8") -> bytes:
    head = f"HTTP/1.0 {status}\r\nContent-Type: {media_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


async def _answer(ctx: dict[str, Any], head: bytes) -> bytes:
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    path = rest.partition(" ")[0].partition("?")[0]
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    if method != "GET":
        return _response("405 Method Not Allowed", b"GET only\n")
    if path == "/healthz":
        return _response("200 OK", b"ok\n")
    if path != "/metrics":
        return _response("404 Not Found", b"not found\n")
    settings: Settings = ctx["settings"]
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not metrics.authorized(token, headers.get("authorization")):
        return _response("401 Unauthorized", b"metrics need the metrics token\n")
    await metrics.refresh(ctx["db"], ctx["redis"], settings.job_queue_name)
    body, media_type = metrics.render()
    return _response("200 OK", body, media_type)


async def start(ctx: dict[str, Any], settings: Settings) -> asyncio.Server | None:
    if not settings.worker_metrics_port:
        return None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            writer.write(await _answer(ctx, head[:MAX_HEAD]))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - one bad scrape must not stop the worker
            log.warning("metrics request failed", exc_info=True)
        finally:
            writer.close()

    server = await asyncio.start_server(
        handle, settings.worker_metrics_host, settings.worker_metrics_port
    )
    log.info(
        "serving /metrics",
        extra={"host": settings.worker_metrics_host, "port": settings.worker_metrics_port},
    )
    return server
