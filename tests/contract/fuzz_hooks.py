"""Schemathesis hooks for the contract fuzz run (loaded through `SCHEMATHESIS_HOOKS`).

Every request carries the owner's token (`FUZZ_OWNER_TOKEN`): the run acts as one owner on one workspace full of data. Three operations would end that
session for every case after them: logging out, changing the password, deleting the
workspace. Those run as a throwaway user, with a fresh login per case (and for the deletion a
throwaway workspace), so every operation is fuzzed and none cuts the others off. Requests whose
query string would exceed what the HTTP server reads (its request-line limit, answered by the
server itself before Warden sees the request) are not generated.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import urlencode

import requests
import schemathesis

BASE = os.environ["FUZZ_BASE_URL"]
OWNER_TOKEN = os.environ["FUZZ_OWNER_TOKEN"]
PASSWORD = "correct horse battery staple"
MAX_QUERY = 16_000
_throwaway: dict[str, str] = {}


def _login(email: str) -> str:
    r = requests.post(
        f"{BASE}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def _throwaway_token() -> str:
    if not _throwaway:
        email = f"fuzz-throwaway-{secrets.token_hex(4)}@example.com"
        r = requests.post(
            f"{BASE}/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Throwaway"},
            timeout=10,
        )
        r.raise_for_status()
        _throwaway["email"] = email
    return _login(_throwaway["email"])


def _throwaway_workspace(token: str) -> str:
    slug = f"fuzz-del-{secrets.token_hex(4)}"
    r = requests.post(
        f"{BASE}/api/v1/workspaces",
        json={"slug": slug, "name": "Deleted by the fuzz run"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    r.raise_for_status()
    return slug


def _authorize(case: Any, token: str) -> None:
    value = f"Bearer {token}"
    case.headers = {**(case.headers or {}), "Authorization": value}


@schemathesis.hook
def filter_query(context: Any, query: dict[str, Any] | None) -> bool:
    return query is None or len(urlencode(query, doseq=True)) <= MAX_QUERY


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    label = f"{case.method.upper()} {case.path}"
    if label in ("POST /api/v1/auth/logout", "POST /api/v1/auth/password"):
        _authorize(case, _throwaway_token())
    elif label == "DELETE /api/v1/workspaces/{slug}":
        token = _throwaway_token()
        _authorize(case, token)
        case.path_parameters = {**(case.path_parameters or {}), "slug": _throwaway_workspace(token)}
    else:
        _authorize(case, OWNER_TOKEN)
