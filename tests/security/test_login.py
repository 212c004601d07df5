"""Login and registration: no account enumeration (body or timing), failed-login throttling,
strict registration input, and sign-up that can be switched off."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import make_settings
from tests.helpers import (
    PASSWORD,
    Api,
    User,
    assert_problem,
    client_for,
    serve,
    without_volatile,
)


def _email(name: str = "user") -> str:
    return f"{name}-{secrets.token_hex(5)}@example.com"


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def _token_form(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


# No enumeration


@pytest.mark.parametrize("endpoint", [_login, _token_form], ids=["login", "token form"])
async def test_unknown_email_and_wrong_password_are_indistinguishable(
    endpoint: Any, api: Api, app: Any
) -> None:
    user = await api.user("enum")
    # Fresh addresses: the throttle keys on (email, address), keep these runs apart.
    async with client_for(app, "10.1.0.1") as c:
        wrong = await endpoint(c, user.email, "not the password")
    async with client_for(app, "10.1.0.2") as c:
        unknown = await endpoint(c, _email("nobody"), "not the password")
    async with client_for(app, "10.1.0.3") as c:
        unknown_right_password = await endpoint(c, _email("nobody"), PASSWORD)
    bodies = [assert_problem(r, 401) for r in (wrong, unknown, unknown_right_password)]
    assert without_volatile(bodies[0]) == without_volatile(bodies[1])
    assert without_volatile(bodies[0]) == without_volatile(bodies[2])
    assert user.email not in wrong.text
    for r in (unknown, unknown_right_password):
        assert r.headers["content-type"] == wrong.headers["content-type"]
        assert r.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")
        assert set(r.headers) == set(wrong.headers)


@pytest.fixture(scope="module")
async def timing_app(database: dict[str, str], servers: Any) -> AsyncIterator[Any]:
    """Hashing a few times dearer than the database round trip, so a skipped hash would show,
    and no throttle in the way of repeated attempts."""
    settings = make_settings(
        database,
        servers,
        argon2_time_cost=2,
        argon2_memory_cost=16384,
        login_max_failures=10_000,
    )
    async with serve(settings) as (application, _):
        yield application


async def test_unknown_email_takes_as_long_as_a_wrong_password(timing_app: Any) -> None:
    async with client_for(timing_app, "10.2.0.1") as c:
        user = await Api(c).user("timing")

        async def timed(email: str) -> float:
            start = time.perf_counter()
            r = await _login(c, email, "not the password")
            elapsed = time.perf_counter() - start
            assert r.status_code == 401, r.text
            return elapsed

        await timed(_email("warmup"))  # the dummy hash is computed once, on first use
        await timed(user.email)
        known: list[float] = []
        unknown: list[float] = []
        for _ in range(7):
            known.append(await timed(user.email))
            unknown.append(await timed(_email("nobody")))
        # The right password costs one hash too: it is the same work, and it works.
        assert (await _login(c, user.email, PASSWORD)).status_code == 200
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2.0, (ratio, known, unknown)


async def test_an_account_without_a_password_takes_as_long_as_a_wrong_password(
    timing_app: Any, runtime_engine: Any
) -> None:
    """An account made by single sign-on has no password (its stored hash is no argon2 hash):
    trying one there costs a hash too, so timing does not tell such accounts apart."""
    from sqlalchemy import text

    sso = _email("sso")
    async with runtime_engine.begin() as conn:
        await conn.execute(
            text("SELECT * FROM warden_oidc_sign_in(:i, :s, :e, true, 'SSO')"),
            {"i": "https://idp.example.com", "s": secrets.token_hex(8), "e": sso},
        )
    async with client_for(timing_app, "10.2.0.2") as c:

        async def timed(email: str) -> float:
            start = time.perf_counter()
            r = await _login(c, email, "not the password")
            elapsed = time.perf_counter() - start
            assert r.status_code == 401, r.text
            return elapsed

        await timed(_email("warmup"))
        unknown: list[float] = []
        passwordless: list[float] = []
        for _ in range(7):
            unknown.append(await timed(_email("nobody")))
            passwordless.append(await timed(sso))
    ratio = statistics.median(passwordless) / statistics.median(unknown)
    assert 0.5 < ratio < 2.0, (ratio, unknown, passwordless)


# Throttling


async def test_throttle_locks_out_the_right_password_after_max_failures(
    api: Api, app: Any, settings: Settings
) -> None:
    user = await api.user("throttle")
    assert settings.login_max_failures >= 2
    async with client_for(app, "10.3.0.1") as c:
        for _ in range(settings.login_max_failures):
            assert_problem(await _login(c, user.email, "not the password"), 401)
        variants = [
            await _login(c, user.email, PASSWORD),
            await _login(c, user.email.upper(), PASSWORD),
            await _login(c, f"  {user.email} ", PASSWORD),
            await _token_form(c, user.email, PASSWORD),
        ]
        for r in variants:
            body = assert_problem(r, 429)
            assert body["type"].endswith("/too-many-requests"), body
            retry = int(r.headers["retry-after"])
            assert 1 <= retry <= settings.login_lockout_seconds, retry
            assert "access_token" not in r.text
    # The lockout is per client address: the same account from elsewhere still logs in.
    async with client_for(app, "10.3.0.2") as c:
        assert (await _login(c, user.email, PASSWORD)).status_code == 200
    # ...which does not lift the lockout of the guessing address.
    async with client_for(app, "10.3.0.1") as c:
        assert_problem(await _login(c, user.email, PASSWORD), 429)


async def test_unknown_email_is_throttled_the_same_way(app: Any, settings: Settings) -> None:
    email = _email("ghost")
    async with client_for(app, "10.4.0.1") as c:
        for _ in range(settings.login_max_failures):
            assert_problem(await _login(c, email, PASSWORD), 401)
        r = await _login(c, email, PASSWORD)
        assert_problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1


async def test_success_resets_the_failure_count(api: Api, app: Any, settings: Settings) -> None:
    user = await api.user("reset")
    below = settings.login_max_failures - 1
    async with client_for(app, "10.5.0.1") as c:
        for _ in range(2):
            for _ in range(below):
                assert_problem(await _login(c, user.email, "not the password"), 401)
            assert (await _login(c, user.email, PASSWORD)).status_code == 200


async def test_concurrent_guesses_are_checked_at_most_max_failures_times(
    api: Api, app: Any, settings: Settings
) -> None:
    """Thirty wrong passwords at once for one account: the limit holds under the race (the
    attempt is reserved atomically before the password is checked)."""
    user = await api.user("race")
    async with client_for(app, "10.6.0.1") as c:
        answers = await asyncio.gather(*(_login(c, user.email, f"guess {i}") for i in range(30)))
        codes = sorted(r.status_code for r in answers)
        assert codes.count(401) == settings.login_max_failures, codes
        assert codes.count(429) == 30 - settings.login_max_failures, codes
        assert_problem(await _login(c, user.email, PASSWORD), 429)


async def test_random_emails_from_one_address_are_limited_per_address(
    app: Any, settings: Settings
) -> None:
    """Spraying new emails does not get around the per-account limit: failures per client
    address are limited too, and another address is not affected."""
    limit = settings.login_max_attempts_per_address
    async with client_for(app, "10.7.0.1") as c:
        answers = await asyncio.gather(
            *(_login(c, _email("spray"), PASSWORD) for _ in range(limit + 10))
        )
        codes = sorted(r.status_code for r in answers)
        assert codes.count(401) == limit, codes
        assert codes.count(429) == 10, codes
    async with client_for(app, "10.7.0.2") as c:
        assert_problem(await _login(c, _email("elsewhere"), PASSWORD), 401)


async def test_successes_do_not_use_up_the_address_limit(
    api: Api, app: Any, settings: Settings
) -> None:
    user = await api.user("often")
    async with client_for(app, "10.8.0.1") as c:
        for _ in range(settings.login_max_attempts_per_address + 3):
            assert (await _login(c, user.email, PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "email",
    ["a\x00b@example.com", "' OR 1=1 --", "x@example.com'; DROP TABLE app_user; --", "%", "_@_"],
    ids=["nul", "sql-or", "sql-drop", "percent", "underscore"],
)
@pytest.mark.parametrize("endpoint", [_login, _token_form], ids=["login", "token form"])
async def test_hostile_login_emails_are_plain_failures(endpoint: Any, email: str, app: Any) -> None:
    async with client_for(app, f"10.6.{secrets.randbelow(250)}.{secrets.randbelow(250)}") as c:
        r = await endpoint(c, email, PASSWORD)
    assert r.status_code in (401, 422), r.text
    assert_problem(r)


# Registration


async def _register(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    return await client.post("/api/v1/auth/register", json=body)


def _valid(**changes: Any) -> dict[str, Any]:
    return {"email": _email("reg"), "password": PASSWORD, "name": "Reg", **changes}


def _without(name: str) -> dict[str, Any]:
    body = _valid()
    del body[name]
    return body


BAD_REGISTRATIONS: dict[str, Any] = {
    "email not an address": lambda: _valid(email="not-an-email"),
    "email without domain": lambda: _valid(email="someone@"),
    "email without local part": lambda: _valid(email="@example.com"),
    "email with space": lambda: _valid(email="some one@example.com"),
    "email with two @": lambda: _valid(email="a@b@example.com"),
    "email empty": lambda: _valid(email=""),
    "email too long": lambda: _valid(email="a" * 330 + "@example.com"),
    "email as number": lambda: _valid(email=12345),
    "email null": lambda: _valid(email=None),
    "password too short": lambda: _valid(password="nine char"),
    "password too long": lambda: _valid(password="x" * 257),
    "password as number": lambda: _valid(password=12345678901234),
    "password as list": lambda: _valid(password=[PASSWORD]),
    "name empty": lambda: _valid(name=""),
    "name blank": lambda: _valid(name="   "),
    "name too long": lambda: _valid(name="n" * 201),
    "name with NUL": lambda: _valid(name="Ev\x00il"),
    "name as object": lambda: _valid(name={"first": "a"}),
    "missing email": lambda: _without("email"),
    "missing password": lambda: _without("password"),
    "missing name": lambda: _without("name"),
    "unknown field role": lambda: _valid(role="owner"),
    "unknown field is_active": lambda: _valid(is_active=True),
    "unknown field id": lambda: _valid(id="00000000-0000-0000-0000-000000000001"),
    "unknown field attributes": lambda: _valid(attributes={"region": "eu"}),
    "unknown field password_hash": lambda: _valid(password_hash="$argon2id$v=19$..."),
    "body is a list": lambda: [_valid()],
    "body is a string": lambda: "hello",
    "body is null": lambda: None,
    "body is empty object": lambda: {},
}


@pytest.mark.parametrize("case", list(BAD_REGISTRATIONS))
async def test_register_refuses_bad_input(case: str, client: httpx.AsyncClient) -> None:
    body = BAD_REGISTRATIONS[case]()
    r = await _register(client, body)
    problem = assert_problem(r, 422)
    assert isinstance(problem.get("errors"), list) and problem["errors"], problem
    for error in problem["errors"]:
        assert set(error) == {"loc", "msg", "type"}, error
    if _loginable(body):
        # Nothing was written: the address cannot log in.
        assert_problem(await _login(client, body["email"], body["password"]), 401)


def _loginable(body: Any) -> bool:
    """Whether this is a fresh address (see `_valid`) that login would accept as input; fixed
    addresses are left alone, repeated runs would trip the throttle on them."""
    if not isinstance(body, dict):
        return False
    email, password = body.get("email"), body.get("password")
    return (
        isinstance(email, str)
        and email.startswith("reg-")
        and email.endswith("@example.com")
        and len(email) <= 320
        and isinstance(password, str)
        and 1 <= len(password) <= 256
    )


@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"email": "a@example.com",}', b"\xff\xfe", b"[" * 100_000, b"null"],
    ids=["truncated", "trailing comma", "not utf-8", "deeply nested", "null"],
)
async def test_register_refuses_broken_json(raw: bytes, client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/auth/register", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= r.status_code < 500, r.text
    assert_problem(r)


async def test_register_returns_the_user_without_secrets(client: httpx.AsyncClient) -> None:
    body = _valid(email=f"Mixed.Case-{secrets.token_hex(4)}@Example.COM", name="  Ada  ")
    r = await _register(client, body)
    assert r.status_code == 201, r.text
    user = r.json()
    assert {"id", "email", "name", "created_at"} <= set(user), user
    assert not [k for k in user if "password" in k or "hash" in k or "secret" in k], user
    assert user["email"] == body["email"].lower()
    assert user["name"] == "Ada"
    assert PASSWORD not in r.text and "argon2" not in r.text
    login = await _login(client, body["email"], PASSWORD)
    assert login.status_code == 200, login.text


async def test_register_duplicate_email_conflicts(client: httpx.AsyncClient) -> None:
    email = _email("dup")
    assert (await _register(client, _valid(email=email))).status_code == 201
    for variant in (email, email.upper(), f" {email} "):
        r = await _register(client, _valid(email=variant, password="another password 123"))
        body = assert_problem(r, 409)
        assert body["type"].endswith("/conflict"), body
    # The first account is untouched: its password still works, the second one does not.
    assert (await _login(client, email, PASSWORD)).status_code == 200
    assert_problem(await _login(client, email, "another password 123"), 401)


async def test_signup_can_be_disabled(
    database: dict[str, str], servers: Any, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database, servers, signup_enabled=False)
    async with serve(settings) as (_, closed):
        email = _email("closed")
        r = await _register(closed, _valid(email=email))
        body = assert_problem(r, 403)
        assert body["type"].endswith("/forbidden"), body
        # Nothing was created, and existing accounts still log in on this installation.
        assert_problem(await _login(closed, email, PASSWORD), 401)
        existing: User = await Api(client).user("existing")
        assert (await _login(closed, existing.email, PASSWORD)).status_code == 200
    assert_problem(await _login(client, email, PASSWORD), 401)


async def test_password_change_guesses_are_throttled(
    api: Api, app: Any, settings: Settings
) -> None:
    """A stolen session cannot guess the current password without limit."""
    user = await api.user("pwchange")
    async with client_for(app, "10.9.0.1") as c:
        body = {"current_password": "wrong password", "new_password": "another long password"}
        for _ in range(settings.login_max_failures):
            assert_problem(
                await c.post("/api/v1/auth/password", json=body, headers=user.headers), 400
            )
        right = {"current_password": PASSWORD, "new_password": "another long password"}
        r = await c.post("/api/v1/auth/password", json=right, headers=user.headers)
        assert_problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1
    # Still the old password: nothing changed.
    assert (await _login(api.client, user.email, PASSWORD)).status_code == 200


async def test_verify_only_instance_refuses_login_clearly(database: Any, servers: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = make_settings(database, servers, jwt_algorithm="ES256", jwt_public_key=public)
    async with serve(settings) as (_, c):
        email = _email("verify-only")
        r = await c.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "V"}
        )
        assert r.status_code == 201
        assert_problem(await _login(c, email, PASSWORD), 503)
        assert (await c.get("/.well-known/jwks.json")).json()["keys"][0]["kty"] == "EC"


async def test_login_rehashes_passwords_stored_at_an_old_cost(
    api: Api, app: Any, database: Any, servers: Any, admin_engine: Any
) -> None:
    from sqlalchemy import text

    user = await api.user("rehash")
    stronger = make_settings(database, servers, argon2_time_cost=2)
    async with serve(stronger) as (_, c):
        assert (await _login(c, user.email, PASSWORD)).status_code == 200
    async with admin_engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT password_hash FROM app_user WHERE email = :e"), {"e": user.email}
            )
        ).scalar_one()
    assert ",t=2," in stored, stored


async def test_logins_waiting_to_hash_hold_no_database_connection(
    database: Any, servers: Any
) -> None:
    """A burst of sign-ins (or sign-ups) waits for a hashing thread without holding a pooled
    database connection: the pool stays free for everyone else's requests."""
    settings = make_settings(
        database,
        servers,
        password_hash_threads=1,
        # Hashing dearer than a sign-up's writes, so that the writes seldom overlap.
        argon2_time_cost=2,
        argon2_memory_cost=65536,
        db_pool_size=10,
    )
    async with serve(settings, "10.12.0.1") as (application, c):
        pool = application.state.db.engine.pool

        async def peak_during(calls: list[Any]) -> tuple[int, list[int]]:
            """The most connections checked out once the burst's first fifth is over (the
            lookups, a few milliseconds each, all start together)."""
            samples: list[tuple[float, int]] = []
            done = asyncio.Event()

            async def watch() -> None:
                while not done.is_set():
                    samples.append((time.monotonic(), pool.checkedout()))
                    await asyncio.sleep(0.001)

            watcher = asyncio.create_task(watch())
            try:
                answers = await asyncio.gather(*calls)
            finally:
                done.set()
                await watcher
            start, end = samples[0][0], samples[-1][0]
            later = [n for t, n in samples if t >= start + (end - start) / 5]
            return max(later, default=0), sorted(r.status_code for r in answers)

        peak, codes = await peak_during([_login(c, _email("burst"), PASSWORD) for _ in range(6)])
        assert codes == [401] * 6
        assert peak <= 1, peak  # the logins queued for the one hashing thread hold none
        peak, codes = await peak_during(
            [_register(c, _valid(email=_email("burst-new"))) for _ in range(6)]
        )
        assert codes == [201] * 6
        assert peak <= 3, peak  # only the short writes after hashing hold one


async def test_one_ipv6_network_is_one_address(api: Api, app: Any, settings: Settings) -> None:
    """Whoever holds an IPv6 /64 holds 2^64 addresses: the limits count the network, so moving
    to the next address in it gets no new guesses."""
    user = await api.user("v6")
    for i in range(settings.login_max_failures):
        async with client_for(app, f"2001:db8:12:3::{i + 1:x}") as c:
            assert_problem(await _login(c, user.email, "not the password"), 401)
    async with client_for(app, "2001:db8:12:3:ffff:1:2:3") as c:
        assert_problem(await _login(c, user.email, PASSWORD), 429)
    # Another network is another address.
    async with client_for(app, "2001:db8:12:4::1") as c:
        assert (await _login(c, user.email, PASSWORD)).status_code == 200
