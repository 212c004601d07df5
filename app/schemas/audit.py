"""Audit records, history entries, chain verification, denials, user events, settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_serializer

from app.schemas.common import Input, Output
from app.security.fields import unqueryable


class _CallOut(Output):
    id: uuid.UUID
    created_at: datetime
    action: str
    method: str
    path: str
    path_params: dict[str, Any]
    query_params: dict[str, Any]
    body: Any
    resource_type: str | None
    resource_id: uuid.UUID | None
    status: int
    api_key_id: uuid.UUID | None
    source_ip: str | None
    user_agent: str | None
    request_id: str | None


def _hidden_fields(resource_type: str | None) -> frozenset[str]:
    """The record's resource's fields hidden from the reader, or masked for them."""
    return unqueryable(resource_type) if resource_type else frozenset()


def _prune(value: Any, hidden: frozenset[str]) -> Any:
    if not hidden or not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k not in hidden}


_DERIVED = {"sealed", "hash", "prev_hash"}


class AuditOut(_CallOut):
    """A record as the reader may see it: fields of the record's resource that the reader's
    role may not see are removed from its body, state and query (as everywhere else)."""

    __resource__ = "audit"

    user_id: uuid.UUID
    state: Any
    seq: int | None
    sealed: bool
    hash: str | None
    prev_hash: str | None

    @classmethod
    def of(cls, record: Any) -> AuditOut:
        return cls(
            **{k: getattr(record, k) for k in cls.model_fields if k not in _DERIVED},
            sealed=record.hash is not None,
            hash=record.hash.hex() if record.hash else None,
            prev_hash=record.prev_hash.hex() if record.prev_hash else None,
        )

    @field_serializer("body")
    def _body(self, value: Any) -> Any:
        hidden = _hidden_fields(self.resource_type)
        if self.path_params.get("field") in hidden:
            return None  # a search on a hidden field: its values are that field's values
        return _prune(value, hidden)

    @field_serializer("state")
    def _state(self, value: Any) -> Any:
        return _prune(value, _hidden_fields(self.resource_type))

    @field_serializer("query_params")
    def _query(self, value: dict[str, Any]) -> dict[str, Any]:
        hidden = _hidden_fields(self.resource_type)
        return {k: v for k, v in value.items() if k.rsplit("__", 1)[0] not in hidden}


class HistoryEntryOut(Output):
    __resource__ = "audit"
    id: uuid.UUID
    created_at: datetime
    action: str
    user_id: uuid.UUID
    api_key_id: uuid.UUID | None
    request_id: str | None
    resource_type: str | None
    changes: dict[str, dict[str, Any]] = Field(
        description="Changed fields: {field: {before, after}}"
    )

    @field_serializer("changes")
    def _changes(self, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return _prune(value, _hidden_fields(self.resource_type))


class UserEventOut(_CallOut):
    pass


class DenialOut(Output):
    id: uuid.UUID
    created_at: datetime
    status: int
    reason: str
    method: str
    path: str
    workspace_slug: str | None
    source_ip: str | None
    user_agent: str | None
    request_id: str | None


class ChainHead(Output):
    seq: int
    hash: str | None


class ChainCut(Output):
    up_to_seq: int
    last_hash: str
    cut_at: datetime


class BrokenLink(Output):
    id: uuid.UUID | None = Field(description="The broken record (none when records are missing)")
    seq: int
    reason: str


class AnchorCheck(Output):
    seq: int | None = None
    hash: str | None = None
    at: str | None = Field(default=None, description="When the anchored head was sealed")
    ok: bool | None = Field(description="The database agrees with the anchor; null: not checked")
    reason: str | None = None
    note: str | None = None


class VerifyOut(Output):
    __resource__ = "audit"
    ok: bool = Field(
        description="No broken link among the sealed records, none missing at the "
        "end, and (when there is one) the latest anchor agrees"
    )
    mode: str = Field(description="`incremental` (from the last verified position) or `full`")
    checked: int = Field(description="Records re-hashed by this verification")
    verified_from: int = Field(description="The seq this verification started after")
    sealed: int
    unsealed: int = Field(description="Committed records the sealer has not linked yet")
    first_seq: int | None
    head: ChainHead | None = Field(description="The last sealed record; keep its hash to anchor")
    cut: ChainCut | None = Field(description="The last retention cut the chain continues from")
    first_broken: BrokenLink | None
    anchor: AnchorCheck | None = Field(
        description="The check against the latest anchor published outside the database"
    )


class WorkspaceSettingsOut(Output):
    __resource__ = "workspace"
    id: uuid.UUID
    slug: str
    name: str
    audit_retention_days: int | None
    require_mfa: bool
    created_at: datetime
    updated_at: datetime


class WorkspaceSettingsUpdate(Input):
    __resource__ = "workspace"
    __update__ = True
    name: str | None = Field(default=None, min_length=1, max_length=200)
    audit_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="Days audit records are kept; null keeps them forever",
    )
    require_mfa: bool | None = Field(
        default=None,
        description="Members without a second factor get 403 `mfa_required` on every route",
    )

    model_config = {"json_schema_extra": {"examples": [{"audit_retention_days": 90}]}}
