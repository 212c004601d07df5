"""All ORM models; importing this package registers every table on `Base.metadata`."""

from app.db.models.identity import AuthSession, Membership, User, Workspace
from app.db.models.provider import Provider, ProviderGroup, ProviderGroupMember

__all__ = [
    "AuthSession",
    "Membership",
    "Provider",
    "ProviderGroup",
    "ProviderGroupMember",
    "User",
    "Workspace",
]
