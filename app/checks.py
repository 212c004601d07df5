"""`warden check`: refuse to call an installation production-ready when it is not."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine

from app.config import DEFAULT_JWT_SECRET, ConfigurationError, Settings
from app.db.catalog import rls_problems, runtime_role_refusal

MIN_SECRET_BYTES = 32


def secret_problems(settings: Settings) -> list[str]:
    """What makes the signing and keying secrets unfit outside development: the built-in
    development secret (anyone can forge tokens, cursors and key hashes with it) or a short one."""
    jwt = settings.jwt_secret.get_secret_value()
    # It signs tokens (HS256), and keys everything else unless WARDEN_SECRET_KEY is set.
    in_use = settings.jwt_algorithm == "HS256" or not settings.secret_key
    problems = []
    if jwt == DEFAULT_JWT_SECRET and in_use:
        problems.append(
            "WARDEN_JWT_SECRET is the built-in development secret: set a random one of at least "
            f"{MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`)"
        )
    elif in_use and len(jwt.encode()) < MIN_SECRET_BYTES:
        problems.append(f"WARDEN_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes")
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    if key is not None and len(key.encode()) < MIN_SECRET_BYTES:
        problems.append(f"WARDEN_SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes")
    return problems


def refuse_unsafe_start(settings: Settings) -> None:
    """`warden serve` and `warden worker` outside development and test: one line naming the
    secret to set, and no start."""
    if settings.environment in ("development", "test"):
        return
    problems = secret_problems(settings)
    if problems:
        raise ConfigurationError(f"refusing to start in {settings.environment}: {problems[0]}")


def settings_problems(settings: Settings) -> list[str]:
    problems = []
    if settings.debug:
        problems.append("WARDEN_DEBUG is on")
    if settings.environment != "production":
        problems.append(f"WARDEN_ENVIRONMENT is {settings.environment}, not production")
    problems += secret_problems(settings)
    if not settings.require_tls:
        problems.append("WARDEN_REQUIRE_TLS is off (set it once TLS terminates in front of Warden)")
    if settings.signup_enabled:
        problems.append("WARDEN_SIGNUP_ENABLED is on: anyone can register")
    if not settings.database_url:
        problems.append("WARDEN_DATABASE_URL is not set")
    if not settings.redis_url:
        problems.append("WARDEN_REDIS_URL is not set")
    if not settings.maintenance_database_url:
        problems.append(
            "WARDEN_MAINTENANCE_DATABASE_URL is not set (the worker's cron jobs need it)"
        )
    elif settings.database_url and settings.maintenance_role == settings.runtime_role:
        problems.append("WARDEN_MAINTENANCE_DATABASE_URL names the runtime role")
    return problems


async def run_checks(settings: Settings, *, rls: bool, database_urls: list[str]) -> list[str]:
    problems = settings_problems(settings)
    for url in (settings.database_url, settings.maintenance_database_url):
        if not url:
            continue
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                reason = await runtime_role_refusal(conn)
                if reason:
                    problems.append(reason)
        finally:
            await engine.dispose()
    if rls:
        urls = (
            database_urls
            or [u for u in (settings.admin_database_url, settings.database_url) if u][:1]
        )
        for url in urls:
            engine = create_async_engine(url)
            try:
                async with engine.connect() as conn:
                    problems += [
                        f"{url.split('@')[-1]}: {p}"
                        for p in await rls_problems(
                            conn, settings.runtime_role, settings.maintenance_role
                        )
                    ]
            finally:
                await engine.dispose()
    return problems
