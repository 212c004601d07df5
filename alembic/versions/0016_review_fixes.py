"""Review fixes against a compromised app process.

- Retention removes no audit record younger than the purge grace period
  (`warden.audit_purge_grace`, set on the function by `warden migrate` like the purge's): the
  runtime role may set any workspace's retention to its shortest (1 day), and this must erase
  nothing sooner than a deletion could.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

SEARCH_PATH = "SET search_path = pg_catalog, public, pg_temp"
DEFINER = f"SECURITY DEFINER {SEARCH_PATH}"
CHAIN_LOCK = 74110  # as in 0004: one sealer or retention run per workspace chain
MAX_AUDIT_BATCH = 10000
DEFAULT_GRACE = "7 days"


def _retention(grace_floor: bool) -> str:
    # As in 0014; with `grace_floor`, a record is expired only once it is older than both the
    # workspace's retention and the grace period.
    keep = (
        "least(v_now - make_interval(days => w.days), v_now - v_grace)"
        if grace_floor
        else "v_now - make_interval(days => w.days)"
    )
    return f"""
        CREATE OR REPLACE FUNCTION warden_audit_retention(p_batch integer, p_personal_days integer)
        RETURNS TABLE (workspace_id uuid, removed integer, up_to_seq bigint)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            w record;
            v_now timestamptz := now();
            v_grace interval := coalesce(
                nullif(current_setting('warden.audit_purge_grace', true), ''),
                '{DEFAULT_GRACE}')::interval;
            v_keep timestamptz;
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
                v_keep := {keep};
                SELECT coalesce(
                           min(b.seq) FILTER (WHERE b.created_at >= v_keep) - 1,
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
        $$"""


def upgrade() -> None:
    op.execute(_retention(grace_floor=True))
    op.execute(
        "ALTER FUNCTION warden_audit_retention(integer, integer) "
        f"SET warden.audit_purge_grace = '{DEFAULT_GRACE}'"
    )


def downgrade() -> None:
    op.execute("ALTER FUNCTION warden_audit_retention(integer, integer) RESET ALL")
    op.execute(f"ALTER FUNCTION warden_audit_retention(integer, integer) {SEARCH_PATH}")
    op.execute(_retention(grace_floor=False))
