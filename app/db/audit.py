"""Writing the audit trail's rows: one record per workspace call, one event per call outside a
workspace, one denial per refused call.

Invariant: the runtime role may only INSERT the content columns of a record or an event: their
id and time are set by the database (a trigger, which also refuses a record by any user but
the one in context), the chain columns by the sealer; denials are written only through
`warden_record_denial`, under the actor in context.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.db.roles import RUNTIME_COLUMN_PRIVILEGES
from app.db.transaction import Transaction

# The columns a request writes: what the runtime role may INSERT (every content column, pinned
# against the table by a test).
RECORD_COLUMNS = RUNTIME_COLUMN_PRIVILEGES["audit_record"]["INSERT"]
EVENT_COLUMNS = RUNTIME_COLUMN_PRIVILEGES["user_event"]["INSERT"]
_JSON_COLUMNS = frozenset({"path_params", "query_params", "body", "state"})


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return "INSERT INTO {} ({}) VALUES ({})".format(
        table,
        ", ".join(columns),
        ", ".join(
            f"${i}::jsonb" if c in _JSON_COLUMNS else f"${i}"
            for i, c in enumerate(columns, start=1)
        ),
    )


_INSERT_RECORD = _insert("audit_record", RECORD_COLUMNS)
_INSERT_EVENT = _insert("user_event", EVENT_COLUMNS)


def _jsonb(value: Any) -> str | None:
    """JSON text for a JSONB parameter; None stays SQL NULL (no value, not JSON null)."""
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def add_record(tx: Transaction, values: dict[str, Any]) -> None:
    """One audit record, in the unit of work's transaction: one prepared INSERT on its
    connection (the statement is the same for every call, so it is planned once per
    connection)."""
    await tx.execute(
        _INSERT_RECORD,
        *(_jsonb(values.get(c)) if c in _JSON_COLUMNS else values.get(c) for c in RECORD_COLUMNS),
    )


ITEMS = "audit.items"


def note_item(
    tx: Transaction, action: str, resource_type: str, resource_id: Any, state: Any
) -> None:
    """A call that changed several resources (a bulk approval) leaves, besides its own record,
    one record per resource with its resulting `state`, so each one's history shows it."""
    tx.info.setdefault(ITEMS, []).append((action, resource_type, resource_id, state))


async def add_items(tx: Transaction, record: dict[str, Any]) -> None:
    """The records `note_item` asked for, as children of the call's `record`."""
    for action, resource_type, resource_id, state in tx.info.pop(ITEMS, ()):
        item = {**record, "action": action, "body": None}
        item.update(resource_type=resource_type, resource_id=resource_id, state=state)
        await add_record(tx, item)


async def add_user_event(tx: Transaction, values: dict[str, Any]) -> None:
    """One event in the user's own security log (the user is the one in context)."""
    values = {"path_params": {}, "query_params": {}, **values}
    await tx.execute(
        _INSERT_EVENT,
        *(_jsonb(values.get(c)) if c in _JSON_COLUMNS else values.get(c) for c in EVENT_COLUMNS),
    )


_DENIAL_ARGS = (
    "status",
    "reason",
    "method",
    "path",
    "slug",
    "ip",
    "user_agent",
    "request_id",
)
_RECORD_DENIAL = "SELECT warden_record_denial({})".format(
    ", ".join(f"${i}" for i in range(1, len(_DENIAL_ARGS) + 1))
)


async def add_denial(tx: Transaction, values: dict[str, Any]) -> None:
    """File a denial under the user in the transaction's context (or under nobody)."""
    await tx.execute(_RECORD_DENIAL, *(values[k] for k in _DENIAL_ARGS))
