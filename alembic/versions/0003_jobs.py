"""Background jobs: tasks, the outbox, scans and findings (partitioned by month).

Revision ID: 0003
Revises: 0002

Cross-workspace work of the relay and the cron jobs goes through the narrow SECURITY DEFINER
functions below (owned by the definer role after `warden migrate`, see app.db.roles); each
returns or changes only what its caller needs. Finding partitions are created at run time by
`warden_create_finding_partition`, which applies the same policy statements as
`scope_table()` (generated here from `app.db.rls.scope_statements`, never written by hand).
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op
from app.db.partitions import DEFAULT_PARTITION, add_months
from app.db.rls import Scope, scope_statements, scope_table

# Every table with `workspace_id` below goes through `scope_table()` (app/db/rls.py), which
# issues ALTER TABLE … ENABLE and FORCE ROW LEVEL SECURITY and CREATE POLICY with the one
# tenant predicate; tests/db/test_catalog.py (`warden check --rls`) fails on any table
# without them.

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"
PARTITIONS_AT_MIGRATION = 3  # this month and the next two; the cron keeps more ahead


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


def _partition_policy_sql() -> str:
    """plpgsql that puts partition `v_name` under the finding policy (same statements as
    scope_table(); `%I` is filled with the partition name by format())."""
    out = []
    for statement in scope_statements("%I", Scope.WORKSPACE_PROVIDER):
        if "$" in statement or "%" in statement.replace("%I", ""):
            raise ValueError("policy statement cannot be embedded")
        out.append(f"EXECUTE format($ddl${statement}$ddl$, v_name);")
    return "\n            ".join(out)


def upgrade() -> None:
    op.create_table(
        "task",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("progress", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("progress_detail", JSONB, nullable=False, server_default="{}"),
        sa.Column("result", JSONB),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("resource_type", sa.String(40)),
        sa.Column("resource_id", UUID(as_uuid=True)),
        # The provider the task works on, if any: a task follows its provider's visibility.
        sa.Column("provider_id", UUID(as_uuid=True)),
        sa.Column("created_by", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        _ts("created_at", default=True),
        _ts("updated_at", default=True),
        _ts("started_at"),
        _ts("finished_at"),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'succeeded', 'failed', 'refused', 'cancelled')",
            name="state",
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
    )
    op.create_index("ix_task_workspace_id_state", "task", ["workspace_id", "state"])
    op.create_index("ix_task_finished_at", "task", ["finished_at"])
    op.create_index(
        "ix_task_running_updated_at", "task", ["updated_at"],
        postgresql_where=sa.text("state = 'running'"),
    )
    scope_table("task", Scope.WORKSPACE_PROVIDER)

    op.create_table(
        "outbox",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("job", sa.String(60), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("task_id", UUID(as_uuid=True)),
        sa.Column("args", JSONB, nullable=False, server_default="{}"),
        _ts("created_at", default=True),
        _ts("sent_at"),
        sa.Column("send_count", sa.Integer, nullable=False, server_default="0"),
        _ts("done_at"),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "task_id"], ["task.workspace_id", "task.id"], ondelete="CASCADE"
        ),
    )
    # The sweeper's scan (through warden_outbox_pending): only rows still to deliver.
    op.create_index(
        "ix_outbox_undone_created_at", "outbox", ["created_at"],
        postgresql_where=sa.text("done_at IS NULL"),
    )
    op.create_index("ix_outbox_workspace_id_task_id", "outbox", ["workspace_id", "task_id"])
    scope_table("outbox", Scope.WORKSPACE)

    op.create_table(
        "scan",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("provider_id", UUID(as_uuid=True), nullable=False),
        sa.Column("task_id", UUID(as_uuid=True)),
        sa.Column("state", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("created_by", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("findings_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rejected_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("duplicate_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("severity_counts", JSONB, nullable=False, server_default="{}"),
        sa.Column("status_counts", JSONB, nullable=False, server_default="{}"),
        sa.Column("error", sa.Text),
        _ts("created_at", default=True),
        _ts("started_at"),
        _ts("completed_at"),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'completed', 'failed', 'refused', 'cancelled')",
            name="state",
        ),
    )
    # A task is pruned by retention long before its scan: keep the scan, forget the task.
    op.execute(
        "ALTER TABLE scan ADD CONSTRAINT fk_scan_workspace_id_task_id_task "
        "FOREIGN KEY (workspace_id, task_id) REFERENCES task (workspace_id, id) "
        "ON DELETE SET NULL (task_id)"
    )
    op.create_index("ix_scan_workspace_id_provider_id", "scan", ["workspace_id", "provider_id"])
    scope_table("scan", Scope.WORKSPACE_PROVIDER)

    op.create_table(
        "scan_upload",
        _ws(),
        sa.Column("scan_id", UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "scan_id", "seq"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "scan_id"], ["scan.workspace_id", "scan.id"], ondelete="CASCADE"
        ),
    )
    scope_table("scan_upload", Scope.WORKSPACE)

    op.create_table(
        "finding",
        _ws(),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("scan_id", UUID(as_uuid=True), nullable=False),
        sa.Column("provider_id", UUID(as_uuid=True), nullable=False),
        sa.Column("uid", sa.Text, nullable=False),
        sa.Column("check_id", sa.String(200), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_extended", sa.Text),
        sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("region", sa.String(100)),
        sa.Column("resource_uid", sa.Text),
        sa.Column("resource_name", sa.Text),
        sa.Column("resource_type", sa.String(200)),
        sa.Column("compliance", JSONB, nullable=False, server_default="{}"),
        sa.Column("remediation", JSONB, nullable=False, server_default="{}"),
        sa.Column("raw", JSONB, nullable=False),
        _ts("observed_at"),
        sa.Column("inserted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.ForeignKeyConstraint(["workspace_id", "scan_id"], ["scan.workspace_id", "scan.id"]),
        sa.ForeignKeyConstraint(
            ["workspace_id", "provider_id"], ["provider.workspace_id", "provider.id"]
        ),
        postgresql_partition_by="RANGE (id)",
    )
    for cols in (("scan_id",), ("provider_id",), ("check_id",)):
        name = "ix_finding_workspace_id_" + "_".join(cols) + "_id"
        op.create_index(name, "finding", ["workspace_id", *cols, "id"])
    scope_table("finding", Scope.WORKSPACE_PROVIDER)
    op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF finding DEFAULT")
    scope_table(DEFAULT_PARTITION, Scope.WORKSPACE_PROVIDER)

    _functions()

    today = datetime.now(UTC).date()
    for ahead in range(PARTITIONS_AT_MIGRATION):
        month = add_months(today.replace(day=1), ahead)
        op.execute(f"SELECT warden_create_finding_partition('{month.isoformat()}'::date)")


def _functions() -> None:
    # A job re-checks, before it touches data, that its user is still an active member, with
    # the same role, custom role and provider visibility a request would get.
    op.execute(f"""
        CREATE FUNCTION warden_member_context(p_user_id uuid, p_workspace_id uuid)
        RETURNS TABLE (role text, custom_role_id uuid, custom_role_name text,
                       inherits_from text, grants text[], revokes text[],
                       visible_provider_ids uuid[], attributes jsonb, workspace_deleted boolean)
        LANGUAGE sql STABLE {DEFINER} AS $$
            SELECT m.role, m.custom_role_id, cr.name::text, cr.inherits_from::text,
                   cr.grants, cr.revokes,
                   ARRAY(
                       SELECT DISTINCT pgm.provider_id
                       FROM public.role_provider_group rpg
                       JOIN public.provider_group_member pgm
                         ON pgm.workspace_id = rpg.workspace_id
                        AND pgm.provider_group_id = rpg.provider_group_id
                       WHERE rpg.workspace_id = m.workspace_id
                         AND rpg.role_key = coalesce(m.role, m.custom_role_id::text)
                   ),
                   coalesce(u.attributes, '{{}}'::jsonb) || coalesce(m.attributes, '{{}}'::jsonb),
                   w.deleted_at IS NOT NULL
            FROM public.membership m
            JOIN public.workspace w ON w.id = m.workspace_id
            JOIN public.app_user u ON u.id = m.user_id AND u.is_active
            LEFT JOIN public.custom_role cr
              ON cr.workspace_id = m.workspace_id AND cr.id = m.custom_role_id
            WHERE m.workspace_id = p_workspace_id AND m.user_id = p_user_id
        $$""")
    # The relay/sweeper: jobs of every workspace still to (re)deliver, ids and names only.
    op.execute(f"""
        CREATE FUNCTION warden_outbox_pending(p_redeliver_after_seconds integer, p_limit integer)
        RETURNS TABLE (id uuid, workspace_id uuid, user_id uuid, job text)
        LANGUAGE sql STABLE {DEFINER} AS $$
            SELECT o.id, o.workspace_id, o.user_id, o.job::text
            FROM public.outbox o
            WHERE o.done_at IS NULL
              AND (o.sent_at IS NULL
                   OR o.sent_at < now() - make_interval(secs => p_redeliver_after_seconds))
            ORDER BY o.created_at
            LIMIT least(greatest(p_limit, 0), 1000)
        $$""")
    op.execute(f"""
        CREATE FUNCTION warden_outbox_mark_sent(p_ids uuid[])
        RETURNS integer
        LANGUAGE sql VOLATILE {DEFINER} AS $$
            WITH sent AS (
                UPDATE public.outbox SET sent_at = now(), send_count = send_count + 1
                WHERE id = ANY (p_ids) AND done_at IS NULL
                RETURNING 1
            )
            SELECT count(*)::integer FROM sent
        $$""")
    # Retention: finished tasks (and, by cascade, their outbox rows) older than the cutoff.
    op.execute(f"""
        CREATE FUNCTION warden_prune_tasks(p_older_than_days integer, p_limit integer)
        RETURNS integer
        LANGUAGE sql VOLATILE {DEFINER} AS $$
            WITH old AS (
                SELECT t.workspace_id, t.id FROM public.task t
                WHERE t.state IN ('succeeded', 'failed', 'refused', 'cancelled')
                  AND t.finished_at < now() - make_interval(days => greatest(p_older_than_days, 1))
                ORDER BY t.finished_at
                LIMIT least(greatest(p_limit, 0), 10000)
            ), gone AS (
                DELETE FROM public.task t USING old
                WHERE t.workspace_id = old.workspace_id AND t.id = old.id
                RETURNING 1
            )
            SELECT count(*)::integer FROM gone
        $$""")
    # Tasks whose worker vanished (no progress for longer than the hard time limit allows).
    op.execute(f"""
        CREATE FUNCTION warden_expire_stuck_tasks(p_stale_seconds integer)
        RETURNS integer
        LANGUAGE sql VOLATILE {DEFINER} AS $$
            WITH stuck AS (
                UPDATE public.task
                SET state = 'failed', finished_at = now(), updated_at = now(),
                    error = 'The worker stopped reporting; the task was abandoned'
                WHERE state = 'running'
                  AND updated_at < now() - make_interval(secs => greatest(p_stale_seconds, 60))
                RETURNING workspace_id, id
            ), done AS (
                UPDATE public.outbox o SET done_at = now()
                FROM stuck WHERE o.workspace_id = stuck.workspace_id AND o.task_id = stuck.id
                  AND o.done_at IS NULL
                RETURNING 1
            )
            SELECT count(*)::integer FROM stuck
        $$""")
    # The last step of a workspace deletion, from inside that workspace's context, once the
    # deletion job has removed every row that references it.
    op.execute(f"""
        CREATE FUNCTION warden_drop_workspace(p_workspace_id uuid)
        RETURNS void
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        BEGIN
            IF p_workspace_id IS DISTINCT FROM
               nullif(current_setting('app.current_workspace_id', true), '')::uuid THEN
                RAISE EXCEPTION 'not in this workspace''s context' USING ERRCODE = '42501';
            END IF;
            DELETE FROM public.workspace WHERE id = p_workspace_id AND deleted_at IS NOT NULL;
        END
        $$""")
    # Partition maintenance: a month's partition, created ahead; rows the default partition
    # caught for that month are moved into it first (ATTACH would refuse otherwise).
    op.execute(f"""
        CREATE FUNCTION warden_create_finding_partition(p_month date)
        RETURNS text
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_start date := date_trunc('month', p_month)::date;
            v_end date := (date_trunc('month', p_month) + interval '1 month')::date;
            v_name text := format('finding_p%s', to_char(p_month, 'YYYY_MM'));
            v_from uuid;
            v_to uuid;
        BEGIN
            IF p_month < now() - interval '10 years' OR p_month > now() + interval '2 years' THEN
                RAISE EXCEPTION 'month % is out of range', p_month USING ERRCODE = '22023';
            END IF;
            IF to_regclass(format('public.%I', v_name)) IS NOT NULL THEN
                RETURN NULL;
            END IF;
            -- UUIDv7 of the month's first millisecond (UTC) with every random bit zeroed.
            v_from := (lpad(to_hex((extract(epoch FROM v_start::timestamp AT TIME ZONE 'UTC')
                        * 1000)::bigint), 12, '0') || '70008000000000000000')::uuid;
            v_to := (lpad(to_hex((extract(epoch FROM v_end::timestamp AT TIME ZONE 'UTC')
                      * 1000)::bigint), 12, '0') || '70008000000000000000')::uuid;
            EXECUTE format('CREATE TABLE public.%I (LIKE public.finding INCLUDING DEFAULTS '
                           'INCLUDING CONSTRAINTS)', v_name);
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
    # What the watch on the default partition needs: how many rows fell outside every month.
    op.execute(f"""
        CREATE FUNCTION warden_finding_default_rows()
        RETURNS bigint
        LANGUAGE sql STABLE {DEFINER} AS $$
            SELECT count(*) FROM public.{DEFAULT_PARTITION}
        $$""")


def downgrade() -> None:
    for fn in (
        "warden_finding_default_rows()",
        "warden_create_finding_partition(date)",
        "warden_drop_workspace(uuid)",
        "warden_expire_stuck_tasks(integer)",
        "warden_prune_tasks(integer, integer)",
        "warden_outbox_mark_sent(uuid[])",
        "warden_outbox_pending(integer, integer)",
        "warden_member_context(uuid, uuid)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in ("finding", "scan_upload", "scan", "outbox", "task"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
