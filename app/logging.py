"""JSON logs, one object per line, carrying the request id, workspace and user of the request."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
workspace_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "workspace", default=None
)
user_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user", default=None)
# A worker's job: its task and kind (the workspace and user go in the two above).
task_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task", default=None)
kind_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("kind", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, var in (
            ("request_id", request_id_var),
            ("workspace", workspace_var),
            ("user", user_var),
            ("task_id", task_var),
            ("kind", kind_var),
        ):
            value = var.get()
            if value:
                out[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    # The JSON lines carry no source file, line, thread or process: skip collecting them. The
    # caller lookup walks the stack on every record, and from inside a request (the access
    # line) that stack is deep: it was most of the cost of logging one line.
    logging._srcfile = None  # type: ignore[attr-defined]  # noqa: SLF001 - the documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "arq"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
