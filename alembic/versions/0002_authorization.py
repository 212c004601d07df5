"""Authorization: custom roles, provider-group visibility, platform admin.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from app.db.rls import Scope, rescope_table, scope_table

# Every table with `workspace_id` below goes through `scope_table()` (app/db/rls.py), which
# issues ALTER TABLE … ENABLE and FORCE ROW LEVEL SECURITY and CREATE POLICY with the one
# tenant predicate; tests/db/test_catalog.py (`warden check --rls`) fails on any table
# without them.

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"


def upgrade() -> None:
    op.add_column(
        "app_user",
        sa.Column("is_platform_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    )

    # Per-workspace attributes (e.g. {"region": "eu"}) for row grants, set by the workspace's
    # admins; they overlay the user's own attributes inside that workspace only.
    op.add_column(
        "membership",
        sa.Column("attributes", JSONB, nullable=False, server_default="{}"),
    )

    op.create_table(
        "custom_role",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("inherits_from", sa.String(40), nullable=False),
        sa.Column("grants", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("revokes", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "name"),
        sa.CheckConstraint("inherits_from <> 'platform_admin'", name="no_platform_admin_base"),
    )
    scope_table("custom_role", Scope.WORKSPACE)
    op.create_foreign_key(
        "fk_membership_workspace_id_custom_role_id_custom_role",
        "membership",
        "custom_role",
        ["workspace_id", "custom_role_id"],
        ["workspace_id", "id"],
    )

    # Which provider groups a role sees when it lacks `unlimited_visibility`. `role_key` is a
    # built-in role name or a custom role id.
    op.create_table(
        "role_provider_group",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("role_key", sa.String(40), nullable=False),
        sa.Column("provider_group_id", UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "role_key", "provider_group_id"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "provider_group_id"],
            ["provider_group.workspace_id", "provider_group.id"],
            ondelete="CASCADE",
        ),
    )
    scope_table("role_provider_group", Scope.WORKSPACE)

    rescope_table("provider", Scope.PROVIDER_ROW)
    rescope_table("provider_group_member", Scope.WORKSPACE_PROVIDER)

    op.execute("DROP FUNCTION warden_request_context(uuid, uuid, text)")
    op.execute(f"""
        CREATE FUNCTION warden_request_context(p_user_id uuid, p_family_id uuid, p_slug text)
        RETURNS TABLE (authenticated boolean, workspace_id uuid, role text, custom_role_id uuid,
                       custom_role_name text, inherits_from text, grants text[],
                       revokes text[], visible_provider_ids uuid[], attributes jsonb,
                       is_platform_admin boolean)
        LANGUAGE sql STABLE {DEFINER} AS $$
            WITH auth AS (
                SELECT u.is_platform_admin, u.attributes, EXISTS (
                    SELECT 1 FROM public.auth_session s
                    WHERE s.user_id = p_user_id AND s.family_id = p_family_id
                      AND s.revoked_at IS NULL AND s.expires_at > now()
                ) AS ok
                FROM public.app_user u WHERE u.id = p_user_id AND u.is_active
            ), member AS (
                SELECT m.workspace_id, m.role, m.custom_role_id, m.attributes,
                       coalesce(m.role, m.custom_role_id::text) AS role_key
                FROM public.workspace w
                JOIN public.membership m ON m.workspace_id = w.id AND m.user_id = p_user_id
                WHERE p_slug IS NOT NULL AND w.slug = p_slug AND w.deleted_at IS NULL
            )
            SELECT coalesce(a.ok, false), m.workspace_id, m.role, m.custom_role_id,
                   cr.name::text, cr.inherits_from::text, cr.grants, cr.revokes,
                   ARRAY(
                       SELECT DISTINCT pgm.provider_id
                       FROM public.role_provider_group rpg
                       JOIN public.provider_group_member pgm
                         ON pgm.workspace_id = rpg.workspace_id
                        AND pgm.provider_group_id = rpg.provider_group_id
                       WHERE rpg.workspace_id = m.workspace_id AND rpg.role_key = m.role_key
                   ),
                   coalesce(a.attributes, '{{}}'::jsonb) || coalesce(m.attributes, '{{}}'::jsonb),
                   coalesce(a.is_platform_admin, false)
            FROM (SELECT 1) one
            LEFT JOIN auth a ON true
            LEFT JOIN member m ON coalesce(a.ok, false)
            LEFT JOIN public.custom_role cr
              ON cr.workspace_id = m.workspace_id AND cr.id = m.custom_role_id
        $$""")

    op.execute("DROP FUNCTION warden_user_workspaces()")
    op.execute(f"""
        CREATE FUNCTION warden_user_workspaces()
        RETURNS TABLE (id uuid, slug text, name text, role text, custom_role_id uuid,
                       custom_role_name text, inherits_from text, grants text[], revokes text[],
                       created_at timestamptz)
        LANGUAGE sql STABLE {DEFINER} AS $$
            SELECT w.id, w.slug, w.name, m.role, m.custom_role_id,
                   cr.name::text, cr.inherits_from::text, cr.grants, cr.revokes, w.created_at
            FROM public.membership m
            JOIN public.workspace w ON w.id = m.workspace_id
            LEFT JOIN public.custom_role cr
              ON cr.workspace_id = m.workspace_id AND cr.id = m.custom_role_id
            WHERE m.user_id = nullif(current_setting('app.current_user_id', true), '')::uuid
              AND w.deleted_at IS NULL
            ORDER BY w.slug
        $$""")

    # Platform admin: read-only, cross-workspace, only for users flagged by the installation.
    # Owned by the separate SELECT-only platform role (app.db.roles).
    op.execute(f"""
        CREATE FUNCTION warden_platform_workspaces()
        RETURNS TABLE (id uuid, slug text, name text, created_at timestamptz,
                       member_count bigint, provider_count bigint)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM public.app_user u
                WHERE u.id = nullif(current_setting('app.current_user_id', true), '')::uuid
                  AND u.is_platform_admin AND u.is_active
            ) THEN
                RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
            END IF;
            RETURN QUERY
            SELECT w.id, w.slug::text, w.name::text, w.created_at,
                   (SELECT count(*) FROM public.membership m WHERE m.workspace_id = w.id),
                   (SELECT count(*) FROM public.provider p
                     WHERE p.workspace_id = w.id AND p.deleted_at IS NULL)
            FROM public.workspace w WHERE w.deleted_at IS NULL ORDER BY w.slug;
        END
        $$""")


def downgrade() -> None:
    raise NotImplementedError("0002 changes the request-context function; restore from backup")
