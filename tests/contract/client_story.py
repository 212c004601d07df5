"""The README's story through a client generated from the live OpenAPI, and nothing else.

Run as a script with the generated package `warden_client` importable:
`python client_story.py BASE_URL REPORT_PATH ACCOUNT_UID`. It registers, logs in, creates a
workspace and a provider, lists providers with filters, uploads a scan, follows its task (the
worker imports it), reads findings and the audit log, and handles an error as a typed problem.
Any deviation raises; the last line printed is `story complete`.
"""

from __future__ import annotations

import io
import sys
import time
import uuid

from warden_client import AuthenticatedClient, Client
from warden_client.api.audit import audit_list
from warden_client.api.auth import auth_login, auth_register
from warden_client.api.findings import findings_list
from warden_client.api.providers import providers_create, providers_get, providers_list
from warden_client.api.scans import scans_upload
from warden_client.api.tasks import tasks_get
from warden_client.api.workspaces import workspaces_create
from warden_client.models import (
    AuditPage,
    FindingPage,
    FindingSeverity,
    LoginIn,
    Problem,
    ProviderCreate,
    ProviderOut,
    ProviderPage,
    ProviderType,
    RegisterIn,
    ScansUploadBody,
    TaskOut,
    TaskState,
    TokenOut,
    UserOut,
    ValidationProblem,
    WorkspaceCreate,
    WorkspaceOut,
)
from warden_client.types import File


def expect(value: object, kind: type) -> object:
    if not isinstance(value, kind):
        raise AssertionError(f"expected {kind.__name__}, got {value!r}")
    return value


def main(base: str, report_path: str, account: str) -> None:
    email, password = f"story-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    anonymous = Client(base_url=base)
    user = auth_register.sync(client=anonymous, body=RegisterIn(email, password, "Ada"))
    expect(user, UserOut)
    tokens = auth_login.sync(client=anonymous, body=LoginIn(email=email, password=password))
    assert isinstance(tokens, TokenOut), tokens
    client = AuthenticatedClient(base_url=base, token=tokens.access_token)

    slug = f"story-{uuid.uuid4().hex[:8]}"
    expect(workspaces_create.sync(client=client, body=WorkspaceCreate(slug, "Story")), WorkspaceOut)
    body = ProviderCreate(provider_type=ProviderType.AWS, uid=account, alias="prod-eu", region="eu")
    provider = providers_create.sync(slug, client=client, body=body)
    assert isinstance(provider, ProviderOut), provider

    page = providers_list.sync(
        slug,
        client=client,
        provider_type=ProviderType.AWS,
        alias_startswith="prod",
        sort="-created_at",
    )
    assert isinstance(page, ProviderPage) and [p.id for p in page.data] == [provider.id], page

    with open(report_path, "rb") as report:
        upload = ScansUploadBody(
            provider_id=provider.id,
            file=File(payload=io.BytesIO(report.read()), file_name="report.ocsf.json"),
        )
    accepted = scans_upload.sync_detailed(slug, client=client, body=upload)
    assert accepted.status_code == 202, accepted
    task = accepted.parsed
    assert isinstance(task, TaskOut), task
    location = accepted.headers["content-location"]
    assert location.endswith(str(task.id)), location

    deadline = time.monotonic() + 60
    while task.state in (TaskState.PENDING, TaskState.RUNNING):
        assert time.monotonic() < deadline, "the import did not finish"
        time.sleep(0.2)
        task = tasks_get.sync(slug, str(task.id), client=client)
        assert isinstance(task, TaskOut), task
    assert task.state == TaskState.SUCCEEDED, task

    findings = findings_list.sync(slug, client=client, provider_id=provider.id)
    assert isinstance(findings, FindingPage) and findings.data, findings
    severity = findings.data[0].severity
    assert isinstance(severity, FindingSeverity), severity
    same = findings_list.sync(slug, client=client, severity=severity)
    assert isinstance(same, FindingPage) and all(f.severity == severity for f in same.data)

    audit = audit_list.sync(slug, client=client, resource_type="provider")
    assert isinstance(audit, AuditPage) and audit.data, audit

    missing = providers_get.sync(slug, str(uuid.uuid4()), client=client)
    assert isinstance(missing, Problem) and missing.status == 404, missing
    duplicate = providers_create.sync(slug, client=client, body=body)
    assert isinstance(duplicate, Problem) and duplicate.status == 409, duplicate
    invalid = ProviderCreate(provider_type=ProviderType.AWS, uid="not twelve digits")
    refused = providers_create.sync(slug, client=client, body=invalid)
    assert isinstance(refused, ValidationProblem) and refused.errors, refused
    print(f"problem handled: {refused.status} {refused.title}: {refused.errors[0].msg}")
    print("story complete")


if __name__ == "__main__":
    main(*sys.argv[1:4])
