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
hash), so verification continues from the new first record. Both jobs are plain coroutines for
the worker's cron to call.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from app.db.session import Database
from app.security.principal import WorkspaceContext


async def seal_pending(db: Database, batch_size: int = 500, max_rounds: int = 100) -> int:
    """Link committed, unsealed records into their workspace chains; the number sealed.

    Each round is one short transaction sealing up to `batch_size` records per workspace; it
    stops when a round seals nothing (everything sealed, or held by a concurrent sealer)."""
    total = 0
    for _ in range(max_rounds):
        async with db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT workspace_id, sealed FROM warden_audit_seal($1)", batch_size
            )
            sealed = sum(r["sealed"] for r in rows)
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


async def verify_chain(ctx: WorkspaceContext) -> dict[str, Any]:
    """Walk the workspace's chain from its first remaining record (or the last retention cut)
    and report the first broken link, if any, and how many records are not sealed yet."""
    session = ctx.session
    ws = {"ws": ctx.workspace_id}
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
