from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from app.schemas.common import Input, Output

PermissionKeys: Any = Field(default_factory=list, max_length=200)

# Row grants compare attributes to column values: scalars or flat lists of scalars, bounded. A
# free-form JSON value could nest deeper than responses can be serialized (a 500 on every read).
AttributeScalar = Annotated[str, Field(max_length=200)] | int | float | bool | None
AttributeValue = AttributeScalar | Annotated[list[AttributeScalar], Field(max_length=100)]
Attributes = dict[Annotated[str, Field(min_length=1, max_length=64)], AttributeValue]


class CustomRoleCreate(Input):
    name: str = Field(min_length=1, max_length=100)
    inherits_from: str = Field(min_length=1, max_length=40, description="A built-in role")
    grants: list[str] = PermissionKeys
    revokes: list[str] = PermissionKeys
    provider_group_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=1000,
        description="Provider groups visible to the role when it lacks `unlimited_visibility`",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "Release manager",
                    "inherits_from": "engineer",
                    "grants": ["change.bulk_approve"],
                    "revokes": ["provider.delete"],
                }
            ]
        }
    }


class CustomRoleUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    inherits_from: str | None = Field(default=None, min_length=1, max_length=40)
    grants: list[str] | None = Field(default=None, max_length=200)
    revokes: list[str] | None = Field(default=None, max_length=200)
    provider_group_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)


class CustomRoleOut(Output):
    __resource__ = "role"
    id: uuid.UUID
    name: str
    inherits_from: str
    grants: list[str]
    revokes: list[str]
    provider_group_ids: list[uuid.UUID]
    permissions: list[str]
    created_at: datetime
    updated_at: datetime


class MemberUpdate(Input):
    role: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="A built-in role name or a custom role id",
    )
    attributes: Attributes | None = Field(
        default=None,
        max_length=50,
        description="Per-workspace attributes used by row grants, e.g. {'region': 'eu'}",
    )


class HasPermissionIn(Input):
    workspace: str = Field(min_length=1, max_length=63, description="Workspace slug")
    permission: str | None = Field(default=None, max_length=100)
    method: str | None = Field(default=None, max_length=10)
    path: str | None = Field(default=None, max_length=2000)


class HasPermissionOut(Output):
    allowed: bool
    permission: str | None
    reason: str
