"""Change requests, incidents, invitations and notifications: request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, EmailStr, Field, model_validator

from app.schemas.common import Input, Output
from app.security.permissions import ROLE_NAMES

Risk = Literal["low", "medium", "high"]
ChangeState = Literal["draft", "submitted", "approved", "rejected", "implemented", "cancelled"]
Severity = Literal["sev1", "sev2", "sev3", "sev4"]
IncidentStatus = Literal["open", "investigating", "mitigated", "resolved", "closed"]

Title = Field(min_length=1, max_length=200)
LongText = Field(default=None, max_length=20_000)
Comment = Field(default=None, min_length=1, max_length=2000)


def _window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ValueError("planned_end must be after planned_start")


# Change requests


class ChangeCreate(Input):
    __resource__ = "change"
    title: str = Title
    description: str = Field(max_length=20_000)
    risk: Risk
    provider_id: uuid.UUID | None = None
    planned_start: AwareDatetime | None = None
    planned_end: AwareDatetime | None = None
    required_approvals: int = Field(default=1, ge=1, le=5)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "title": "Rotate the prod database password",
                    "description": "Rotate and roll out through the secret store.",
                    "risk": "medium",
                    "required_approvals": 1,
                }
            ]
        }
    }

    @model_validator(mode="after")
    def _planned_window(self) -> ChangeCreate:
        _window(self.planned_start, self.planned_end)
        return self


class ChangeUpdate(Input):
    __resource__ = "change"
    __update__ = True
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = LongText
    risk: Risk | None = None
    provider_id: uuid.UUID | None = None
    planned_start: AwareDatetime | None = None
    planned_end: AwareDatetime | None = None
    required_approvals: int | None = Field(default=None, ge=1, le=5)

    @model_validator(mode="after")
    def _not_null(self) -> ChangeUpdate:
        for name in ("title", "description", "risk", "required_approvals"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ApproveIn(Input):
    comment: str | None = Comment


class RejectIn(Input):
    reason: str = Field(min_length=1, max_length=2000)


class ImplementIn(Input):
    notes: str | None = Field(default=None, min_length=1, max_length=20_000)


class BulkApproveIn(Input):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=100)
    comment: str | None = Comment


class ApprovalOut(Output):
    approver_id: uuid.UUID
    decision: Literal["approve", "reject"]
    comment: str | None
    created_at: datetime


class ChangeSummaryOut(Output):
    __resource__ = "change"
    id: uuid.UUID
    title: str
    description: str
    risk: Risk
    provider_id: uuid.UUID | None
    planned_start: datetime | None
    planned_end: datetime | None
    required_approvals: int
    approval_count: int
    state: ChangeState
    requested_by: uuid.UUID
    submitted_at: datetime | None
    decided_at: datetime | None
    implemented_at: datetime | None
    implemented_by: uuid.UUID | None
    implementation_notes: str | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ChangeOut(ChangeSummaryOut):
    approvals: list[ApprovalOut]


class BulkResultOut(Output):
    id: uuid.UUID
    outcome: Literal["approved", "refused"]
    state: ChangeState | None = Field(description="The change's state afterwards (if visible)")
    reason: str | None = None


class BulkApproveOut(Output):
    __resource__ = "change"
    results: list[BulkResultOut]


# Incidents


class IncidentCreate(Input):
    __resource__ = "incident"
    title: str = Title
    description: str | None = LongText
    severity: Severity
    provider_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [{"title": "Elevated 5xx on the API", "severity": "sev2"}]
        }
    }


class IncidentUpdate(Input):
    __resource__ = "incident"
    __update__ = True
    status: IncidentStatus | None = None
    severity: Severity | None = None
    assignee_id: uuid.UUID | None = Field(default=None, description="null to unassign")
    resolution: str | None = Field(default=None, min_length=1, max_length=20_000)

    @model_validator(mode="after")
    def _not_null(self) -> IncidentUpdate:
        for name in ("status", "severity", "resolution"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class IncidentEventOut(Output):
    from_status: IncidentStatus | None
    to_status: IncidentStatus
    note: str | None
    actor_id: uuid.UUID
    created_at: datetime


class IncidentSummaryOut(Output):
    __resource__ = "incident"
    id: uuid.UUID
    title: str
    description: str | None
    severity: Severity
    status: IncidentStatus
    provider_id: uuid.UUID | None
    assignee_id: uuid.UUID | None
    resolution: str | None
    created_by: uuid.UUID
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class IncidentOut(IncidentSummaryOut):
    timeline: list[IncidentEventOut]


# Invitations


class InvitationCreate(Input):
    __resource__ = "invitation"
    email: EmailStr = Field(max_length=320)
    role: str = Field(
        min_length=1,
        max_length=40,
        description=f"A built-in role ({', '.join(ROLE_NAMES)}) or a custom role id",
    )

    model_config = {
        "json_schema_extra": {"examples": [{"email": "new.hire@example.com", "role": "engineer"}]}
    }


class InvitationOut(Output):
    __resource__ = "invitation"
    id: uuid.UUID
    email: str
    role: str | None
    custom_role_id: uuid.UUID | None
    state: Literal["pending", "accepted", "revoked", "expired"]
    created_by: uuid.UUID
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: uuid.UUID | None
    revoked_at: datetime | None


class InvitationCreatedOut(InvitationOut):
    token: str = Field(description="Shown once: give it to the invited person")


class AcceptedOut(Output):
    workspace: str
    workspace_id: uuid.UUID


# Notifications


class NotificationOut(Output):
    id: uuid.UUID
    kind: str
    workspace: str
    workspace_id: uuid.UUID
    title: str
    body: str | None
    resource_type: str | None
    resource_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    unread: bool
    created_at: datetime
    read_at: datetime | None


class ReadAllOut(Output):
    updated: int
