"""Two narrow reads for operators: the outbox's backlog and the schema's revision.

`warden_outbox_stats()` counts, across workspaces, the outbox rows not yet handed to Redis and
the age of the oldest (the runtime role sees no outbox row without a workspace context, and
`/metrics` has none); `warden_schema_version()` returns the Alembic revision, so `/readyz` can
say whether the database is at the head the code expects (the runtime role cannot read
`alembic_version`). Counts and a revision only: no row of any workspace leaves.

Revision ID: 0008
Revises: 0005
"""

from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION warden_outbox_stats()
        RETURNS TABLE (unsent bigint, oldest_unsent_seconds double precision)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        BEGIN
            RETURN QUERY
            SELECT count(*),
                   coalesce(extract(epoch FROM now() - min(o.created_at))::double precision, 0)
            FROM public.outbox o
            WHERE o.done_at IS NULL AND o.sent_at IS NULL;
        END
        $$""")
    op.execute(f"""
        CREATE FUNCTION warden_schema_version()
        RETURNS text
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        BEGIN
            RETURN (SELECT v.version_num FROM public.alembic_version v LIMIT 1);
        END
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION warden_schema_version()")
    op.execute("DROP FUNCTION warden_outbox_stats()")
