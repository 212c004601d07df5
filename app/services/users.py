"""Other users, as the runtime role may reach them (it reads no user row but the one in
context, `app_user`'s policy): through narrow definer functions, never in bulk.

- `member_identities()`: the identity (email, name, attributes) of the members of the
  workspace in context, for a user who is a member of it (`warden_member_users`). A statement
  joins them as `MEMBER_USER` (an `unnest` of the arrays `member_user_params()` binds): the
  function runs on its own, never inside a statement over workspace tables (on Citus such a
  statement runs on a shard, where the function's own distributed read is refused).
- `user_by_email()`: the active user with exactly this email, asked from inside a workspace by
  one of its members (adding a member, inviting one: `warden_user_by_email`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, bindparam, column, func, text
from sqlalchemy import Text as SqlText
from sqlalchemy.dialects.postgresql import UUID

from app.security.principal import WorkspaceContext

MEMBER_USER = (
    func.unnest(
        bindparam("member_user_ids", type_=ARRAY(UUID(as_uuid=True))),
        bindparam("member_user_emails", type_=ARRAY(SqlText())),
        bindparam("member_user_names", type_=ARRAY(SqlText())),
    )
    .table_valued(
        column("user_id", UUID(as_uuid=True)), column("email", SqlText()), column("name", SqlText())
    )
    .render_derived(name="member_user")
)

_MEMBERS = text(
    "SELECT user_id, email, name, attributes FROM warden_member_users(CAST(:ids AS uuid[]))"
)
_USER_BY_EMAIL = text("SELECT user_id, name, attributes FROM warden_user_by_email(:email)")


async def member_identities(
    ctx: WorkspaceContext, user_ids: Sequence[uuid.UUID] | None = None
) -> list[Any]:
    """The workspace's members (all, or `user_ids`): `user_id`, `email`, `name`,
    `attributes`."""
    ids = None if user_ids is None else list(user_ids)
    return list((await ctx.session.execute(_MEMBERS, {"ids": ids})).all())


async def member_user_params(ctx: WorkspaceContext) -> dict[str, list[Any]]:
    """The values a statement joining `MEMBER_USER` is executed with."""
    rows = await member_identities(ctx)
    return {
        "member_user_ids": [r.user_id for r in rows],
        "member_user_emails": [r.email for r in rows],
        "member_user_names": [r.name for r in rows],
    }


async def user_by_email(ctx: WorkspaceContext, email: str) -> Any:
    """The active user with exactly this email (`user_id`, `name`, `attributes`), or None."""
    result = await ctx.session.execute(_USER_BY_EMAIL, {"email": email.lower()})
    return result.one_or_none()
