"""A reader of the audit log from whom a provider is hidden (row grant) learns nothing of it:
records naming it (an audit read of `GET /audit/{id}` too) are hidden, a hidden id answers
exactly like one that does not exist, cursors are sealed, ids are masked in every spelling, and
chain verification (whose counts cover every record) is for readers who see everything."""

from __future__ import annotations

import uuid

from tests.attacks.common import Ws, decode_cursor, workspace
from tests.helpers import Api


async def _setup(api: Api) -> tuple[Ws, object]:
    ws = await workspace(api)
    role = await ws.role({"name": "auditor", "inherits_from": "viewer", "grants": ["audit.read"]})
    reader, _ = await ws.member("auditor", role, {"region": "us"})
    assert (await ws.get(reader, f"providers/{ws.eu['id']}")).status_code == 404
    # The owner looks up the eu provider's audit trail (and does a few other things).
    for _ in range(3):
        assert (await ws.get(ws.owner, f"audit/{ws.eu['id']}")).status_code == 200
        assert (await ws.get(ws.owner, f"audit/{ws.us['id']}")).status_code == 200
    return ws, reader


async def test_audit_cursors_carry_ids_of_hidden_providers(api: Api):
    ws, reader = await _setup(api)
    found = []
    for sort in ("resource_id", "-resource_id", "path", "-path"):
        cursor = None
        for _ in range(30):
            params = {"sort": sort, "limit": 1, **({"cursor": cursor} if cursor else {})}
            r = await ws.get(reader, "audit", **params)
            assert r.status_code == 200, r.text
            assert ws.eu["id"] not in r.text  # the body is masked
            cursor = r.json()["next_cursor"]
            if not cursor:
                break
            if ws.eu["id"] in str(decode_cursor(cursor)):
                found.append((sort, decode_cursor(cursor)))
                break
    # The distinct values of `path`: masked in the body, raw in the cursor.
    r = await ws.get(reader, "audit/distinct/path", limit=1)
    cursor = r.json()["next_cursor"]
    for _ in range(30):
        if not cursor:
            break
        if ws.eu["id"] in str(decode_cursor(cursor)):
            found.append(("distinct path", decode_cursor(cursor)))
            break
        r = await ws.get(reader, "audit/distinct/path", limit=1, cursor=cursor)
        cursor = r.json()["next_cursor"]
    assert found == []


async def test_audit_filters_confirm_a_hidden_providers_id(api: Api):
    ws, reader = await _setup(api)
    guess = str(uuid.uuid4())
    answers = {}
    for name, ident in (("hidden", ws.eu["id"]), ("made up", guess)):
        answers[name] = (
            len((await ws.get(reader, "audit", resource_id=ident)).json()["data"]),
            len((await ws.get(reader, f"audit/{ident}")).json()["data"]),
            len((await ws.get(reader, "audit", path__contains=ident[:13])).json()["data"]),
        )
    # A hidden id must answer exactly like an id that does not exist.
    assert answers["hidden"] == answers["made up"], answers


async def test_chain_verification_is_for_readers_who_see_everything(api: Api):
    """The chain's counts cover every record, so a reader limited by a grant, who would see
    them grow with work on a provider hidden from them, may not verify it; the owner may."""
    ws, reader = await _setup(api)
    assert (await ws.get(reader, "audit/verify")).status_code == 403
    assert (await ws.get(ws.owner, "audit/verify")).status_code == 200


async def test_hidden_ids_in_another_spelling_are_not_masked(api: Api):
    """Ids are accepted in every spelling `uuid.UUID` parses (32 hex digits without hyphens,
    braces, urn:uuid:); audit masking finds the hyphenated form only."""
    ws, reader = await _setup(api)
    hex_id = uuid.UUID(ws.eu["id"]).hex
    r = await ws.get(ws.owner, "findings", provider_id=hex_id)
    assert r.status_code == 200, r.text
    audit = (await ws.get(reader, "audit", limit=200)).text
    assert hex_id not in audit
