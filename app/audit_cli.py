"""`warden audit anchor` and `warden audit verify`: exporting the signed chain heads, and
checking the database against them (an exported file, else the latest anchors in Redis).

Both connect as the runtime role, in each workspace's context in turn; a workspace is named by
its id or its slug (a slug is found among the workspaces that have an anchor).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from app.config import Settings, get_settings
from app.db.session import Database
from app.db.tenant import apply_context
from app.services import audit_anchor, audit_chain

NOBODY = uuid.UUID(int=0)


def add_parser(sub: Any) -> None:
    audit = sub.add_parser("audit", help="export audit chain anchors; verify the chains")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    anchor = commands.add_parser("anchor", help="print the signed chain heads (JSON lines)")
    anchor.add_argument("--workspace", help="only this workspace (slug or id)")
    anchor.set_defaults(func=cmd_anchor)
    verify = commands.add_parser(
        "verify", help="verify the chains, against exported anchors or the latest in Redis"
    )
    verify.add_argument("--anchor", type=Path, help="a file of `warden audit anchor` lines")
    verify.add_argument("--workspace", help="only this workspace (slug or id)")
    verify.add_argument("--full", action="store_true", help="re-hash every record")
    verify.set_defaults(func=cmd_verify)


def _settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


async def _slug(db: Database, workspace_id: str) -> str | None:
    async with db.transaction() as tx:
        await apply_context(tx, uuid.UUID(workspace_id), NOBODY)
        found = await tx.fetch("SELECT slug FROM workspace WHERE id = $1", uuid.UUID(workspace_id))
    return str(found[0]["slug"]) if found else None


async def _select(
    db: Database, anchors: list[audit_anchor.Anchor], wanted: str | None
) -> list[audit_anchor.Anchor]:
    if wanted is None:
        return anchors
    try:
        return [a for a in anchors if a.workspace_id == str(uuid.UUID(wanted))]
    except ValueError:
        return [a for a in anchors if await _slug(db, a.workspace_id) == wanted]


async def _anchor(settings: Settings, wanted: str | None) -> int:
    db = Database.from_settings(settings, pool_size=1)
    redis = Redis.from_url(str(settings.redis_url))
    try:
        anchors = await _select(db, await audit_anchor.all_latest(settings, redis), wanted)
    finally:
        await redis.aclose()
        await db.dispose()
    for anchor in anchors:
        print(anchor.json())
    if wanted is not None and not anchors:
        print(f"warden: no anchor for workspace {wanted}", file=sys.stderr)
        return 1
    return 0


def cmd_anchor(args: argparse.Namespace) -> int:
    return asyncio.run(_anchor(_settings(), args.workspace))


async def _verify_one(
    db: Database, settings: Settings, anchor: audit_anchor.Anchor, full: bool
) -> dict[str, Any]:
    async with db.transaction() as tx:
        await apply_context(tx, uuid.UUID(anchor.workspace_id), NOBODY)
        ctx = _Context(tx, uuid.UUID(anchor.workspace_id))
        try:
            result = await audit_chain.verify_chain(
                ctx,  # type: ignore[arg-type]
                full=full,
                settings=settings,
                anchor=anchor,
                db=db,
            )
        except audit_chain.VerificationRunning:
            return {"workspace_id": anchor.workspace_id, "ok": False, "busy": True}
    reasons = [result["first_broken"]["reason"]] if result["first_broken"] else []
    if result["anchor"] and result["anchor"]["ok"] is False:
        reasons.append(result["anchor"]["reason"])
    return {"workspace_id": anchor.workspace_id, **result, "reasons": reasons}


class _Context:
    """What verification uses of a workspace context: the transaction and the workspace."""

    def __init__(self, tx: Any, workspace_id: uuid.UUID) -> None:
        self.tx = tx
        self.workspace_id = workspace_id

    @property
    def session(self) -> Any:
        return self.tx.session


async def _verify(settings: Settings, file: Path | None, wanted: str | None, full: bool) -> int:
    db = Database.from_settings(settings, pool_size=2)  # the check, and recording its position
    redis = Redis.from_url(str(settings.redis_url)) if file is None else None
    try:
        if file is not None:
            lines = (await asyncio.to_thread(file.read_text)).splitlines()
            anchors = [audit_anchor.parse(line) for line in lines if line.strip()]
        else:
            assert redis is not None
            anchors = await audit_anchor.all_latest(settings, redis)
        anchors = await _select(db, anchors, wanted)
        failed = 0
        for anchor in anchors:
            result = await _verify_one(db, settings, anchor, full)
            failed += not result["ok"]
            print(orjson.dumps(result, default=str).decode())
    finally:
        if redis is not None:
            await redis.aclose()
        await db.dispose()
    if not anchors:
        print("warden: no anchors to verify against", file=sys.stderr)
        return 1
    return 1 if failed else 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_verify(_settings(), args.anchor, args.workspace, args.full))
    except (OSError, ValueError) as exc:
        print(f"warden: {exc}", file=sys.stderr)
        return 2
