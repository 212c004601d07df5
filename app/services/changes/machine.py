"""The change request state machine: which action is allowed from which state.

    draft ──submit──► submitted ──approve (enough)──► approved ──implement──► implemented
      │                  │ └──reject──► rejected
      └──cancel──► cancelled ◄──cancel──┘

Each action is its own route; an action the current state does not allow answers 409 with
that state. Editing is allowed in `draft` only.
"""

from __future__ import annotations

from app.db.models import ChangeRequest
from app.errors import Conflict

ALLOWED: dict[str, frozenset[str]] = {
    "update": frozenset({"draft"}),
    "submit": frozenset({"draft"}),
    "approve": frozenset({"submitted"}),
    "reject": frozenset({"submitted"}),
    "implement": frozenset({"approved"}),
    "cancel": frozenset({"draft", "submitted"}),
}
VERBS = {
    "update": "edit",
    "submit": "submit",
    "approve": "approve",
    "reject": "reject",
    "implement": "implement",
    "cancel": "cancel",
}


def ensure(change: ChangeRequest, action: str) -> None:
    """Refuse (409, with the current state) an action the change's state does not allow."""
    allowed = ALLOWED[action]
    if change.state not in allowed:
        raise Conflict(
            f"Cannot {VERBS[action]} a change request that is {change.state}; "
            f"only one that is {' or '.join(sorted(allowed))}",
            state=change.state,
        )
