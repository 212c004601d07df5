"""Examples of the main request and response models, shown by Swagger UI and used by
generators and fuzzers; a test validates each against its schema."""

from __future__ import annotations

from typing import Any

_WS = "0190c2a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"
_USER = "0190c2a4-2b3c-7d4e-9f5a-6b7c8d9e0f1a"
_PROVIDER = "0190c2a4-3c4d-7e5f-8a6b-7c8d9e0f1a2b"
_SCAN = "0190c2a4-4d5e-7f6a-9b7c-8d9e0f1a2b3c"
_TASK = "0190c2a4-5e6f-7a7b-8c8d-9e0f1a2b3c4d"
_FINDING = "0190c2a4-6f7a-7b8c-9d9e-0f1a2b3c4d5e"
_AT = "2024-05-01T12:00:00Z"

EXAMPLES: dict[str, dict[str, Any]] = {
    "LoginIn": {"email": "ada@example.com", "password": "correct horse battery"},
    "TokenOut": {
        "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…",
        "refresh_token": "r1.0190c2a4…",
        "token_type": "bearer",
        "expires_in": 900,
    },
    "UserOut": {
        "id": _USER,
        "email": "ada@example.com",
        "name": "Ada",
        "attributes": {},
        "created_at": _AT,
    },
    "WorkspaceOut": {
        "id": _WS,
        "slug": "acme-prod",
        "name": "Acme production",
        "role": "owner",
        "custom_role_id": None,
        "created_at": _AT,
    },
    "MemberCreate": {"email": "grace@example.com", "role": "engineer"},
    "ProviderGroupCreate": {"name": "production", "provider_ids": [_PROVIDER]},
    "ProviderOut": {
        "id": _PROVIDER,
        "provider_type": "aws",
        "uid": "123456789012",
        "alias": "prod",
        "region": "eu",
        "created_at": _AT,
        "updated_at": _AT,
    },
    "TaskOut": {
        "id": _TASK,
        "kind": "scan.import",
        "state": "succeeded",
        "progress": 100,
        "progress_detail": {"records": 5, "imported": 5, "rejected": 0, "duplicates": 0},
        "result": {"scan_id": _SCAN, "imported": 5, "rejected": 0, "duplicates": 0},
        "error": None,
        "attempts": 1,
        "resource_type": "scan",
        "resource_id": _SCAN,
        "provider_id": _PROVIDER,
        "created_by": _USER,
        "created_at": _AT,
        "updated_at": "2024-05-01T12:00:02Z",
        "started_at": "2024-05-01T12:00:01Z",
        "finished_at": "2024-05-01T12:00:02Z",
        "duration_seconds": 1.0,
    },
    "FindingOut": {
        "id": _FINDING,
        "scan_id": _SCAN,
        "provider_id": _PROVIDER,
        "uid": "prowler-aws-iam_root_mfa_enabled-123456789012-us-east-1-root",
        "check_id": "iam_root_mfa_enabled",
        "title": "Ensure MFA is enabled for the root account",
        "severity": "critical",
        "status": "FAIL",
        "status_extended": "MFA is not enabled for the root account.",
        "muted": False,
        "region": "us-east-1",
        "resource_uid": "arn:aws:iam::123456789012:root",
        "resource_name": "<root_account>",
        "resource_type": "AwsIamUser",
        "compliance": {"CIS-2.0": ["1.5"]},
        "remediation": {"desc": "Enable MFA for the root account."},
        "observed_at": _AT,
        "inserted_at": _AT,
    },
}


def apply(components: dict[str, Any]) -> None:
    """Attach each example to its component (as the schema's `examples`)."""
    for name, example in EXAMPLES.items():
        if name in components:
            components[name]["examples"] = [example]
