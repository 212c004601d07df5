"""Access and refresh tokens: every forged, stale, misused or revoked token is a 401 problem.

Tokens are forged by hand (base64url + HMAC) rather than with the library under test, so a
bug in how the app calls `jose` cannot hide behind the same bug in the test. Each family of
negative cases has a positive control built the same way, so the negatives prove something.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pydantic import SecretStr

from app.config import DEFAULT_JWT_SECRET, Settings
from app.security.tokens import REFRESH_PREFIX, issue_access_token
from tests.conftest import make_settings
from tests.helpers import PASSWORD, Api, User, assert_problem, serve

# Building tokens by hand


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def seg(obj: dict[str, Any]) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def header_of(token: str) -> dict[str, Any]:
    return json.loads(unb64(token.split(".")[0]))


def claims_of(token: str) -> dict[str, Any]:
    return json.loads(unb64(token.split(".")[1]))


HS256 = {"alg": "HS256", "typ": "JWT"}


def hmac_token(claims: dict[str, Any], key: bytes, header: dict[str, Any] | None = None) -> str:
    header = header or HS256
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[
        header["alg"]
    ]
    signing_input = f"{seg(header)}.{seg(claims)}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned_token(claims: dict[str, Any], alg: str = "none") -> str:
    return f"{seg({'alg': alg, 'typ': 'JWT'})}.{seg(claims)}."


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Fixtures: two users sharing nothing, Alice owning a workspace (for the scoped routes).


@pytest.fixture(scope="module")
async def alice(client: httpx.AsyncClient) -> User:
    return await Api(client).user("alice")


@pytest.fixture(scope="module")
async def bob(client: httpx.AsyncClient) -> User:
    return await Api(client).user("bob")


@pytest.fixture(scope="module")
async def alice_slug(client: httpx.AsyncClient, alice: User) -> str:
    return await Api(client).workspace(alice)


def endpoints(slug: str) -> list[str]:
    """One user-level and one workspace-level route: both authenticate the same way."""
    return ["/api/v1/me", f"/ws/{slug}/api/v1/providers"]


async def assert_refused(client: httpx.AsyncClient, slug: str, headers: dict[str, Any]) -> None:
    for path in endpoints(slug):
        r = await client.get(path, headers=headers)
        body = assert_problem(r, 401)
        assert body["type"].endswith("/unauthorized"), body
        assert r.headers.get("www-authenticate") == "Bearer", r.headers


async def assert_accepted(client: httpx.AsyncClient, slug: str, headers: dict[str, str]) -> None:
    for path in endpoints(slug):
        r = await client.get(path, headers=headers)
        assert r.status_code == 200, (path, r.text)


# Forged access tokens


def _good_key(settings: Settings) -> bytes:
    return settings.jwt_secret.get_secret_value().encode()


async def test_hand_forged_token_with_the_real_key_is_accepted(
    client: httpx.AsyncClient, settings: Settings, alice: User, alice_slug: str
) -> None:
    """The control for every forgery below: same claims, right key, accepted."""
    claims = claims_of(alice.access_token)
    assert header_of(alice.access_token)["alg"] == "HS256"
    await assert_accepted(client, alice_slug, bearer(hmac_token(claims, _good_key(settings))))
    fresh, _ = issue_access_token(settings, uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"]))
    await assert_accepted(client, alice_slug, bearer(fresh))


def _drop(name: str) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    return lambda c, other: {k: v for k, v in c.items() if k != name}


def _set(**values: Any) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    return lambda c, other: {**c, **values}


NOW = int(time.time())

# Claims changes, each signed with the real key: the signature is fine, the claims are not.
CLAIM_CASES: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "wrong audience": _set(aud="some-other-api"),
    "audience list without ours": _set(aud=["a", "b"]),
    "no audience": _drop("aud"),
    "wrong issuer": _set(iss="https://evil.example"),
    "no issuer": _drop("iss"),
    "no sid": _drop("sid"),
    "no jti": _drop("jti"),
    "no sub": _drop("sub"),
    "no exp": _drop("exp"),
    "no iat": _drop("iat"),
    "expired": _set(iat=NOW - 7200, nbf=NOW - 7200, exp=NOW - 3600),
    "not yet valid": _set(nbf=NOW + 3600),
    "typ refresh": _set(typ="refresh"),
    "no typ": _drop("typ"),
    "sub not a uuid": _set(sub="alice"),
    "sid not a uuid": _set(sid="' OR 1=1 --"),
    "sub unknown user": _set(sub=str(uuid.uuid4())),
    "sid unknown family": _set(sid=str(uuid.uuid4())),
    # Bob's id with Alice's session: the family is bound to its user.
    "sub of another user": lambda c, other: {**c, "sub": other["sub"]},
    # Bob's session family under Alice's id.
    "sid of another user": lambda c, other: {**c, "sid": other["sid"]},
}


@pytest.mark.parametrize("case", list(CLAIM_CASES))
async def test_correctly_signed_token_with_bad_claims_is_refused(
    case: str,
    client: httpx.AsyncClient,
    settings: Settings,
    alice: User,
    bob: User,
    alice_slug: str,
) -> None:
    claims = CLAIM_CASES[case](claims_of(alice.access_token), claims_of(bob.access_token))
    await assert_refused(client, alice_slug, bearer(hmac_token(claims, _good_key(settings))))


def _tampered(token: str, **changes: Any) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{seg({**claims_of(token), **changes})}.{signature}"


def _flip_first_bit(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


def _signature_cases(settings: Settings, alice: User, bob: User) -> dict[str, str]:
    claims = claims_of(alice.access_token)
    token = alice.access_token
    header, payload, signature = token.split(".")
    return {
        "alg none": unsigned_token(claims),
        "alg None": unsigned_token(claims, "None"),
        "alg NONE": unsigned_token(claims, "NONE"),
        "alg none keeping the signature": f"{seg({'alg': 'none'})}.{payload}.{signature}",
        "no signature segment": f"{header}.{payload}",
        "empty signature": f"{header}.{payload}.",
        "HS256 with an empty key": hmac_token(claims, b""),
        "HS256 with 'secret'": hmac_token(claims, b"secret"),
        "HS256 with the default dev secret": hmac_token(claims, DEFAULT_JWT_SECRET.encode()),
        "HS512 with the real key": hmac_token(
            claims, _good_key(settings), {"alg": "HS512", "typ": "JWT"}
        ),
        "tampered sub": _tampered(token, sub=claims_of(bob.access_token)["sub"]),
        "tampered exp": _tampered(token, exp=claims["exp"] + 86400),
        "signature of another token": f"{header}.{payload}.{bob.access_token.split('.')[2]}",
        "flipped signature bit": f"{header}.{payload}.{b64(_flip_first_bit(unb64(signature)))}",
        "refresh token": alice.refresh_token,
        "refresh token prefix only": REFRESH_PREFIX,
        "garbage": "garbage",
        "dots": "...",
        "three empty-ish parts": "a.b.c",
        "json, not a jwt": '{"sub":"x"}',
        "base64 junk": b64(b"\x00\xff" * 40) + "." + b64(b"\xfe" * 40) + "." + b64(b"x"),
        "token twice": f"{token}.{token}",
        "trailing garbage": token + "x",
        # Correctly signed but too big (an 8 KiB claim): refused before any parsing work.
        "oversized, correctly signed": hmac_token(
            {**claims, "pad": "A" * 8192}, _good_key(settings)
        ),
        "oversized garbage": "A" * 100_000,
    }


SIGNATURE_CASE_NAMES = [
    "alg none",
    "alg None",
    "alg NONE",
    "alg none keeping the signature",
    "no signature segment",
    "empty signature",
    "HS256 with an empty key",
    "HS256 with 'secret'",
    "HS256 with the default dev secret",
    "HS512 with the real key",
    "tampered sub",
    "tampered exp",
    "signature of another token",
    "flipped signature bit",
    "refresh token",
    "refresh token prefix only",
    "garbage",
    "dots",
    "three empty-ish parts",
    "json, not a jwt",
    "base64 junk",
    "token twice",
    "trailing garbage",
    "oversized, correctly signed",
    "oversized garbage",
]


@pytest.mark.parametrize("case", SIGNATURE_CASE_NAMES)
async def test_forged_or_malformed_token_is_refused(
    case: str,
    client: httpx.AsyncClient,
    settings: Settings,
    alice: User,
    bob: User,
    alice_slug: str,
) -> None:
    token = _signature_cases(settings, alice, bob)[case]
    await assert_refused(client, alice_slug, bearer(token))


def test_signature_case_list_is_complete(settings: Settings) -> None:
    token = f"{seg(HS256)}.{seg({'sub': 'x', 'exp': 1})}.{b64(b'sig')}"
    fake = User(email="x", access_token=token, refresh_token=REFRESH_PREFIX + "x")
    assert sorted(_signature_cases(settings, fake, fake)) == sorted(SIGNATURE_CASE_NAMES)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
        {"Authorization": "Token abc"},
        {"Authorization": b"Bearer \xff\xfe\xfd"},
        {"X-Access-Token": "whatever"},
    ],
    ids=["none", "empty", "scheme only", "scheme and space", "basic", "token", "latin-1", "other"],
)
async def test_missing_or_malformed_authorization_header(
    headers: dict[str, Any], client: httpx.AsyncClient, alice_slug: str
) -> None:
    await assert_refused(client, alice_slug, headers)


async def test_token_in_query_string_is_not_accepted(
    client: httpx.AsyncClient, alice: User
) -> None:
    r = await client.get("/api/v1/me", params={"access_token": alice.access_token})
    assert_problem(r, 401)


async def test_expired_token_issued_by_the_app(
    client: httpx.AsyncClient, settings: Settings, alice: User, alice_slug: str
) -> None:
    claims = claims_of(alice.access_token)
    user_id, family_id = uuid.UUID(claims["sub"]), uuid.UUID(claims["sid"])
    ttl = settings.access_token_ttl_seconds
    past = int(time.time()) - ttl - 120
    expired, _ = issue_access_token(settings, user_id, family_id, now=past)
    await assert_refused(client, alice_slug, bearer(expired))
    # Still inside its lifetime (issued a little while ago): accepted.
    recent, _ = issue_access_token(settings, user_id, family_id, now=int(time.time()) - ttl // 2)
    await assert_accepted(client, alice_slug, bearer(recent))


async def test_hs256_publishes_no_keys(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200, r.text
    assert r.json() == {"keys": []}
    assert settings.jwt_secret.get_secret_value() not in r.text


# Revocation: logout, password change, refresh rotation and reuse.


async def _status(client: httpx.AsyncClient, user_headers: dict[str, str]) -> int:
    return (await client.get("/api/v1/me", headers=user_headers)).status_code


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_logout_revokes_that_login_only(api: Api, client: httpx.AsyncClient) -> None:
    user = await api.user("logout")
    other_login = await api.login(user.email)
    slug = await api.workspace(user)
    await assert_accepted(client, slug, user.headers)

    r = await client.post("/api/v1/auth/logout", headers=user.headers)
    assert r.status_code == 204, r.text

    await assert_refused(client, slug, user.headers)
    assert_problem(await client.post("/api/v1/auth/logout", headers=user.headers), 401)
    assert_problem(await _refresh(client, user.refresh_token), 401)
    # The user's other login is a different family and keeps working.
    await assert_accepted(client, slug, other_login.headers)
    assert (await _refresh(client, other_login.refresh_token)).status_code == 200


async def test_password_change_revokes_every_token(api: Api, client: httpx.AsyncClient) -> None:
    user = await api.user("pwchange")
    second = await api.login(user.email)
    slug = await api.workspace(user)
    new_password = "a completely new passphrase"

    wrong = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not the password", "new_password": new_password},
        headers=user.headers,
    )
    assert_problem(wrong, 400)
    too_short = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=user.headers,
    )
    assert_problem(too_short, 422)
    for login in (user, second):
        await assert_accepted(client, slug, login.headers)

    r = await client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=user.headers,
    )
    assert r.status_code == 204, r.text

    for login in (user, second):
        await assert_refused(client, slug, login.headers)
        assert_problem(await _refresh(client, login.refresh_token), 401)
    old = await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(old, 401)
    new = await client.post(
        "/api/v1/auth/login", json={"email": user.email, "password": new_password}
    )
    assert new.status_code == 200, new.text
    await assert_accepted(client, slug, bearer(new.json()["access_token"]))


async def test_refresh_rotates_and_reuse_revokes_the_family(
    api: Api, client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await api.user("rotate")
    bystander = await api.login(user.email)  # another family of the same user
    slug = await api.workspace(user)

    r = await _refresh(client, user.refresh_token)
    assert r.status_code == 200, r.text
    pair = r.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == settings.access_token_ttl_seconds
    assert pair["refresh_token"] != user.refresh_token
    assert pair["access_token"] != user.access_token
    assert claims_of(pair["access_token"])["sid"] == claims_of(user.access_token)["sid"]
    assert claims_of(pair["access_token"])["jti"] != claims_of(user.access_token)["jti"]
    await assert_accepted(client, slug, bearer(pair["access_token"]))

    # Replaying the spent token: refused, and the whole family is revoked.
    reuse = await _refresh(client, user.refresh_token)
    assert_problem(reuse, 401)
    assert_problem(await _refresh(client, pair["refresh_token"]), 401)
    await assert_refused(client, slug, bearer(pair["access_token"]))
    await assert_refused(client, slug, user.headers)
    # Another login of the same user is not part of that family.
    await assert_accepted(client, slug, bystander.headers)
    assert (await _refresh(client, bystander.refresh_token)).status_code == 200


async def test_refresh_chain_keeps_working_until_reuse(api: Api, client: httpx.AsyncClient) -> None:
    user = await api.user("chain")
    tokens = [user.refresh_token]
    for _ in range(3):
        r = await _refresh(client, tokens[-1])
        assert r.status_code == 200, r.text
        tokens.append(r.json()["refresh_token"])
    assert len(set(tokens)) == len(tokens)
    assert_problem(await _refresh(client, tokens[1]), 401)  # a middle, spent token
    assert_problem(await _refresh(client, tokens[-1]), 401)


async def test_concurrent_refreshes_of_one_token_cannot_fork_the_family(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A thief racing the rightful client with the same refresh token must not come away with
    a live token chain of their own: at most one refresh wins, and never two live chains."""
    for _ in range(5):
        user = await api.user("race")
        responses = await asyncio.gather(*(_refresh(client, user.refresh_token) for _ in range(3)))
        winners = [r.json() for r in responses if r.status_code == 200]
        assert len(winners) <= 1, [r.status_code for r in responses]
        for r in responses:
            if r.status_code != 200:
                assert_problem(r, 401)
        live = [
            w for w in winners if (await _refresh(client, w["refresh_token"])).status_code == 200
        ]
        assert len(live) <= 1


def _forge_refresh(user_id: uuid.UUID, session_id: uuid.UUID, secret: bytes) -> str:
    raw = user_id.bytes + session_id.bytes + secret
    return REFRESH_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parts(refresh_token: str) -> tuple[uuid.UUID, uuid.UUID, bytes]:
    raw = unb64(refresh_token[len(REFRESH_PREFIX) :])
    return uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:32]), raw[32:]


async def test_forged_refresh_tokens_are_refused(
    api: Api, client: httpx.AsyncClient, bob: User
) -> None:
    user = await api.user("forge-refresh")
    user_id, session_id, secret = _parts(user.refresh_token)
    assert _forge_refresh(user_id, session_id, secret) == user.refresh_token
    bob_id = _parts(bob.refresh_token)[0]
    forged = [
        _forge_refresh(user_id, session_id, bytes(32)),
        _forge_refresh(user_id, session_id, secret[:-1] + bytes([secret[-1] ^ 1])),
        _forge_refresh(bob_id, session_id, secret),
        _forge_refresh(user_id, uuid.uuid4(), secret),
        _forge_refresh(uuid.UUID(int=0), uuid.UUID(int=0), bytes(32)),
        REFRESH_PREFIX + "!!!!",
        REFRESH_PREFIX + "é" * 10,
        REFRESH_PREFIX + b64(b"short"),
        user.refresh_token + "AA",
        user.access_token[:200],
        "garbage",
    ]
    for token in forged:
        assert_problem(await _refresh(client, token), 401)
    for body in ({"refresh_token": ""}, {"refresh_token": "x" * 201}, {}, {"token": "x"}):
        assert_problem(await client.post("/api/v1/auth/refresh", json=body), 422)
    # None of that spent or revoked the real token.
    assert (await _refresh(client, user.refresh_token)).status_code == 200


# Asymmetric keys: RS256 and ES256 with a published JWKS.


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _public_pem(private_pem: str) -> bytes:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _int(segment: str) -> int:
    return int.from_bytes(unb64(segment), "big")


def verify_with_jwk(token: str, key: dict[str, Any]) -> None:
    """Verify `token`'s signature with a published JWK using `cryptography` only."""
    header, payload, signature = token.split(".")
    signing_input = f"{header}.{payload}".encode()
    sig = unb64(signature)
    if key["kty"] == "RSA":
        public = rsa.RSAPublicNumbers(_int(key["e"]), _int(key["n"])).public_key()
        public.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert key["kty"] == "EC" and key["crv"] == "P-256", key
        ec_public = ec.EllipticCurvePublicNumbers(
            _int(key["x"]), _int(key["y"]), ec.SECP256R1()
        ).public_key()
        assert len(sig) == 64, "JWS ES256 signatures are raw r||s"
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        ec_public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))


PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_asymmetric_tokens_and_jwks(
    algorithm: str,
    database: dict[str, str],
    servers: Any,
    client: httpx.AsyncClient,
    alice: User,
) -> None:
    private_pem = _rsa_pem() if algorithm == "RS256" else _ec_pem()
    settings = make_settings(
        database, servers, jwt_algorithm=algorithm, jwt_private_key=private_pem
    )
    async with serve(settings) as (_, asym):
        user = await Api(asym).user(f"asym-{algorithm.lower()}")
        token = user.access_token
        assert header_of(token)["alg"] == algorithm
        assert header_of(token)["kid"] == settings.jwt_key_id
        me = await asym.get("/api/v1/me", headers=user.headers)
        assert me.status_code == 200, me.text

        r = await asym.get("/.well-known/jwks.json")
        assert r.status_code == 200, r.text
        keys = r.json()["keys"]
        assert len(keys) == 1, keys
        key = keys[0]
        assert key["kid"] == settings.jwt_key_id and key["alg"] == algorithm, key
        assert key.get("use") == "sig", key
        assert not PRIVATE_JWK_MEMBERS & set(key), f"private key material published: {key}"
        verify_with_jwk(token, key)

        claims = claims_of(token)
        public_pem = _public_pem(private_pem)
        attacker_pem = _rsa_pem() if algorithm == "RS256" else _ec_pem()
        attacker = _asym_token(claims, attacker_pem, algorithm, settings.jwt_key_id)
        with pytest.raises(Exception):  # noqa: B017 - any verification failure
            verify_with_jwk(attacker, key)
        # Control: the same hand-built token signed with the real key is accepted.
        own = _asym_token(claims, private_pem, algorithm, settings.jwt_key_id)
        verify_with_jwk(own, key)
        assert (await asym.get("/api/v1/me", headers=bearer(own))).status_code == 200
        kid = {"kid": settings.jwt_key_id}
        refused = {
            "HS256 keyed with the public PEM": hmac_token(claims, public_pem, {**HS256, **kid}),
            "HS256 keyed with the PEM, stripped": hmac_token(
                claims, public_pem.strip(), {**HS256, **kid}
            ),
            "HS256 keyed with the JWK JSON": hmac_token(
                claims, json.dumps(key).encode(), {**HS256, **kid}
            ),
            "alg none": unsigned_token(claims),
            "signed by another key, same kid": attacker,
            "tampered sub": _tampered(token, sub=str(uuid.uuid4())),
            "an HS256 token from the other app": alice.access_token,
        }
        for name, forged in refused.items():
            r = await asym.get("/api/v1/me", headers=bearer(forged))
            assert r.status_code == 401, (name, r.text)
            assert_problem(r, 401)
        # And the asymmetric token means nothing to the HS256 app.
        assert_problem(await client.get("/api/v1/me", headers=user.headers), 401)


def _asym_token(claims: dict[str, Any], private_pem: str, algorithm: str, kid: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    signing_input = f"{seg({'alg': algorithm, 'typ': 'JWT', 'kid': kid})}.{seg(claims)}".encode()
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{b64(sig)}"


# Verified once, checked on every use.


def test_a_verified_token_stops_working_when_it_expires(settings: Settings, monkeypatch) -> None:
    """Verification is done once per token, but expiry (and not-before) on every use: a token
    the process has already verified is refused the moment its lifetime is over."""
    from app.errors import Unauthorized
    from app.security import tokens

    token, ttl = issue_access_token(settings, uuid.uuid4(), uuid.uuid4())
    claims = tokens.decode_access_token(settings, token)  # verified, and remembered
    assert tokens.decode_access_token(settings, token) == claims
    now = time.time()
    monkeypatch.setattr(tokens.time, "time", lambda: now - 3600)  # before its nbf
    with pytest.raises(Unauthorized):
        tokens.decode_access_token(settings, token)
    monkeypatch.setattr(tokens.time, "time", lambda: now)
    assert tokens.decode_access_token(settings, token) == claims  # verified (and kept) again
    monkeypatch.setattr(tokens.time, "time", lambda: now + ttl + 1)
    with pytest.raises(Unauthorized):
        tokens.decode_access_token(settings, token)


def test_a_verified_token_is_not_accepted_under_other_keys(settings: Settings) -> None:
    """The memory of a verification is keyed by the token *and* the verification settings:
    another secret, issuer or audience verifies from scratch (and refuses)."""
    from app.errors import Unauthorized
    from app.security import tokens

    token, _ = issue_access_token(settings, uuid.uuid4(), uuid.uuid4())
    tokens.decode_access_token(settings, token)
    for change in (
        {"jwt_secret": "another-secret-" + "x" * 40},
        {"jwt_issuer": "someone-else"},
        {"jwt_audience": "another-audience"},
    ):
        if "jwt_secret" in change:
            change = {"jwt_secret": SecretStr(change["jwt_secret"])}
        other = settings.model_copy(update=change)
        with pytest.raises(Unauthorized):
            tokens.decode_access_token(other, token)


def test_forged_tokens_are_not_remembered(settings: Settings) -> None:
    from app.errors import Unauthorized
    from app.security import tokens

    before = len(tokens._VERIFIED)
    for i in range(50):
        with pytest.raises(Unauthorized):
            tokens.decode_access_token(settings, f"eyJhbGciOiJIUzI1NiJ9.e30.forged{i}")
    assert len(tokens._VERIFIED) == before
