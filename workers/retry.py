"""How long to wait before another attempt (which failures deserve one: `app.unavailable`)."""

from __future__ import annotations

import random


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, then a random value in
    its upper half (so retries of many jobs do not arrive together)."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
