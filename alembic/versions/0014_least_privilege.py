"""Least privilege for the runtime role, against a takeover of the application process.

- `app_user` is under RLS (enabled, forced) with the one policy form of every table: a user
  row is seen only while it is the user in context (`id = app.current_user_id`). Other users
  are reached only through narrow definer functions: the members of the workspace in context
  (`warden_member_users`, only for a user who is a member of it), an active user by exact email
  (`warden_user_by_email`, likewise), login by exact email (`warden_login_lookup`), and the own
  password by compare-and-swap on the current hash (`warden_change_password`); the runtime role
  keeps no UPDATE on users at all.
- The cross-workspace maintenance functions (`app.db.roles.MAINTENANCE_FUNCTIONS`) are granted
  by `warden migrate` to the maintenance role only. Their arguments are bounded inside: task
  retention and the age of a stuck task never below the floors `warden migrate` sets on the
  functions (`warden.min_task_retention_days`, `warden.min_stuck_task_seconds`; here the
  smallest the settings allow), the outbox batch to mark sent and the audit retention batch
  capped.
- Every `warden_*` SECURITY DEFINER function pins `search_path = pg_catalog, public, pg_temp`
  (pg_temp last: a temporary object never shadows a name the function uses).

Revision ID: 0014
Revises: 0013
"""

from alembic import op
from app.db.rls import Scope, scope_statements

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SEARCH_PATH = "SET search_path = pg_catalog, public, pg_temp"
DEFINER = f"SECURITY DEFINER {SEARCH_PATH}"
CHAIN_LOCK = 74110  # as in 0004: one sealer or retention run per workspace chain
MAX_MARK_SENT = 1000
MAX_AUDIT_BATCH = 10000


def upgrade() -> None:
    # Not distributed on Citus: it stays a reference table (its policy keys no column a
    # distributed table is keyed by).
    for statement in scope_statements("app_user", Scope.USER_ROW):
        op.execute(statement)
    _user_functions()
    _bounded_maintenance()
    _pin_search_paths()


def _user_functions() -> None:
    # The members of the workspace in context, all of them or the given ones: only for a user
    # in context who is a member there too (never users who share no workspace with them).
    op.execute(f"""
        CREATE FUNCTION warden_member_users(p_user_ids uuid[])
        RETURNS TABLE (user_id uuid, email text, name text, attributes jsonb)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_ws uuid := nullif(current_setting('app.current_workspace_id', true), '')::uuid;
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
        BEGIN
            IF v_ws IS NULL OR v_user IS NULL THEN
                RETURN;
            END IF;
            PERFORM FROM public.membership m WHERE m.workspace_id = v_ws AND m.user_id = v_user;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            RETURN QUERY
            SELECT m.user_id, u.email::text, u.name::text, u.attributes
            FROM public.membership m
            JOIN public.app_user u ON u.id = m.user_id
            WHERE m.workspace_id = v_ws
              AND (p_user_ids IS NULL OR m.user_id = ANY (p_user_ids));
        END
        $$""")
    # Adding a member or inviting one: the active user with exactly this email (one row at
    # most: id, name, attributes), asked from inside a workspace by one of its members.
    op.execute(f"""
        CREATE FUNCTION warden_user_by_email(p_email text)
        RETURNS TABLE (user_id uuid, name text, attributes jsonb)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_ws uuid := nullif(current_setting('app.current_workspace_id', true), '')::uuid;
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
        BEGIN
            IF v_ws IS NULL OR v_user IS NULL THEN
                RETURN;
            END IF;
            PERFORM FROM public.membership m WHERE m.workspace_id = v_ws AND m.user_id = v_user;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            RETURN QUERY
            SELECT u.id, u.name::text, u.attributes FROM public.app_user u
            WHERE u.email = lower(p_email) AND u.is_active;
        END
        $$""")
    # The user in context's own password, only from the hash it has now (a change of password
    # checks the current one; a login rehash stores the new cost).
    op.execute(f"""
        CREATE FUNCTION warden_change_password(p_current_hash text, p_new_hash text)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
            v_now timestamptz := now();
            v_n integer;
        BEGIN
            IF v_user IS NULL OR p_current_hash IS NULL OR p_new_hash IS NULL
               OR p_new_hash NOT LIKE '$argon2%' THEN
                RETURN false;
            END IF;
            UPDATE public.app_user u SET password_hash = p_new_hash, updated_at = v_now
             WHERE u.id = v_user AND u.password_hash = p_current_hash;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            RETURN v_n = 1;
        END
        $$""")


def _bounded_maintenance() -> None:
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_outbox_mark_sent(p_ids uuid[])
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_now timestamptz := now();
            v_sent integer;
        BEGIN
            IF cardinality(p_ids) > {MAX_MARK_SENT} THEN
                RAISE EXCEPTION 'at most {MAX_MARK_SENT} ids at a time' USING ERRCODE = '22023';
            END IF;
            UPDATE public.outbox o SET sent_at = v_now, send_count = o.send_count + 1
             WHERE o.id = ANY (p_ids) AND o.done_at IS NULL;
            GET DIAGNOSTICS v_sent = ROW_COUNT;
            RETURN v_sent;
        END
        $$""")
    # As in 0006, with the retention never shorter than the floor set on the function.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_prune_tasks(p_older_than_days integer, p_limit integer)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_floor integer := coalesce(
                nullif(current_setting('warden.min_task_retention_days', true), '')::integer, 1);
            v_cutoff timestamptz := now() - make_interval(
                days => greatest(p_older_than_days, v_floor, 1));
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
    op.execute(
        "ALTER FUNCTION warden_prune_tasks(integer, integer) "
        "SET warden.min_task_retention_days = '1'"
    )
    # As in 0006, with a stuck task never younger than the floor set on the function.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_expire_stuck_tasks(p_stale_seconds integer)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_now timestamptz := now();
            v_floor integer := coalesce(
                nullif(current_setting('warden.min_stuck_task_seconds', true), '')::integer, 60);
            v_stale timestamptz := now() - make_interval(
                secs => greatest(p_stale_seconds, v_floor, 60));
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
    op.execute(
        "ALTER FUNCTION warden_expire_stuck_tasks(integer) SET warden.min_stuck_task_seconds = '60'"
    )
    # As in 0006, with the batch capped.
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
            v_batch integer := least(greatest(p_batch, 1), {MAX_AUDIT_BATCH});
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


def _pin_search_paths() -> None:
    # Every definer function, whenever it was made: the one search_path, pg_temp last.
    op.execute(f"""
        DO $$
        DECLARE
            f regprocedure;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
                     WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef
                       AND p.proname LIKE 'warden\\_%' LOOP
                EXECUTE format('ALTER FUNCTION %s {SEARCH_PATH}', f);
            END LOOP;
        END
        $$""")


def downgrade() -> None:
    for fn in (
        "warden_change_password(text, text)",
        "warden_user_by_email(text)",
        "warden_member_users(uuid[])",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.execute("ALTER FUNCTION warden_prune_tasks(integer, integer) RESET ALL")
    op.execute("ALTER FUNCTION warden_expire_stuck_tasks(integer) RESET ALL")
    op.execute(f"ALTER FUNCTION warden_prune_tasks(integer, integer) {SEARCH_PATH}")
    op.execute(f"ALTER FUNCTION warden_expire_stuck_tasks(integer) {SEARCH_PATH}")
    op.execute("DROP POLICY tenant_isolation ON app_user")
    op.execute("ALTER TABLE app_user NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE app_user DISABLE ROW LEVEL SECURITY")
