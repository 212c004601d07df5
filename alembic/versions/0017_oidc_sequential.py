"""IdP sign-in runs with one connection per Citus node, whoever calls it.

`warden_oidc_sign_in` reads identities across shards, then may write the users (a reference
table); Citus allows that in one transaction only over a single connection per node. The
function now carries the setting itself (a function-level `SET`, a harmless placeholder on
PostgreSQL without Citus), so no caller has to remember it.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

SIGNATURE = "warden_oidc_sign_in(text, text, text, boolean, text)"


def upgrade() -> None:
    op.execute(f"ALTER FUNCTION {SIGNATURE} SET citus.multi_shard_modify_mode = 'sequential'")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {SIGNATURE} RESET citus.multi_shard_modify_mode")
