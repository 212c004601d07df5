"""The audit log's hash chain: sealing, retention and verification.

A request never touches the chain (no per-workspace lock on the request path): records are
committed unsealed, and `seal_pending` later links them, per workspace, in batches:
`seq = previous + 1`, `hash = sha256(canonical JSON of the content || previous hash)`. The
canonical form is one SQL function (`warden_audit_canonical`) used by sealing and verification
alike. Sealers may run concurrently with requests and with each other: a workspace's chain is
extended under a transaction-scoped advisory lock that others skip rather than wait for.

Why SECURITY DEFINER functions for sealing and retention, rather than a column UPDATE grant on
the hash columns plus a trigger guarding the content: the runtime role then holds no UPDATE or
DELETE on any audit table at all, so an application bug or an injected statement cannot rewrite
or drop history, not even the chain columns. The functions take no values from the caller that
end up in the chain (the hash is computed inside), pin `search_path`, and are owned by the
definer role, which holds UPDATE only on the four chain columns and DELETE only where retention
needs it. A trigger would be weaker here: it lives on the same table the owner can alter, and
it would still leave the runtime role an UPDATE privilege to guard.

Retention removes only a sealed prefix of a chain and records the cut (last removed seq and
hash), so verification continues from the new first record. Each chain's head is kept apart
(`audit_head`), so sequence numbers never restart, and published, signed, at every seal (see
`audit_anchor`). Verification is incremental, from the last position found intact. Both jobs
are plain coroutines for the worker's cron to call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.db.session import Database
from app.security.principal import WorkspaceContext
from app.services import audit_anchor
from app.unavailable import causes

BUSY = "55P03"  # warden_audit_verify: another verification of the workspace is running


async def seal_pending(
    db: Database,
    batch_size: int = 500,
    max_rounds: int = 100,
    *,
    settings: Settings | None = None,
    redis: Redis | None = None,
) -> int:
    """Link committed, unsealed records into their workspace chains; the number sealed.

    Each round is one short transaction sealing up to `batch_size` records per workspace; it
    stops when a round seals nothing (everything sealed, or held by a concurrent sealer). With
    `settings`, each new head is signed and published (log line, and Redis when given) after
    its round commits."""
    total = 0
    for _ in range(max_rounds):
        async with db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT workspace_id, sealed, head_seq, head_hash, sealed_at, from_seq, "
                "from_hash FROM warden_audit_seal($1)",
                batch_size,
            )
        sealed = sum(r["sealed"] for r in rows)
        if settings is not None and rows:
            await audit_anchor.publish(settings, redis, list(rows))
        total += sealed
        if sealed == 0:
            break
    return total


@dataclass(frozen=True)
class RetentionResult:
    removed: int
    cuts: list[tuple[uuid.UUID, int]]  # (workspace, new chain start - 1)


async def apply_retention(
    db: Database,
    batch_size: int = 1000,
    personal_days: int = 365,
    max_rounds: int = 100,
) -> RetentionResult:
    """Remove expired audit records (per workspace setting) in batches, recording each cut;
    also denials and user events older than `personal_days`."""
    removed, cuts = 0, []
    for _ in range(max_rounds):
        async with db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT workspace_id, removed, up_to_seq FROM warden_audit_retention($1, $2)",
                batch_size,
                personal_days,
            )
        round_removed = sum(r["removed"] for r in rows)
        removed += round_removed
        cuts += [(r["workspace_id"], r["up_to_seq"]) for r in rows]
        if round_removed == 0:
            break
    return RetentionResult(removed, cuts)


_REASONS = {
    "gap": "records are missing: the sequence jumps from {prior} to {seq}",
    "link": "the record does not link to the previous record's hash",
    "content": "the record's content does not match its hash (changed after sealing)",
    "tail": "records are missing at the end: the chain stops at seq {prior}, its head is {head}",
    "head": "the last record's hash is not the chain head's (the tail was replaced)",
}


class VerificationRunning(Exception):  # noqa: N818 - an outcome, not a failure
    """Another verification of the workspace holds its lock."""


async def verify_chain(
    ctx: WorkspaceContext,
    *,
    full: bool = False,
    settings: Settings | None = None,
    anchor: audit_anchor.Anchor | None = None,
    db: Database | None = None,
) -> dict[str, Any]:
    """Check the workspace's chain from the last verified position (`full`: from its first
    remaining record, or the last retention cut) to its head, and against `anchor` when one is
    given; report the first broken link, if any, and how many records are not sealed yet.
    With `db`, a chain found intact has its verified position moved to its head once this
    transaction commits (in a transaction of its own, on the primary).
    `VerificationRunning` when another verification of the workspace is under way."""
    session = ctx.session
    ws = {"ws": ctx.workspace_id}
    try:
        async with session.begin_nested():
            walk = (
                await session.execute(
                    text("SELECT * FROM warden_audit_verify(:full)"), {"full": full}
                )
            ).one()
    except DBAPIError as exc:
        if any(getattr(c, "sqlstate", None) == BUSY for c in causes(exc)):
            raise VerificationRunning() from None
        raise
    # Index-only reads (the first seq, the unsealed records): no scan of the sealed chain.
    counts = (
        await session.execute(
            text(
                "SELECT (SELECT min(seq) FROM audit_record WHERE workspace_id = :ws) AS first_seq, "
                "(SELECT count(*) FROM audit_record WHERE workspace_id = :ws AND hash IS NULL) "
                "AS unsealed"
            ),
            ws,
        )
    ).one()
    cut = (
        await session.execute(
            text(
                "SELECT up_to_seq, last_hash, cut_at FROM audit_cut WHERE workspace_id = :ws "
                "ORDER BY up_to_seq DESC LIMIT 1"
            ),
            ws,
        )
    ).one_or_none()
    head_seq = walk.head_seq
    first = counts.first_seq
    broken = None
    if walk.problem in ("gap", "link", "content"):
        broken = {
            "id": walk.broken_id,
            "seq": walk.broken_seq,
            "reason": _REASONS[walk.problem].format(prior=walk.prior_seq, seq=walk.broken_seq),
        }
    elif walk.problem in ("tail", "head"):
        broken = {
            "id": None,
            "seq": walk.prior_seq,
            "reason": _REASONS[walk.problem].format(prior=walk.prior_seq, head=head_seq),
        }
    deleted = walk.problem == "deleted"  # its trail purged; only the chain's head remains
    if broken is None and not deleted and head_seq is not None and db is not None:
        workspace_id, head_hash = ctx.workspace_id, walk.head_hash

        async def record_position() -> None:
            async with db.transaction() as own:
                await own.execute(
                    "SELECT warden_audit_verified($1, $2, $3)", workspace_id, head_seq, head_hash
                )

        ctx.tx.after_commit(record_position)
    anchored = None
    if anchor is not None and settings is not None:
        anchored = await audit_anchor.check(settings, session, anchor)
    return {
        "ok": broken is None and (anchored is None or anchored["ok"] is not False),
        "mode": "full" if full else "incremental",
        "checked": walk.checked,
        "verified_from": walk.from_seq,
        "sealed": (head_seq - (first or head_seq + 1) + 1) if head_seq else 0,
        "unsealed": counts.unsealed,
        "first_seq": first,
        "head": {"seq": head_seq, "hash": walk.head_hash.hex()} if head_seq else None,
        "cut": (
            {"up_to_seq": cut.up_to_seq, "last_hash": cut.last_hash.hex(), "cut_at": cut.cut_at}
            if cut
            else None
        ),
        "first_broken": broken,
        "deleted": deleted,
        "anchor": anchored,
    }
