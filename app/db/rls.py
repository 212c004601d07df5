"""The tenant policy, in one place: the predicates, and the migration helpers that apply them.

Every scoped table gets RLS ENABLEd and FORCEd and exactly one permissive `FOR ALL` policy whose
USING and WITH CHECK are the same bare predicate (SPEC section 2): no subquery, no restrictive
policy, `nullif(..., '')` so an unset or empty setting fails closed. Migrations create tables
with `create_table()` (or call `scope_table()` on one they created); no migration writes a
policy by hand. On a distributed Citus schema the same helpers distribute each new table by the
column its policy keys on (`app.db.citus`). `app.db.catalog` checks the result.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Table

POLICY_NAME = "tenant_isolation"
WORKSPACE_SETTING = "app.current_workspace_id"
USER_SETTING = "app.current_user_id"
# Provider-group visibility (SPEC section 4): 'on' for roles with `unlimited_visibility`,
# else the visible provider ids as a uuid[] literal. Set in the same SET LOCAL string.
UNLIMITED_SETTING = "app.unlimited_visibility"
VISIBLE_PROVIDERS_SETTING = "app.visible_provider_ids"


def _setting_uuid(setting: str) -> str:
    return f"nullif(current_setting('{setting}', true), '')::uuid"


WORKSPACE_PREDICATE = f"workspace_id = {_setting_uuid(WORKSPACE_SETTING)}"
USER_PREDICATE = f"user_id = {_setting_uuid(USER_SETTING)}"


def _visible(column: str) -> str:
    return (
        f"(current_setting('{UNLIMITED_SETTING}', true) = 'on' OR {column} = ANY "
        f"(nullif(current_setting('{VISIBLE_PROVIDERS_SETTING}', true), '')::uuid[]))"
    )


class Scope(enum.Enum):
    """How a table is scoped; the value is the policy predicate."""

    WORKSPACE = WORKSPACE_PREDICATE
    USER = USER_PREDICATE
    WORKSPACE_USER = f"{WORKSPACE_PREDICATE} AND {USER_PREDICATE}"
    # The workspace table itself: a workspace sees only its own row.
    WORKSPACE_ROW = f"id = {_setting_uuid(WORKSPACE_SETTING)}"
    # The user table: a user sees (and the runtime role may reach) only their own row.
    USER_ROW = f"id = {_setting_uuid(USER_SETTING)}"
    # Tables hanging off a provider (a `provider_id` column), and the provider table itself:
    # the workspace, and provider-group visibility.
    WORKSPACE_PROVIDER = f"{WORKSPACE_PREDICATE} AND {_visible('provider_id')}"
    # Tables whose rows may be about a provider or about none (a null `provider_id`): rows
    # about none are seen by every member of the workspace.
    WORKSPACE_OPTIONAL_PROVIDER = (
        f"{WORKSPACE_PREDICATE} AND (provider_id IS NULL OR {_visible('provider_id')})"
    )
    PROVIDER_ROW = f"{WORKSPACE_PREDICATE} AND {_visible('id')}"

    @property
    def distribution_column(self) -> str | None:
        """On Citus, the column a table under this policy is distributed by (None: a reference
        table, replicated to every node)."""
        if self in (Scope.WORKSPACE_ROW, Scope.USER_ROW):
            return None
        return "user_id" if self is Scope.USER else "workspace_id"


def expected_scopes(
    columns: set[str], table: str, nullable: frozenset[str] = frozenset()
) -> set[Scope]:
    """The policy forms a table may carry, from its columns (workspace first); none for a
    global table. A nullable `provider_id` may also let rows about no provider be seen by every
    member."""
    if table == "workspace":
        return {Scope.WORKSPACE_ROW}
    if table == "app_user":
        return {Scope.USER_ROW}
    if table == "provider":
        return {Scope.PROVIDER_ROW}
    if "workspace_id" in columns and "provider_id" in columns:
        if "provider_id" in nullable:
            return {Scope.WORKSPACE_PROVIDER, Scope.WORKSPACE_OPTIONAL_PROVIDER}
        return {Scope.WORKSPACE_PROVIDER}
    if "workspace_id" in columns:
        return (
            {Scope.WORKSPACE, Scope.WORKSPACE_USER} if "user_id" in columns else {Scope.WORKSPACE}
        )
    if "user_id" in columns:
        return {Scope.USER}
    return set()


def scope_statements(table: str, scope: Scope) -> list[str]:
    """The DDL that puts `table` under its tenant policy (idempotent only via migrations)."""
    predicate = scope.value
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {POLICY_NAME} ON {table} AS PERMISSIVE FOR ALL TO PUBLIC "
        f"USING ({predicate}) WITH CHECK ({predicate})",
    ]


def scope_table(table: str, scope: Scope = Scope.WORKSPACE) -> None:
    """Migration helper: ENABLE + FORCE ROW LEVEL SECURITY and CREATE POLICY for `table`; on a
    distributed Citus schema, also distribute it if it is not yet."""
    from alembic import op

    for statement in scope_statements(table, scope):
        op.execute(statement)
    _distribute_if_cluster(table)


def create_table(name: str, *elements: Any, scope: Scope | None, **kw: Any) -> Table:
    """Migration helper: create a table (arguments as `op.create_table`) and put it under its
    policy; `scope=None` makes a global table (no policy; a reference table on Citus).

    On plain PostgreSQL this is `op.create_table()` then `scope_table()`. On a distributed
    Citus schema the table is created without its foreign keys, distributed (by
    `Scope.distribution_column`, co-located with its group), and only then given its keys and
    policy: Citus refuses a key from a local table to a distributed one.
    """
    from alembic.operations.schemaobj import SchemaObjects
    from sqlalchemy.schema import AddConstraint, CreateIndex, CreateTable

    from alembic import op
    from app.db import citus

    if not citus.schema_distributed(op.get_bind()):
        table = op.create_table(name, *elements, **kw)
        if scope is not None:
            scope_table(name, scope)
        return table
    table = SchemaObjects(op.get_context()).table(name, *elements, **kw)
    op.execute(CreateTable(table, include_foreign_key_constraints=[]))
    for index in table.indexes:
        op.execute(CreateIndex(index))
    citus.distribute_table(op.get_bind(), name, {c.name for c in table.columns})
    for key in table.foreign_key_constraints:
        op.execute(AddConstraint(key))
    if scope is not None:
        for statement in scope_statements(name, scope):
            op.execute(statement)
    return table


def _distribute_if_cluster(table: str) -> None:
    from sqlalchemy import text

    from alembic import op
    from app.db import citus

    bind = op.get_bind()
    if citus.schema_distributed(bind):
        columns = bind.execute(
            text(
                "SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = "
                "to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
            ),
            {"t": f"public.{table}"},
        ).scalar_one()
        citus.distribute_table(bind, table, set(columns))


def rescope_table(table: str, scope: Scope) -> None:
    """Migration helper: replace `table`'s one policy with `scope`'s (same name, same form)."""
    from alembic import op

    op.execute(f"DROP POLICY {POLICY_NAME} ON {table}")
    op.execute(scope_statements(table, scope)[-1])


def normalize_predicate(expr: str) -> str:
    """Reduce a policy expression to a comparable token string.

    `pg_get_expr()` adds parentheses and `::text` casts and upper-cases NULLIF; stripping those
    leaves the token sequence, which still pins columns, settings, operators and the cast, and
    any subquery (`select`) or extra clause shows up as a difference.
    """
    out = expr.lower().replace("::text", "")
    for ch in "() \n\t":
        out = out.replace(ch, "")
    return out
