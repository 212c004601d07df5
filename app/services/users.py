"""Other users, as the runtime role may reach them (it reads no user row but the one in
context, `app_user`'s policy): through narrow definer functions, never in bulk.

- `MEMBER_USER` / `member_users()`: the identity (email, name, attributes) of the members of
  the workspace in context, for a user who is a member of it (`warden_member_users`);
- `user_by_email()`: the active user with exactly this email, asked from inside a workspace by
  one of its members (adding a member, inviting one: `warden_user_by_email`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, cast, column, func, null, select, text
from sqlalchemy import Text as SqlText
from sqlalchemy.dialects.postgresql import JSONB, UUID

from app.security.principal import WorkspaceContext


def member_users(user_ids: Any = None) -> Any:
    """A CTE of the workspace's members' identity (all, or `user_ids`). Materialized: on Citus
    the function runs once, on the coordinator, and its rows join the shard's."""
    ids = cast(null() if user_ids is None else user_ids, ARRAY(UUID(as_uuid=True)))
    users = func.warden_member_users(ids).table_valued(
        column("user_id", UUID(as_uuid=True)),
        column("email", SqlText()),
        column("name", SqlText()),
        column("attributes", JSONB()),
    )
    return select(users).cte("member_user").prefix_with("MATERIALIZED")


MEMBER_USER = member_users()

_USER_BY_EMAIL = text("SELECT user_id, name, attributes FROM warden_user_by_email(:email)")


async def user_by_email(ctx: WorkspaceContext, email: str) -> Any:
    """The active user with exactly this email (`user_id`, `name`, `attributes`), or None."""
    result = await ctx.session.execute(_USER_BY_EMAIL, {"email": email.lower()})
    return result.one_or_none()
