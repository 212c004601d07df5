"""Identity: API keys (personal and workspace service keys), TOTP, OIDC identities and group
mappings, the workspace's `require_mfa`; the narrow definer functions behind them.

Per-user tables (`api_key`, `user_mfa`, `user_identity`) are scoped on `user_id`, workspace
tables (`service_key`, `idp_group_mapping`) on `workspace_id`, both with `scope_table()`. What
must cross users or workspaces goes through definer functions owned by the definer role
(app.db.roles): the key lookup by prefix (with the caller's membership, in one call), the
last-used stamp, the OIDC sign-in (provision by issuer + subject) and the group sync.

`warden_request_context()` gains two columns (the workspace's `require_mfa`, the user's MFA
state); its body is otherwise the one of revision 0005.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from alembic import op
from app.db.rls import Scope, scope_table

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"
OLD_DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public"
# pg_advisory_xact_lock(OIDC_LOCK, hashtext(issuer || subject)): one provisioning per identity.
OIDC_LOCK = 74111

MEMBER_COLUMNS = """workspace_id uuid, role text, custom_role_id uuid,
                       custom_role_name text, inherits_from text, grants text[],
                       revokes text[], visible_provider_ids uuid[], attributes jsonb,
                       is_platform_admin boolean"""
MFA_COLUMNS = "require_mfa boolean, mfa_enabled boolean"


def _member_query(user: str, authenticated: str, slug: str, mfa: bool) -> str:
    """The membership of `user` in workspace `slug`, as revision 0005 reads it; `authenticated`
    is the SQL that says whether the caller is signed in."""
    extra = (
        """,
                   coalesce(m.require_mfa, false),
                   EXISTS (SELECT 1 FROM public.user_mfa f
                           WHERE f.user_id = {user} AND f.enabled_at IS NOT NULL)"""
        if mfa
        else ""
    ).format(user=user)
    return f"""
            WITH auth AS (
                SELECT u.is_platform_admin, u.attributes, {authenticated} AS ok
                FROM public.app_user u WHERE u.id = {user} AND u.is_active
            ), member AS (
                SELECT m.workspace_id, m.role, m.custom_role_id, m.attributes,
                       coalesce(m.role, m.custom_role_id::text) AS role_key{
        ", w.require_mfa" if mfa else ""
    }
                FROM public.workspace w
                JOIN public.membership m ON m.workspace_id = w.id AND m.user_id = {user}
                WHERE {slug} IS NOT NULL AND w.slug = {slug} AND w.deleted_at IS NULL
            )
            SELECT coalesce(a.ok, false), m.workspace_id, m.role::text, m.custom_role_id,
                   cr.name::text, cr.inherits_from::text, cr.grants, cr.revokes,
                   ARRAY(
                       SELECT DISTINCT pgm.provider_id
                       FROM public.role_provider_group rpg
                       JOIN public.provider_group_member pgm
                         ON pgm.workspace_id = rpg.workspace_id
                        AND pgm.provider_group_id = rpg.provider_group_id
                       WHERE rpg.workspace_id = m.workspace_id AND rpg.role_key = m.role_key
                   ),
                   coalesce(a.attributes, '{{}}'::jsonb) || coalesce(m.attributes, '{{}}'::jsonb),
                   coalesce(a.is_platform_admin, false){extra}
            FROM (SELECT 1) one
            LEFT JOIN auth a ON true
            LEFT JOIN member m ON coalesce(a.ok, false)
            LEFT JOIN public.custom_role cr
              ON cr.workspace_id = m.workspace_id AND cr.id = m.custom_role_id"""


SESSION_OK = """EXISTS (
                    SELECT 1 FROM public.auth_session s
                    WHERE s.user_id = p_user_id AND s.family_id = p_family_id
                      AND s.revoked_at IS NULL AND s.expires_at > now()
                )"""


def _request_context(mfa: bool, definer: str) -> str:
    columns = f"{MEMBER_COLUMNS}, {MFA_COLUMNS}" if mfa else MEMBER_COLUMNS
    query = _member_query("p_user_id", SESSION_OK, "p_slug", mfa)
    return f"""
        CREATE FUNCTION warden_request_context(p_user_id uuid, p_family_id uuid, p_slug text)
        RETURNS TABLE (authenticated boolean, {columns})
        LANGUAGE plpgsql STABLE {definer} AS $$
        #variable_conflict use_column
        BEGIN
            RETURN QUERY {query};
        END
        $$"""


# UUIDv7 from the clock (audit record ids sort by time).
UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
                   substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                   FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"""


def _key_columns() -> list[sa.Column]:
    return [
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("permissions", ARRAY(sa.Text)),
        sa.Column("permitted_endpoints", JSONB),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _tables() -> None:
    op.add_column(
        "workspace",
        sa.Column("require_mfa", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    # Memberships the IdP group sync added: only those are changed or removed by it.
    op.add_column(
        "membership",
        sa.Column("managed_by_idp", sa.Boolean, nullable=False, server_default=sa.false()),
    )

    op.create_table(
        "api_key",
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        # The workspace the key is bound to (by id: a slug can be reused after deletion). Not a
        # foreign key: a key outlives its workspace and then simply reaches nothing.
        sa.Column("bound_workspace_id", UUID(as_uuid=True)),
        *_key_columns(),
        sa.PrimaryKeyConstraint("user_id", "id"),
    )
    op.create_index("ix_api_key_prefix", "api_key", ["prefix"])
    scope_table("api_key", Scope.USER)

    op.create_table(
        "service_key",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("created_by", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        *_key_columns(),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
    )
    op.create_index("ix_service_key_prefix", "service_key", ["prefix"])
    scope_table("service_key", Scope.WORKSPACE)

    op.create_table(
        "user_mfa",
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("totp_secret", sa.LargeBinary, nullable=False),  # encrypted
        sa.Column("enabled_at", sa.DateTime(timezone=True)),
        sa.Column("last_step", sa.BigInteger),
        sa.Column("recovery_hashes", ARRAY(sa.LargeBinary), nullable=False, server_default="{}"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id"),
    )
    scope_table("user_mfa", Scope.USER)

    op.create_table(
        "user_identity",
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("issuer", sa.String(400), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", "issuer"),
    )
    op.create_index("ix_user_identity_issuer_subject", "user_identity", ["issuer", "subject"])
    scope_table("user_identity", Scope.USER)

    op.create_table(
        "idp_group_mapping",
        sa.Column("workspace_id", UUID(as_uuid=True), sa.ForeignKey("workspace.id"), nullable=False),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("group_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(40)),
        sa.Column("custom_role_id", UUID(as_uuid=True)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("workspace_id", "id"),
        sa.UniqueConstraint("workspace_id", "group_name"),
        sa.ForeignKeyConstraint(
            ["workspace_id", "custom_role_id"], ["custom_role.workspace_id", "custom_role.id"]
        ),
        sa.CheckConstraint("(role IS NULL) <> (custom_role_id IS NULL)", name="exactly_one_role"),
    )
    op.create_index("ix_idp_group_mapping_group_name", "idp_group_mapping", ["group_name"])
    scope_table("idp_group_mapping", Scope.WORKSPACE)


def _key_functions() -> None:
    # One call per key request: the candidate keys with this prefix (personal and service) and,
    # for each, its user's membership in p_slug. The caller compares the keyed hash itself
    # (constant time) and keeps the row whose hash matches.
    key_query = _member_query("k.user_id", "true", "p_slug", True)
    op.execute(f"""
        CREATE FUNCTION warden_api_key_context(p_prefix text, p_slug text)
        RETURNS TABLE (key_id uuid, key_kind text, secret_hash bytea, user_id uuid,
                       key_workspace_id uuid, key_permissions text[], permitted_endpoints jsonb,
                       expires_at timestamptz, last_used_at timestamptz,
                       authenticated boolean, {MEMBER_COLUMNS}, {MFA_COLUMNS})
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            k record;
        BEGIN
            FOR k IN
                SELECT a.id, 'personal'::text AS kind, a.secret_hash, a.user_id,
                       a.bound_workspace_id AS ws, a.permissions, a.permitted_endpoints,
                       a.expires_at, a.last_used_at
                FROM public.api_key a WHERE a.prefix = p_prefix AND a.revoked_at IS NULL
                UNION ALL
                SELECT s.id, 'service'::text, s.secret_hash, s.created_by, s.workspace_id,
                       s.permissions, s.permitted_endpoints, s.expires_at, s.last_used_at
                FROM public.service_key s WHERE s.prefix = p_prefix AND s.revoked_at IS NULL
                LIMIT 4
            LOOP
                RETURN QUERY SELECT k.id, k.kind, k.secret_hash, k.user_id, k.ws, k.permissions,
                    k.permitted_endpoints, k.expires_at, k.last_used_at, c.*
                FROM ({key_query}) c;
            END LOOP;
        END
        $$""")
    # The last-used stamp, at most once a minute per key (the caller skips the call while the
    # stamp it read is younger than that).
    op.execute(f"""
        CREATE FUNCTION warden_api_key_used(p_kind text, p_owner uuid, p_key_id uuid)
        RETURNS void
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        BEGIN
            IF p_kind = 'personal' THEN
                UPDATE public.api_key SET last_used_at = now()
                 WHERE user_id = p_owner AND id = p_key_id
                   AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
            ELSE
                UPDATE public.service_key SET last_used_at = now()
                 WHERE workspace_id = p_owner AND id = p_key_id
                   AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
            END IF;
        END
        $$""")


def _oidc_functions() -> None:
    # Sign-in by an IdP identity: the user linked to (issuer, subject); else the user with the
    # token's email when the IdP says it is verified (linked now); else a new user (no usable
    # password). 'conflict' when the email belongs to an unlinked user and is not verified.
    op.execute(f"""
        CREATE FUNCTION warden_oidc_sign_in(p_issuer text, p_subject text, p_email text,
                                            p_email_verified boolean, p_name text)
        RETURNS TABLE (user_id uuid, outcome text, is_active boolean)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_user uuid;
            v_active boolean;
        BEGIN
            PERFORM pg_advisory_xact_lock({OIDC_LOCK}, hashtext(p_issuer || ' ' || p_subject));
            SELECT i.user_id INTO v_user FROM public.user_identity i
             WHERE i.issuer = p_issuer AND i.subject = p_subject LIMIT 1;
            IF v_user IS NOT NULL THEN
                SELECT u.is_active INTO v_active FROM public.app_user u WHERE u.id = v_user;
                RETURN QUERY SELECT v_user, 'existing'::text, coalesce(v_active, false);
                RETURN;
            END IF;
            SELECT u.id, u.is_active INTO v_user, v_active FROM public.app_user u
             WHERE u.email = lower(p_email);
            IF v_user IS NOT NULL THEN
                IF NOT p_email_verified OR EXISTS (
                    SELECT 1 FROM public.user_identity i
                    WHERE i.user_id = v_user AND i.issuer = p_issuer
                ) THEN
                    RETURN QUERY SELECT v_user, 'conflict'::text, v_active;
                    RETURN;
                END IF;
                INSERT INTO public.user_identity (user_id, issuer, subject)
                VALUES (v_user, p_issuer, p_subject);
                RETURN QUERY SELECT v_user, 'linked'::text, v_active;
                RETURN;
            END IF;
            v_user := {UUID7};
            INSERT INTO public.app_user (id, email, name, password_hash, attributes, is_active)
            VALUES (v_user, lower(p_email), p_name, '!', '{{}}'::jsonb, true);
            INSERT INTO public.user_identity (user_id, issuer, subject)
            VALUES (v_user, p_issuer, p_subject);
            RETURN QUERY SELECT v_user, 'created'::text, true;
        END
        $$""")

    # Memberships follow the IdP groups of the user in context, in every workspace that maps
    # one of them: the highest mapped role wins (owner > admin > engineer > approver > viewer; a
    # custom role ranks as the role it inherits from, after that role itself); a membership the
    # sync added is changed or removed with the groups, one added by hand is left alone; the
    # last owner is never removed. Each change is recorded in that workspace's audit log.
    op.execute(f"""
        CREATE FUNCTION warden_idp_sync(p_groups text[], p_ip text, p_user_agent text,
                                        p_request_id text)
        RETURNS TABLE (workspace_id uuid, action text, role text, custom_role_id uuid,
                       group_name text)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_user uuid := nullif(current_setting('app.current_user_id', true), '')::uuid;
            r record;
            m record;
            v_action text;
        BEGIN
            IF v_user IS NULL THEN
                RAISE EXCEPTION 'no user in context' USING ERRCODE = '42501';
            END IF;
            FOR r IN
                WITH ranked AS (
                    SELECT g.workspace_id, g.group_name, g.role, g.custom_role_id,
                           row_number() OVER (
                               PARTITION BY g.workspace_id
                               ORDER BY array_position(
                                   ARRAY['owner', 'admin', 'engineer', 'approver', 'viewer'],
                                   coalesce(g.role, cr.inherits_from)::text) NULLS LAST,
                                   (g.role IS NULL), g.group_name
                           ) AS n
                    FROM public.idp_group_mapping g
                    JOIN public.workspace w ON w.id = g.workspace_id AND w.deleted_at IS NULL
                    LEFT JOIN public.custom_role cr
                      ON cr.workspace_id = g.workspace_id AND cr.id = g.custom_role_id
                    WHERE g.group_name = ANY (coalesce(p_groups, '{{}}'))
                ), wanted AS (
                    SELECT * FROM ranked WHERE n = 1
                )
                SELECT coalesce(x.workspace_id, m.workspace_id) AS ws,
                       x.role AS want_role, x.custom_role_id AS want_custom, x.group_name,
                       m.user_id IS NOT NULL AS is_member, m.role AS has_role,
                       m.custom_role_id AS has_custom, coalesce(m.managed_by_idp, false) AS managed
                FROM wanted x
                FULL JOIN (SELECT * FROM public.membership mm WHERE mm.user_id = v_user) m
                  ON m.workspace_id = x.workspace_id
                WHERE x.workspace_id IS NOT NULL OR m.managed_by_idp
            LOOP
                v_action := NULL;
                IF r.is_member AND NOT r.managed THEN
                    CONTINUE;  -- added by hand: the workspace's admins own it
                ELSIF NOT r.is_member THEN
                    INSERT INTO public.membership (workspace_id, user_id, role, custom_role_id,
                                                   managed_by_idp)
                    VALUES (r.ws, v_user, r.want_role, r.want_custom, true);
                    v_action := 'create';
                ELSIF r.want_role IS NULL AND r.want_custom IS NULL THEN
                    IF r.has_role = 'owner' AND NOT EXISTS (
                        SELECT 1 FROM public.membership o WHERE o.workspace_id = r.ws
                        AND o.role = 'owner' AND o.user_id <> v_user) THEN
                        CONTINUE;  -- a workspace keeps at least one owner
                    END IF;
                    DELETE FROM public.membership d WHERE d.workspace_id = r.ws AND d.user_id = v_user;
                    v_action := 'delete';
                ELSIF r.has_role IS DISTINCT FROM r.want_role
                   OR r.has_custom IS DISTINCT FROM r.want_custom THEN
                    IF r.has_role = 'owner' AND NOT EXISTS (
                        SELECT 1 FROM public.membership o WHERE o.workspace_id = r.ws
                        AND o.role = 'owner' AND o.user_id <> v_user) THEN
                        CONTINUE;
                    END IF;
                    UPDATE public.membership u
                       SET role = r.want_role, custom_role_id = r.want_custom, updated_at = now()
                     WHERE u.workspace_id = r.ws AND u.user_id = v_user;
                    v_action := 'update';
                ELSE
                    CONTINUE;
                END IF;
                INSERT INTO public.audit_record (workspace_id, id, user_id, action, method, path,
                    path_params, query_params, body, state, resource_type, resource_id, status,
                    source_ip, user_agent, request_id)
                VALUES (r.ws, {UUID7}, v_user, v_action, 'POST', '/api/v1/auth/oidc', '{{}}',
                    '{{}}', jsonb_build_object('source', 'idp_group_sync', 'group', r.group_name),
                    jsonb_build_object('user_id', v_user, 'role', r.want_role,
                                       'custom_role_id', r.want_custom),
                    'member', v_user, 200, p_ip, p_user_agent, p_request_id);
                workspace_id := r.ws;
                action := v_action;
                role := r.want_role;
                custom_role_id := r.want_custom;
                group_name := r.group_name;
                RETURN NEXT;
            END LOOP;
        END
        $$""")


def upgrade() -> None:
    _tables()
    op.execute("DROP FUNCTION warden_request_context(uuid, uuid, text)")
    op.execute(_request_context(True, DEFINER))
    _key_functions()
    _oidc_functions()


def downgrade() -> None:
    for fn in (
        "warden_idp_sync(text[], text, text, text)",
        "warden_oidc_sign_in(text, text, text, boolean, text)",
        "warden_api_key_used(text, uuid, uuid)",
        "warden_api_key_context(text, text)",
        "warden_request_context(uuid, uuid, text)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    op.execute(_request_context(False, OLD_DEFINER))
    for table in ("idp_group_mapping", "user_identity", "user_mfa", "service_key", "api_key"):
        op.drop_table(table)
    op.drop_column("membership", "managed_by_idp")
    op.drop_column("workspace", "require_mfa")
