"""Scans: upload a JSON-OCSF report → 202 + task; a real worker imports it."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
from sqlalchemy import text

from tests.helpers import (
    assert_problem,
    report_bytes,
    run_jobs,
    sample_report,
    upload_scan,
)


@pytest.fixture
async def owner_ws(api):
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    return owner, slug


async def _task(client, user, response):
    location = response.headers["content-location"]
    r = await client.get(location, headers=user.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _count(admin_engine, sql: str, **params) -> int:
    async with admin_engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def test_import_aws_sample(api, client, settings, owner_ws):
    owner, slug = owner_ws
    provider = await api.provider(owner, slug)
    records = sample_report("aws", provider["uid"])
    r = await upload_scan(client, owner, slug, provider["id"], report_bytes(records))
    assert r.status_code == 202, r.text
    task = r.json()
    assert task["state"] == "pending" and task["kind"] == "scan.import"
    assert r.headers["content-location"] == f"/ws/{slug}/api/v1/tasks/{task['id']}"

    await run_jobs(settings)

    done = await _task(client, owner, r)
    assert done["state"] == "succeeded", done
    assert done["progress"] == 100 and done["attempts"] == 1
    assert done["started_at"] and done["finished_at"] and done["duration_seconds"] >= 0
    result = done["result"]
    assert result["imported"] == 5 and result["rejected"] == 0 and result["duplicates"] == 0
    assert result["severity_counts"] == {
        "critical": 0,
        "high": 0,
        "medium": 4,
        "low": 1,
        "informational": 0,
    }

    scan = (
        await client.get(f"/ws/{slug}/api/v1/scans/{done['resource_id']}", headers=owner.headers)
    ).json()
    assert scan["state"] == "completed" and scan["findings_count"] == 5
    assert scan["status_counts"] == {"FAIL": 2, "PASS": 0, "MANUAL": 3}
    assert scan["file_size"] == len(report_bytes(records))

    findings = await api.all(owner, slug, "findings")
    assert len(findings) == 5
    by_check = {f["check_id"]: f for f in findings}
    first = by_check["accessanalyzer_enabled"]
    assert first["title"] == "Check if IAM Access Analyzer is enabled"
    assert (first["severity"], first["status"], first["region"]) == ("low", "FAIL", "eu-west-1")
    assert first["status_extended"].startswith("IAM Access Analyzer in account")
    assert first["compliance"]["CIS-1.4"] == ["1.20"]
    assert "aws accessanalyzer create-analyzer" in first["remediation"]["references"][0]
    assert first["provider_id"] == provider["id"] and first["scan_id"] == scan["id"]
    assert uuid.UUID(first["id"]).version == 7
    detail = (
        await client.get(f"/ws/{slug}/api/v1/findings/{first['id']}", headers=owner.headers)
    ).json()
    assert detail["raw"]["metadata"]["event_code"] == "accessanalyzer_enabled"
    root = by_check["account_maintain_current_contact_details"]
    assert root["resource_uid"] == f"arn:aws:iam::{provider['uid']}:root"
    assert root["resource_type"] == "Other"


async def test_import_azure_sample(api, client, settings, owner_ws):
    owner, slug = owner_ws
    provider = await api.provider(owner, slug, provider_type="azure", uid=str(uuid.uuid4()))
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(sample_report("azure", provider["uid"]))
    )
    assert r.status_code == 202, r.text
    await run_jobs(settings)
    done = await _task(client, owner, r)
    assert done["state"] == "succeeded", done
    assert done["result"]["imported"] == 5
    assert done["result"]["severity_counts"]["high"] == 1
    findings = await api.all(owner, slug, "findings")
    assert {f["region"] for f in findings} == {"global"}
    assert {f["resource_type"] for f in findings} >= {"Microsoft.Insights/components"}


async def test_placeholder_uids_are_deduplicated_within_the_scan(api, client, settings, owner_ws):
    """The samples' records share `<finding_uid>`: the first one wins, the rest are counted."""
    owner, slug = owner_ws
    aws = await api.provider(owner, slug)
    azure = await api.provider(owner, slug, provider_type="azure", uid=str(uuid.uuid4()))
    ra = await upload_scan(
        client,
        owner,
        slug,
        aws["id"],
        report_bytes(sample_report("aws", aws["uid"], unique_uids=False)),
    )
    rz = await upload_scan(
        client,
        owner,
        slug,
        azure["id"],
        report_bytes(sample_report("azure", azure["uid"], unique_uids=False)),
    )
    await run_jobs(settings)
    a, z = await _task(client, owner, ra), await _task(client, owner, rz)
    assert (a["result"]["imported"], a["result"]["duplicates"]) == (1, 4)
    assert (z["result"]["imported"], z["result"]["duplicates"]) == (2, 3)


async def test_records_for_another_account_are_rejected_and_counted(
    api, client, settings, owner_ws, admin_engine
):
    owner, slug = owner_ws
    provider = await api.provider(owner, slug)
    mine = sample_report("aws", provider["uid"])
    theirs = sample_report("aws", "999999999999")
    for record in theirs:
        record["finding_info"]["uid"] += "-theirs"
    azure = sample_report("azure", str(uuid.uuid4()))[:2]
    r = await upload_scan(
        client, owner, slug, provider["id"], report_bytes(mine[:2] + theirs + azure)
    )
    await run_jobs(settings)
    done = await _task(client, owner, r)
    assert done["state"] == "succeeded", done
    assert (done["result"]["imported"], done["result"]["rejected"]) == (2, 7)
    assert "aws:999999999999" in done["result"]["rejected_accounts"]
    assert any(a.startswith("azure:") for a in done["result"]["rejected_accounts"])
    scan = (
        await client.get(f"/ws/{slug}/api/v1/scans/{done['resource_id']}", headers=owner.headers)
    ).json()
    assert (scan["findings_count"], scan["rejected_count"]) == (2, 7)


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "not_an_array",
        "bad_record",
        "bad_status",
        "nul",
        "empty_array",
        "deep",
        "deep_storable_no_more",
        "surrogate",
        "huge_number",
        "huge_element",
    ],
)
async def test_malformed_report_fails_and_writes_nothing(
    case, api, client, database, servers, owner_ws, admin_engine
):
    from tests.conftest import make_settings

    owner, slug = owner_ws
    provider = await api.provider(owner, slug)
    records = [copy.deepcopy(r) for r in sample_report("aws", provider["uid"]) * 3]
    for i, record in enumerate(records):
        record["finding_info"]["uid"] = f"uid-{i}"
    content = report_bytes(records)
    expected = {
        "truncated": "not valid JSON after",
        "not_an_array": "JSON array",
        "bad_record": "record 12 has no finding_info.uid",
        "bad_status": "record 13 has status_code 'BROKEN'",
        "nul": "record 14 contains NUL characters",
        "empty_array": None,
        "deep": "element 15 is nested too deeply",
        "deep_storable_no_more": "record 15 is nested more than",
        "surrogate": "record 15 contains text that is not valid Unicode",
        "huge_number": "a number longer than 4300 digits",
        "huge_element": "larger than",
    }[case]
    if case == "truncated":
        content = content[: len(content) - 200]
    elif case == "not_an_array":
        content = json.dumps({"findings": records}).encode()
    elif case == "bad_record":
        del records[11]["finding_info"]["uid"]
        content = report_bytes(records)
    elif case == "bad_status":
        records[12]["status_code"] = "BROKEN"
        content = report_bytes(records)
    elif case == "nul":
        records[13]["message"] = "a\x00b"
        content = report_bytes(records)
    elif case == "empty_array":
        content = b"[]"
    elif case in ("deep", "deep_storable_no_more"):
        depth = 100_000 if case == "deep" else 300
        records[14]["unmapped"] = "DEEP"
        content = report_bytes(records).replace(b'"DEEP"', b"[" * depth + b"]" * depth, 1)
    elif case == "surrogate":
        text = report_bytes(records).decode()
        marker = records[14]["finding_info"]["uid"]
        content = text.replace(f'"{marker}"', '"\\ud800"', 1).encode()
    elif case == "huge_number":
        content = report_bytes(records[:14])[:-1] + b', {"n": ' + b"9" * 50_000 + b"}]"
    elif case == "huge_element":
        content = report_bytes(records[:3])[:-1] + b', "' + b"a" * (9 * 1024 * 1024) + b'"]'
    r = await upload_scan(client, owner, slug, provider["id"], content)
    assert r.status_code == 202, r.text
    # Small batches (and 4 KiB chunks): several batches are inserted before the error shows.
    small = make_settings(database, servers, import_batch_size=2)
    await run_jobs(small)
    done = await _task(client, owner, r)
    scan_id = done["resource_id"]
    if expected is None:
        assert done["state"] == "succeeded" and done["result"]["imported"] == 0
        return
    assert done["state"] == "failed", done
    assert expected in done["error"], done["error"]
    assert done["error"].startswith("The report could not be imported")
    assert "Unexpected error" not in done["error"]
    scan = (await client.get(f"/ws/{slug}/api/v1/scans/{scan_id}", headers=owner.headers)).json()
    assert scan["state"] == "failed" and scan["findings_count"] == 0
    assert expected in scan["error"]
    assert (
        await _count(admin_engine, "SELECT count(*) FROM finding WHERE scan_id = :s", s=scan_id)
        == 0
    )
    assert (
        await _count(admin_engine, "SELECT count(*) FROM scan_upload WHERE scan_id = :s", s=scan_id)
        == 0
    )


async def test_upload_rules(api, client, owner_ws):
    owner, slug = owner_ws
    provider = await api.provider(owner, slug)
    body = report_bytes(sample_report("aws", provider["uid"]))
    # Unknown provider and another workspace's provider: 404.
    assert_problem(await upload_scan(client, owner, slug, str(uuid.uuid4()), body), 404)
    other = await api.user("other")
    other_slug = await api.workspace(other)
    theirs = await api.provider(other, other_slug)
    assert_problem(await upload_scan(client, owner, slug, theirs["id"], body), 404)
    # Outsiders get 404; members without scan.create get 403.
    assert_problem(await upload_scan(client, other, slug, provider["id"], body), 404)
    viewer = await api.user("viewer")
    await api.add_member(owner, slug, viewer, "viewer")
    assert_problem(await upload_scan(client, viewer, slug, provider["id"], body), 403)
    # Empty file, missing file, bad provider id.
    assert_problem(await upload_scan(client, owner, slug, provider["id"], b""), 400)
    r = await client.post(
        f"/ws/{slug}/api/v1/scans", data={"provider_id": provider["id"]}, headers=owner.headers
    )
    assert_problem(r, 422)
    assert_problem(await upload_scan(client, owner, slug, "nope", body), 422)
    # The viewer may still read scans and tasks.
    r = await client.get(f"/ws/{slug}/api/v1/scans", headers=viewer.headers)
    assert r.status_code == 200


async def test_oversized_upload_is_refused(api, database, servers, owner_ws, admin_engine):
    from tests.conftest import make_settings
    from tests.helpers import serve

    owner, slug = owner_ws
    provider = await api.provider(owner, slug)
    settings = make_settings(database, servers, max_upload_bytes=10_000)
    async with serve(settings) as (_, client):
        user = await type(api)(client).login(owner.email)
        body = report_bytes(sample_report("aws", provider["uid"]) * 2)
        assert_problem(await upload_scan(client, user, slug, provider["id"], body), 413)
    assert (
        await _count(
            admin_engine, "SELECT count(*) FROM scan WHERE provider_id = :p", p=provider["id"]
        )
        == 0
    )


async def test_scans_list_counts_per_severity(api, client, settings, owner_ws):
    owner, slug = owner_ws
    p1, p2 = await api.provider(owner, slug), await api.provider(owner, slug)
    for p in (p1, p2):
        r = await upload_scan(
            client, owner, slug, p["id"], report_bytes(sample_report("aws", p["uid"]))
        )
        assert r.status_code == 202
    await run_jobs(settings)
    scans = await api.all(owner, slug, "scans")
    assert len(scans) == 2
    for scan in scans:
        assert scan["severity_counts"]["medium"] == 4 and scan["severity_counts"]["low"] == 1
    r = await client.get(
        f"/ws/{slug}/api/v1/scans", params={"provider_id": p2["id"]}, headers=owner.headers
    )
    assert [s["provider_id"] for s in r.json()["data"]] == [p2["id"]]
