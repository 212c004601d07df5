"""Findings list: filters (declared in app.services.findings.FILTERS), paging, isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import assert_problem, report_bytes, run_jobs, sample_report, upload_scan


@pytest.fixture
async def imported(api, client, settings):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    aws = await api.provider(owner, slug)
    azure = await api.provider(owner, slug, provider_type="azure", uid=str(uuid.uuid4()))
    ra = await upload_scan(
        client, owner, slug, aws["id"], report_bytes(sample_report("aws", aws["uid"]))
    )
    rz = await upload_scan(
        client, owner, slug, azure["id"], report_bytes(sample_report("azure", azure["uid"]))
    )
    await run_jobs(settings)
    scan_a = ra.json()["resource_id"]
    return owner, slug, aws, azure, scan_a, rz.json()["resource_id"]


async def _ids(client, owner, slug, **params):
    r = await client.get(f"/ws/{slug}/api/v1/findings", params=params, headers=owner.headers)
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def test_filters(client, imported):
    owner, slug, aws, azure, scan_a, scan_z = imported
    assert len(await _ids(client, owner, slug)) == 10
    assert {f["severity"] for f in await _ids(client, owner, slug, severity="medium")} == {"medium"}
    assert len(await _ids(client, owner, slug, severity="high")) == 1
    assert len(await _ids(client, owner, slug, severity__in='["high","low"]')) == 3
    assert len(await _ids(client, owner, slug, status="MANUAL")) == 3
    assert len(await _ids(client, owner, slug, status="FAIL")) == 7
    rows = await _ids(client, owner, slug, check_id="accessanalyzer_enabled")
    assert [r["check_id"] for r in rows] == ["accessanalyzer_enabled"]
    assert len(await _ids(client, owner, slug, region="global")) == 5
    assert len(await _ids(client, owner, slug, region="eu-west-1")) == 5
    assert {f["provider_id"] for f in await _ids(client, owner, slug, provider_id=azure["id"])} == {
        azure["id"]
    }
    assert {f["scan_id"] for f in await _ids(client, owner, slug, scan_id=scan_a)} == {scan_a}
    assert len(await _ids(client, owner, slug, muted="false")) == 10
    combined = await _ids(
        client, owner, slug, provider_id=aws["id"], status="FAIL", severity="medium"
    )
    assert len(combined) == 1


async def test_time_range(client, imported):
    owner, slug, *_ = imported
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    iso = lambda d: d.isoformat()  # noqa: E731
    assert len(await _ids(client, owner, slug, inserted_at__gte=iso(now - hour))) == 10
    assert await _ids(client, owner, slug, inserted_at__gte=iso(now + hour)) == []
    assert await _ids(client, owner, slug, inserted_at__lt=iso(now - hour)) == []
    both = await _ids(
        client, owner, slug, inserted_at__gte=iso(now - hour), inserted_at__lt=iso(now + hour)
    )
    assert len(both) == 10
    for f in both:
        assert now - hour <= datetime.fromisoformat(f["inserted_at"]) < now + hour


async def test_bad_filters_are_400(client, imported):
    owner, slug, *_ = imported
    for params, fragment in (
        ({"colour": "red"}, "unknown field 'colour'; filterable:"),
        ({"severity": "urgent"}, "'severity'"),
        ({"severity__frobnicate": "low"}, "severity__frobnicate"),
        ({"severity__in": "high"}, "JSON list"),
        ({"provider_id": "nope"}, "'provider_id'"),
        ({"inserted_at__gte": "yesterday"}, "'inserted_at__gte'"),
        ({"muted": "maybe"}, "'muted'"),
        ({"sort": "inserted_at"}, "inserted_at"),
    ):
        r = await client.get(f"/ws/{slug}/api/v1/findings", params=params, headers=owner.headers)
        body = assert_problem(r, 400)
        assert fragment in body["detail"], (params, body)


async def test_paging_and_isolation(api, client, imported):
    owner, slug, aws, *_ = imported
    first = await client.get(
        f"/ws/{slug}/api/v1/findings", params={"limit": 4}, headers=owner.headers
    )
    page = first.json()
    assert len(page["data"]) == 4 and page["next_cursor"]
    everything = await api.all(owner, slug, "findings")
    assert len(everything) == 10 and len({f["id"] for f in everything}) == 10
    assert [f["id"] for f in everything] == sorted(f["id"] for f in everything)
    outsider = await api.user("outsider")
    own = await api.workspace(outsider)
    assert (await client.get(f"/ws/{own}/api/v1/findings", headers=outsider.headers)).json()[
        "data"
    ] == []
    assert_problem(await client.get(f"/ws/{slug}/api/v1/findings", headers=outsider.headers), 404)
    assert_problem(
        await client.get(
            f"/ws/{own}/api/v1/findings/{everything[0]['id']}", headers=outsider.headers
        ),
        404,
    )
    # A provider id of another workspace filters to nothing rather than leaking.
    assert await _ids(client, outsider, own, provider_id=aws["id"]) == []


async def test_provider_visibility_applies_to_findings_and_scans(api, client, imported):
    owner, slug, aws, azure, *_ = imported
    group = await api.group(owner, slug, provider_ids=[azure["id"]])
    role = await client.post(
        f"/ws/{slug}/api/v1/roles",
        headers=owner.headers,
        json={
            "name": "azure-only",
            "inherits_from": "viewer",
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        },
    )
    member = await api.user("azure-viewer")
    await api.add_member(owner, slug, member, role.json()["id"])
    findings = await api.all(member, slug, "findings")
    assert len(findings) == 5 and {f["provider_id"] for f in findings} == {azure["id"]}
    scans = await api.all(member, slug, "scans")
    assert [s["provider_id"] for s in scans] == [azure["id"]]
    # Tasks follow their provider too: the aws import's task is not the member's to see.
    tasks = await api.all(member, slug, "tasks")
    assert [t["provider_id"] for t in tasks] == [azure["id"]]
    every_task = await api.all(owner, slug, "tasks")
    assert len(every_task) == 2
    hidden = next(t for t in every_task if t["provider_id"] == aws["id"])
    assert_problem(
        await client.get(f"/ws/{slug}/api/v1/tasks/{hidden['id']}", headers=member.headers), 404
    )
