"""Docs served offline, the OAuth2 password flow behind *Authorize*, probes, request ids."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import make_settings
from tests.helpers import PASSWORD, Api, assert_problem, serve


class _Refs(HTMLParser):
    """Collects every URL a page makes the browser load (script, link, img, iframe...)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url", "data") and value:
                self.urls.append((tag, value))


def references(html: str) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(html)
    return parser.urls


EXTERNAL = re.compile(r"(?:https?:)?//(?!warden\.test)[\w.-]+", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_local_assets(page: str, client: httpx.AsyncClient) -> None:
    r = await client.get(page)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    refs = references(r.text)
    scripts = [url for tag, url in refs if tag == "script"]
    assert scripts, f"{page} loads no script at all"
    for tag, url in refs:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page}: <{tag}> loads {url}"
    # Nor anything inline that reaches out (CDNs, web fonts).
    for match in EXTERNAL.finditer(r.text):
        pytest.fail(f"{page} references {match.group(0)}")
    for _, url in refs:
        if url.startswith("/") and not url.endswith(".json"):
            asset = await client.get(url)
            assert asset.status_code == 200, (url, asset.status_code)
            assert len(asset.content) > 1000, (url, len(asset.content))
            if url.endswith(".js"):
                assert "javascript" in asset.headers["content-type"], asset.headers
            elif url.endswith(".css"):
                assert asset.headers["content-type"].startswith("text/css"), asset.headers


async def test_swagger_ui_is_wired_for_the_password_flow(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert "url: '/openapi.json'" in html
    assert "'/docs/oauth2-redirect'" in html
    # The validator badge would send the spec's address to validator.swagger.io.
    assert '"validatorUrl": null' in html
    assert '"persistAuthorization": true' in html


async def test_oauth2_redirect_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs/oauth2-redirect")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "oauth2" in r.text.lower()
    assert not EXTERNAL.search(r.text)


async def test_openapi_declares_the_oauth2_password_flow(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    spec = r.json()
    schemes = spec["components"]["securitySchemes"]
    oauth = [(name, s) for name, s in schemes.items() if s["type"] == "oauth2"]
    assert len(oauth) == 1, schemes
    name, scheme = oauth[0]
    assert scheme["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    # Protected routes name it, so *Authorize* applies to them; docs routes stay out.
    for path, method in (("/ws/{slug}/api/v1/providers", "get"), ("/api/v1/me", "get")):
        assert {name: []} in spec["paths"][path][method]["security"], (path, method)
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]
    token_form = spec["paths"]["/api/v1/auth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in token_form
    assert not {"/docs", "/redoc", "/docs/oauth2-redirect"} & set(spec["paths"])


async def test_token_endpoint_issues_a_working_bearer_token(
    api: Api, client: httpx.AsyncClient
) -> None:
    user = await api.user("swagger")
    r = await client.post("/api/v1/auth/token", data={"username": user.email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"] and body["refresh_token"] and body["expires_in"] > 0
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == user.email, me.text

    wrong = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": "not the password"}
    )
    assert_problem(wrong, 401)
    assert_problem(await client.post("/api/v1/auth/token", data={"username": user.email}), 422)
    as_json = await client.post(
        "/api/v1/auth/token", json={"username": user.email, "password": PASSWORD}
    )
    assert_problem(as_json, 422)


# Probes


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text


async def test_readyz_when_everything_answers(client: httpx.AsyncClient) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    checks = {"database": "ok", "redis": "ok", "migrations": "ok"}
    assert r.json() == {"status": "ready", "checks": checks}


async def test_readyz_reports_a_dead_redis(database: dict[str, str], servers: Any) -> None:
    settings = make_settings(database, servers, redis_url="redis://127.0.0.1:1/0")
    async with serve(settings) as (_, c):
        assert (await c.get("/healthz")).status_code == 200
        r = await c.get("/readyz")
    body = assert_problem(r, 503)
    assert body["checks"] == {"database": "ok", "redis": "unavailable", "migrations": "ok"}, body


# Request ids


HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize("path", ["/healthz", "/nope", "/api/v1/me"])
async def test_request_id_is_generated(path: str, client: httpx.AsyncClient) -> None:
    r = await client.get(path)
    request_id = r.headers.get("x-request-id", "")
    assert HEX_ID.match(request_id), r.headers
    if r.status_code >= 400:
        assert r.json()["request_id"] == request_id
    other = (await client.get(path)).headers["x-request-id"]
    assert other != request_id


@pytest.mark.parametrize("incoming", ["abc-123", "req.42_X", "a" * 64])
@pytest.mark.parametrize("path", ["/healthz", "/nope"])
async def test_well_formed_request_id_is_echoed(
    incoming: str, path: str, client: httpx.AsyncClient
) -> None:
    r = await client.get(path, headers={"X-Request-ID": incoming})
    assert r.headers["x-request-id"] == incoming
    assert r.headers.get_list("x-request-id") == [incoming]
    if r.status_code >= 400:
        assert r.json()["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        b"",
        b"has space",
        b"a" * 65,
        b"<script>alert(1)</script>",
        b"x\r\nSet-Cookie: a=b",
        b"\xc3\xbcnicode",
        b"semi;colon",
        b"../../etc",
    ],
    ids=[
        "empty",
        "space",
        "too long",
        "html",
        "header injection",
        "non-ascii",
        "semicolon",
        "path",
    ],
)
async def test_malformed_request_id_is_replaced(incoming: bytes, client: httpx.AsyncClient) -> None:
    if b"\r\n" in incoming:
        # httpx refuses to send a raw CR/LF; the ASGI scope can still carry anything.
        incoming = incoming.replace(b"\r\n", b" ")
    r = await client.get("/nope", headers={"X-Request-ID": incoming})
    request_id = r.headers["x-request-id"]
    assert HEX_ID.match(request_id), request_id
    assert r.headers.get_list("x-request-id") == [request_id]
    assert r.json()["request_id"] == request_id


@pytest.mark.parametrize(
    "incoming",
    [b"abc\n", b"abc\r\nSet-Cookie: a=b", b"abc\x00", b"abc\r"],
    ids=["trailing newline", "header injection", "nul", "carriage return"],
)
async def test_request_id_with_control_characters_is_replaced(incoming: bytes, app: Any) -> None:
    """Raw ASGI, since httpx refuses to send these: the id must never reach a response header."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"warden.test"), (b"x-request-id", incoming)],
        "client": ("127.0.0.1", 40000),
        "server": ("warden.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 200
    ids = [value for name, value in start["headers"] if name.lower() == b"x-request-id"]
    assert len(ids) == 1 and re.fullmatch(rb"[0-9a-f]{32}", ids[0]), ids
