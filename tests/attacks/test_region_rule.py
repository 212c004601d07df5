"""`region` decides who sees a provider, so no base below admin may change it — not the
engineer's, and not a custom role with `provider.update` on the viewer or approver base."""

from __future__ import annotations

import pytest

from tests.attacks.common import workspace
from tests.helpers import Api


@pytest.mark.parametrize("base", ["engineer", "viewer", "approver"])
async def test_provider_update_holders_cannot_move_a_provider_to_another_region(api: Api, base):
    ws = await workspace(api)
    role = await ws.role(
        {"name": f"{base} updater", "inherits_from": base, "grants": ["provider.update"]}
    )
    member, _ = await ws.member("updater", role)
    r = await ws.client.patch(
        f"{ws.base}/providers/{ws.us['id']}", json={"region": "eu"}, headers=member.headers
    )
    assert r.status_code == 403, (base, r.status_code, r.text)
