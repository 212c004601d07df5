"""Declarative base, naming convention and the column mixins every table is built from."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, MetaData, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from uuid6 import uuid7

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> uuid.UUID:
    """Public ids are UUIDv7: time-ordered (good index locality, stable sort), never sequences."""
    return uuid7()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class WorkspaceScoped:
    """Mixin for every workspace-scoped table.

    Invariant: `workspace_id` leads the primary key, and the ORM fills it from the session's
    tenant context on insert (never from a request body); every ORM query on a subclass gets
    `workspace_id = <context>` added centrally (see app/db/session.py).
    """

    @declared_attr
    def workspace_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(
            UUID(as_uuid=True),
            ForeignKey("workspace.id"),
            primary_key=True,
            nullable=False,
            sort_order=-20,
        )


class ScopedEntity(WorkspaceScoped):
    """A workspace-scoped row with its own UUIDv7 id; primary key `(workspace_id, id)`."""

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, default=new_id, sort_order=-10
    )
