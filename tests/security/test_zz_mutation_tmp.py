import pytest
from tests.security.test_login import timing_app  # noqa: F401
import app.services.auth as auth_service
from app.security.passwords import verify_password
from tests.security.test_login import test_unknown_email_takes_as_long_as_a_wrong_password as timing


async def test_timing_detects_skipped_hash(timing_app, monkeypatch):
    def leaky(settings, stored_hash, password):
        if stored_hash is None:
            return False
        return verify_password(settings, stored_hash, password)
    monkeypatch.setattr(auth_service, "verify_password", leaky)
    with pytest.raises(AssertionError):
        await timing(timing_app)
