"""`/ws/{slug}/api/v1/audit` and `/ws/{slug}/api/v1/history`: reading the audit trail
(`audit.read`). Reads are audited too."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from app.errors import BadRequest, Conflict, Forbidden
from app.query import DistinctQuery, ListQuery, distinct
from app.schemas.audit import AuditOut, HistoryEntryOut, VerifyOut
from app.schemas.common import DistinctPage, Page
from app.security.audit import AuditedRoute, describe_route
from app.security.deps import require
from app.security.principal import WorkspaceContext
from app.security.shaping import unseen_ids
from app.services import audit, audit_anchor, audit_chain
from app.services.audit import AUDIT, HISTORY

router = APIRouter(prefix="/ws/{slug}/api/v1", tags=["audit"], route_class=AuditedRoute)

Reader = Annotated[WorkspaceContext, Depends(require("audit.read"))]
Listing = Annotated[ListQuery, Depends(AUDIT.list_query)]


async def _page(ctx: WorkspaceContext, query: ListQuery) -> dict[str, Any]:
    page = query.page(await audit.list_records(ctx, query))
    records = [AuditOut.of(r) for r in page["data"]]
    # A record may name a resource the reader cannot see (their own request for it, say):
    # the id is left out here, and masked wherever else it occurs by the response shaping.
    named = " ".join(str(r.resource_id) for r in records).encode()
    unseen = await unseen_ids(ctx, named)
    page["data"] = [
        r.model_copy(update={"resource_id": None}) if str(r.resource_id).encode() in unseen else r
        for r in records
    ]
    return page


@router.get(
    "/audit",
    response_model=Page[AuditOut],
    description=AUDIT.doc(
        "The workspace's audit log: every authorized, successful call, newest first. E.g. "
        "`?action=delete`, `?user_id=…`, `?resource_type=provider`, "
        '`?created_at__between=["2024-05-01","2024-05-31"]`, `?sealed=false`.'
    ),
)
async def list_audit(ctx: Reader, query: Listing) -> dict[str, Any]:
    return await _page(ctx, query)


@router.post("/audit/search/{field}", response_model=Page[AuditOut])
async def search_audit(
    ctx: Reader, query: Annotated[ListQuery, Depends(AUDIT.search_query)]
) -> dict[str, Any]:
    """Audit records whose `field` is one of the JSON list of values in the body."""
    return await _page(ctx, query)


@router.get("/audit/distinct/{field}", response_model=DistinctPage)
async def distinct_audit(
    ctx: Reader, query: Annotated[DistinctQuery, Depends(AUDIT.distinct_query)]
) -> dict[str, Any]:
    """The distinct values of `field` in the audit log (e.g. actions, users, resource types)."""
    return await distinct(ctx, query)


@router.get("/audit/verify", response_model=VerifyOut)
async def verify_audit(
    request: Request,
    ctx: Reader,
    full: Annotated[
        bool,
        Query(
            description="Re-hash the whole chain, not only what was sealed since the last "
            "verification (owners only; one verification per workspace at a time)"
        ),
    ] = False,
) -> dict[str, Any]:
    """Check the workspace's hash chain: every sealed record since the last verified position
    (or, with `full`, since the first record or the last retention cut) hashes to its content
    and links to the previous one, with no gap and none missing before the head; and the
    database agrees with the latest signed anchor published outside it (a truncated or
    replaced tail). Reports the first broken link and how many records are not sealed yet. The
    chain spans every record, so it takes a role that sees the whole workspace: its counts
    would tell a reader limited by groups or grants of activity on what they may not see."""
    if not ctx.principal.unrestricted:
        raise Forbidden(
            "Verifying the chain takes a role that sees the whole workspace (its counts cover "
            "every record)"
        )
    if full and not ctx.principal.is_owner:
        raise Forbidden("A full verification takes the owner role")
    state = request.app.state
    try:
        anchor = await audit_anchor.latest(state.settings, state.redis, ctx.workspace_id)
    except RedisError:
        anchor = None
    try:
        result = await audit_chain.verify_chain(
            ctx, full=full, settings=state.settings, anchor=anchor, db=state.db
        )
    except audit_chain.VerificationRunning:
        raise Conflict(
            "A verification of this workspace is running; try again when it is done"
        ) from None
    if result["anchor"] is None:
        result["anchor"] = {"ok": None, "note": "no anchor published for this workspace yet"}
    return result


@router.get(
    "/audit/{resource_id}",
    response_model=Page[AuditOut],
    description=AUDIT.doc("The audit records about one resource (any type), newest first."),
)
async def list_resource_audit(ctx: Reader, query: Listing) -> dict[str, Any]:
    return await _page(ctx, query)


def history_types(app: Any) -> dict[str, str]:
    """Each resource type that writes are recorded for, by its name and its collection's
    (`provider_group`, `provider-groups`, `provider_groups`), read from the app's routes."""
    cached: dict[str, str] | None = getattr(app.state, "history_types", None)
    if cached is None:
        cached = {}
        for route in app.routes:
            if not (isinstance(route, APIRoute) and route.path.startswith("/ws/")):
                continue
            if not (route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
                continue
            kind = describe_route(route).resource_type
            collection = route.path.split("/api/v1/", 1)[1].split("/", 1)[0]
            if kind and collection and not collection.startswith("{"):
                for name in (kind, collection, collection.replace("-", "_")):
                    cached.setdefault(name, kind)
        app.state.history_types = cached
    return cached


async def history_type(
    request: Request,
    resource_type: Annotated[
        str, Path(max_length=64, description="e.g. `provider` (or `providers`)")
    ],
) -> str:
    """The path's resource type in its recorded form; an unknown one is a 400 listing them."""
    types = history_types(request.app)
    kind = types.get(resource_type)
    if kind is None:
        names = ", ".join(sorted(set(types.values())))
        raise BadRequest(f"unknown resource type '{resource_type[:64]}'; one of: {names}")
    request.scope["path_params"]["resource_type"] = kind  # the filter the query reads
    return kind


@router.get(
    "/history/{resource_type}/{resource_id}",
    response_model=Page[HistoryEntryOut],
    openapi_extra={"x-audit-action": "history"},
    description=HISTORY.doc(
        "The changes made to one resource (e.g. `/history/provider/{id}`), oldest first: each "
        "write call with the before/after values of the fields it changed (a delete shows the "
        "last values going to null)."
    ),
)
async def list_history(
    ctx: Reader,
    resource_type: Annotated[str, Depends(history_type)],
    query: Annotated[ListQuery, Depends(HISTORY.list_query)],
) -> dict[str, Any]:
    return query.page(await audit.history(ctx, query))
