"""The audit trail's database side: writing records, the hash chain, retention, and reading.

Writing. `app.security.deps` adds one record per authorized, successful workspace call inside
the request's transaction (one INSERT, before commit), and one user event per call outside a
workspace; auth writes login/refresh/register events in its own transactions. Denials go to the
actor's own log through `warden_record_denial` (never to the target workspace's).

The chain. A request never touches the chain (no per-workspace lock on the request path):
records are committed unsealed, and `seal_pending` later links them, per workspace, in batches:
`seq = previous + 1`, `hash = sha256(canonical JSON of the content || previous hash)`. The
canonical form is one SQL function (`warden_audit_canonical`) used by sealing and verification
alike. Sealers may run concurrently with requests and with each other: a workspace's chain is
extended under a transaction-scoped advisory lock that others skip rather than wait for.

Why SECURITY DEFINER functions for sealing and retention, rather than a column UPDATE grant on
the hash columns plus a trigger guarding the content: the runtime role then holds no UPDATE or
DELETE on any audit table at all (a test proves both are refused), so an application bug or an
injected statement cannot rewrite or drop history, not even the chain columns. The functions
take no values from the caller that end up in the chain (the hash is computed inside), pin
`search_path`, and are owned by the definer role, which holds UPDATE only on the four chain
columns and DELETE only where retention needs it (app.db.roles). A trigger would be weaker
here: it lives on the same table the owner can alter, and it would still leave the runtime role
an UPDATE privilege to guard.

Retention removes only a sealed prefix of a chain and records the cut (last removed seq and
hash), so verification continues from the new first record. Both jobs are plain coroutines
(`seal_pending`, `apply_retention`) for the worker's cron to call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.db.base import new_id
from app.db.models import AuditDenial, AuditRecord, UserEvent
from app.db.roles import RUNTIME_COLUMN_PRIVILEGES
from app.db.transaction import Transaction
from app.query import Enum, Field, Integer, ListQuery, Resource, Text, Timestamp, Uuid
from app.query.types import Boolean

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _call_fields(model: Any) -> dict[str, Field]:
    return {
        "id": Field(model.id, Uuid()),
        "created_at": Field(model.created_at, Timestamp()),
        "action": Field(model.action, Text()),
        "method": Field(model.method, Enum(METHODS)),
        "path": Field(model.path, Text()),
        "resource_type": Field(model.resource_type, Text(), nullable=True),
        "resource_id": Field(model.resource_id, Uuid(), nullable=True),
        "status": Field(model.status, Integer()),
        "api_key_id": Field(model.api_key_id, Uuid(), nullable=True),
        "source_ip": Field(model.source_ip, Text(), nullable=True),
        "user_agent": Field(model.user_agent, Text(), nullable=True),
        "request_id": Field(model.request_id, Text(), nullable=True),
    }


AUDIT = Resource(
    name="audit",
    base=lambda: select(AuditRecord),
    fields={
        **_call_fields(AuditRecord),
        "user_id": Field(AuditRecord.user_id, Uuid()),
        "seq": Field(AuditRecord.seq, Integer(), nullable=True),
        "sealed": Field(AuditRecord.hash.isnot(None), Boolean(), sortable=False),
    },
    default_sort=("-id",),
)

USER_EVENTS = Resource(
    name="user_event",
    base=lambda: select(UserEvent),
    fields=_call_fields(UserEvent),
    default_sort=("-id",),
)

DENIALS = Resource(
    name="denial",
    base=lambda: select(AuditDenial),
    fields={
        "id": Field(AuditDenial.id, Uuid()),
        "created_at": Field(AuditDenial.created_at, Timestamp()),
        "status": Field(AuditDenial.status, Integer()),
        "method": Field(AuditDenial.method, Enum(METHODS)),
        "path": Field(AuditDenial.path, Text()),
        "workspace_slug": Field(AuditDenial.workspace_slug, Text(), nullable=True),
        "source_ip": Field(AuditDenial.source_ip, Text(), nullable=True),
        "request_id": Field(AuditDenial.request_id, Text(), nullable=True),
    },
    default_sort=("-id",),
)


# Writing


# The columns a request writes: what the runtime role may INSERT (every content column, pinned
# against the table by a test) but `created_at`, the server's `now()`.
RECORD_COLUMNS = tuple(
    c for c in RUNTIME_COLUMN_PRIVILEGES["audit_record"]["INSERT"] if c != "created_at"
)
_JSON_COLUMNS = frozenset({"path_params", "query_params", "body", "state"})
_INSERT_RECORD = "INSERT INTO audit_record ({}) VALUES ({})".format(
    ", ".join(RECORD_COLUMNS),
    ", ".join(
        f"${i}::jsonb" if c in _JSON_COLUMNS else f"${i}"
        for i, c in enumerate(RECORD_COLUMNS, start=1)
    ),
)


def _jsonb(value: Any) -> str | None:
    """JSON text for a JSONB parameter; None stays SQL NULL (no value, not JSON null)."""
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def add_record(tx: Transaction, values: dict[str, Any]) -> None:
    """One audit record, in the request's transaction: one prepared INSERT on its connection
    (the statement is the same for every call, so the driver plans it once per connection)."""
    row = {**values, "id": values.get("id") or new_id()}
    await tx.execute(
        _INSERT_RECORD,
        *(_jsonb(row.get(c)) if c in _JSON_COLUMNS else row.get(c) for c in RECORD_COLUMNS),
    )


async def add_user_event(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(UserEvent).values(values))


_DENIAL_ARGS = (
    "id",
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


# The chain


async def seal_pending(
    sessionmaker: async_sessionmaker[AsyncSession], batch_size: int = 500, max_rounds: int = 100
) -> int:
    """Link committed, unsealed records into their workspace chains; the number sealed.

    Each round is one short transaction sealing up to `batch_size` records per workspace; it
    stops when a round seals nothing (everything sealed, or held by a concurrent sealer)."""
    total = 0
    for _ in range(max_rounds):
        async with sessionmaker() as session, session.begin():
            rows = await session.execute(
                text("SELECT workspace_id, sealed FROM warden_audit_seal(:batch)"),
                {"batch": batch_size},
            )
            sealed = sum(r.sealed for r in rows)
        total += sealed
        if sealed == 0:
            break
    return total


@dataclass(frozen=True)
class RetentionResult:
    removed: int
    cuts: list[tuple[uuid.UUID, int]]  # (workspace, new chain start - 1)


async def apply_retention(
    sessionmaker: async_sessionmaker[AsyncSession],
    batch_size: int = 1000,
    personal_days: int = 365,
    max_rounds: int = 100,
) -> RetentionResult:
    """Remove expired audit records (per workspace setting) in batches, recording each cut;
    also denials and user events older than `personal_days`."""
    removed, cuts = 0, []
    for _ in range(max_rounds):
        async with sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    text(
                        "SELECT workspace_id, removed, up_to_seq "
                        "FROM warden_audit_retention(:batch, :days)"
                    ),
                    {"batch": batch_size, "days": personal_days},
                )
            ).all()
        round_removed = sum(r.removed for r in rows)
        removed += round_removed
        cuts += [(r.workspace_id, r.up_to_seq) for r in rows]
        if round_removed == 0:
            break
    return RetentionResult(removed, cuts)


_BROKEN_SQL = text(r"""
    WITH cut AS (
        SELECT c.up_to_seq, c.last_hash FROM audit_cut c WHERE c.workspace_id = :ws
        ORDER BY c.up_to_seq DESC LIMIT 1
    ), chain AS (
        SELECT a.id, a.seq, a.prev_hash, a.hash,
               sha256(convert_to(warden_audit_canonical(to_jsonb(a)), 'UTF8')
                      || coalesce(a.prev_hash, '\x'::bytea)) AS computed,
               coalesce(lag(a.seq) OVER w, (SELECT up_to_seq FROM cut), 0) AS prior_seq,
               CASE WHEN row_number() OVER w = 1 THEN (SELECT last_hash FROM cut)
                    ELSE lag(a.hash) OVER w END AS prior_hash
        FROM audit_record a WHERE a.workspace_id = :ws AND a.seq IS NOT NULL
        WINDOW w AS (ORDER BY a.seq)
    )
    SELECT id, seq, prior_seq,
           CASE WHEN seq <> prior_seq + 1 THEN 'gap'
                WHEN prev_hash IS DISTINCT FROM prior_hash THEN 'link'
                WHEN hash IS DISTINCT FROM computed THEN 'content' END AS problem
    FROM chain
    WHERE seq <> prior_seq + 1 OR prev_hash IS DISTINCT FROM prior_hash
       OR hash IS DISTINCT FROM computed
    ORDER BY seq LIMIT 1
""")

_REASONS = {
    "gap": "records are missing: the sequence jumps from {prior} to {seq}",
    "link": "the record does not link to the previous record's hash",
    "content": "the record's content does not match its hash (changed after sealing)",
}


async def verify_chain(session: AsyncSession, workspace_id: uuid.UUID) -> dict[str, Any]:
    """Walk the workspace's chain from its first remaining record (or the last retention cut)
    and report the first broken link, if any, and how many records are not sealed yet."""
    ws = {"ws": workspace_id}
    counts = (
        await session.execute(
            text(
                "SELECT count(*) FILTER (WHERE seq IS NOT NULL) AS sealed, "
                "count(*) FILTER (WHERE hash IS NULL) AS unsealed, min(seq) AS first_seq "
                "FROM audit_record WHERE workspace_id = :ws"
            ),
            ws,
        )
    ).one()
    head = (
        await session.execute(
            text(
                "SELECT seq, hash FROM audit_record WHERE workspace_id = :ws "
                "AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
            ),
            ws,
        )
    ).one_or_none()
    cut = (
        await session.execute(
            text(
                "SELECT up_to_seq, last_hash, cut_at FROM audit_cut WHERE workspace_id = :ws "
                "ORDER BY up_to_seq DESC LIMIT 1"
            ),
            ws,
        )
    ).one_or_none()
    broken = (await session.execute(_BROKEN_SQL, ws)).one_or_none()
    return {
        "ok": broken is None,
        "sealed": counts.sealed,
        "unsealed": counts.unsealed,
        "first_seq": counts.first_seq,
        "head": {"seq": head.seq, "hash": head.hash.hex() if head.hash else None} if head else None,
        "cut": (
            {"up_to_seq": cut.up_to_seq, "last_hash": cut.last_hash.hex(), "cut_at": cut.cut_at}
            if cut
            else None
        ),
        "first_broken": (
            {
                "id": broken.id,
                "seq": broken.seq,
                "reason": _REASONS[broken.problem].format(prior=broken.prior_seq, seq=broken.seq),
            }
            if broken
            else None
        ),
    }


# Reading


async def list_records(session: AsyncSession, query: ListQuery) -> list[AuditRecord]:
    return list((await session.execute(query.statement())).scalars())


def _history_base() -> Any:
    """Write calls on one resource (the route adds resource_type and resource_id as path
    filters), each with the last state an earlier write left (`before`)."""
    prior = aliased(AuditRecord)
    before = (
        select(prior.state)
        .where(
            prior.workspace_id == AuditRecord.workspace_id,
            prior.resource_id == AuditRecord.resource_id,
            prior.resource_type == AuditRecord.resource_type,
            prior.method.in_(WRITE_METHODS),
            prior.state.isnot(None),
            prior.id < AuditRecord.id,
        )
        .order_by(prior.id.desc())
        .limit(1)
        .correlate(AuditRecord)
        .scalar_subquery()
    )
    return select(AuditRecord, before.label("before")).where(AuditRecord.method.in_(WRITE_METHODS))


HISTORY = Resource(
    name="history",
    base=_history_base,
    fields={
        "id": Field(AuditRecord.id, Uuid()),
        "created_at": Field(AuditRecord.created_at, Timestamp()),
        "action": Field(AuditRecord.action, Text()),
        "user_id": Field(AuditRecord.user_id, Uuid()),
        "resource_type": Field(AuditRecord.resource_type, Text(), sortable=False),
        "resource_id": Field(AuditRecord.resource_id, Uuid(), sortable=False),
    },
)


def changes(before: Any, after: Any, deleted: bool) -> dict[str, dict[str, Any]]:
    """Fields whose value differs between two states, as {field: {before, after}}."""
    old = before if isinstance(before, dict) else {}
    if deleted:
        return {k: {"before": v, "after": None} for k, v in old.items()}
    if not isinstance(after, dict):
        return {}
    return {
        k: {"before": old.get(k), "after": v}
        for k, v in after.items()
        if k not in old or old[k] != v
    }


async def history(session: AsyncSession, query: ListQuery) -> list[dict[str, Any]]:
    rows = (await session.execute(query.statement())).all()
    out = []
    for record, before in rows:
        out.append(
            {
                "id": record.id,
                "created_at": record.created_at,
                "action": record.action,
                "user_id": record.user_id,
                "api_key_id": record.api_key_id,
                "request_id": record.request_id,
                "resource_type": record.resource_type,
                "changes": changes(before, record.state, record.method == "DELETE"),
            }
        )
    return out


async def list_user_rows(
    session: AsyncSession, query: ListQuery, model: Any, user_id: uuid.UUID
) -> list[Any]:
    """The caller's own user events or denials (RLS on `user_id` says the same)."""
    stmt = query.statement(query.resource.base().where(model.user_id == user_id))
    return list((await session.execute(stmt)).scalars())
