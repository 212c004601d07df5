"""Typed values and paging: inputs that answer 5xx, and cursors a list gives but refuses."""

from __future__ import annotations

import httpx
import pytest

from tests.attacks.common import workspace
from tests.helpers import Api, assert_problem, report_bytes, run_jobs, sample_report, upload_scan


@pytest.fixture
async def raw_client(app):
    """A client that gets the app's 500 answers instead of its exceptions."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://warden.test") as c:
        yield c


async def test_distinct_inserted_at_pages_without_a_5xx(raw_client, settings):
    """`inserted_at` is a filter over the finding id (IdTime): its distinct values are ids,
    and the next cursor calls `isoformat()` on a UUID."""
    ws = await workspace(Api(raw_client))
    r = await upload_scan(
        raw_client,
        ws.owner,
        ws.slug,
        ws.us["id"],
        report_bytes(sample_report("aws", ws.us["uid"])),
    )
    assert r.status_code == 202, r.text
    await run_jobs(settings)
    r = await ws.get(ws.owner, "findings/distinct/inserted_at", limit=1)
    assert r.status_code < 500, r.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_member_attributes_jsonb_cannot_hold_are_a_4xx(raw_client, value):
    """The body is parsed by `json.loads`, which takes NaN/Infinity (and 1e400 becomes inf);
    the attribute schema accepts any float; PostgreSQL's jsonb refuses them: 503."""
    ws = await workspace(Api(raw_client))
    viewer, viewer_id = await ws.member("viewer", "viewer")
    r = await raw_client.patch(
        f"{ws.base}/members/{viewer_id}",
        content=f'{{"attributes": {{"region": {value}}}}}',
        headers={**ws.owner.headers, "content-type": "application/json"},
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert_problem(r)


async def test_a_cursor_the_list_returned_is_accepted_for_long_text(api: Api, settings):
    """Sorting by a text field whose value is longer than a filter value may be (1000
    characters, e.g. a finding title): the next cursor carries it and is then refused as
    invalid, so the list cannot be paged."""
    ws = await workspace(api)
    records = sample_report("aws", ws.us["uid"])
    for i, record in enumerate(records):
        record["finding_info"]["title"] = f"{'T' * 1200}-{i}"
    r = await upload_scan(api.client, ws.owner, ws.slug, ws.us["id"], report_bytes(records))
    assert r.status_code == 202, r.text
    await run_jobs(settings)
    first = await ws.get(ws.owner, "findings", sort="title", limit=1, provider_id=ws.us["id"])
    assert first.status_code == 200 and first.json()["next_cursor"], first.text
    cursor = first.json()["next_cursor"]
    second = await ws.get(
        ws.owner, "findings", sort="title", limit=1, provider_id=ws.us["id"], cursor=cursor
    )
    assert second.status_code == 200, second.text
