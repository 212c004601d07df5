"""Assigning a custom role and editing it at once: the assignment share-locks the role it checks
and the edit checks the role's holders after locking it, so neither can slip past the other,
and a regional manager never ends up holding a role that no row grant limits."""

from __future__ import annotations

import asyncio

from tests.attacks.common import ENGINEER_ONLY, workspace
from tests.helpers import Api


async def test_regional_manager_cannot_race_an_edit_past_the_assignment_check(
    api: Api, admin_engine
):
    ws = await workspace(api)
    group = await api.group(ws.owner, ws.slug, provider_ids=[ws.us["id"]])
    regional = await ws.role(
        {"name": "regional", "inherits_from": "viewer", "grants": ["role.manage", "member.manage"]}
    )
    actor, actor_id = await ws.member("regional", regional, {"region": "us"})
    assert (await ws.get(actor, f"providers/{ws.eu['id']}")).status_code == 404

    # A role the actor may give themselves (viewer base: the region grant applies to it).
    x = await ws.role(
        {"name": "x", "inherits_from": "viewer", "grants": ["role.manage", "member.manage"]},
        as_user=actor,
    )
    # Alone, each step is refused or harmless: the edit (no holders yet) passes, and assigning
    # the edited role would be refused ("provider rows you do not see").
    edit = {
        "inherits_from": "engineer",  # no row grant on this base
        "revokes": ENGINEER_ONLY,  # same permissions as the actor
        "grants": ["role.manage", "member.manage"],
        "provider_group_ids": [group["id"]],
    }

    # Both at once, in every order the database allows: the edit is refused (a regional
    # manager may not give a role rows beyond their own grants, whoever holds it), and an
    # assignment share-locks the role it checks, so an edit can never slip between the check
    # and the commit.
    for _ in range(3):
        edited, assigned = await asyncio.gather(
            ws.client.patch(f"{ws.base}/roles/{x}", json=edit, headers=actor.headers),
            ws.client.patch(
                f"{ws.base}/members/{actor_id}", json={"role": x}, headers=actor.headers
            ),
        )
        assert edited.status_code == 403, edited.text
        assert assigned.status_code in (200, 403), assigned.text
        r = await ws.get(actor, f"providers/{ws.eu['id']}")
        assert r.status_code == 404, r.text
