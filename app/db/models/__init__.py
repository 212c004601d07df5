"""All ORM models; importing this package registers every table on `Base.metadata`."""

from app.db.models.audit import AuditCut, AuditDenial, AuditRecord, UserEvent
from app.db.models.identity import AuthSession, Membership, User, Workspace
from app.db.models.provider import Provider, ProviderGroup, ProviderGroupMember
from app.db.models.role import CustomRole, RoleProviderGroup

__all__ = [
    "AuditCut",
    "AuditDenial",
    "AuditRecord",
    "AuthSession",
    "CustomRole",
    "Membership",
    "Provider",
    "ProviderGroup",
    "ProviderGroupMember",
    "RoleProviderGroup",
    "User",
    "UserEvent",
    "Workspace",
]
