"""Foundation: users, workspaces, memberships, refresh-token sessions, providers, provider groups.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID

from app.db.rls import Scope, scope_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        *_timestamps(),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
    )
    op.create_index("uq_app_user_email", "app_user", ["email"], unique=True)

    op.create_table(
        "workspace",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.UniqueConstraint("slug"),
    )
    scope_table("workspace", Scope.WORKSPACE_ROW)

    op.create_table(
        "membership",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("role", sa.String(40)),
        sa.Column("custom_role_id", UUID(as_uuid=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("workspace_id", "user_id"),
        sa.CheckConstraint(
            "(role IS NULL) <> (custom_role_id IS NULL)", name="exactly_one_role"
        ),
    )
    op.create_index("ix_membership_user_id", "membership", ["user_id"])
    scope_table("membership", Scope.WORKSPACE)

    op.create_table(
        "auth_session",
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("family_id", UUID(as_uuid=True), nullable=False),
        sa.Column("token_hash", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("user_agent", sa.String(400)),
        sa.Column("ip", INET),
        sa.PrimaryKeyConstraint("user_id", "id"),
    )
    op.create_index("ix_auth_session_user_id_family_id", "auth_session", ["user_id", "family_id"])
    scope_table("auth_session", Scope.USER)

    op.create_table(
        "provider",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("provider_type", sa.String(20), nullable=False),
        sa.Column("uid", sa.String(300), nullable=False),
        sa.Column("alias", sa.String(100)),
        sa.Column("region", sa.String(40)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index(
        "uq_provider_workspace_id_provider_type_uid",
        "provider",
        ["workspace_id", "provider_type", "uid"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    scope_table("provider", Scope.WORKSPACE)

    op.create_table(
        "provider_group",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "name"),
    )
    scope_table("provider_group", Scope.WORKSPACE)

    op.create_table(
        "provider_group_member",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("provider_group_id", UUID(as_uuid=True), nullable=False),
        sa.Column("provider_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "provider_group_id", "provider_id"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "provider_group_id"],
            ["provider_group.workspace_id", "provider_group.id"],
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id", "provider_id"],
            ["provider.workspace_id", "provider.id"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_provider_group_member_workspace_id_provider_id",
        "provider_group_member",
        ["workspace_id", "provider_id"],
    )
    scope_table("provider_group_member", Scope.WORKSPACE)

    # Narrow cross-tenant paths (SPEC section 2). Owned by the definer role after migrate
    # (app.db.roles), EXECUTE granted to the runtime role only.
    op.execute(f"""
        CREATE FUNCTION warden_login_lookup(p_email text)
        RETURNS TABLE (user_id uuid, password_hash text, is_active boolean)
        LANGUAGE sql STABLE {DEFINER} AS $$
            SELECT u.id, u.password_hash, u.is_active
            FROM public.app_user u WHERE u.email = lower(p_email)
        $$""")
    op.execute(f"""
        CREATE FUNCTION warden_request_context(p_user_id uuid, p_family_id uuid, p_slug text)
        RETURNS TABLE (authenticated boolean, workspace_id uuid, role text, custom_role_id uuid)
        LANGUAGE sql STABLE {DEFINER} AS $$
            WITH auth AS (
                SELECT EXISTS (
                    SELECT 1 FROM public.app_user u WHERE u.id = p_user_id AND u.is_active
                ) AND EXISTS (
                    SELECT 1 FROM public.auth_session s
                    WHERE s.user_id = p_user_id AND s.family_id = p_family_id
                      AND s.revoked_at IS NULL AND s.expires_at > now()
                ) AS ok
            )
            SELECT a.ok, m.workspace_id, m.role, m.custom_role_id
            FROM auth a
            LEFT JOIN (public.workspace w
                       JOIN public.membership m ON m.workspace_id = w.id AND m.user_id = p_user_id)
              ON a.ok AND p_slug IS NOT NULL AND w.slug = p_slug AND w.deleted_at IS NULL
        $$""")
    op.execute(f"""
        CREATE FUNCTION warden_user_workspaces()
        RETURNS TABLE (id uuid, slug text, name text, role text, custom_role_id uuid,
                       created_at timestamptz)
        LANGUAGE sql STABLE {DEFINER} AS $$
            SELECT w.id, w.slug, w.name, m.role, m.custom_role_id, w.created_at
            FROM public.membership m JOIN public.workspace w ON w.id = m.workspace_id
            WHERE m.user_id = nullif(current_setting('app.current_user_id', true), '')::uuid
              AND w.deleted_at IS NULL
            ORDER BY w.slug
        $$""")
    op.execute(f"""
        CREATE FUNCTION warden_create_workspace(p_id uuid, p_slug text, p_name text)
        RETURNS void
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
        BEGIN
            IF v_user IS NULL THEN
                RAISE EXCEPTION 'no user in context' USING ERRCODE = '42501';
            END IF;
            INSERT INTO public.workspace (id, slug, name) VALUES (p_id, p_slug, p_name);
            INSERT INTO public.membership (workspace_id, user_id, role)
            VALUES (p_id, v_user, 'owner');
        END
        $$""")


def downgrade() -> None:
    for fn in (
        "warden_create_workspace(uuid, text, text)",
        "warden_user_workspaces()",
        "warden_request_context(uuid, uuid, text)",
        "warden_login_lookup(text)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in (
        "provider_group_member",
        "provider_group",
        "provider",
        "auth_session",
        "membership",
        "workspace",
        "app_user",
    ):
        op.drop_table(table)
