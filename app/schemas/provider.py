from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, model_validator

from app.schemas.common import Input, Output
from app.schemas.provider_uid import ProviderType, uid_error

REGION = Field(default=None, min_length=2, max_length=40, pattern=r"^[a-z0-9-]+$")


class ProviderCreate(Input):
    __resource__ = "provider"
    provider_type: ProviderType
    uid: str = Field(min_length=1, max_length=300)
    alias: str | None = Field(default=None, min_length=1, max_length=100)
    region: str | None = REGION

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"provider_type": "aws", "uid": "123456789012", "alias": "prod", "region": "eu"}
            ]
        }
    }

    @model_validator(mode="after")
    def _uid_matches_type(self) -> ProviderCreate:
        error = uid_error(self.provider_type, self.uid)
        if error:
            raise ValueError(f"invalid uid for {self.provider_type.value}: {error}")
        return self


class ProviderUpdate(Input):
    __resource__ = "provider"
    __update__ = True
    alias: str | None = Field(default=None, min_length=1, max_length=100)
    region: str | None = REGION


class ProviderOut(Output):
    __resource__ = "provider"
    id: uuid.UUID
    provider_type: ProviderType
    uid: str
    alias: str | None
    region: str | None
    created_at: datetime
    updated_at: datetime


class ProviderGroupCreate(Input):
    name: str = Field(min_length=1, max_length=100)
    provider_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class ProviderGroupUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    provider_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)


class ProviderGroupOut(Output):
    __resource__ = "provider_group"
    id: uuid.UUID
    name: str
    provider_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime
