"""All ORM models; importing this package registers every table on `Base.metadata`."""

from app.db.models.audit import AuditCut, AuditDenial, AuditRecord, UserEvent
from app.db.models.change import ChangeApproval, ChangeRequest
from app.db.models.credentials import (
    ApiKey,
    IdpGroupMapping,
    ServiceKey,
    UserIdentity,
    UserMfa,
)
from app.db.models.idempotency import IdempotencyKey, UserIdempotencyKey
from app.db.models.identity import AuthSession, Membership, User, Workspace
from app.db.models.incident import Incident, IncidentEvent
from app.db.models.invitation import Invitation
from app.db.models.job import Outbox, Task
from app.db.models.notification import Notification
from app.db.models.provider import Provider, ProviderGroup, ProviderGroupMember
from app.db.models.role import CustomRole, RoleProviderGroup
from app.db.models.scan import Finding, Scan, ScanUpload

__all__ = [
    "ApiKey",
    "IdpGroupMapping",
    "ServiceKey",
    "UserIdentity",
    "UserMfa",
    "AuditCut",
    "AuditDenial",
    "AuditRecord",
    "AuthSession",
    "ChangeApproval",
    "ChangeRequest",
    "CustomRole",
    "Finding",
    "IdempotencyKey",
    "Incident",
    "IncidentEvent",
    "Invitation",
    "Membership",
    "Notification",
    "Outbox",
    "Provider",
    "ProviderGroup",
    "ProviderGroupMember",
    "RoleProviderGroup",
    "Scan",
    "ScanUpload",
    "Task",
    "User",
    "UserIdempotencyKey",
    "UserEvent",
    "Workspace",
]
