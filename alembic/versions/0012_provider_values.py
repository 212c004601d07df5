"""The provider values a response must mask for a role from which they are hidden.

`warden_provider_uids()` returns the uid of every provider of the workspace in context —
including those the caller may not see: a finding of a visible provider can name a hidden
provider's account (a cross-account trust), and that value must be masked too. Only the values
the caller's responses are scanned for leave; no row, no id, nothing without a workspace
context.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"


def upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION warden_provider_uids()
        RETURNS SETOF text
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        DECLARE
            v_ws uuid := nullif(current_setting('app.current_workspace_id', true), '')::uuid;
        BEGIN
            IF v_ws IS NULL THEN
                RETURN;
            END IF;
            RETURN QUERY SELECT p.uid::text FROM public.provider p WHERE p.workspace_id = v_ws;
        END
        $$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS warden_provider_uids()")
