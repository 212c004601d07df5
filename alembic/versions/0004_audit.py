"""Audit: hash-chained workspace audit records, retention cuts, per-actor denials, per-user
events; workspace retention setting; the sealing, retention and denial definer functions.

Every table with `workspace_id` or `user_id` is put under its one tenant policy by
`scope_table()` (ENABLE + FORCE ROW LEVEL SECURITY, CREATE POLICY); the catalog meta-test checks
the result. Privileges (runtime: SELECT/INSERT only on the records) are set by app.db.roles.

Revision ID: 0004
Revises: 0002
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op
from app.db.rls import Scope, scope_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"
# pg_try_advisory_xact_lock(CHAIN_LOCK, hashtext(workspace_id)): one sealer or retention run per
# workspace chain at a time; requests never take it.
CHAIN_LOCK = 74110


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def _workspace_id() -> sa.Column:
    return sa.Column(
        "workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False
    )


def _call_columns() -> list[sa.Column]:
    """What a call was and who made it: shared by audit_record and user_event."""
    return [
        _now("created_at"),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("path_params", JSONB, nullable=False, server_default="{}"),
        sa.Column("query_params", JSONB, nullable=False, server_default="{}"),
        sa.Column("body", JSONB),
        sa.Column("resource_type", sa.String(64)),
        sa.Column("resource_id", UUID(as_uuid=True)),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("api_key_id", UUID(as_uuid=True)),
        sa.Column("source_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(400)),
        sa.Column("request_id", sa.String(64)),
    ]


def upgrade() -> None:
    op.add_column(
        "workspace",
        sa.Column("audit_retention_days", sa.Integer, server_default=sa.text("365")),
    )
    op.create_check_constraint(
        "audit_retention_days_range", "workspace",
        "audit_retention_days IS NULL OR audit_retention_days BETWEEN 1 AND 36500",
    )

    op.create_table(
        "audit_record",
        _workspace_id(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        *_call_columns(),
        sa.Column("state", JSONB),
        sa.Column("seq", sa.BigInteger),
        sa.Column("prev_hash", sa.LargeBinary),
        sa.Column("hash", sa.LargeBinary),
        sa.Column("sealed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "seq"),
    )
    op.create_index(
        "ix_audit_record_workspace_id_resource_id_id", "audit_record",
        ["workspace_id", "resource_id", "id"],
    )
    op.create_index(
        "ix_audit_record_workspace_id_created_at", "audit_record", ["workspace_id", "created_at"]
    )
    op.create_index(
        "ix_audit_record_unsealed", "audit_record", ["workspace_id", "id"],
        postgresql_where=sa.text("hash IS NULL"),
    )
    scope_table("audit_record", Scope.WORKSPACE)

    op.create_table(
        "audit_cut",
        _workspace_id(),
        sa.Column("up_to_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.LargeBinary, nullable=False),
        sa.Column("removed", sa.Integer, nullable=False),
        _now("cut_at"),
        sa.PrimaryKeyConstraint("workspace_id", "up_to_seq"),
    )
    scope_table("audit_cut", Scope.WORKSPACE)

    op.create_table(
        "audit_denial",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True)),
        _now("created_at"),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("workspace_slug", sa.String(63)),
        sa.Column("source_ip", sa.String(64)),
        sa.Column("user_agent", sa.String(400)),
        sa.Column("request_id", sa.String(64)),
        sa.CheckConstraint("status IN (401, 403, 404)", name="denial_status"),
    )
    op.create_index("ix_audit_denial_user_id_id", "audit_denial", ["user_id", "id"])
    op.create_index("ix_audit_denial_created_at", "audit_denial", ["created_at"])
    scope_table("audit_denial", Scope.USER)

    op.create_table(
        "user_event",
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        *_call_columns(),
        sa.PrimaryKeyConstraint("user_id", "id"),
    )
    op.create_index("ix_user_event_created_at", "user_event", ["created_at"])
    scope_table("user_event", Scope.USER)

    # The content a record's hash covers, as canonical JSON (jsonb's text form: sorted keys,
    # fixed spacing; the time in UTC, so the session's TimeZone cannot change it). Used by the
    # sealer and by verification alike; `v` versions the form.
    op.execute("""
        CREATE FUNCTION warden_audit_canonical(r public.audit_record) RETURNS text
        LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
            SELECT jsonb_build_object(
                'v', 1, 'workspace_id', r.workspace_id, 'id', r.id, 'seq', r.seq,
                'created_at', to_char(r.created_at AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'action', r.action, 'method', r.method, 'path', r.path,
                'path_params', r.path_params, 'query_params', r.query_params, 'body', r.body,
                'state', r.state, 'resource_type', r.resource_type, 'resource_id', r.resource_id,
                'status', r.status, 'user_id', r.user_id, 'api_key_id', r.api_key_id,
                'source_ip', r.source_ip, 'user_agent', r.user_agent, 'request_id', r.request_id
            )::text
        $$""")

    # Link committed, unsealed records into each workspace's chain, at most p_batch per
    # workspace: seq = previous + 1, hash = sha256(canonical content || previous hash). A
    # workspace another sealer (or retention) holds is skipped, never waited for.
    op.execute(f"""
        CREATE FUNCTION warden_audit_seal(p_batch integer)
        RETURNS TABLE (workspace_id uuid, sealed integer)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_ws uuid;
            v_seq bigint;
            v_prev bytea;
            v_n integer;
            r public.audit_record;
        BEGIN
            FOR v_ws IN SELECT DISTINCT a.workspace_id FROM public.audit_record a
                        WHERE a.hash IS NULL LOOP
                CONTINUE WHEN NOT pg_try_advisory_xact_lock({CHAIN_LOCK}, hashtext(v_ws::text));
                v_seq := NULL;
                v_prev := NULL;
                SELECT a.seq, a.hash INTO v_seq, v_prev FROM public.audit_record a
                 WHERE a.workspace_id = v_ws AND a.seq IS NOT NULL ORDER BY a.seq DESC LIMIT 1;
                IF v_seq IS NULL THEN
                    SELECT c.up_to_seq, c.last_hash INTO v_seq, v_prev FROM public.audit_cut c
                     WHERE c.workspace_id = v_ws ORDER BY c.up_to_seq DESC LIMIT 1;
                END IF;
                v_seq := coalesce(v_seq, 0);
                v_n := 0;
                FOR r IN SELECT * FROM public.audit_record a
                         WHERE a.workspace_id = v_ws AND a.hash IS NULL
                         ORDER BY a.id LIMIT greatest(p_batch, 1) LOOP
                    v_seq := v_seq + 1;
                    r.seq := v_seq;
                    r.hash := sha256(convert_to(public.warden_audit_canonical(r), 'UTF8')
                                     || coalesce(v_prev, '\\x'::bytea));
                    UPDATE public.audit_record a
                       SET seq = v_seq, prev_hash = v_prev, hash = r.hash, sealed_at = now()
                     WHERE a.workspace_id = v_ws AND a.id = r.id;
                    v_prev := r.hash;
                    v_n := v_n + 1;
                END LOOP;
                workspace_id := v_ws;
                sealed := v_n;
                RETURN NEXT;
            END LOOP;
        END
        $$""")

    # Retention: per workspace, remove the sealed prefix of the chain older than the
    # workspace's `audit_retention_days` (at most p_batch records per call) and record the cut,
    # so the chain verifies from the new first record. Unsealed records are never removed.
    # Denials and user events older than p_personal_days go too (never younger than 30 days:
    # the caller, the runtime role, must not be able to wipe recent security evidence).
    op.execute(f"""
        CREATE FUNCTION warden_audit_retention(p_batch integer, p_personal_days integer)
        RETURNS TABLE (workspace_id uuid, removed integer, up_to_seq bigint)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            w record;
            v_upto bigint;
            v_hash bytea;
            v_n integer;
            v_personal timestamptz := now() - make_interval(days => greatest(p_personal_days, 30));
        BEGIN
            FOR w IN SELECT ws.id, ws.audit_retention_days AS days FROM public.workspace ws
                     WHERE ws.audit_retention_days IS NOT NULL LOOP
                CONTINUE WHEN NOT pg_try_advisory_xact_lock({CHAIN_LOCK}, hashtext(w.id::text));
                SELECT coalesce(
                           min(b.seq) FILTER (
                               WHERE b.created_at >= now() - make_interval(days => w.days)) - 1,
                           max(b.seq))
                  INTO v_upto
                  FROM (SELECT a.seq, a.created_at FROM public.audit_record a
                        WHERE a.workspace_id = w.id AND a.seq IS NOT NULL
                        ORDER BY a.seq LIMIT greatest(p_batch, 1)) b;
                CONTINUE WHEN v_upto IS NULL;
                SELECT a.hash INTO v_hash FROM public.audit_record a
                 WHERE a.workspace_id = w.id AND a.seq = v_upto;
                CONTINUE WHEN v_hash IS NULL;
                DELETE FROM public.audit_record a
                 WHERE a.workspace_id = w.id AND a.seq IS NOT NULL AND a.seq <= v_upto;
                GET DIAGNOSTICS v_n = ROW_COUNT;
                INSERT INTO public.audit_cut (workspace_id, up_to_seq, last_hash, removed)
                VALUES (w.id, v_upto, v_hash, v_n);
                workspace_id := w.id;
                removed := v_n;
                up_to_seq := v_upto;
                RETURN NEXT;
            END LOOP;
            DELETE FROM public.audit_denial d WHERE d.id IN (
                SELECT x.id FROM public.audit_denial x WHERE x.created_at < v_personal
                LIMIT greatest(p_batch, 1));
            DELETE FROM public.user_event e WHERE (e.user_id, e.id) IN (
                SELECT x.user_id, x.id FROM public.user_event x WHERE x.created_at < v_personal
                LIMIT greatest(p_batch, 1));
        END
        $$""")

    # A denial is filed under the authenticated actor in context (app.current_user_id), or
    # under nobody; the caller cannot choose whose log it lands in.
    op.execute(f"""
        CREATE FUNCTION warden_record_denial(
            p_id uuid, p_status integer, p_reason text, p_method text, p_path text, p_slug text,
            p_ip text, p_user_agent text, p_request_id text)
        RETURNS void
        LANGUAGE sql VOLATILE {DEFINER} AS $$
            INSERT INTO public.audit_denial (id, user_id, status, reason, method, path,
                                             workspace_slug, source_ip, user_agent, request_id)
            VALUES (p_id, nullif(current_setting('app.current_user_id', true), '')::uuid,
                    p_status, left(p_reason, 300), left(p_method, 10), p_path, left(p_slug, 63),
                    left(p_ip, 64), left(p_user_agent, 400), left(p_request_id, 64))
        $$""")

    op.execute(f"""
        CREATE FUNCTION warden_platform_denials(p_limit integer, p_before uuid)
        RETURNS TABLE (id uuid, created_at timestamptz, user_id uuid, status integer,
                       reason text, method text, path text, workspace_slug text,
                       source_ip text, user_agent text, request_id text)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        BEGIN
            IF NOT EXISTS (
                SELECT 1 FROM public.app_user u
                WHERE u.id = nullif(current_setting('app.current_user_id', true), '')::uuid
                  AND u.is_platform_admin AND u.is_active
            ) THEN
                RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
            END IF;
            RETURN QUERY
            SELECT d.id, d.created_at, d.user_id, d.status, d.reason::text, d.method::text,
                   d.path, d.workspace_slug::text, d.source_ip::text, d.user_agent::text,
                   d.request_id::text
            FROM public.audit_denial d
            WHERE p_before IS NULL OR d.id < p_before
            ORDER BY d.id DESC
            LIMIT least(greatest(p_limit, 1), 1000);
        END
        $$""")

    # Deleting a workspace (app.services.workspace_deletion) must remove its audit trail too,
    # which the runtime role cannot: only for a workspace marked deleted, only in its own
    # context, a batch at a time.
    op.execute(f"""
        CREATE FUNCTION warden_purge_audit(p_workspace_id uuid, p_limit integer)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_records integer;
            v_cuts integer := 0;
        BEGIN
            IF p_workspace_id IS DISTINCT FROM
               nullif(current_setting('app.current_workspace_id', true), '')::uuid THEN
                RAISE EXCEPTION 'not in this workspace''s context' USING ERRCODE = '42501';
            END IF;
            IF NOT EXISTS (SELECT 1 FROM public.workspace w
                           WHERE w.id = p_workspace_id AND w.deleted_at IS NOT NULL) THEN
                RAISE EXCEPTION 'the workspace is not being deleted' USING ERRCODE = '42501';
            END IF;
            DELETE FROM public.audit_record a
            WHERE a.workspace_id = p_workspace_id AND a.id IN (
                SELECT b.id FROM public.audit_record b
                WHERE b.workspace_id = p_workspace_id LIMIT greatest(p_limit, 1));
            GET DIAGNOSTICS v_records = ROW_COUNT;
            IF v_records < greatest(p_limit, 1) THEN
                DELETE FROM public.audit_cut c WHERE c.workspace_id = p_workspace_id;
                GET DIAGNOSTICS v_cuts = ROW_COUNT;
            END IF;
            RETURN v_records + v_cuts;
        END
        $$""")


def downgrade() -> None:
    for fn in (
        "warden_purge_audit(uuid, integer)",
        "warden_platform_denials(integer, uuid)",
        "warden_record_denial(uuid, integer, text, text, text, text, text, text, text)",
        "warden_audit_retention(integer, integer)",
        "warden_audit_seal(integer)",
        "warden_audit_canonical(audit_record)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in ("user_event", "audit_denial", "audit_cut", "audit_record"):
        op.drop_table(table)
    op.drop_constraint("ck_workspace_audit_retention_days_range", "workspace")
    op.drop_column("workspace", "audit_retention_days")
