"""API keys, the TOTP second factor, MFA and IdP sign-in, IdP group mappings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator

from app.schemas.common import Input, Output
from app.schemas.workspace import SLUG_PATTERN
from app.security.api_keys import METHODS, compile_path


class EndpointIn(Input):
    method: str = Field(
        min_length=1, max_length=7, description=f"One of {', '.join(METHODS)} (`*`: any)"
    )
    path: str = Field(
        min_length=1,
        max_length=500,
        description="A regular expression the whole request path must match",
    )

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in METHODS:
            raise ValueError(f"must be one of {', '.join(METHODS)}")
        return value.upper()

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        compile_path(value)
        return value


class EndpointOut(Output):
    method: str
    path: str


def _future(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("must include a time zone (e.g. 2030-01-01T00:00:00Z)")
    if value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


class KeyLimitsIn(Input):
    permissions: list[str] | None = Field(
        default=None,
        max_length=100,
        description="Permission keys; the key holds their intersection with its user's current "
        "permissions (omit: whatever the user holds). `unlimited_visibility` is one of them: "
        "without it the key sees only the providers of its user's provider groups",
    )
    permitted_endpoints: list[EndpointIn] | None = Field(
        default=None, max_length=100, description="Omit: every endpoint"
    )
    expires_at: datetime | None = None

    _expiry = field_validator("expires_at")(_future)


class ApiKeyCreate(KeyLimitsIn):
    name: str = Field(min_length=1, max_length=100)
    workspace: str | None = Field(
        default=None, max_length=63, pattern=SLUG_PATTERN, description="Bind the key to it"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "scanner upload",
                    "workspace": "acme-prod",
                    "permissions": [
                        "scan.create",
                        "scan.read",
                        "task.read",
                        "unlimited_visibility",
                    ],
                    "permitted_endpoints": [
                        {"method": "POST", "path": "/ws/acme-prod/api/v1/scans"},
                        {"method": "GET", "path": "/ws/acme-prod/api/v1/tasks/[0-9a-f-]+"},
                    ],
                    "expires_at": "2030-01-01T00:00:00Z",
                }
            ]
        }
    }


class ServiceKeyCreate(KeyLimitsIn):
    name: str = Field(min_length=1, max_length=100)


class KeyOut(Output):
    id: uuid.UUID
    name: str
    prefix: str
    permissions: list[str] | None
    permitted_endpoints: list[EndpointOut] | None
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyOut(KeyOut):
    workspace: str | None = Field(description="The bound workspace's slug (null: unbound)")
    workspace_id: uuid.UUID | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="`wdn_<prefix>_<secret>`: shown this once, never again")


class ServiceKeyOut(KeyOut):
    __resource__ = "service_key"
    created_by: uuid.UUID


class ServiceKeyCreated(ServiceKeyOut):
    secret: str = Field(description="`wdn_<prefix>_<secret>`: shown this once, never again")


class CodeIn(Input):
    code: str = Field(min_length=6, max_length=20, description="A TOTP code or a recovery code")


class TotpEnrolmentOut(Output):
    secret: str = Field(description="Base32; shown while the enrolment is pending")
    otpauth_uri: str
    qr_png: str = Field(description="Where the URI is served as a QR code (PNG)")


class RecoveryCodesOut(Output):
    recovery_codes: list[str] = Field(description="Each works once; shown only now")


class MfaStatusOut(Output):
    enabled: bool
    pending: bool
    enabled_at: datetime | None
    recovery_codes_left: int


class MfaLoginIn(Input):
    mfa_token: str = Field(min_length=1, max_length=4096)
    code: str = Field(min_length=6, max_length=20)


class MfaRequiredOut(Output):
    mfa_required: Literal[True] = True
    mfa_token: str = Field(description="For `POST /api/v1/auth/mfa` only, short-lived")
    expires_in: int


class OidcLoginIn(Input):
    id_token: str = Field(min_length=1, max_length=16384)


class IdpGroupCreate(Input):
    group: str = Field(min_length=1, max_length=200, description="The group's name in the IdP")
    role: str = Field(
        min_length=1, max_length=40, description="A built-in role name or a custom role id"
    )


class IdpGroupOut(Output):
    __resource__ = "idp_group"
    id: uuid.UUID
    group: str
    role: str | None
    custom_role_id: uuid.UUID | None
    created_at: datetime
