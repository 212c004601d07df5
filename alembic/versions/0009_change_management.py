"""Change management: change requests and their approvals (separation of duties kept by the
database), incidents and their timeline, invitations, notifications.

Revision ID: 0009
Revises: 0008

Every table with `workspace_id` goes through `scope_table()` (app/db/rls.py); `notification` is
a per-user table (policy on `user_id`). Accepting an invitation crosses from the user into a
workspace, and telling a user who is not a member yet about an invitation crosses the other
way: both go through the narrow SECURITY DEFINER functions below (owned by the definer role
after `warden migrate`, see app.db.roles), PL/pgSQL with plain statements.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from alembic import op
from app.db.rls import Scope, scope_table

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"
# A UUIDv7 (time-ordered, like every id the app makes) for rows a definer function inserts.
UUID7 = (
    "(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' "
    "|| substr(md5(random()::text), 1, 3) || to_hex(8 + floor(random() * 4)::int) "
    "|| substr(md5(random()::text), 1, 15))::uuid"
)


def _ws() -> sa.Column:
    return sa.Column(
        "workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False
    )


def _ts(name: str, *, default: bool = False) -> sa.Column:
    if default:
        return sa.Column(
            name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        )
    return sa.Column(name, sa.DateTime(timezone=True))


def _user(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=nullable)


def _provider_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
    )


def upgrade() -> None:
    _changes()
    _incidents()
    _invitations()
    _notifications()
    _functions()


def _changes() -> None:
    op.create_table(
        "change_request",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("risk", sa.String(10), nullable=False),
        sa.Column("provider_id", UUID(as_uuid=True)),
        _ts("planned_start"),
        _ts("planned_end"),
        sa.Column("required_approvals", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column("approval_count", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("state", sa.String(12), nullable=False, server_default="draft"),
        _user("requested_by", nullable=False),
        _ts("submitted_at"),
        _ts("decided_at"),
        _ts("implemented_at"),
        _user("implemented_by"),
        sa.Column("implementation_notes", sa.Text),
        _ts("cancelled_at"),
        _ts("created_at", default=True),
        _ts("updated_at", default=True),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        # What an approval's foreign key points at: the change *and* its requester.
        sa.UniqueConstraint("workspace_id", "id", "requested_by"),
        _provider_fk(),
        sa.CheckConstraint("risk IN ('low', 'medium', 'high')", name="risk"),
        sa.CheckConstraint(
            "state IN ('draft', 'submitted', 'approved', 'rejected', 'implemented', 'cancelled')",
            name="state",
        ),
        sa.CheckConstraint("required_approvals BETWEEN 1 AND 5", name="required_approvals"),
        # Never more approvals than required; approved (or implemented) exactly when the count
        # reached what was required.
        sa.CheckConstraint(
            "approval_count BETWEEN 0 AND required_approvals", name="approval_count"
        ),
        sa.CheckConstraint(
            "(state IN ('approved', 'implemented')) = (approval_count = required_approvals)",
            name="approved_when_counted",
        ),
        sa.CheckConstraint(
            "planned_start IS NULL OR planned_end IS NULL OR planned_end > planned_start",
            name="planned_window",
        ),
    )
    op.create_index(
        "ix_change_request_workspace_id_state", "change_request", ["workspace_id", "state"]
    )
    op.create_index(
        "ix_change_request_workspace_id_requested_by",
        "change_request",
        ["workspace_id", "requested_by"],
    )
    op.create_index(
        "ix_change_request_workspace_id_provider_id",
        "change_request",
        ["workspace_id", "provider_id"],
    )
    scope_table("change_request", Scope.WORKSPACE_OPTIONAL_PROVIDER)

    op.create_table(
        "change_approval",
        _ws(),
        sa.Column("change_id", UUID(as_uuid=True), nullable=False),
        _user("approver_id", nullable=False),
        sa.Column("requested_by", UUID(as_uuid=True), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text),
        _ts("created_at", default=True),
        # One decision per person per change.
        sa.PrimaryKeyConstraint("workspace_id", "change_id", "approver_id"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "change_id", "requested_by"],
            ["change_request.workspace_id", "change_request.id", "change_request.requested_by"],
        ),
        # Separation of duties: nobody decides on a change they requested.
        sa.CheckConstraint("approver_id <> requested_by", name="separation_of_duties"),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name="decision"),
    )
    scope_table("change_approval", Scope.WORKSPACE)


def _incidents() -> None:
    op.create_table(
        "incident",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("severity", sa.String(4), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("provider_id", UUID(as_uuid=True)),
        _user("assignee_id"),
        sa.Column("resolution", sa.Text),
        _user("created_by", nullable=False),
        _ts("resolved_at"),
        _ts("closed_at"),
        _ts("created_at", default=True),
        _ts("updated_at", default=True),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        _provider_fk(),
        sa.CheckConstraint("severity IN ('sev1', 'sev2', 'sev3', 'sev4')", name="severity"),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'mitigated', 'resolved', 'closed')", name="status"
        ),
        sa.CheckConstraint(
            "status NOT IN ('resolved', 'closed') OR resolution IS NOT NULL", name="resolution"
        ),
    )
    op.create_index("ix_incident_workspace_id_status", "incident", ["workspace_id", "status"])
    op.create_index(
        "ix_incident_workspace_id_provider_id", "incident", ["workspace_id", "provider_id"]
    )
    scope_table("incident", Scope.WORKSPACE_OPTIONAL_PROVIDER)

    op.create_table(
        "incident_event",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("incident_id", UUID(as_uuid=True), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text),
        _user("actor_id", nullable=False),
        _ts("created_at", default=True),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "incident_id"], ["incident.workspace_id", "incident.id"]
        ),
    )
    op.create_index(
        "ix_incident_event_workspace_id_incident_id",
        "incident_event",
        ["workspace_id", "incident_id"],
    )
    scope_table("incident_event", Scope.WORKSPACE)


def _invitations() -> None:
    op.create_table(
        "invitation",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("role", sa.String(40)),
        sa.Column("custom_role_id", UUID(as_uuid=True)),
        sa.Column("token_hash", sa.LargeBinary, nullable=False),
        _user("created_by", nullable=False),
        _ts("created_at", default=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        _ts("accepted_at"),
        _user("accepted_by"),
        _ts("revoked_at"),
        _user("revoked_by"),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
        sa.CheckConstraint("(role IS NULL) <> (custom_role_id IS NULL)", name="exactly_one_role"),
        sa.CheckConstraint("role IS DISTINCT FROM 'platform_admin'", name="no_platform_admin"),
    )
    op.create_index("ix_invitation_workspace_id_email", "invitation", ["workspace_id", "email"])
    # The registration-time lookup of a new user's pending invitations (definer function).
    op.create_index(
        "ix_invitation_pending_email",
        "invitation",
        ["email"],
        postgresql_where=sa.text("accepted_at IS NULL AND revoked_at IS NULL"),
    )
    scope_table("invitation", Scope.WORKSPACE)


def _notifications() -> None:
    op.create_table(
        "notification",
        _user("user_id", nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("about_workspace_id", UUID(as_uuid=True), nullable=False),
        sa.Column("workspace_slug", sa.String(63), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text),
        sa.Column("resource_type", sa.String(40)),
        sa.Column("resource_id", UUID(as_uuid=True)),
        sa.Column("actor_id", UUID(as_uuid=True)),
        sa.Column("dedupe_key", sa.String(120), nullable=False),
        _ts("created_at", default=True),
        _ts("read_at"),
        sa.PrimaryKeyConstraint("user_id", "id"),
        sa.UniqueConstraint("user_id", "dedupe_key"),
    )
    scope_table("notification", Scope.USER)


def _functions() -> None:
    # Accepting an invitation: the signed-in user (from the context) becomes a member of the
    # invitation's workspace, only with the right token, only if their email is the invited
    # one, only while the invitation is pending and unexpired; it is marked used in the same
    # statement sequence (the row is locked, so a token is used once).
    op.execute(f"""
        CREATE FUNCTION warden_accept_invitation(p_workspace_id uuid, p_invitation_id uuid,
                                                 p_token_hash bytea)
        RETURNS TABLE (outcome text, workspace_slug text)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
            v_email text;
            v_slug text;
            v_invited text;
            v_role text;
            v_custom uuid;
            v_accepted timestamptz;
            v_revoked timestamptz;
            v_expires timestamptz;
        BEGIN
            IF v_user IS NULL THEN
                RAISE EXCEPTION 'no user in context' USING ERRCODE = '42501';
            END IF;
            SELECT u.email INTO v_email FROM public.app_user u WHERE u.id = v_user AND u.is_active;
            SELECT i.email, i.role, i.custom_role_id, i.accepted_at, i.revoked_at, i.expires_at
              INTO v_invited, v_role, v_custom, v_accepted, v_revoked, v_expires
              FROM public.invitation i
             WHERE i.workspace_id = p_workspace_id AND i.id = p_invitation_id
               AND i.token_hash = p_token_hash
               FOR UPDATE;
            SELECT w.slug INTO v_slug FROM public.workspace w
             WHERE w.id = p_workspace_id AND w.deleted_at IS NULL;
            IF v_invited IS NULL OR v_email IS NULL OR v_invited <> v_email OR v_slug IS NULL THEN
                RETURN QUERY SELECT 'not_found'::text, NULL::text;
                RETURN;
            END IF;
            IF v_accepted IS NOT NULL THEN
                RETURN QUERY SELECT 'used'::text, v_slug;
                RETURN;
            END IF;
            IF v_revoked IS NOT NULL THEN
                RETURN QUERY SELECT 'revoked'::text, v_slug;
                RETURN;
            END IF;
            IF v_expires <= now() THEN
                RETURN QUERY SELECT 'expired'::text, v_slug;
                RETURN;
            END IF;
            IF EXISTS (SELECT 1 FROM public.membership m
                        WHERE m.workspace_id = p_workspace_id AND m.user_id = v_user) THEN
                RETURN QUERY SELECT 'member'::text, v_slug;
                RETURN;
            END IF;
            IF v_custom IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM public.custom_role cr
                 WHERE cr.workspace_id = p_workspace_id AND cr.id = v_custom) THEN
                RETURN QUERY SELECT 'role_gone'::text, v_slug;
                RETURN;
            END IF;
            INSERT INTO public.membership (workspace_id, user_id, role, custom_role_id)
            VALUES (p_workspace_id, v_user, v_role, v_custom);
            UPDATE public.invitation SET accepted_at = now(), accepted_by = v_user
             WHERE workspace_id = p_workspace_id AND id = p_invitation_id;
            RETURN QUERY SELECT 'accepted'::text, v_slug;
        END
        $$""")
    # Telling the invited user, from the inviting workspace's context: only for a pending,
    # unexpired invitation of that workspace, only to the active user with that email, once.
    # (A read, then a plain INSERT … VALUES: the two tables are keyed by different tenants.)
    op.execute(f"""
        CREATE FUNCTION warden_notify_invitation(p_invitation_id uuid)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_ws uuid := nullif(current_setting('app.current_workspace_id', true), '')::uuid;
            v_count integer;
            r record;
        BEGIN
            IF v_ws IS NULL THEN
                RAISE EXCEPTION 'no workspace in context' USING ERRCODE = '42501';
            END IF;
            SELECT i.id, i.email, i.role, i.created_by, i.expires_at, w.id AS ws_id, w.slug,
                   w.name, cr.name AS custom_name
              INTO r
              FROM public.invitation i
              JOIN public.workspace w ON w.id = i.workspace_id AND w.deleted_at IS NULL
              LEFT JOIN public.custom_role cr
                ON cr.workspace_id = i.workspace_id AND cr.id = i.custom_role_id
             WHERE i.workspace_id = v_ws AND i.id = p_invitation_id
               AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now();
            IF r.id IS NULL THEN
                RETURN 0;
            END IF;
            INSERT INTO public.notification (user_id, id, kind, about_workspace_id,
                                             workspace_slug, title, body, resource_type,
                                             resource_id, actor_id, dedupe_key)
            SELECT u.id, {UUID7}, 'invitation.received', r.ws_id, r.slug,
                   left('You are invited to join ' || r.name, 300),
                   'Role: ' || coalesce(r.role, r.custom_name, 'custom role')
                     || '. Accept with the token you were given before '
                     || to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
                   'invitation', r.id, r.created_by, 'invitation:' || r.id::text
              FROM public.app_user u
             WHERE u.email = r.email AND u.is_active
            ON CONFLICT (user_id, dedupe_key) DO NOTHING;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            RETURN v_count;
        END
        $$""")
    # A user who registers after being invited: their pending invitations, from their own
    # context (only their own email, only their own notifications).
    op.execute(f"""
        CREATE FUNCTION warden_notify_my_invitations()
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
            v_count integer := 0;
            v_one integer;
            r record;
        BEGIN
            IF v_user IS NULL THEN
                RAISE EXCEPTION 'no user in context' USING ERRCODE = '42501';
            END IF;
            FOR r IN
                SELECT i.id, w.id AS ws_id, w.slug, w.name, i.role, cr.name AS custom_name,
                       i.created_by, i.expires_at
                  FROM public.app_user u
                  JOIN public.invitation i ON i.email = u.email
                  JOIN public.workspace w ON w.id = i.workspace_id AND w.deleted_at IS NULL
                  LEFT JOIN public.custom_role cr
                    ON cr.workspace_id = i.workspace_id AND cr.id = i.custom_role_id
                 WHERE u.id = v_user AND u.is_active
                   AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
            LOOP
                INSERT INTO public.notification (user_id, id, kind, about_workspace_id,
                                                 workspace_slug, title, body, resource_type,
                                                 resource_id, actor_id, dedupe_key)
                VALUES (v_user, {UUID7}, 'invitation.received', r.ws_id, r.slug,
                        left('You are invited to join ' || r.name, 300),
                        'Role: ' || coalesce(r.role, r.custom_name, 'custom role')
                          || '. Accept with the token you were given before '
                          || to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
                          || ' UTC.',
                        'invitation', r.id, r.created_by, 'invitation:' || r.id::text)
                ON CONFLICT (user_id, dedupe_key) DO NOTHING;
                GET DIAGNOSTICS v_one = ROW_COUNT;
                v_count := v_count + v_one;
            END LOOP;
            RETURN v_count;
        END
        $$""")


def downgrade() -> None:
    for fn in (
        "warden_notify_my_invitations()",
        "warden_notify_invitation(uuid)",
        "warden_accept_invitation(uuid, uuid, bytea)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in (
        "notification",
        "invitation",
        "incident_event",
        "incident",
        "change_approval",
        "change_request",
    ):
        op.drop_table(table)
