"""Settings: one `Settings` object, from `WARDEN_`-prefixed environment variables (or `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

DEFAULT_JWT_SECRET = "dev-only-change-me-this-is-not-a-secret-000"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WARDEN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "production", "test"] = "production"
    debug: bool = False

    # Databases. The runtime URL's user is the app role (owns nothing, NOBYPASSRLS);
    # the admin URL's user owns the schema and runs migrations.
    database_url: str | None = None
    admin_database_url: str | None = None
    # The worker's cron jobs (cross-workspace upkeep) connect as this role: it may only EXECUTE
    # the maintenance functions, which the runtime role may not.
    maintenance_database_url: str | None = None
    read_database_url: str | None = None
    definer_role: str = Field(
        default="warden_definer",
        description="NOLOGIN BYPASSRLS role that owns the narrow SECURITY DEFINER lookups",
    )
    platform_role: str = Field(
        default="warden_platform",
        description="NOLOGIN BYPASSRLS SELECT-only role that owns the platform-admin reads",
    )
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_statement_cache_size: int = Field(
        default=100, description="asyncpg prepared statement cache (ignored with db_pgbouncer)"
    )
    db_pgbouncer: bool = Field(
        default=False,
        description="connecting through PgBouncer in transaction mode: no statement caches, "
        "uniquely named prepared statements",
    )

    db_connect_timeout: float = Field(
        default=5.0, gt=0, description="seconds to open a database connection before giving up"
    )
    # Set on the runtime role by `warden migrate` (ALTER ROLE ... IN DATABASE ... SET).
    db_statement_timeout_ms: int = Field(
        default=30000, ge=100, description="longest statement the runtime role may run"
    )
    db_idle_in_transaction_timeout_ms: int = Field(
        default=60000, ge=100, description="longest the runtime role may sit idle in a transaction"
    )

    redis_url: str | None = None
    redis_key_prefix: str = Field(
        default="warden",
        min_length=1,
        description="prefix of Warden's Redis keys (installations sharing one Redis differ here)",
    )

    # Background jobs (arq). Every job runs as the runtime role inside `with_rls_context`.
    job_queue_name: str = Field(default="warden:queue", description="arq queue (Redis key)")
    job_max_tries: int = Field(default=5, ge=1, le=50, description="attempts on transient errors")
    job_retry_base_seconds: float = Field(default=2.0, gt=0, description="first backoff")
    job_retry_max_seconds: float = Field(default=300.0, gt=0, description="backoff cap")
    job_soft_time_limit: float = Field(
        default=1800.0, gt=0, description="seconds; the job stops at its next checkpoint"
    )
    job_hard_time_limit: float = Field(
        default=3600.0, gt=0, description="seconds; the job is cancelled wherever it is"
    )
    worker_max_jobs: int = Field(default=4, ge=1, description="jobs one worker runs at a time")
    worker_poll_delay: float = Field(default=0.5, gt=0, description="seconds between queue polls")
    outbox_redeliver_seconds: int = Field(
        default=600, ge=1, description="re-send a sent job that has not finished after this long"
    )
    task_retention_days: int = Field(default=30, ge=1, description="finished tasks kept this long")
    task_lease_seconds: float = Field(
        default=30.0, ge=1, description="a running task whose lease is this old is taken over"
    )
    task_heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="how often a running job renews its task's lease"
    )
    worker_reconnect_max_seconds: float = Field(
        default=30.0, gt=0, description="longest wait between the worker's reconnection attempts"
    )

    # Scans and findings
    max_upload_bytes: int = Field(default=2 * 1024**3, ge=1, description="largest report upload")
    upload_chunk_bytes: int = Field(default=1024 * 1024, ge=4096, le=64 * 1024 * 1024)
    import_batch_size: int = Field(
        default=1000, ge=1, le=5000, description="findings per import batch"
    )
    finding_partitions_ahead: int = Field(
        default=3, ge=1, le=24, description="monthly finding partitions kept ready ahead"
    )
    workspace_delete_batch: int = Field(default=5000, ge=1, description="rows per deletion batch")
    audit_purge_grace_hours: int = Field(
        default=168,
        ge=0,
        le=24 * 3650,
        description="a deleted workspace's audit trail is kept this long (set by warden migrate)",
    )

    # Change management
    invitation_ttl_hours: int = Field(
        default=72, ge=1, le=24 * 90, description="hours an invitation token stays valid"
    )

    # Tokens
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    jwt_private_key: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_key_id: str = "warden-1"
    jwt_issuer: str = "warden"
    jwt_audience: str = "warden-api"
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=300)

    # Keys the hashes of API keys and recovery codes and encrypts TOTP secrets (derived from
    # WARDEN_JWT_SECRET when unset). Changing it invalidates every API key and TOTP factor.
    secret_key: SecretStr | None = None

    # Second factor (TOTP) and API keys
    mfa_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    mfa_max_failures: int = Field(default=5, ge=1, description="wrong codes before a lockout")
    totp_issuer: str = Field(default="Warden", description="the name authenticator apps show")

    # Sign-in with an OpenID Connect provider (off unless the issuer is set)
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_groups_claim: str = "groups"
    oidc_algorithms: list[str] = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
    oidc_jwks_cache_seconds: int = Field(default=3600, ge=1)
    oidc_jwks_refetch_seconds: float = Field(
        default=10.0, ge=0, description="least time between fetches for an unknown key id"
    )
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300)

    # Authentication policy
    signup_enabled: bool = False
    login_max_failures: int = Field(
        default=5, ge=1, description="password attempts per account and client address"
    )
    login_max_attempts_per_address: int = Field(
        default=100, ge=1, description="failed password attempts per client address, any account"
    )
    login_lockout_seconds: int = Field(default=900, ge=1, description="the window of both limits")
    denials_per_address_per_minute: int = Field(
        default=60,
        ge=0,
        description="refused calls stored per client address and minute (more are only counted)",
    )
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    password_hash_threads: int = Field(
        default=0, ge=0, le=64, description="threads that hash passwords (0: cores - 1, at least 1)"
    )

    # HTTP
    cors_origins: list[str] = []
    trusted_proxies: list[str] = []
    require_tls: bool = False
    max_page_size: int = 200
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="JSON request bodies")
    idempotency_ttl_seconds: int = Field(
        default=86400, ge=60, description="how long a POST's response is kept for its key"
    )
    idempotency_wait_seconds: float = Field(
        default=10.0, ge=0, description="a retry waits this long for its key's first request"
    )

    # Operations
    metrics_token: SecretStr | None = Field(
        default=None, description="when set, /metrics needs `Authorization: Bearer <token>`"
    )
    worker_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="the worker serves /metrics and /healthz here"
    )
    worker_metrics_host: str = "127.0.0.1"

    @field_validator(
        "database_url", "admin_database_url", "read_database_url", "maintenance_database_url"
    )
    @classmethod
    def _asyncpg_driver(cls, value: str | None) -> str | None:
        """Standard `postgres://` and `postgresql://` URLs get the driver Warden uses."""
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if sep and scheme in ("postgres", "postgresql"):
            return f"postgresql+asyncpg://{rest}"
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        if self.jwt_algorithm == "HS256":
            if len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("WARDEN_JWT_SECRET must be at least 32 characters")
        elif self.jwt_private_key is None and self.jwt_public_key is None:
            raise ValueError(
                f"{self.jwt_algorithm} needs WARDEN_JWT_PRIVATE_KEY (to sign) "
                "or WARDEN_JWT_PUBLIC_KEY (to verify only)"
            )
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("WARDEN_OIDC_ISSUER needs WARDEN_OIDC_AUDIENCE (the client id)")
        return self

    @property
    def runtime_role(self) -> str:
        """The app role's name, taken from the runtime URL (the one place it is configured)."""
        if not self.database_url:
            raise RuntimeError("WARDEN_DATABASE_URL is not set")
        name = make_url(self.database_url).username
        if not name:
            raise RuntimeError("WARDEN_DATABASE_URL must name the runtime role as its user")
        return name

    @property
    def maintenance_role(self) -> str | None:
        """The maintenance role's name, from its URL (None when the URL is not set)."""
        if not self.maintenance_database_url:
            return None
        name = make_url(self.maintenance_database_url).username
        if not name:
            raise RuntimeError("WARDEN_MAINTENANCE_DATABASE_URL must name the maintenance role")
        return name


@lru_cache
def get_settings() -> Settings:
    return Settings()


class ConfigurationError(Exception):
    """A setting is missing or wrong: said in one line, without a traceback."""


def explain(exc: ValidationError) -> str:
    """One line naming each wrong `WARDEN_` variable and what is wrong with it."""
    parts = []
    for error in exc.errors(include_url=False):
        name = "WARDEN_" + "_".join(str(p) for p in error["loc"]).upper() if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts)
