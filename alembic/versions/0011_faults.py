"""Faults: task leases (a running task is held by one delivery, renewed by its heartbeat, taken
over when it expires) and idempotency keys (a POST's response stored with its effects, replayed
for a retry with the same key).

`idempotency_key` (workspace routes) is scoped to the workspace and the user, and
`user_idempotency_key` (the caller's own routes) to the user, both by `scope_table()`. The two
definer functions are the only cross-workspace paths: the worker's sweep reads which jobs hold
an expired lease (ids only; the takeover itself runs in the job's own workspace context), and
the retention cron removes expired keys.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from alembic import op
from app.db.rls import Scope, scope_table

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# pg_temp last: a temporary object of the caller can never shadow what these functions name.
DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"


def _key_columns() -> list[sa.Column]:
    """What an idempotency key stores: the request's fingerprint, then the response."""
    return [
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("status", sa.SmallInteger),
        sa.Column("headers", JSONB),
        sa.Column("body", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.add_column("task", sa.Column("lease_id", UUID(as_uuid=True)))
    op.add_column("task", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column("task", sa.Column("leased_by", sa.String(200)))
    op.create_index(
        "ix_task_running_lease_expires_at", "task", ["lease_expires_at"],
        postgresql_where=sa.text("state = 'running'"),
    )

    op.create_table(
        "idempotency_key",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"),
                  nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        *_key_columns(),
        sa.PrimaryKeyConstraint("workspace_id", "user_id", "key"),
    )
    op.create_index("ix_idempotency_key_expires_at", "idempotency_key", ["expires_at"])
    scope_table("idempotency_key", Scope.WORKSPACE_USER)

    op.create_table(
        "user_idempotency_key",
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        *_key_columns(),
        sa.PrimaryKeyConstraint("user_id", "key"),
    )
    op.create_index("ix_user_idempotency_key_expires_at", "user_idempotency_key", ["expires_at"])
    scope_table("user_idempotency_key", Scope.USER)

    # The worker's takeover sweep: jobs whose task is running under a lease that expired more
    # than p_grace_seconds ago (its worker is gone) and that are not done. Ids and the job name
    # only; nothing is changed here: the job is delivered again and claims its task in its own
    # workspace's context, under that workspace's policy.
    op.execute(f"""
        CREATE FUNCTION warden_expired_task_leases(p_grace_seconds integer, p_limit integer)
        RETURNS TABLE (id uuid, workspace_id uuid, user_id uuid, job text)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        BEGIN
            RETURN QUERY
            SELECT o.id, o.workspace_id, o.user_id, o.job::text
            FROM public.task t
            JOIN public.outbox o ON o.workspace_id = t.workspace_id AND o.task_id = t.id
            WHERE t.state = 'running'
              AND t.lease_expires_at < now() - make_interval(secs => greatest(p_grace_seconds, 0))
              AND o.done_at IS NULL
            ORDER BY t.lease_expires_at
            LIMIT least(greatest(p_limit, 0), 1000);
        END
        $$""")
    # Retention of idempotency keys: the expired ones, in both tables.
    op.execute(f"""
        CREATE FUNCTION warden_prune_idempotency_keys()
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_workspace integer;
            v_user integer;
        BEGIN
            DELETE FROM public.idempotency_key WHERE expires_at < now();
            GET DIAGNOSTICS v_workspace = ROW_COUNT;
            DELETE FROM public.user_idempotency_key WHERE expires_at < now();
            GET DIAGNOSTICS v_user = ROW_COUNT;
            RETURN v_workspace + v_user;
        END
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS warden_prune_idempotency_keys()")
    op.execute("DROP FUNCTION IF EXISTS warden_expired_task_leases(integer, integer)")
    op.drop_table("user_idempotency_key")
    op.drop_table("idempotency_key")
    op.drop_index("ix_task_running_lease_expires_at", table_name="task")
    for column in ("leased_by", "lease_expires_at", "lease_id"):
        op.drop_column("task", column)
