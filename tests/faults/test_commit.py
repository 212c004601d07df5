"""The connection breaks during COMMIT: the client gets a 503 (never a 2xx it cannot trust, nor
a 500); if the COMMIT did reach the server, a retry with the same `Idempotency-Key` gets the
stored answer instead of writing twice, and a re-read shows the row."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import make_settings
from tests.faults.proxy import CommitCutter
from tests.helpers import Api, assert_problem, aws_uid, serve

pytestmark = pytest.mark.faults


@pytest.fixture
async def cutter(database):
    url = make_url(database["runtime_url"])
    proxy = CommitCutter(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def _providers(admin_engine, uid: str) -> list[str]:
    async with admin_engine.connect() as conn:
        rows = await conn.execute(text("SELECT id::text FROM provider WHERE uid = :u"), {"u": uid})
        return list(rows.scalars())


async def test_a_commit_whose_answer_is_lost(database, servers, admin_engine, cutter):
    through_proxy = (
        make_url(database["runtime_url"])
        .set(host="127.0.0.1", port=cutter.port)
        .render_as_string(hide_password=False)
    )
    settings = make_settings(database, servers, database_url=through_proxy)
    async with serve(settings) as (_, client):
        api = Api(client)
        owner = await api.user("commit")
        slug = await api.workspace(owner)
        url = f"/ws/{slug}/api/v1/providers"
        keyed = {**owner.headers, "Idempotency-Key": "create-1"}

        uid = aws_uid()
        cutter.armed = 1
        lost = await client.post(url, json={"provider_type": "aws", "uid": uid}, headers=keyed)
        assert cutter.cut == 1
        problem = assert_problem(lost, 503)
        assert lost.headers["retry-after"] and lost.headers["x-request-id"]
        assert "connection lost" in problem["detail"]
        committed = await _providers(admin_engine, uid)
        assert len(committed) == 1  # the server did commit: only the answer was lost

        retried = await client.post(url, json={"provider_type": "aws", "uid": uid}, headers=keyed)
        assert retried.status_code == 201 and retried.headers["idempotent-replayed"] == "true"
        assert retried.json()["id"] == committed[0]
        assert await _providers(admin_engine, uid) == committed

        # Without a key the client re-reads before retrying: the row is there.
        other = aws_uid()
        cutter.armed = 1
        assert_problem(
            await client.post(
                url, json={"provider_type": "aws", "uid": other}, headers=owner.headers
            ),
            503,
        )
        found = await client.get(url, params={"uid": other}, headers=owner.headers)
        assert found.status_code == 200 and len(found.json()["data"]) == 1
        # The broken connection was discarded: everything after it works.
        for _ in range(5):
            assert (await client.get(url, headers=owner.headers)).status_code == 200
