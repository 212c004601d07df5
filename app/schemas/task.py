from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, computed_field

from app.schemas.common import Output


class TaskOut(Output):
    __resource__ = "task"
    id: uuid.UUID
    kind: str = Field(description="What the task does, e.g. `scan.import`")
    state: str = Field(
        description="pending, running, succeeded, failed, refused (the user lost the "
        "membership or permission before the job ran) or cancelled"
    )
    progress: int = Field(description="0-100")
    progress_detail: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    resource_type: str | None
    resource_id: uuid.UUID | None
    provider_id: uuid.UUID | None
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.updated_at
        return round(max((end - self.started_at).total_seconds(), 0.0), 3)
