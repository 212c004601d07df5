"""Writing the audit trail's rows: one record per workspace call, one event per call outside a
workspace, one denial per refused call.

Invariant: the runtime role inserts into none of these tables. A record, an event and a denial
are written by a definer function that takes its id and time from the database and its
workspace and user from the transaction's context (a record naming another is refused), so a
compromised process can neither backdate nor misattribute one; the chain columns are the
sealer's.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.db.transaction import Transaction

_APPEND_RECORD = "SELECT warden_audit_append($1::jsonb)"
_USER_EVENT = "SELECT warden_user_event($1::jsonb)"


def _json(values: dict[str, Any]) -> str:
    clean = {k: v for k, v in values.items() if k not in ("id", "created_at")}
    return orjson.dumps(clean, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


async def add_record(tx: Transaction, values: dict[str, Any]) -> None:
    """One audit record, in the unit of work's transaction, of the workspace and by the user
    in context (one prepared statement, planned once per connection)."""
    await tx.execute(_APPEND_RECORD, _json(values))


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
    await tx.execute(_USER_EVENT, _json(values))


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
