"""Anchors: each workspace chain's head, signed and published outside the database.

At every seal the new head (workspace, seq, hash, time) is signed with an HMAC under a key
derived from the installation's secret, written as one structured log line and stored in Redis
(one key per workspace, only ever moved forward along the chain). Whoever rewrites the
database (truncates the tail, replaces it with a re-hashed chain) cannot make it agree with an
anchor published before: verification compares the database with the latest anchor (Redis) or
an exported one (`warden audit anchor`, `warden audit verify --anchor FILE`).
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.security import keyring

log = logging.getLogger("warden.audit.anchor")
PURPOSE = "audit-anchor"

# Store the new anchor only if it moves the workspace's anchor forward along the chain: an older
# head (a slower sealer publishing late) is ignored; a head that continued from a point before
# the stored anchor, or from the same seq with another hash, means the chain was cut back or
# replaced since: the stored anchor (the evidence) is kept and the divergence reported.
_ADVANCE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local a = cjson.decode(cur)
  local seq = tonumber(a['seq'])
  if seq >= tonumber(ARGV[2]) then return 0 end
  local from = tonumber(ARGV[3])
  if from < seq or (from == seq and ARGV[4] ~= a['hash']) then return -1 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Anchor:
    workspace_id: str
    seq: int
    hash: str  # hex
    at: str  # ISO 8601, UTC
    sig: str = ""

    def message(self) -> bytes:
        fields = (self.workspace_id, str(self.seq), self.hash, self.at)
        return ":".join(("warden-audit-anchor", "v1", *fields)).encode()

    def json(self) -> str:
        return orjson.dumps(asdict(self)).decode()


def sign(
    settings: Settings, workspace_id: uuid.UUID | str, seq: int, head: bytes, at: datetime
) -> Anchor:
    unsigned = Anchor(str(workspace_id), int(seq), head.hex(), at.isoformat())
    sig = keyring.keyed_hash(settings, PURPOSE, unsigned.message().decode()).hex()
    return Anchor(unsigned.workspace_id, unsigned.seq, unsigned.hash, unsigned.at, sig)


def authentic(settings: Settings, anchor: Anchor) -> bool:
    expected = keyring.keyed_hash(settings, PURPOSE, anchor.message().decode()).hex()
    return hmac.compare_digest(expected, anchor.sig)


def parse(line: str) -> Anchor:
    """One exported anchor (a JSON line); ValueError when it is not one."""
    try:
        data = orjson.loads(line)
        return Anchor(
            str(uuid.UUID(str(data["workspace_id"]))),
            int(data["seq"]),
            str(data["hash"]),
            str(data["at"]),
            str(data["sig"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an audit anchor: {exc}") from None


def anchor_prefix(settings: Settings) -> str:
    """Where the signed heads live in Redis (one key per workspace under it)."""
    return f"{settings.redis_key_prefix}:audit-anchor"


def key(settings: Settings, workspace_id: uuid.UUID | str) -> str:
    return f"{anchor_prefix(settings)}:{workspace_id}"


async def publish(settings: Settings, redis: Redis | None, heads: list[Any]) -> int:
    """Sign and publish each sealed head (rows of `warden_audit_seal`); how many moved their
    Redis anchor forward. The log line is written whatever Redis says."""
    moved = 0
    for row in heads:
        if not row["sealed"]:
            continue
        anchor = sign(
            settings, row["workspace_id"], row["head_seq"], row["head_hash"], row["sealed_at"]
        )
        log.info("audit anchor", extra={"audit_anchor": asdict(anchor)})
        if redis is None:
            continue
        from_hash = row["from_hash"].hex() if row["from_hash"] else ""
        result = await redis.eval(  # type: ignore[misc]
            _ADVANCE,
            1,
            key(settings, anchor.workspace_id),
            anchor.json(),
            str(anchor.seq),
            str(row["from_seq"]),
            from_hash,
        )
        if int(result) == -1:
            log.error(
                "audit chain diverges from its published anchor",
                extra={"audit_anchor": asdict(anchor), "from_seq": int(row["from_seq"])},
            )
        moved += int(result) == 1
    return moved


async def latest(settings: Settings, redis: Redis, workspace_id: uuid.UUID | str) -> Anchor | None:
    raw = await redis.get(key(settings, workspace_id))
    return parse(raw.decode() if isinstance(raw, bytes) else raw) if raw else None


async def all_latest(settings: Settings, redis: Redis) -> list[Anchor]:
    found = []
    async for name in redis.scan_iter(match=f"{anchor_prefix(settings)}:*", count=500):
        raw = await redis.get(name)
        if raw:
            found.append(parse(raw.decode() if isinstance(raw, bytes) else raw))
    return sorted(found, key=lambda a: a.workspace_id)


async def check(settings: Settings, session: AsyncSession, anchor: Anchor) -> dict[str, Any]:
    """Compare the database's chain of the workspace in context with `anchor`: the head must
    have reached it, and the record (or retention cut) at its seq must carry its hash."""
    out: dict[str, Any] = {"seq": anchor.seq, "hash": anchor.hash, "at": anchor.at, "ok": False}
    if not authentic(settings, anchor):
        out["reason"] = "the anchor's signature is not valid (not this installation's key)"
        return out
    ws = {"ws": uuid.UUID(anchor.workspace_id)}
    head = (
        await session.execute(text("SELECT seq, hash FROM audit_head WHERE workspace_id = :ws"), ws)
    ).one_or_none()
    if head is None or head.seq < anchor.seq:
        at = head.seq if head else 0
        if (await session.execute(text("SELECT pg_is_in_recovery()"))).scalar():
            out.update(ok=None, note=f"not checked: this replica's head (seq {at}) lags")
            return out
        out["reason"] = (
            f"the chain was truncated: the anchor of {anchor.at} says its head was seq "
            f"{anchor.seq}, the database's head is seq {at}"
        )
        return out
    found = (
        await session.execute(
            text("SELECT hash FROM audit_record WHERE workspace_id = :ws AND seq = :seq"),
            {**ws, "seq": anchor.seq},
        )
    ).scalar_one_or_none()
    if found is None:
        gone = (
            await session.execute(
                text("SELECT NOT EXISTS (SELECT FROM workspace WHERE id = :ws)"), ws
            )
        ).scalar()
        if gone:
            out.update(ok=True, note="the workspace was deleted and its trail purged")
            return out
        cut = (
            await session.execute(
                text(
                    "SELECT up_to_seq, last_hash FROM audit_cut WHERE workspace_id = :ws "
                    "ORDER BY up_to_seq DESC LIMIT 1"
                ),
                ws,
            )
        ).one_or_none()
        if cut is None or cut.up_to_seq < anchor.seq:
            out["reason"] = f"the anchored record (seq {anchor.seq}) is missing from the database"
            return out
        if cut.up_to_seq > anchor.seq:
            out.update(ok=True, note="the anchored record was removed by retention")
            return out
        found = cut.last_hash
    if found.hex() != anchor.hash:
        out["reason"] = (
            f"the chain was replaced: record seq {anchor.seq} does not carry the anchored hash "
            f"(anchor of {anchor.at})"
        )
        return out
    out["ok"] = True
    return out
