"""The request and API key contexts, statement by statement again (as revision 0006 made them),
so that Citus can run them.

Revision 0010 added the second-factor columns by going back to one query with correlated
subqueries over distributed tables, which Citus refuses ("correlated subqueries are not
supported"): on a cluster every signed-in request failed. Same signatures, results, owner and
grants; each read is a plain statement, every one after the user's keyed by the workspace (or
the user), so on Citus each goes to one shard.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"
MEMBER_COLUMNS = """workspace_id uuid, role text, custom_role_id uuid,
                       custom_role_name text, inherits_from text, grants text[],
                       revokes text[], visible_provider_ids uuid[], attributes jsonb,
                       is_platform_admin boolean, require_mfa boolean, mfa_enabled boolean"""
DECLARE_MEMBER = """
            v_user uuid;
            v_admin boolean;
            v_attrs jsonb;
            v_ws uuid;
            v_require boolean;
            v_role text;
            v_custom uuid;
            v_member_attrs jsonb;"""


def _member(authenticated: str) -> str:
    """Fill the membership columns for `v_user` in workspace `p_slug`; `authenticated` is the
    PL/pgSQL that says whether the caller is signed in (run once the user is known active)."""
    return f"""
            authenticated := false;
            workspace_id := NULL;
            role := NULL;
            custom_role_id := NULL;
            custom_role_name := NULL;
            inherits_from := NULL;
            grants := NULL;
            revokes := NULL;
            visible_provider_ids := '{{}}';
            attributes := '{{}}';
            is_platform_admin := false;
            require_mfa := false;
            PERFORM FROM public.user_mfa f WHERE f.user_id = v_user AND f.enabled_at IS NOT NULL;
            mfa_enabled := FOUND;
            v_ws := NULL;
            SELECT u.is_platform_admin, u.attributes INTO v_admin, v_attrs
              FROM public.app_user u WHERE u.id = v_user AND u.is_active;
            IF FOUND THEN
                is_platform_admin := coalesce(v_admin, false);
                attributes := coalesce(v_attrs, '{{}}');
                {authenticated}
                IF authenticated AND p_slug IS NOT NULL THEN
                    SELECT w.id, w.require_mfa INTO v_ws, v_require FROM public.workspace w
                     WHERE w.slug = p_slug AND w.deleted_at IS NULL;
                END IF;
            END IF;
            IF v_ws IS NOT NULL THEN
                SELECT m.role, m.custom_role_id, m.attributes
                  INTO v_role, v_custom, v_member_attrs
                  FROM public.membership m WHERE m.workspace_id = v_ws AND m.user_id = v_user;
                IF FOUND THEN
                    workspace_id := v_ws;
                    role := v_role;
                    custom_role_id := v_custom;
                    require_mfa := coalesce(v_require, false);
                    attributes := attributes || coalesce(v_member_attrs, '{{}}');
                    IF v_custom IS NOT NULL THEN
                        SELECT cr.name, cr.inherits_from, cr.grants, cr.revokes
                          INTO custom_role_name, inherits_from, grants, revokes
                          FROM public.custom_role cr
                         WHERE cr.workspace_id = v_ws AND cr.id = v_custom;
                    END IF;
                    SELECT coalesce(array_agg(DISTINCT pgm.provider_id), '{{}}')
                      INTO visible_provider_ids
                      FROM public.role_provider_group rpg
                      JOIN public.provider_group_member pgm
                        ON pgm.workspace_id = rpg.workspace_id
                       AND pgm.provider_group_id = rpg.provider_group_id
                     WHERE rpg.workspace_id = v_ws
                       AND rpg.role_key = coalesce(v_role, v_custom::text);
                END IF;
            END IF;"""


REQUEST_CONTEXT = f"""
        CREATE OR REPLACE FUNCTION warden_request_context(
            p_user_id uuid, p_family_id uuid, p_slug text)
        RETURNS TABLE (authenticated boolean, {MEMBER_COLUMNS})
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE{DECLARE_MEMBER}
        BEGIN
            v_user := p_user_id;{_member('''PERFORM FROM public.auth_session s
                 WHERE s.user_id = v_user AND s.family_id = p_family_id
                   AND s.revoked_at IS NULL AND s.expires_at > now();
                authenticated := FOUND;''')}
            RETURN NEXT;
        END
        $$"""

# The candidate keys with this prefix (personal, then service) and, for each, its user's
# membership in p_slug; the caller compares the keyed hash itself (constant time).
KEY_CONTEXT = f"""
        CREATE OR REPLACE FUNCTION warden_api_key_context(p_prefix text, p_slug text)
        RETURNS TABLE (key_id uuid, key_kind text, secret_hash bytea, user_id uuid,
                       key_workspace_id uuid, key_permissions text[], permitted_endpoints jsonb,
                       expires_at timestamptz, last_used_at timestamptz,
                       authenticated boolean, {MEMBER_COLUMNS})
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE{DECLARE_MEMBER}
            k record;
            v_found integer := 0;
        BEGIN
            FOR k IN
                SELECT a.id, 'personal'::text AS kind, a.secret_hash, a.user_id,
                       a.bound_workspace_id AS ws, a.permissions, a.permitted_endpoints,
                       a.expires_at, a.last_used_at
                FROM public.api_key a WHERE a.prefix = p_prefix AND a.revoked_at IS NULL
                LIMIT 4
            LOOP
                key_id := k.id; key_kind := k.kind; secret_hash := k.secret_hash;
                user_id := k.user_id; key_workspace_id := k.ws;
                key_permissions := k.permissions; permitted_endpoints := k.permitted_endpoints;
                expires_at := k.expires_at; last_used_at := k.last_used_at;
                v_user := k.user_id;{_member("authenticated := true;")}
                RETURN NEXT;
                v_found := v_found + 1;
            END LOOP;
            FOR k IN
                SELECT s.id, 'service'::text AS kind, s.secret_hash, s.created_by AS user_id,
                       s.workspace_id AS ws, s.permissions, s.permitted_endpoints,
                       s.expires_at, s.last_used_at
                FROM public.service_key s WHERE s.prefix = p_prefix AND s.revoked_at IS NULL
                LIMIT greatest(4 - v_found, 0)
            LOOP
                key_id := k.id; key_kind := k.kind; secret_hash := k.secret_hash;
                user_id := k.user_id; key_workspace_id := k.ws;
                key_permissions := k.permissions; permitted_endpoints := k.permitted_endpoints;
                expires_at := k.expires_at; last_used_at := k.last_used_at;
                v_user := k.user_id;{_member("authenticated := true;")}
                RETURN NEXT;
            END LOOP;
        END
        $$"""


def upgrade() -> None:
    op.execute(REQUEST_CONTEXT)
    op.execute(KEY_CONTEXT)


def downgrade() -> None:
    """Nothing to undo: these bodies answer exactly what revision 0010's did, on every
    deployment."""
