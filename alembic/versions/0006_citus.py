"""Keys and definer functions that Citus can run, on every deployment.

Keys Citus refuses are redesigned, so that a single-node installation and a cluster share one
schema:
- `audit_denial` is keyed `(user_id, id)` like every per-user table (Citus distributes it by
  `user_id`, and a key must hold the distribution column, which cannot be null): calls nobody
  could be authenticated for are filed under `NOBODY` (the nil UUID) instead of NULL.
- `scan → task` is a plain foreign key: `ON DELETE SET NULL (task_id)` on a key that holds the
  distribution column is refused; task retention clears `scan.task_id` itself before it
  deletes a task.

Users are created, with their first security event, through a new definer function
(`warden_register_user`): the runtime role's column-level INSERT grant on users cannot work on
Citus, where the row reaches the shards with every defaulted column spelled out.

Definer functions are PL/pgSQL with plain statements: Citus cannot plan parameterised SQL
functions nor correlated subqueries over distributed tables. Each setting is read into a
variable once (evaluated where the function runs, not on a worker), no function takes a row
type (Citus re-binds it to a shard's row type: the audit hash now takes the record as jsonb),
no UPDATE or DELETE calls a volatile function, and partitions are created in sequential mode on
Citus. Every definer function pins `search_path = pg_catalog, public, pg_temp`.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
from app.db.partitions import DEFAULT_PARTITION
from app.db.rls import Scope, scope_statements

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SEARCH_PATH = "SET search_path = pg_catalog, public, pg_temp"
DEFINER = f"SECURITY DEFINER {SEARCH_PATH}"
NOBODY = "00000000-0000-0000-0000-000000000000"
CHAIN_LOCK = 74110  # as in 0004: one sealer or retention run per workspace chain

# Definer functions whose body stays as it was; only their search_path changes.
UNCHANGED = (
    "warden_create_workspace(uuid, text, text)",
    "warden_purge_audit(uuid, integer)",
)


def upgrade() -> None:
    _keys()
    for signature in UNCHANGED:
        op.execute(f"ALTER FUNCTION {signature} {SEARCH_PATH}")
    _identity_functions()
    _job_functions()
    _drop_workspace_function()
    _partition_function()
    _audit_functions()


def _keys() -> None:
    # The owner running this is subject to the forced policy; the rows must all be updated.
    op.execute("ALTER TABLE audit_denial NO FORCE ROW LEVEL SECURITY")
    op.execute(f"UPDATE audit_denial SET user_id = '{NOBODY}' WHERE user_id IS NULL")
    op.execute("ALTER TABLE audit_denial FORCE ROW LEVEL SECURITY")
    op.alter_column("audit_denial", "user_id", nullable=False)
    op.drop_constraint("pk_audit_denial", "audit_denial", type_="primary")
    op.create_primary_key("pk_audit_denial", "audit_denial", ["user_id", "id"])
    op.drop_index("ix_audit_denial_user_id_id", "audit_denial")

    op.drop_constraint("fk_scan_workspace_id_task_id_task", "scan", type_="foreignkey")
    op.create_foreign_key(
        "fk_scan_workspace_id_task_id_task",
        "scan",
        "task",
        ["workspace_id", "task_id"],
        ["workspace_id", "id"],
    )


def _identity_functions() -> None:
    # Registration: the account and its first security event. The runtime role keeps no
    # INSERT on users (on Citus a column-level INSERT grant cannot work: the row reaches the
    # shards with every defaulted column spelled out), and the event is written by the same
    # role (on Citus another role's connection to the event's shard would not see the user).
    op.execute(f"""
        CREATE FUNCTION warden_register_user(
            p_id uuid, p_email text, p_name text, p_password_hash text, p_event jsonb)
        RETURNS void
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        BEGIN
            INSERT INTO public.app_user (id, email, name, password_hash)
            VALUES (p_id, lower(p_email), p_name, p_password_hash);
            INSERT INTO public.user_event (user_id, id, action, method, path, body,
                                           resource_type, status, source_ip, user_agent,
                                           request_id)
            VALUES (p_id, (p_event->>'id')::uuid, 'register', left(p_event->>'method', 10),
                    p_event->>'path', nullif(p_event->'body', 'null'::jsonb), 'auth',
                    (p_event->>'status')::integer, left(p_event->>'source_ip', 64),
                    left(p_event->>'user_agent', 400), left(p_event->>'request_id', 64));
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_login_lookup(p_email text)
        RETURNS TABLE (user_id uuid, password_hash text, is_active boolean)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        BEGIN
            RETURN QUERY SELECT u.id, u.password_hash, u.is_active
            FROM public.app_user u WHERE u.email = lower(p_email);
        END
        $$""")
    # The request's context, statement by statement: the user, the login, the workspace by
    # slug, the membership, its custom role, the visible providers. Every read after the
    # first is keyed by the workspace, so on Citus each goes to one shard.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_request_context(
            p_user_id uuid, p_family_id uuid, p_slug text)
        RETURNS TABLE (authenticated boolean, workspace_id uuid, role text, custom_role_id uuid,
                       custom_role_name text, inherits_from text, grants text[],
                       revokes text[], visible_provider_ids uuid[], attributes jsonb,
                       is_platform_admin boolean)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        DECLARE
            v_admin boolean;
            v_attrs jsonb;
            v_ws uuid;
            v_role text;
            v_custom uuid;
            v_member_attrs jsonb;
        BEGIN
            authenticated := false;
            is_platform_admin := false;
            attributes := '{{}}';
            visible_provider_ids := '{{}}';
            SELECT u.is_platform_admin, u.attributes INTO v_admin, v_attrs
              FROM public.app_user u WHERE u.id = p_user_id AND u.is_active;
            IF NOT FOUND THEN
                RETURN NEXT;
                RETURN;
            END IF;
            is_platform_admin := v_admin;
            attributes := v_attrs;
            PERFORM FROM public.auth_session s
             WHERE s.user_id = p_user_id AND s.family_id = p_family_id
               AND s.revoked_at IS NULL AND s.expires_at > now();
            authenticated := FOUND;
            IF authenticated AND p_slug IS NOT NULL THEN
                SELECT w.id INTO v_ws FROM public.workspace w
                 WHERE w.slug = p_slug AND w.deleted_at IS NULL;
            END IF;
            IF v_ws IS NOT NULL THEN
                SELECT m.role, m.custom_role_id, m.attributes
                  INTO v_role, v_custom, v_member_attrs
                  FROM public.membership m WHERE m.workspace_id = v_ws AND m.user_id = p_user_id;
                IF FOUND THEN
                    workspace_id := v_ws;
                    role := v_role;
                    custom_role_id := v_custom;
                    attributes := attributes || coalesce(v_member_attrs, '{{}}');
                    IF v_custom IS NOT NULL THEN
                        SELECT cr.name, cr.inherits_from, cr.grants, cr.revokes
                          INTO custom_role_name, inherits_from, grants, revokes
                          FROM public.custom_role cr
                         WHERE cr.workspace_id = v_ws AND cr.id = v_custom;
                    END IF;
                    SELECT coalesce(array_agg(DISTINCT pgm.provider_id), '{{}}')
                      INTO visible_provider_ids
                      FROM public.role_provider_group rpg
                      JOIN public.provider_group_member pgm
                        ON pgm.workspace_id = rpg.workspace_id
                       AND pgm.provider_group_id = rpg.provider_group_id
                     WHERE rpg.workspace_id = v_ws
                       AND rpg.role_key = coalesce(v_role, v_custom::text);
                END IF;
            END IF;
            RETURN NEXT;
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_user_workspaces()
        RETURNS TABLE (id uuid, slug text, name text, role text, custom_role_id uuid,
                       custom_role_name text, inherits_from text, grants text[], revokes text[],
                       created_at timestamptz)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
        BEGIN
            RETURN QUERY
            SELECT w.id, w.slug::text, w.name::text, m.role::text, m.custom_role_id,
                   cr.name::text, cr.inherits_from::text, cr.grants, cr.revokes, w.created_at
            FROM public.membership m
            JOIN public.workspace w ON w.id = m.workspace_id
            LEFT JOIN public.custom_role cr
              ON cr.workspace_id = m.workspace_id AND cr.id = m.custom_role_id
            WHERE m.user_id = v_user AND w.deleted_at IS NULL
            ORDER BY w.slug;
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_platform_workspaces()
        RETURNS TABLE (id uuid, slug text, name text, created_at timestamptz,
                       member_count bigint, provider_count bigint)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
        BEGIN
            PERFORM FROM public.app_user u
             WHERE u.id = v_user AND u.is_platform_admin AND u.is_active;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
            END IF;
            RETURN QUERY
            SELECT w.id, w.slug::text, w.name::text, w.created_at,
                   coalesce(mc.n, 0), coalesce(pc.n, 0)
            FROM public.workspace w
            LEFT JOIN (SELECT m.workspace_id, count(*) AS n FROM public.membership m
                       GROUP BY m.workspace_id) mc ON mc.workspace_id = w.id
            LEFT JOIN (SELECT p.workspace_id, count(*) AS n FROM public.provider p
                       WHERE p.deleted_at IS NULL GROUP BY p.workspace_id) pc
              ON pc.workspace_id = w.id
            WHERE w.deleted_at IS NULL
            ORDER BY w.slug;
        END
        $$""")


def _job_functions() -> None:
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_member_context(p_user_id uuid, p_workspace_id uuid)
        RETURNS TABLE (role text, custom_role_id uuid, custom_role_name text,
                       inherits_from text, grants text[], revokes text[],
                       visible_provider_ids uuid[], attributes jsonb, workspace_deleted boolean)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        DECLARE
            v_user_attrs jsonb;
            v_deleted boolean;
            v_role text;
            v_custom uuid;
            v_member_attrs jsonb;
        BEGIN
            SELECT u.attributes INTO v_user_attrs
              FROM public.app_user u WHERE u.id = p_user_id AND u.is_active;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            SELECT w.deleted_at IS NOT NULL INTO v_deleted
              FROM public.workspace w WHERE w.id = p_workspace_id;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            SELECT m.role, m.custom_role_id, m.attributes INTO v_role, v_custom, v_member_attrs
              FROM public.membership m
             WHERE m.workspace_id = p_workspace_id AND m.user_id = p_user_id;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            role := v_role;
            custom_role_id := v_custom;
            workspace_deleted := v_deleted;
            attributes := coalesce(v_user_attrs, '{{}}') || coalesce(v_member_attrs, '{{}}');
            IF v_custom IS NOT NULL THEN
                SELECT cr.name, cr.inherits_from, cr.grants, cr.revokes
                  INTO custom_role_name, inherits_from, grants, revokes
                  FROM public.custom_role cr
                 WHERE cr.workspace_id = p_workspace_id AND cr.id = v_custom;
            END IF;
            SELECT coalesce(array_agg(DISTINCT pgm.provider_id), '{{}}') INTO visible_provider_ids
              FROM public.role_provider_group rpg
              JOIN public.provider_group_member pgm
                ON pgm.workspace_id = rpg.workspace_id
               AND pgm.provider_group_id = rpg.provider_group_id
             WHERE rpg.workspace_id = p_workspace_id
               AND rpg.role_key = coalesce(v_role, v_custom::text);
            RETURN NEXT;
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_outbox_pending(
            p_redeliver_after_seconds integer, p_limit integer)
        RETURNS TABLE (id uuid, workspace_id uuid, user_id uuid, job text)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        DECLARE
            v_sent_before timestamptz := now() - make_interval(secs => p_redeliver_after_seconds);
            v_limit integer := least(greatest(p_limit, 0), 1000);
        BEGIN
            RETURN QUERY
            SELECT o.id, o.workspace_id, o.user_id, o.job::text
            FROM public.outbox o
            WHERE o.done_at IS NULL AND (o.sent_at IS NULL OR o.sent_at < v_sent_before)
            ORDER BY o.created_at
            LIMIT v_limit;
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_outbox_mark_sent(p_ids uuid[])
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_now timestamptz := now();
            v_sent integer;
        BEGIN
            UPDATE public.outbox o SET sent_at = v_now, send_count = o.send_count + 1
             WHERE o.id = ANY (p_ids) AND o.done_at IS NULL;
            GET DIAGNOSTICS v_sent = ROW_COUNT;
            RETURN v_sent;
        END
        $$""")
    # Retention: finished tasks older than the cutoff, and with them their outbox rows (by
    # cascade); their scans stay, forgetting the task.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_prune_tasks(p_older_than_days integer, p_limit integer)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_cutoff timestamptz := now() - make_interval(days => greatest(p_older_than_days, 1));
            v_limit integer := least(greatest(p_limit, 0), 10000);
            v_workspaces uuid[];
            v_ids uuid[];
            v_gone integer;
        BEGIN
            SELECT array_agg(o.workspace_id), array_agg(o.id) INTO v_workspaces, v_ids
              FROM (SELECT t.workspace_id, t.id FROM public.task t
                    WHERE t.state IN ('succeeded', 'failed', 'refused', 'cancelled')
                      AND t.finished_at < v_cutoff
                    ORDER BY t.finished_at
                    LIMIT v_limit) o;
            IF v_ids IS NULL THEN
                RETURN 0;
            END IF;
            UPDATE public.scan s SET task_id = NULL
             WHERE s.workspace_id = ANY (v_workspaces) AND s.task_id = ANY (v_ids);
            DELETE FROM public.task t
             WHERE t.workspace_id = ANY (v_workspaces) AND t.id = ANY (v_ids)
               AND t.state IN ('succeeded', 'failed', 'refused', 'cancelled')
               AND t.finished_at < v_cutoff;
            GET DIAGNOSTICS v_gone = ROW_COUNT;
            RETURN v_gone;
        END
        $$""")
    # Tasks whose worker vanished (no progress for longer than the hard time limit allows).
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_expire_stuck_tasks(p_stale_seconds integer)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_now timestamptz := now();
            v_stale timestamptz := now() - make_interval(secs => greatest(p_stale_seconds, 60));
            v_workspaces uuid[] := '{{}}';
            v_ids uuid[] := '{{}}';
            r record;
        BEGIN
            FOR r IN UPDATE public.task t
                        SET state = 'failed', finished_at = v_now, updated_at = v_now,
                            error = 'The worker stopped reporting; the task was abandoned'
                      WHERE t.state = 'running' AND t.updated_at < v_stale
                  RETURNING t.workspace_id, t.id LOOP
                v_workspaces := v_workspaces || r.workspace_id;
                v_ids := v_ids || r.id;
            END LOOP;
            UPDATE public.outbox o SET done_at = v_now
             WHERE o.workspace_id = ANY (v_workspaces) AND o.task_id = ANY (v_ids)
               AND o.done_at IS NULL;
            RETURN cardinality(v_ids);
        END
        $$""")


def _drop_workspace_function() -> None:
    # The last step of a workspace deletion, from inside that workspace's context: its member
    # rows and custom roles, then the workspace row. On Citus, rows the workspace row's keys are
    # checked against must be removed by the same role (another role's connection to their
    # shards would still see them, and the check would wait on its locks).
    op.execute("DROP FUNCTION warden_drop_workspace(uuid)")
    op.execute(f"""
        CREATE FUNCTION warden_drop_workspace(p_workspace_id uuid)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_members integer;
            v_roles integer;
        BEGIN
            IF p_workspace_id IS DISTINCT FROM
               nullif(current_setting('app.current_workspace_id', true), '')::uuid THEN
                RAISE EXCEPTION 'not in this workspace''s context' USING ERRCODE = '42501';
            END IF;
            PERFORM FROM public.workspace w
             WHERE w.id = p_workspace_id AND w.deleted_at IS NOT NULL;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the workspace is not being deleted' USING ERRCODE = '42501';
            END IF;
            DELETE FROM public.membership m WHERE m.workspace_id = p_workspace_id;
            GET DIAGNOSTICS v_members = ROW_COUNT;
            DELETE FROM public.custom_role r WHERE r.workspace_id = p_workspace_id;
            GET DIAGNOSTICS v_roles = ROW_COUNT;
            DELETE FROM public.workspace w WHERE w.id = p_workspace_id;
            RETURN v_members + v_roles;
        END
        $$""")


def _partition_policy_sql() -> str:
    """plpgsql that puts partition `v_name` under the finding policy (the statements of
    `scope_table()`; `%I` is filled with the partition name by format())."""
    out = []
    for statement in scope_statements("%I", Scope.WORKSPACE_PROVIDER):
        if "$" in statement or "%" in statement.replace("%I", ""):
            raise ValueError("policy statement cannot be embedded")
        out.append(f"EXECUTE format($ddl${statement}$ddl$, v_name);")
    return "\n            ".join(out)


def _partition_function() -> None:
    # As in 0003, plus on Citus: one connection per node for the rest of the transaction (the
    # partition is distributed as it is attached, and `finding` has foreign keys to reference
    # tables, which Citus then requires), and the new table distributed before the default
    # partition's rows of its month move into it.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_create_finding_partition(p_month date)
        RETURNS text
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_start date := date_trunc('month', p_month)::date;
            v_end date := (date_trunc('month', p_month) + interval '1 month')::date;
            v_name text := format('finding_p%s', to_char(p_month, 'YYYY_MM'));
            v_from uuid;
            v_to uuid;
            v_citus boolean;
        BEGIN
            IF p_month < now() - interval '10 years' OR p_month > now() + interval '2 years' THEN
                RAISE EXCEPTION 'month % is out of range', p_month USING ERRCODE = '22023';
            END IF;
            IF to_regclass(format('public.%I', v_name)) IS NOT NULL THEN
                RETURN NULL;
            END IF;
            v_citus := EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus');
            IF v_citus THEN
                SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
            END IF;
            -- UUIDv7 of the month's first millisecond (UTC) with every random bit zeroed.
            v_from := (lpad(to_hex((extract(epoch FROM v_start::timestamp AT TIME ZONE 'UTC')
                        * 1000)::bigint), 12, '0') || '70008000000000000000')::uuid;
            v_to := (lpad(to_hex((extract(epoch FROM v_end::timestamp AT TIME ZONE 'UTC')
                      * 1000)::bigint), 12, '0') || '70008000000000000000')::uuid;
            EXECUTE format('CREATE TABLE public.%I (LIKE public.finding INCLUDING DEFAULTS '
                           'INCLUDING CONSTRAINTS)', v_name);
            -- The default partition's rows of the month move in first (attaching checks that
            -- the default partition holds none). On Citus the new table is distributed before
            -- that, co-located with `finding`: rows moved into a local table would have their
            -- keys checked, when attached, against the coordinator's empty copies.
            IF v_citus THEN
                EXECUTE format('SELECT create_distributed_table(%L, %L, colocate_with => %L)',
                               'public.' || v_name, 'workspace_id', 'public.finding');
            END IF;
            EXECUTE format('WITH moved AS (DELETE FROM public.{DEFAULT_PARTITION} '
                           'WHERE id >= $1 AND id < $2 RETURNING *) '
                           'INSERT INTO public.%I SELECT * FROM moved', v_name)
                USING v_from, v_to;
            EXECUTE format('ALTER TABLE public.finding ATTACH PARTITION public.%I '
                           'FOR VALUES FROM (%L) TO (%L)', v_name, v_from, v_to);
            {_partition_policy_sql()}
            RETURN v_name;
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_finding_default_rows()
        RETURNS bigint
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        DECLARE
            v_rows bigint;
        BEGIN
            SELECT count(*) INTO v_rows FROM public.{DEFAULT_PARTITION};
            RETURN v_rows;
        END
        $$""")


def _audit_functions() -> None:
    # The content a record's hash covers (see 0004), from the record as jsonb. The text is the
    # same as before for every record: the values are the same jsonb values, and the time is
    # read back from its ISO form (exact to the microsecond) and printed in UTC.
    op.execute(f"""
        CREATE FUNCTION warden_audit_canonical(r jsonb) RETURNS text
        LANGUAGE sql STABLE {SEARCH_PATH} AS $$
            SELECT jsonb_build_object(
                'v', 1, 'workspace_id', r->'workspace_id', 'id', r->'id', 'seq', r->'seq',
                'created_at', to_char((r->>'created_at')::timestamptz AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'action', r->'action', 'method', r->'method', 'path', r->'path',
                'path_params', r->'path_params', 'query_params', r->'query_params',
                'body', r->'body', 'state', r->'state', 'resource_type', r->'resource_type',
                'resource_id', r->'resource_id', 'status', r->'status', 'user_id', r->'user_id',
                'api_key_id', r->'api_key_id', 'source_ip', r->'source_ip',
                'user_agent', r->'user_agent', 'request_id', r->'request_id'
            )::text
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_audit_seal(p_batch integer)
        RETURNS TABLE (workspace_id uuid, sealed integer)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_now timestamptz := now();
            v_ws uuid;
            v_seq bigint;
            v_prev bytea;
            v_hash bytea;
            v_n integer;
            v_batch integer := greatest(p_batch, 1);
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
                         ORDER BY a.id LIMIT v_batch LOOP
                    v_seq := v_seq + 1;
                    r.seq := v_seq;
                    v_hash := sha256(convert_to(public.warden_audit_canonical(to_jsonb(r)), 'UTF8')
                                     || coalesce(v_prev, '\\x'::bytea));
                    UPDATE public.audit_record a
                       SET seq = v_seq, prev_hash = v_prev, hash = v_hash, sealed_at = v_now
                     WHERE a.workspace_id = v_ws AND a.id = r.id;
                    v_prev := v_hash;
                    v_n := v_n + 1;
                END LOOP;
                workspace_id := v_ws;
                sealed := v_n;
                RETURN NEXT;
            END LOOP;
        END
        $$""")
    op.execute("DROP FUNCTION warden_audit_canonical(audit_record)")

    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_audit_retention(p_batch integer, p_personal_days integer)
        RETURNS TABLE (workspace_id uuid, removed integer, up_to_seq bigint)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            w record;
            v_now timestamptz := now();
            v_upto bigint;
            v_hash bytea;
            v_n integer;
            v_users uuid[];
            v_ids uuid[];
            v_batch integer := greatest(p_batch, 1);
            v_personal timestamptz := now() - make_interval(days => greatest(p_personal_days, 30));
        BEGIN
            FOR w IN SELECT ws.id, ws.audit_retention_days AS days FROM public.workspace ws
                     WHERE ws.audit_retention_days IS NOT NULL LOOP
                CONTINUE WHEN NOT pg_try_advisory_xact_lock({CHAIN_LOCK}, hashtext(w.id::text));
                SELECT coalesce(
                           min(b.seq) FILTER (
                               WHERE b.created_at >= v_now - make_interval(days => w.days)) - 1,
                           max(b.seq))
                  INTO v_upto
                  FROM (SELECT a.seq, a.created_at FROM public.audit_record a
                        WHERE a.workspace_id = w.id AND a.seq IS NOT NULL
                        ORDER BY a.seq LIMIT v_batch) b;
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
            SELECT array_agg(x.user_id), array_agg(x.id) INTO v_users, v_ids
              FROM (SELECT d.user_id, d.id FROM public.audit_denial d
                    WHERE d.created_at < v_personal LIMIT v_batch) x;
            DELETE FROM public.audit_denial d
             WHERE d.user_id = ANY (v_users) AND d.id = ANY (v_ids)
               AND d.created_at < v_personal;
            SELECT array_agg(x.user_id), array_agg(x.id) INTO v_users, v_ids
              FROM (SELECT e.user_id, e.id FROM public.user_event e
                    WHERE e.created_at < v_personal LIMIT v_batch) x;
            DELETE FROM public.user_event e
             WHERE e.user_id = ANY (v_users) AND e.id = ANY (v_ids)
               AND e.created_at < v_personal;
        END
        $$""")

    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_record_denial(
            p_id uuid, p_status integer, p_reason text, p_method text, p_path text, p_slug text,
            p_ip text, p_user_agent text, p_request_id text)
        RETURNS void
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_user uuid := coalesce(
                nullif(current_setting('app.current_user_id', true), '')::uuid, '{NOBODY}');
        BEGIN
            INSERT INTO public.audit_denial (id, user_id, status, reason, method, path,
                                             workspace_slug, source_ip, user_agent, request_id)
            VALUES (p_id, v_user, p_status, left(p_reason, 300), left(p_method, 10), p_path,
                    left(p_slug, 63), left(p_ip, 64), left(p_user_agent, 400),
                    left(p_request_id, 64));
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_platform_denials(p_limit integer, p_before uuid)
        RETURNS TABLE (id uuid, created_at timestamptz, user_id uuid, status integer,
                       reason text, method text, path text, workspace_slug text,
                       source_ip text, user_agent text, request_id text)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
            v_limit integer := least(greatest(p_limit, 1), 1000);
        BEGIN
            PERFORM FROM public.app_user u
             WHERE u.id = v_user AND u.is_platform_admin AND u.is_active;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'platform admin only' USING ERRCODE = '42501';
            END IF;
            RETURN QUERY
            SELECT d.id, d.created_at, nullif(d.user_id, '{NOBODY}'), d.status, d.reason::text,
                   d.method::text, d.path, d.workspace_slug::text, d.source_ip::text,
                   d.user_agent::text, d.request_id::text
            FROM public.audit_denial d
            WHERE p_before IS NULL OR d.id < p_before
            ORDER BY d.id DESC
            LIMIT v_limit;
        END
        $$""")


def downgrade() -> None:
    raise NotImplementedError("0006 rekeys the denial log; restore from a backup instead")
