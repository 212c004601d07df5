"""Invitations: an admin invites an email address with a role; whoever signs in with that
address and presents the one-time token becomes a member.

Giving a role by invitation follows the same no-escalation rule as adding a member. The token
(`<workspace>.<invitation>.<secret>`) is shown once; only its SHA-256 is stored. Acceptance
crosses from the user into the workspace through one narrow definer function, which locks the
invitation, checks token, email, expiry and state, and writes the membership and the mark of
use together: an expired, revoked, used or someone else's token changes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, text

from app.db.base import new_id
from app.db.models import Invitation, Membership
from app.db.models.invitation import INVITATION_STATES
from app.db.transaction import Transaction
from app.errors import Conflict, NotFound
from app.jobs import NOTIFY_INVITATION
from app.query import Enum, Field, ListQuery, Resource, Text, Timestamp, Uuid
from app.schemas.change_management import InvitationCreate
from app.security.permissions import ROLE_NAMES
from app.security.principal import UserContext, WorkspaceContext
from app.services import notifications
from app.services.roles import ensure_caller_may_give, resolve_role, role_access
from app.services.users import user_by_email


def _state() -> Any:
    return case(
        (Invitation.accepted_at.isnot(None), "accepted"),
        (Invitation.revoked_at.isnot(None), "revoked"),
        (Invitation.expires_at <= func.now(), "expired"),
        else_="pending",
    )


INVITATIONS = Resource(
    name="invitation",
    base=lambda: select(Invitation),
    fields={
        "id": Field(Invitation.id, Uuid()),
        "email": Field(Invitation.email, Text()),
        "role": Field(Invitation.role, Enum(ROLE_NAMES), nullable=True),
        "custom_role_id": Field(Invitation.custom_role_id, Uuid(), nullable=True),
        "state": Field(_state(), Enum(INVITATION_STATES), sortable=False),
        "created_by": Field(Invitation.created_by, Uuid()),
        "created_at": Field(Invitation.created_at, Timestamp()),
        "expires_at": Field(Invitation.expires_at, Timestamp()),
        "accepted_at": Field(Invitation.accepted_at, Timestamp(), nullable=True),
        "revoked_at": Field(Invitation.revoked_at, Timestamp(), nullable=True),
    },
    default_sort=("-id",),
)


def state_of(invitation: Invitation, now: datetime | None = None) -> str:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= (now or datetime.now(UTC)):
        return "expired"
    return "pending"


def invitation_out(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "email": invitation.email,
        "role": invitation.role,
        "custom_role_id": invitation.custom_role_id,
        "state": state_of(invitation),
        "created_by": invitation.created_by,
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
        "accepted_at": invitation.accepted_at,
        "accepted_by": invitation.accepted_by,
        "revoked_at": invitation.revoked_at,
    }


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _parse(token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    parts = token.split(".")
    if len(parts) != 3 or not 20 <= len(parts[2]) <= 100:
        return None
    try:
        return uuid.UUID(hex=parts[0]), uuid.UUID(hex=parts[1])
    except ValueError:
        return None


async def list_invitations(ctx: WorkspaceContext, query: ListQuery) -> list[dict[str, Any]]:
    rows = (await ctx.session.execute(query.statement())).scalars()
    return [invitation_out(i) for i in rows]


async def _get(ctx: WorkspaceContext, invitation_id: uuid.UUID) -> Invitation:
    stmt = (
        select(Invitation)
        .where(Invitation.id == invitation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    invitation = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if invitation is None:
        raise NotFound("Invitation not found")
    return invitation


async def create_invitation(
    ctx: WorkspaceContext, data: InvitationCreate, ttl_hours: int
) -> dict[str, Any]:
    """Invite `email` with a role the caller may give (403 otherwise); 409 when they are
    already a member or already hold a pending invitation."""
    email = data.email.lower()
    builtin, custom_id, custom = await resolve_role(ctx, data.role)
    user = await user_by_email(ctx, email)
    target = await role_access(ctx, builtin, custom, user.attributes if user else {})
    label = custom.name if custom else data.role
    await ensure_caller_may_give(ctx, target, f"invite someone as '{label}'")
    if user is not None:
        member = select(Membership.user_id).where(Membership.user_id == user.user_id)
        if (await ctx.session.execute(member)).first() is not None:
            raise Conflict("This user is already a member")
    pending = select(Invitation.id).where(
        Invitation.email == email,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > func.now(),
    )
    if (await ctx.session.execute(pending)).first() is not None:
        raise Conflict("This email already has a pending invitation; revoke it first")
    invitation_id = new_id()
    token = f"{ctx.workspace_id.hex}.{invitation_id.hex}.{secrets.token_urlsafe(32)}"
    invitation = Invitation(
        id=invitation_id,
        email=email,
        role=builtin,
        custom_role_id=custom_id,
        token_hash=token_hash(token),
        created_by=ctx.user_id,
        expires_at=datetime.now(UTC) + timedelta(hours=ttl_hours),
    )
    ctx.session.add(invitation)
    await ctx.session.flush()
    await notifications.queue(ctx, NOTIFY_INVITATION, "received", invitation_id=invitation.id)
    await ctx.session.refresh(invitation)
    return {**invitation_out(invitation), "token": token}


async def get_invitation(ctx: WorkspaceContext, invitation_id: uuid.UUID) -> dict[str, Any]:
    stmt = select(Invitation).where(Invitation.id == invitation_id)
    invitation = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if invitation is None:
        raise NotFound("Invitation not found")
    return invitation_out(invitation)


async def revoke_invitation(ctx: WorkspaceContext, invitation_id: uuid.UUID) -> None:
    """A pending (or expired) invitation can no longer be accepted; a used one stays used."""
    invitation = await _get(ctx, invitation_id)
    state = state_of(invitation)
    if state in ("accepted", "revoked"):
        raise Conflict(f"The invitation is already {state}", state=state)
    invitation.revoked_at, invitation.revoked_by = datetime.now(UTC), ctx.user_id
    await ctx.session.flush()


ACCEPT_SQL = text("SELECT outcome, workspace_slug FROM warden_accept_invitation(:ws, :id, :hash)")
REFUSALS = {
    "used": "This invitation was already used",
    "revoked": "This invitation was revoked",
    "expired": "This invitation has expired",
    "member": "You are already a member of this workspace",
    "role_gone": "The role of this invitation no longer exists; ask for a new invitation",
}


async def accept_invitation(ctx: UserContext, token: str) -> dict[str, Any]:
    """Join the invitation's workspace as the signed-in user (whose email must be the invited
    one): 404 for an unknown token or someone else's, 409 for a used, revoked or expired one."""
    parsed = _parse(token)
    if parsed is None:
        raise NotFound("Invitation not found")
    workspace_id, invitation_id = parsed
    params = {"ws": workspace_id, "id": invitation_id, "hash": token_hash(token)}
    row = (await ctx.session.execute(ACCEPT_SQL, params)).one()
    if row.outcome == "not_found":
        raise NotFound("Invitation not found")
    if row.outcome != "accepted":
        state = {"used": "accepted"}.get(row.outcome, row.outcome)
        raise Conflict(REFUSALS[row.outcome], state=state)
    return {"workspace": row.workspace_slug, "workspace_id": workspace_id}


async def notify_invited(ctx: WorkspaceContext, invitation_id: uuid.UUID) -> int:
    """Tell the invited user (if they have an account), through the narrow definer path."""
    result = await ctx.session.execute(
        text("SELECT warden_notify_invitation(:id)"), {"id": invitation_id}
    )
    return int(result.scalar_one())


async def notify_on_registration(tx: Transaction) -> int:
    """A user who just registered hears of the invitations waiting for their email."""
    result = await tx.session.execute(text("SELECT warden_notify_my_invitations()"))
    return int(result.scalar_one())
