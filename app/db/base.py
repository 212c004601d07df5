"""Declarative base, naming convention, the column mixins every table is built from, and the
declaration every workspace-scoped table makes of how its rows relate to a provider."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

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


@dataclass(frozen=True)
class ProviderLink:
    """How a workspace row relates to a provider, declared by every scoped table.

    - `column` alone: the row is a provider (`"id"`) or names one (`"provider_id"`); with
      `optional`, a row whose column is null is about no provider and is seen by every
      member (a change request may or may not be about a provider);
    - `column` and `parent`: the row belongs to a row of the `parent` table (through `column`,
      that parent's id), which relates to a provider in its own declared way;
    - `by_reference`: the row is about another resource, named by `resource_type` and
      `resource_id` (audit records);
    - none of these: the row has nothing to do with providers.

    Provider visibility, row grants declared on providers and field rules hiding provider
    fields are derived from this declaration for every table, so a new table gets them by
    declaring its link."""

    column: str | None = None
    parent: str | None = None
    by_reference: bool = False
    optional: bool = False

    @property
    def direct(self) -> bool:
        """The row holds the provider id itself."""
        return self.column is not None and self.parent is None


IS_PROVIDER = ProviderLink(column="id")
HAS_PROVIDER = ProviderLink(column="provider_id")
MAY_HAVE_PROVIDER = ProviderLink(column="provider_id", optional=True)
NO_PROVIDER = ProviderLink()
ABOUT_A_RESOURCE = ProviderLink(by_reference=True)


def belongs_to(parent: str, column: str) -> ProviderLink:
    """The row belongs to a row of table `parent`, whose id is in `column`."""
    return ProviderLink(column=column, parent=parent)


class WorkspaceScoped:
    """Mixin for every workspace-scoped table.

    Invariant: `workspace_id` leads the primary key, and the ORM fills it from the session's
    tenant context on insert (never from a request body); every ORM query on a subclass gets
    `workspace_id = <context>` added centrally. Every table declares `__provider__` (a
    `ProviderLink`); a table that does not is refused when its class is defined.
    `__resource__` is the name the API, the audit log and the field rules use for it (the
    table name unless declared); `__embeds__` names the columns whose values can contain a
    provider field's value (e.g. a resource ARN holds the account id), which are masked and
    cannot be queried by a role the provider field is hidden from.
    """

    __provider__: ClassVar[ProviderLink]
    __resource__: ClassVar[str]
    __embeds__: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "__tablename__" in cls.__dict__:
            if not isinstance(cls.__dict__.get("__provider__"), ProviderLink):
                raise TypeError(
                    f"{cls.__name__} is workspace-scoped but does not declare how it relates "
                    "to a provider (`__provider__ = IS_PROVIDER / HAS_PROVIDER / "
                    "MAY_HAVE_PROVIDER / belongs_to(...) / ABOUT_A_RESOURCE / NO_PROVIDER`)"
                )
            if "__resource__" not in cls.__dict__:
                cls.__resource__ = cls.__dict__["__tablename__"]
        super().__init_subclass__(**kwargs)

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


def scoped_entities() -> list[type[WorkspaceScoped]]:
    """Every mapped workspace-scoped class (importing the models registers them all)."""
    return sorted(
        (m.class_ for m in Base.registry.mappers if issubclass(m.class_, WorkspaceScoped)),
        key=lambda c: c.__tablename__,  # type: ignore[attr-defined]
    )


def entity_named(resource: str) -> type[WorkspaceScoped] | None:
    """The scoped class whose `__resource__` is `resource` (None for anything else)."""
    return next((c for c in scoped_entities() if c.__resource__ == resource), None)


def entity_for_table(table: str) -> type[WorkspaceScoped]:
    return next(c for c in scoped_entities() if c.__tablename__ == table)  # type: ignore[attr-defined]
