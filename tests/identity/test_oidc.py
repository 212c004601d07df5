"""OIDC sign-in against a real provider (`oidc-provider`, started by the tests): provisioning,
bearer use, group mappings followed at each sign-in (audited), refusal of tokens with the
wrong audience or issuer, expired, unsigned or tampered, key rotation, and no escalation
through group mappings."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.helpers import Api, assert_problem
from tests.identity.conftest import Idp, rsa_jwk


def _person(idp: Idp, groups: list[str], *, verified: bool = True) -> tuple[str, str]:
    sub = f"sub-{secrets.token_hex(4)}"
    email = f"{sub}@corp.example"
    idp.account(sub, email=email, email_verified=verified, name=sub.title(), groups=groups)
    return sub, email


async def _exchange(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/oidc", json={"id_token": token})


async def _role(client: httpx.AsyncClient, owner_headers: dict, slug: str, email: str) -> Any:
    rows = (await client.get(f"/ws/{slug}/api/v1/members", headers=owner_headers)).json()["data"]
    return next((m["role"] for m in rows if m["email"] == email), None)


async def test_sign_in_provisions_once_and_tokens_work(idp: Idp, oidc_app, admin_engine) -> None:
    _, client = oidc_app
    sub, email = _person(idp, [])
    r = await _exchange(client, idp.id_token(sub))
    assert r.status_code == 200, r.text
    me = (
        await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
    ).json()
    assert me["email"] == email
    again = await _exchange(client, idp.id_token(sub))
    assert again.status_code == 200
    async with admin_engine.connect() as conn:
        users = (
            await conn.execute(text("SELECT id FROM app_user WHERE email = :e"), {"e": email})
        ).all()
        identities = (
            await conn.execute(
                text("SELECT user_id FROM user_identity WHERE issuer = :i AND subject = :s"),
                {"i": idp.issuer, "s": sub},
            )
        ).all()
        event = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM user_event WHERE user_id = :u AND action = 'login_oidc'"
                ),
                {"u": me["id"]},
            )
        ).scalar_one()
    assert len(users) == 1 and len(identities) == 1 and str(users[0][0]) == me["id"]
    assert event == 2
    # The provisioned user has no password that could ever match.
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": "!"})
    assert_problem(login, 401)


async def test_idp_token_works_as_a_bearer_token(idp: Idp, oidc_app) -> None:
    _, client = oidc_app
    sub, email = _person(idp, [])
    token = idp.id_token(sub)
    for _ in range(2):  # the second request reuses the sign-in
        r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert r.json()["email"] == email


async def test_memberships_follow_the_groups_at_each_sign_in(
    idp: Idp, oidc_app, admin_engine
) -> None:
    _, client = oidc_app
    api = Api(client)
    owner = await api.user("idp-owner")
    slug = await api.workspace(owner)
    for group, role in (("ops", "engineer"), ("leads", "admin")):
        r = await client.post(
            f"/ws/{slug}/api/v1/idp-groups",
            json={"group": group, "role": role},
            headers=owner.headers,
        )
        assert r.status_code == 201, r.text
    sub, email = _person(idp, ["ops", "unrelated"])

    async def sign_in(groups: list[str]) -> Any:
        idp.account(sub, email=email, email_verified=True, name="P", groups=groups)
        r = await _exchange(client, idp.id_token(sub))
        assert r.status_code == 200, r.text
        return await _role(client, owner.headers, slug, email)

    assert await sign_in(["ops", "unrelated"]) == "engineer"  # added
    assert await sign_in(["ops", "leads"]) == "admin"  # changed: the highest mapped role
    assert await sign_in(["leads"]) == "admin"  # unchanged
    assert await sign_in([]) is None  # removed
    async with admin_engine.connect() as conn:
        actions = (
            await conn.execute(
                text(
                    "SELECT a.action FROM audit_record a JOIN workspace w ON w.id = a.workspace_id "
                    "WHERE w.slug = :s AND a.resource_type = 'member' "
                    "AND a.body->>'source' = 'idp_group_sync' ORDER BY a.id"
                ),
                {"s": slug},
            )
        ).scalars()
        assert list(actions) == ["create", "update", "delete"]


async def test_a_membership_added_by_hand_is_left_alone(idp: Idp, oidc_app) -> None:
    _, client = oidc_app
    api = Api(client)
    owner = await api.user("idp-owner2")
    slug = await api.workspace(owner)
    sub, email = _person(idp, [])
    assert (await _exchange(client, idp.id_token(sub))).status_code == 200
    r = await client.post(
        f"/ws/{slug}/api/v1/members", json={"email": email, "role": "viewer"}, headers=owner.headers
    )
    assert r.status_code == 201
    r = await client.post(
        f"/ws/{slug}/api/v1/idp-groups",
        json={"group": "ops", "role": "admin"},
        headers=owner.headers,
    )
    assert r.status_code == 201
    idp.account(sub, email=email, email_verified=True, name="P", groups=["ops"])
    assert (await _exchange(client, idp.id_token(sub))).status_code == 200
    assert await _role(client, owner.headers, slug, email) == "viewer"
    idp.account(sub, email=email, email_verified=True, name="P", groups=[])
    assert (await _exchange(client, idp.id_token(sub))).status_code == 200
    assert await _role(client, owner.headers, slug, email) == "viewer"


async def test_an_unverified_email_of_an_existing_account_is_not_taken_over(
    idp: Idp, oidc_app
) -> None:
    _, client = oidc_app
    victim = await Api(client).user("victim")
    sub = f"sub-{secrets.token_hex(4)}"
    idp.account(sub, email=victim.email, email_verified=False, name="Mallory", groups=[])
    assert_problem(await _exchange(client, idp.id_token(sub)), 409)


def _forge(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(changes)
    body = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    return f"{header}.{body}.{signature}"


def _unsigned(token: str) -> str:
    _, payload, _ = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    return f"{header}.{payload}."


async def test_bad_tokens_are_refused(idp: Idp, oidc_app, tmp_path) -> None:
    _, client = oidc_app
    sub, _ = _person(idp, [])
    good = idp.id_token(sub)
    other_idp = Idp(tmp_path)  # a second, real provider: another issuer with its own keys
    other_idp.start([rsa_jwk("key-1")])  # same key id, different key
    try:
        other_idp.account(sub, email=f"{sub}@corp.example", email_verified=True, groups=[])
        foreign = other_idp.id_token(sub)
    finally:
        other_idp.stop()
    bad = {
        "wrong audience": idp.id_token(sub, client="other-app"),
        "wrong issuer": foreign,
        "issuer claim swapped": _forge(foreign, iss=idp.issuer),
        "expired": idp.id_token(sub, expires_in=-60),
        "unsigned": _unsigned(good),
        "tampered": _forge(good, sub="someone-else"),
        "garbage": "a.b.c",
    }
    for name, token in bad.items():
        for r in (
            await _exchange(client, token),
            await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}),
        ):
            assert r.status_code == 401, (name, r.text)
            assert_problem(r, 401)
    assert (await _exchange(client, good)).status_code == 200


async def test_key_rotation_is_followed(idp: Idp, oidc_app) -> None:
    _, client = oidc_app
    sub, _ = _person(idp, [])
    assert (await _exchange(client, idp.id_token(sub))).status_code == 200  # keys cached
    old_token = idp.id_token(sub)
    idp.restart([rsa_jwk("key-2")])
    try:
        rotated = idp.id_token(sub)
        assert (await _exchange(client, rotated)).status_code == 200, "new key fetched"
        # The retired key is no longer published: its tokens stop verifying.
        assert_problem(await _exchange(client, old_token), 401)
    finally:
        idp.restart([rsa_jwk("key-1")])


@pytest.mark.parametrize(
    ("actor_role", "target", "allowed"),
    [
        ("admin", "owner", False),  # only owners make owners
        ("admin", "admin", True),
        ("admin", "platform_admin", False),  # granted by the installation only
        ("engineer", "viewer", False),  # needs member.manage
        ("owner", "owner", True),
    ],
)
async def test_no_escalation_through_group_mappings(
    actor_role: str, target: str, allowed: bool, oidc_app
) -> None:
    _, client = oidc_app
    api = Api(client)
    owner = await api.user("esc-owner")
    slug = await api.workspace(owner)
    actor = owner
    if actor_role != "owner":
        actor = await api.user("esc-actor")
        await api.add_member(owner, slug, actor, actor_role)
    r = await client.post(
        f"/ws/{slug}/api/v1/idp-groups", json={"group": "g", "role": target}, headers=actor.headers
    )
    if allowed:
        assert r.status_code == 201, r.text
    else:
        assert_problem(r, 403)


async def test_no_escalation_through_a_custom_role_mapping(oidc_app) -> None:
    _, client = oidc_app
    api = Api(client)
    owner = await api.user("esc-owner")
    slug = await api.workspace(owner)
    admin = await api.user("esc-admin")
    await api.add_member(owner, slug, admin, "admin")
    r = await client.post(
        f"/ws/{slug}/api/v1/roles",
        json={"name": "auditor+", "inherits_from": "admin", "grants": ["role.manage"]},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/ws/{slug}/api/v1/idp-groups",
        json={"group": "g", "role": r.json()["id"]},
        headers=admin.headers,
    )
    body = assert_problem(r, 403)
    assert "role.manage" in body["detail"]
    # And a mapping an admin may not give, an admin may not remove either.
    r = await client.post(
        f"/ws/{slug}/api/v1/idp-groups", json={"group": "o", "role": "owner"}, headers=owner.headers
    )
    r = await client.delete(f"/ws/{slug}/api/v1/idp-groups/{r.json()['id']}", headers=admin.headers)
    assert_problem(r, 403)
