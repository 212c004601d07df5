"""All ORM models; importing this package registers every table on `Base.metadata`."""

from app.db.models.audit import AuditCut, AuditDenial, AuditRecord, UserEvent
from app.db.models.idempotency import IdempotencyKey, UserIdempotencyKey
from app.db.models.identity import AuthSession, Membership, User, Workspace
from app.db.models.job import Outbox, Task
from app.db.models.provider import Provider, ProviderGroup, ProviderGroupMember
from app.db.models.role import CustomRole, RoleProviderGroup
from app.db.models.scan import Finding, Scan, ScanUpload

__all__ = [
    "AuditCut",
    "AuditDenial",
    "AuditRecord",
    "AuthSession",
    "CustomRole",
    "Finding",
    "IdempotencyKey",
    "Membership",
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
