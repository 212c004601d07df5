"""The tenant policy, in one place: the predicates, and the migration helper that applies them.

Every scoped table gets RLS ENABLEd and FORCEd and exactly one permissive `FOR ALL` policy whose
USING and WITH CHECK are the same bare predicate (SPEC section 2): no subquery, no restrictive
policy, `nullif(..., '')` so an unset or empty setting fails closed. Migrations call
`scope_table()`; no migration writes a policy by hand. The catalog check verifies the result.
"""

from __future__ import annotations

import enum

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
    # Tables hanging off a provider (a `provider_id` column), and the provider table itself:
    # the workspace, and provider-group visibility.
    WORKSPACE_PROVIDER = f"{WORKSPACE_PREDICATE} AND {_visible('provider_id')}"
    # Tables whose rows may be about a provider or about none (a null `provider_id`): rows
    # about none are seen by every member of the workspace.
    WORKSPACE_OPTIONAL_PROVIDER = (
        f"{WORKSPACE_PREDICATE} AND (provider_id IS NULL OR {_visible('provider_id')})"
    )
    PROVIDER_ROW = f"{WORKSPACE_PREDICATE} AND {_visible('id')}"


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
    """Migration helper: ENABLE + FORCE ROW LEVEL SECURITY and CREATE POLICY for `table`."""
    from alembic import op

    for statement in scope_statements(table, scope):
        op.execute(statement)


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
