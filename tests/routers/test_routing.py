"""The route index finds exactly the route the normal walk would, and declines otherwise."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match

from app.routing import RouteIndex
from tests.helpers import assert_problem


def _concrete(path: str) -> str:
    """A request path for a route template (every parameter filled in)."""
    return re.sub(r"\{[^}]+\}", "x1", path)


def _walk(app: FastAPI, scope: dict) -> object | None:
    """What the normal walk picks: the first route (after the index) that matches fully."""
    for route in app.router.routes:
        if isinstance(route, RouteIndex):
            continue
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def test_the_index_is_first_and_agrees_with_the_walk_on_every_route(app):
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    routes = [r for r in app.router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 40
    for route in routes:
        for method in route.methods:
            scope = {
                "type": "http",
                "path": _concrete(route.path),
                "root_path": "",
                "method": method,
                "headers": [],
            }
            match, child = index.matches(scope)
            assert match == Match.FULL, (method, route.path)
            assert child["warden.route"] is _walk(app, scope), (method, route.path)


def test_the_index_declines_what_it_cannot_settle(app):
    index = app.router.routes[0]
    for path, method in (
        ("/ws/x1/api/v1/providers", "PUT"),  # path known, method not: the walk answers 405
        ("/ws/x1/api/v1/providers/", "GET"),  # trailing slash: the walk redirects
        ("/nowhere", "GET"),
        ("/ws/x1/api/v1/providers/x1/deeper", "GET"),
    ):
        scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
        assert index.matches(scope)[0] == Match.NONE, path


async def test_answers_are_unchanged_where_the_index_declines(client, api):
    owner = await api.user("routing")
    slug = await api.workspace(owner)
    r = await client.put(f"/ws/{slug}/api/v1/providers", json={}, headers=owner.headers)
    assert_problem(r, 405)
    r = await client.get("/no/such/route", headers=owner.headers)
    assert_problem(r, 404)
    r = await client.get(f"/ws/{slug}/api/v1/providers", headers=owner.headers)
    assert r.status_code == 200
