"""The audit trail against a compromised app process: ids and times from the database, records
and events written only under the context's user, an irreversible workspace deletion before a
trail may be purged, a chain head that never restarts, and incremental verification.

- `audit_record`, `audit_denial` and `user_event` take `id` (UUIDv7 from the clock) and
  `created_at` from the database. The runtime role may not INSERT those two columns of records
  and events (app.db.roles); a trigger fills them and refuses a row by any user but the one in
  context. They have no column default: on Citus a defaulted column reaches the shards spelled
  out, where a column grant without it fails; a column left out reaches them as NULL, which the
  trigger (on every shard) fills. Denials go through `warden_record_denial`, which no longer
  takes an id (nor does registration's first event).
- `audit_head` (one row per workspace, kept when its records are purged) holds the chain's head,
  which the sealer continues from, and the position the last verification reached. Only the
  definer role writes it.
- A workspace is marked deleted only by `warden_mark_workspace_deleted` (the runtime role loses
  UPDATE on `deleted_at`); nothing clears the mark. `warden_purge_audit` refuses until the mark
  is older than the grace period set on the function (`warden.audit_purge_grace`, set by
  `warden migrate`).
- `warden_audit_verify` checks the chain from the last verified position (or from the start),
  one run per workspace at a time.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from alembic import op
from app.db.citus import CITUS_SQL
from app.db.rls import Scope, create_table

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

SEARCH_PATH = "SET search_path = pg_catalog, public, pg_temp"
DEFINER = f"SECURITY DEFINER {SEARCH_PATH}"
NOBODY = "00000000-0000-0000-0000-000000000000"
CHAIN_LOCK = 74110  # as in 0004: one sealer or retention run per workspace chain
VERIFY_LOCK = 74112  # one verification per workspace at a time
DEFAULT_GRACE = "7 days"
# UUIDv7 from the clock (ids sort by time), as in 0010.
UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
                   substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                   FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"""
CONTEXT_WS = "nullif(current_setting('app.current_workspace_id', true), '')::uuid"
CONTEXT_USER = "nullif(current_setting('app.current_user_id', true), '')::uuid"


def upgrade() -> None:
    op.execute(f"ALTER TABLE audit_denial ALTER COLUMN id SET DEFAULT {UUID7}")
    op.add_column("workspace", sa.Column("deleted_by", UUID(as_uuid=True)))
    create_table(
        "audit_head",
        # No key to the workspace: a dropped workspace's head stays (the chain's last word).
        sa.Column("workspace_id", UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_seq", sa.BigInteger),
        sa.Column("verified_hash", sa.LargeBinary),
        sa.Column("verified_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("workspace_id"),
        scope=Scope.WORKSPACE,
    )
    # The head of every existing chain: its last sealed record, else its last cut.
    op.execute("ALTER TABLE audit_record NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_cut NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit_head NO FORCE ROW LEVEL SECURITY")
    op.execute("""
        INSERT INTO audit_head (workspace_id, seq, hash, sealed_at)
        SELECT DISTINCT ON (a.workspace_id) a.workspace_id, a.seq, a.hash, a.sealed_at
        FROM audit_record a WHERE a.seq IS NOT NULL
        ORDER BY a.workspace_id, a.seq DESC""")
    op.execute("""
        INSERT INTO audit_head (workspace_id, seq, hash, sealed_at)
        SELECT DISTINCT ON (c.workspace_id) c.workspace_id, c.up_to_seq, c.last_hash, c.cut_at
        FROM audit_cut c ORDER BY c.workspace_id, c.up_to_seq DESC
        ON CONFLICT (workspace_id) DO NOTHING""")
    for table in ("audit_record", "audit_cut", "audit_head"):
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    _write_functions()
    _deletion_functions()
    _seal_function()
    _verify_function()
    _verified_function()


def _write_functions() -> None:
    # A record's (or an event's) id and time are the database's, and its user the one in
    # context. Roles that may bypass row security (the definer, the owner restoring a dump)
    # keep what they write; the runtime role cannot write `id` or `created_at` at all.
    op.execute(f"""
        CREATE FUNCTION warden_audit_stamp()
        RETURNS trigger
        LANGUAGE plpgsql {SEARCH_PATH} AS $$
        DECLARE
            v_trusted boolean;
        BEGIN
            SELECT r.rolsuper OR r.rolbypassrls INTO v_trusted
              FROM pg_catalog.pg_roles r WHERE r.rolname = current_user;
            v_trusted := coalesce(v_trusted, false) OR pg_catalog.pg_has_role(
                current_user,
                (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID),
                'MEMBER');
            IF NOT v_trusted AND NEW.user_id IS DISTINCT FROM {CONTEXT_USER} THEN
                RAISE EXCEPTION 'an audit row is written by the user in context'
                    USING ERRCODE = '42501';
            END IF;
            IF NEW.id IS NULL THEN
                NEW.id := {UUID7};
            END IF;
            IF NEW.created_at IS NULL THEN
                NEW.created_at := now();
            END IF;
            RETURN NEW;
        END
        $$""")
    bind = op.get_bind()
    if bind.execute(sa.text(CITUS_SQL)).scalar():
        # The trigger runs on each shard; Citus propagates it, and the function, to them.
        op.execute("SET LOCAL citus.enable_unsafe_triggers TO on")
    for table in ("audit_record", "user_event"):
        op.execute(f"ALTER TABLE {table} ALTER COLUMN created_at DROP DEFAULT")
        op.execute(
            f"CREATE TRIGGER warden_audit_stamp BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION warden_audit_stamp()"
        )
    # As in 0006, but the first event's id is the database's, not the caller's.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_register_user(
            p_id uuid, p_email text, p_name text, p_password_hash text, p_event jsonb)
        RETURNS void
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        BEGIN
            INSERT INTO public.app_user (id, email, name, password_hash)
            VALUES (p_id, lower(p_email), p_name, p_password_hash);
            INSERT INTO public.user_event (user_id, id, action, method, path, body,
                                           resource_type, status, source_ip, user_agent,
                                           request_id)
            VALUES (p_id, {UUID7}, 'register', left(p_event->>'method', 10),
                    p_event->>'path', nullif(p_event->'body', 'null'::jsonb), 'auth',
                    (p_event->>'status')::integer, left(p_event->>'source_ip', 64),
                    left(p_event->>'user_agent', 400), left(p_event->>'request_id', 64));
        END
        $$""")
    op.execute(
        "DROP FUNCTION warden_record_denial(uuid, integer, text, text, text, text, text, text, "
        "text)"
    )
    op.execute(f"""
        CREATE FUNCTION warden_record_denial(
            p_status integer, p_reason text, p_method text, p_path text, p_slug text,
            p_ip text, p_user_agent text, p_request_id text)
        RETURNS void
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_user uuid := coalesce({CONTEXT_USER}, '{NOBODY}');
        BEGIN
            INSERT INTO public.audit_denial (id, user_id, status, reason, method, path,
                                             workspace_slug, source_ip, user_agent, request_id)
            VALUES ({UUID7}, v_user, p_status, left(p_reason, 300), left(p_method, 10), p_path,
                    left(p_slug, 63), left(p_ip, 64), left(p_user_agent, 400),
                    left(p_request_id, 64));
        END
        $$""")


def _deletion_functions() -> None:
    # The one way to mark a workspace deleted (once; nothing clears the mark), from inside its
    # context, recording who asked.
    op.execute(f"""
        CREATE FUNCTION warden_mark_workspace_deleted(p_workspace_id uuid)
        RETURNS timestamptz
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_ws uuid := {CONTEXT_WS};
            v_user uuid := {CONTEXT_USER};
            v_at timestamptz;
        BEGIN
            IF p_workspace_id IS DISTINCT FROM v_ws OR v_user IS NULL THEN
                RAISE EXCEPTION 'not in this workspace''s context' USING ERRCODE = '42501';
            END IF;
            UPDATE public.workspace w SET deleted_at = now(), deleted_by = v_user
             WHERE w.id = p_workspace_id AND w.deleted_at IS NULL;
            SELECT w.deleted_at INTO v_at FROM public.workspace w WHERE w.id = p_workspace_id;
            RETURN v_at;
        END
        $$""")
    # The workspaces whose deletion is past the grace period but whose trail or row is still
    # there, with the member who asked for the deletion (the cron finishes it as them).
    op.execute(f"""
        CREATE FUNCTION warden_deletions_due(p_limit integer)
        RETURNS TABLE (workspace_id uuid, deleted_by uuid)
        LANGUAGE plpgsql STABLE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_before timestamptz := now() - coalesce(
                nullif(current_setting('warden.audit_purge_grace', true), ''),
                '{DEFAULT_GRACE}')::interval;
        BEGIN
            RETURN QUERY SELECT w.id, w.deleted_by FROM public.workspace w
             WHERE w.deleted_at IS NOT NULL AND w.deleted_at <= v_before
             ORDER BY w.deleted_at LIMIT greatest(p_limit, 1);
        END
        $$""")
    op.execute(f"""
        CREATE OR REPLACE FUNCTION warden_purge_audit(p_workspace_id uuid, p_limit integer)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        DECLARE
            v_records integer;
            v_cuts integer := 0;
            v_deleted timestamptz;
            v_until timestamptz;
            v_ids uuid[];
        BEGIN
            IF p_workspace_id IS DISTINCT FROM {CONTEXT_WS} THEN
                RAISE EXCEPTION 'not in this workspace''s context' USING ERRCODE = '42501';
            END IF;
            SELECT w.deleted_at INTO v_deleted FROM public.workspace w
             WHERE w.id = p_workspace_id;
            IF v_deleted IS NULL THEN
                RAISE EXCEPTION 'the workspace is not being deleted' USING ERRCODE = '42501';
            END IF;
            v_until := v_deleted + coalesce(
                nullif(current_setting('warden.audit_purge_grace', true), ''),
                '{DEFAULT_GRACE}')::interval;
            IF v_until > now() THEN
                RAISE EXCEPTION 'the audit trail of a deleted workspace is kept until %',
                    to_char(v_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                    USING ERRCODE = '55000';
            END IF;
            SELECT array_agg(b.id) INTO v_ids FROM (
                SELECT a.id FROM public.audit_record a
                WHERE a.workspace_id = p_workspace_id LIMIT greatest(p_limit, 1)) b;
            DELETE FROM public.audit_record a
             WHERE a.workspace_id = p_workspace_id AND a.id = ANY (v_ids);
            GET DIAGNOSTICS v_records = ROW_COUNT;
            IF v_records < greatest(p_limit, 1) THEN
                DELETE FROM public.audit_cut c WHERE c.workspace_id = p_workspace_id;
                GET DIAGNOSTICS v_cuts = ROW_COUNT;
            END IF;
            RETURN v_records + v_cuts;
        END
        $$""")
    op.execute(
        f"ALTER FUNCTION warden_purge_audit(uuid, integer) "
        f"SET warden.audit_purge_grace = '{DEFAULT_GRACE}'"
    )
    op.execute(
        f"ALTER FUNCTION warden_deletions_due(integer) "
        f"SET warden.audit_purge_grace = '{DEFAULT_GRACE}'"
    )


def _seal_function() -> None:
    # As in 0006, but the chain continues from `audit_head` (kept through retention cuts and
    # purges, so sequence numbers never restart), which the seal advances; returns each
    # workspace's new head, and the head it continued from, for publishing.
    op.execute("DROP FUNCTION warden_audit_seal(integer)")
    op.execute(f"""
        CREATE FUNCTION warden_audit_seal(p_batch integer)
        RETURNS TABLE (workspace_id uuid, sealed integer, head_seq bigint, head_hash bytea,
                       sealed_at timestamptz, from_seq bigint, from_hash bytea)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_now timestamptz := now();
            v_ws uuid;
            v_seq bigint;
            v_prev bytea;
            v_hash bytea;
            v_n integer;
            v_batch integer := greatest(p_batch, 1);
            r public.audit_record;
        BEGIN
            FOR v_ws IN SELECT DISTINCT a.workspace_id FROM public.audit_record a
                        WHERE a.hash IS NULL LOOP
                CONTINUE WHEN NOT pg_try_advisory_xact_lock({CHAIN_LOCK}, hashtext(v_ws::text));
                v_seq := NULL;
                v_prev := NULL;
                SELECT h.seq, h.hash INTO v_seq, v_prev FROM public.audit_head h
                 WHERE h.workspace_id = v_ws;
                v_seq := coalesce(v_seq, 0);
                from_seq := v_seq;
                from_hash := v_prev;
                v_n := 0;
                FOR r IN SELECT * FROM public.audit_record a
                         WHERE a.workspace_id = v_ws AND a.hash IS NULL
                         ORDER BY a.id LIMIT v_batch LOOP
                    v_seq := v_seq + 1;
                    r.seq := v_seq;
                    v_hash := sha256(convert_to(public.warden_audit_canonical(to_jsonb(r)), 'UTF8')
                                     || coalesce(v_prev, '\\x'::bytea));
                    UPDATE public.audit_record a
                       SET seq = v_seq, prev_hash = v_prev, hash = v_hash, sealed_at = v_now
                     WHERE a.workspace_id = v_ws AND a.id = r.id;
                    v_prev := v_hash;
                    v_n := v_n + 1;
                END LOOP;
                CONTINUE WHEN v_n = 0;
                INSERT INTO public.audit_head AS h (workspace_id, seq, hash, sealed_at)
                VALUES (v_ws, v_seq, v_prev, v_now)
                ON CONFLICT (workspace_id) DO UPDATE
                   SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, sealed_at = EXCLUDED.sealed_at;
                workspace_id := v_ws;
                sealed := v_n;
                head_seq := v_seq;
                head_hash := v_prev;
                sealed_at := v_now;
                RETURN NEXT;
            END LOOP;
        END
        $$""")


def _verify_function() -> None:
    # The chain of the workspace in context, from the last verified position (or, with
    # p_full, from its first record or last retention cut) up to the head: every record's
    # seq follows, links to the previous hash and hashes to its content, and the records end
    # at the head. Reads only (on Citus a request's later writes must not meet placements
    # another role modified). One run per workspace at a time: another gets SQLSTATE 55P03.
    op.execute(f"""
        CREATE FUNCTION warden_audit_verify(p_full boolean)
        RETURNS TABLE (checked bigint, from_seq bigint, head_seq bigint, head_hash bytea,
                       broken_id uuid, broken_seq bigint, prior_seq bigint, problem text)
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        #variable_conflict use_column
        DECLARE
            v_ws uuid := {CONTEXT_WS};
            v_head_seq bigint;
            v_head_hash bytea;
            v_vseq bigint;
            v_vhash bytea;
            v_cut_seq bigint;
            v_cut_hash bytea;
            v_seq bigint := 0;
            v_prev bytea;
            v_hash bytea;
            v_n bigint := 0;
            r public.audit_record;
        BEGIN
            IF v_ws IS NULL THEN
                RAISE EXCEPTION 'no workspace in context' USING ERRCODE = '42501';
            END IF;
            IF NOT pg_try_advisory_xact_lock({VERIFY_LOCK}, hashtext(v_ws::text)) THEN
                RAISE EXCEPTION 'a verification of this workspace is running'
                    USING ERRCODE = '55P03';
            END IF;
            SELECT h.seq, h.hash, h.verified_seq, h.verified_hash
              INTO v_head_seq, v_head_hash, v_vseq, v_vhash
              FROM public.audit_head h WHERE h.workspace_id = v_ws;
            SELECT c.up_to_seq, c.last_hash INTO v_cut_seq, v_cut_hash FROM public.audit_cut c
             WHERE c.workspace_id = v_ws ORDER BY c.up_to_seq DESC LIMIT 1;
            IF NOT p_full AND v_vseq IS NOT NULL AND v_vseq >= coalesce(v_cut_seq, 0) THEN
                v_seq := v_vseq;
                v_prev := v_vhash;
            ELSIF v_cut_seq IS NOT NULL THEN
                v_seq := v_cut_seq;
                v_prev := v_cut_hash;
            END IF;
            from_seq := v_seq;
            head_seq := v_head_seq;
            head_hash := v_head_hash;
            -- A dropped workspace keeps only its head: nothing to walk.
            PERFORM FROM public.workspace w WHERE w.id = v_ws;
            IF NOT FOUND THEN
                checked := 0;
                problem := 'deleted';
                RETURN NEXT;
                RETURN;
            END IF;
            FOR r IN SELECT * FROM public.audit_record a
                     WHERE a.workspace_id = v_ws AND a.seq > v_seq
                       AND a.seq <= coalesce(v_head_seq, 0)
                     ORDER BY a.seq LOOP
                v_hash := sha256(convert_to(public.warden_audit_canonical(to_jsonb(r)), 'UTF8')
                                 || coalesce(r.prev_hash, '\\x'::bytea));
                v_n := v_n + 1;
                IF r.seq <> v_seq + 1 THEN
                    problem := 'gap';
                ELSIF r.prev_hash IS DISTINCT FROM v_prev THEN
                    problem := 'link';
                ELSIF r.hash IS DISTINCT FROM v_hash THEN
                    problem := 'content';
                END IF;
                IF problem IS NOT NULL THEN
                    broken_id := r.id;
                    broken_seq := r.seq;
                    prior_seq := v_seq;
                    checked := v_n;
                    RETURN NEXT;
                    RETURN;
                END IF;
                v_seq := r.seq;
                v_prev := r.hash;
            END LOOP;
            checked := v_n;
            -- The head's own record must still be there (or be the last retention cut), also
            -- when nothing was sealed since the last verification.
            IF v_head_seq IS NOT NULL THEN
                v_hash := NULL;
                SELECT a.hash INTO v_hash FROM public.audit_record a
                 WHERE a.workspace_id = v_ws AND a.seq = v_head_seq;
                IF v_hash IS NULL AND v_cut_seq = v_head_seq THEN
                    v_hash := v_cut_hash;
                END IF;
                IF v_hash IS NULL THEN
                    SELECT coalesce(max(a.seq), v_cut_seq, 0) INTO v_seq FROM public.audit_record a
                     WHERE a.workspace_id = v_ws AND a.seq <= v_head_seq;
                END IF;
            END IF;
            IF v_seq < coalesce(v_head_seq, 0) THEN
                problem := 'tail';
                prior_seq := v_seq;
            ELSIF v_head_seq IS NOT NULL AND v_hash IS DISTINCT FROM v_head_hash THEN
                problem := 'head';
                prior_seq := v_seq;
            ELSIF v_head_seq IS NOT NULL AND v_prev IS DISTINCT FROM v_head_hash THEN
                problem := 'head';
                prior_seq := v_seq;
            END IF;
            RETURN NEXT;
        END
        $$""")


def _verified_function() -> None:
    # The position a successful verification reached, recorded after its transaction: only
    # forward, only up to the head, and only a (seq, hash) the chain holds.
    op.execute(f"""
        CREATE FUNCTION warden_audit_verified(p_workspace_id uuid, p_seq bigint, p_hash bytea)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE {DEFINER} AS $$
        BEGIN
            PERFORM FROM public.audit_record a
             WHERE a.workspace_id = p_workspace_id AND a.seq = p_seq AND a.hash = p_hash;
            IF NOT FOUND THEN
                PERFORM FROM public.audit_cut c WHERE c.workspace_id = p_workspace_id
                   AND c.up_to_seq = p_seq AND c.last_hash = p_hash;
                IF NOT FOUND THEN
                    RETURN false;
                END IF;
            END IF;
            UPDATE public.audit_head h
               SET verified_seq = p_seq, verified_hash = p_hash, verified_at = now()
             WHERE h.workspace_id = p_workspace_id AND h.seq >= p_seq
               AND (h.verified_seq IS NULL OR h.verified_seq <= p_seq);
            RETURN FOUND;
        END
        $$""")


def downgrade() -> None:
    raise NotImplementedError("0014 moves audit writes into definer functions; restore instead")
