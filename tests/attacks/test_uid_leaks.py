"""Provider uids never reach a viewer, from whom the field rule hides them, however they are
spelled or wherever they occur: the uid of any provider of the workspace (a hidden one too) is
masked in any case, in the accounts an import rejected, in text naming another provider, in the
audit log of a reader limited by groups; cursors are sealed, and the columns that embed a uid
cannot be sorted or filtered on."""

from __future__ import annotations

import uuid

from tests.attacks.common import Ws, decode_cursor, workspace
from tests.helpers import Api, User, report_bytes, run_jobs, sample_report, upload_scan


async def _texts(ws: Ws, user: User, paths: list[str]) -> dict[str, str]:
    out = {}
    for path in paths:
        r = await ws.client.get(f"{ws.base}/{path}", params={"limit": 200}, headers=user.headers)
        assert r.status_code == 200, (path, r.text)
        out[path] = r.text
    return out


async def _viewers(ws: Ws) -> dict[str, User]:
    viewer, _ = await ws.member("viewer", "viewer")
    regional, _ = await ws.member("regional", "viewer", {"region": "us"})
    return {"viewer": viewer, "regional viewer (eu hidden)": regional}


async def test_rejected_accounts_of_an_import_reach_viewers(api: Api, settings):
    """An import names the accounts of the records it rejected (task result, task error, scan
    error). When the wrong report is uploaded — the eu account's report for the us provider —
    the eu provider's uid goes to every viewer, even one the eu provider is hidden from."""
    ws = await workspace(api)
    mixed = sample_report("aws", ws.us["uid"])[:2] + sample_report("aws", ws.eu["uid"])
    wrong = sample_report("aws", ws.eu["uid"])
    tasks = []
    for records in (mixed, wrong):
        r = await upload_scan(ws.client, ws.owner, ws.slug, ws.us["id"], report_bytes(records))
        assert r.status_code == 202, r.text
        tasks.append(r.json()["id"])
    await run_jobs(settings)
    done = [(await ws.get(ws.owner, f"tasks/{t}")).json() for t in tasks]
    assert [t["state"] for t in done] == ["succeeded", "failed"], done
    scans = [t["resource_id"] for t in done]

    leaks = []
    for who, user in (await _viewers(ws)).items():
        paths = ["tasks", "scans", *(f"tasks/{t}" for t in tasks), *(f"scans/{s}" for s in scans)]
        for path, body in (await _texts(ws, user, paths)).items():
            if ws.eu["uid"] in body:
                leaks.append((who, path))
    assert leaks == [], leaks


def _cross_account(ws: Ws) -> list[dict]:
    """A us finding about a role the eu account may assume (a cross-account trust, which
    Prowler reports with the other account's id in the detail and the resource)."""
    records = sample_report("aws", ws.us["uid"])
    records[0]["status_detail"] = f"Role ops can be assumed by account {ws.eu['uid']}."
    records[0]["resources"][0]["uid"] = f"arn:aws:iam::{ws.eu['uid']}:role/ops"
    return records


async def test_another_providers_uid_inside_a_finding_reaches_viewers(api: Api, settings):
    ws = await workspace(api)
    r = await upload_scan(
        ws.client, ws.owner, ws.slug, ws.us["id"], report_bytes(_cross_account(ws))
    )
    assert r.status_code == 202, r.text
    await run_jobs(settings)
    findings = (await ws.get(ws.owner, "findings", provider_id=ws.us["id"])).json()["data"]
    assert findings
    leaks = []
    for who, user in (await _viewers(ws)).items():
        paths = ["findings", *(f"findings/{f['id']}" for f in findings)]
        for path, body in (await _texts(ws, user, paths)).items():
            if ws.eu["uid"] in body:
                leaks.append((who, path))
    assert leaks == [], leaks


async def test_a_uid_spelled_in_another_case_reaches_viewers(api: Api, settings):
    """Azure subscription ids (and M365 domains, GitHub accounts) are case-insensitive and
    appear in either case inside resource ids; masking matches the stored spelling only."""
    ws = await workspace(api)
    sub = str(uuid.uuid4())
    azure = await api.provider(ws.owner, ws.slug, provider_type="azure", uid=sub, region="us")
    records = sample_report("azure", sub)
    resource = f"/subscriptions/{sub.upper()}/resourceGroups/PROD/providers/Microsoft.Web/sites/a"
    records[0]["resources"][0]["uid"] = resource
    records[0]["status_detail"] = f"App Insights missing in {resource}"
    r = await upload_scan(ws.client, ws.owner, ws.slug, azure["id"], report_bytes(records))
    assert r.status_code == 202, r.text
    await run_jobs(settings)
    findings = (await ws.get(ws.owner, "findings", provider_id=azure["id"])).json()["data"]
    assert findings
    viewer, _ = await ws.member("viewer", "viewer")
    paths = ["findings", *(f"findings/{f['id']}" for f in findings)]
    leaks = [
        path
        for path, body in (await _texts(ws, viewer, paths)).items()
        if sub.lower() in body.lower()
    ]
    assert leaks == [], leaks


async def test_scan_file_names_leak_the_uid_through_cursor_and_filters(api: Api, settings):
    """Prowler names its output `prowler-output-<account id>-<timestamp>`; the response masks
    the uid inside `file_name`, but the next cursor of a list sorted by it carries the raw
    value, and `file_name__contains` answers whether a guess is the account id."""
    ws = await workspace(api)
    report = report_bytes(sample_report("aws", ws.us["uid"]))
    for stamp in ("20250214142703", "20250215142703"):
        name = f"prowler-output-{ws.us['uid']}-{stamp}.ocsf.json"
        r = await upload_scan(ws.client, ws.owner, ws.slug, ws.us["id"], report, name=name)
        assert r.status_code == 202, r.text
    viewer, _ = await ws.member("viewer", "viewer")
    listed = await ws.get(viewer, "scans", limit=1)
    assert listed.status_code == 200 and ws.us["uid"] not in listed.text  # masked
    cursor = decode_cursor(listed.json()["next_cursor"])
    assert ws.us["uid"] not in str(cursor)  # sealed
    # The column embeds the account id: for the viewer it is not there to sort or filter on.
    for params in ({"sort": "file_name"}, {"file_name__contains": ws.us["uid"]}):
        r = await ws.get(viewer, "scans", **params)
        assert r.status_code == 400 and "unknown field 'file_name'" in r.json()["detail"]


async def test_audit_reader_limited_by_groups_sees_hidden_uids_in_other_calls(api: Api):
    """Masking in the audit log covers the uids of the providers the reader's RLS returns;
    a reader limited to some provider groups gets the others' uids in the query parameters
    and bodies of lists (`resource_uid` is masked, not excluded, so it is not pruned)."""
    ws = await workspace(api)
    group = await api.group(ws.owner, ws.slug, provider_ids=[ws.us["id"]])
    reader_role = await ws.role(
        {
            "name": "grouped auditor",
            "inherits_from": "viewer",
            "grants": ["audit.read"],
            "revokes": ["unlimited_visibility"],
            "provider_group_ids": [group["id"]],
        }
    )
    reader, _ = await ws.member("auditor", reader_role)
    assert (await ws.get(reader, f"providers/{ws.eu['id']}")).status_code == 404
    # The owner looks for the eu account's resources.
    eu_arn = f"arn:aws:iam::{ws.eu['uid']}:root"
    assert (await ws.get(ws.owner, "findings", resource_uid__contains=ws.eu["uid"])).is_success
    r = await ws.client.post(
        f"{ws.base}/findings/search/resource_uid", json=[eu_arn], headers=ws.owner.headers
    )
    assert r.status_code == 200, r.text
    audit = await _texts(ws, reader, ["audit"])
    assert ws.eu["uid"] not in audit["audit"]
