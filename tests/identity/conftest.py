"""Fixtures for identity tests: a real OpenID Connect provider (the `oidc-provider` npm
package, run by Node) issuing real signed tokens, and a Warden app configured to trust it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import make_settings
from tests.helpers import serve

IDP_DIR = Path(__file__).resolve().parents[1] / "idp"
AUDIENCE = "warden"


def npm_install() -> None:
    """The provider's npm packages, installed once from the registry (`npm ci` against the
    committed lock file) and kept in tests/idp/node_modules."""
    if (IDP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "Node.js and npm are needed for the OIDC tests"
    subprocess.run(  # noqa: S603 - fixed arguments
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=IDP_DIR,
        check=True,
        timeout=300,
    )


def _b64(n: int) -> str:
    return (
        base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode().rstrip("=")
    )


def rsa_jwk(kid: str) -> dict[str, str]:
    """A fresh RSA signing key as a private JWK."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p = key.private_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
        "n": _b64(p.public_numbers.n),
        "e": _b64(p.public_numbers.e),
        "d": _b64(p.d),
        "p": _b64(p.p),
        "q": _b64(p.q),
        "dp": _b64(p.dmp1),
        "dq": _b64(p.dmq1),
        "qi": _b64(p.iqmp),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Idp:
    """One running provider; `restart(keys)` brings it back on the same issuer with other
    signing keys (how a rotation looks from outside)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    clients: tuple[str, ...] = (AUDIENCE, "other-app")
    proc: subprocess.Popen[bytes] | None = None
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, keys: list[dict[str, str]]) -> None:
        path = self.workdir / f"keys-{self.port}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps({"keys": keys}))
        env = {
            **os.environ,
            "WARDEN_IDP_PORT": str(self.port),
            "WARDEN_IDP_KEYS": str(path),
            "WARDEN_IDP_CLIENTS": json.dumps(list(self.clients)),
        }
        log = open(self.workdir / f"idp-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(  # noqa: S603
            ["node", str(IDP_DIR / "provider.mjs")], cwd=IDP_DIR, env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.workdir / f"idp-{self.port}.log").read_text()
            try:
                r = httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=1)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("the OIDC provider did not start")
        for sub, claims in self.accounts.items():
            self._post_account(sub, claims)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, keys: list[dict[str, str]]) -> None:
        self.stop()
        self.start(keys)

    def _post_account(self, sub: str, claims: dict[str, Any]) -> None:
        r = httpx.post(f"{self.issuer}/test/accounts/{sub}", json=claims, timeout=5)
        assert r.status_code == 204, r.text

    def account(self, sub: str, **claims: Any) -> None:
        """Create or change a person at the IdP."""
        self.accounts[sub] = claims
        self._post_account(sub, claims)

    def id_token(self, sub: str, *, client: str = AUDIENCE, expires_in: int | None = None) -> str:
        data = {"grant_type": "urn:warden:test:id-token", "sub": sub}
        if expires_in is not None:
            data["expires_in"] = str(expires_in)
        r = httpx.post(
            self.issuer + "/token", data=data, auth=(client, f"{client}-secret"), timeout=5
        )
        assert r.status_code == 200, r.text
        return str(r.json()["id_token"])


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    npm_install()
    provider = Idp(tmp_path_factory.mktemp("idp"))
    provider.start([rsa_jwk("key-1")])
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
async def oidc_app(
    idp: Idp, database: dict[str, str], servers: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """Warden trusting the provider (its client id is the audience)."""
    settings = make_settings(
        database,
        servers,
        oidc_issuer=idp.issuer,
        oidc_audience=AUDIENCE,
        oidc_leeway_seconds=0,
        oidc_jwks_refetch_seconds=0,
    )
    async with serve(settings) as (application, client):
        yield application, client
