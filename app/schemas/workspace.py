from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import EmailStr, Field

from app.schemas.common import Input, Output
from app.security.permissions import ROLE_NAMES

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"


class WorkspaceCreate(Input):
    slug: str = Field(min_length=1, max_length=63, pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=200)

    model_config = {
        "json_schema_extra": {"examples": [{"slug": "acme-prod", "name": "Acme production"}]}
    }


class WorkspaceOut(Output):
    id: uuid.UUID
    slug: str
    name: str
    role: str | None = None
    custom_role_id: uuid.UUID | None = None
    created_at: datetime


class MemberCreate(Input):
    email: EmailStr = Field(max_length=320)
    role: str = Field(
        min_length=1,
        max_length=40,
        description=f"A built-in role ({', '.join(ROLE_NAMES)}) or a custom role id",
    )


class MemberOut(Output):
    __resource__ = "member"
    user_id: uuid.UUID
    email: str
    name: str
    role: str | None
    custom_role_id: uuid.UUID | None
    attributes: dict[str, Any]
    created_at: datetime
