"""TOTP (RFC 6238, with pyotp) and recovery codes.

Invariant: a code is accepted for the current time step or one step either side (clock drift),
and the caller records the step it matched so that it is never accepted again; the secret is
stored encrypted and recovery codes only as keyed hashes.
"""

from __future__ import annotations

import hmac
import io
import secrets
import time

import pyotp
import segno

from app.config import Settings
from app.security import keyring

PURPOSE = "totp-secret"
RECOVERY_PURPOSE = "recovery-code"
RECOVERY_CODES = 10
STEP_SECONDS = 30
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def seal(settings: Settings, secret: str) -> bytes:
    return keyring.encrypt(settings, PURPOSE, secret.encode())


def unseal(settings: Settings, sealed: bytes) -> str | None:
    plain = keyring.decrypt(settings, PURPOSE, sealed)
    return plain.decode() if plain is not None else None


def uri(settings: Settings, secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=settings.totp_issuer)


def qr_png(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="png", scale=6, border=4)
    return out.getvalue()


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step `code` belongs to (now ± DRIFT_STEPS), or None."""
    code = code.strip().replace(" ", "")
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        # Every candidate is compared (no early exit): the time taken says nothing.
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            found = step
    return found


def new_recovery_codes() -> list[str]:
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]


def recovery_hash(settings: Settings, code: str) -> bytes:
    return keyring.keyed_hash(settings, RECOVERY_PURPOSE, code.strip().lower())


def looks_like_recovery_code(code: str) -> bool:
    return len(code.strip()) == 11 and code.strip()[5] == "-"
