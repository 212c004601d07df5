"""What a first-time user hit: standard database URLs, one-line configuration errors, resource
history by either name, enum filters in any case, an import of only foreign records."""

from __future__ import annotations

import pytest

from app.cli import main
from app.config import DEFAULT_JWT_SECRET, Settings
from app.seed import demo_report
from tests.helpers import assert_problem, report_bytes, run_jobs, sample_report, upload_scan


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://u:p@db/w", "postgresql+asyncpg://u:p@db/w"),
        ("postgresql://u:p@db:5433/w", "postgresql+asyncpg://u:p@db:5433/w"),
        ("postgresql+asyncpg://u:p@db/w", "postgresql+asyncpg://u:p@db/w"),
    ],
)
def test_standard_database_urls_get_the_asyncpg_driver(given: str, used: str) -> None:
    settings = Settings(
        _env_file=None, database_url=given, admin_database_url=given, read_database_url=given
    )  # type: ignore[call-arg]
    assert (settings.database_url, settings.admin_database_url) == (used, used)
    assert settings.read_database_url == used


PRODUCTION = {
    "WARDEN_ENVIRONMENT": "production",
    "WARDEN_DATABASE_URL": "postgresql://warden@127.0.0.1:1/warden",
    "WARDEN_JWT_SECRET": "x" * 40,
    "WARDEN_MAINTENANCE_DATABASE_URL": "postgresql://warden_maintenance@127.0.0.1:1/warden",
}
DEFAULT_SECRET_REFUSAL = (
    "refusing to start in production: WARDEN_JWT_SECRET is the built-in development secret"
)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"WARDEN_JWT_SECRET": "short"}, "WARDEN_JWT_SECRET must be at least 32 characters"),
        ({"WARDEN_DB_POOL_SIZE": "many"}, "WARDEN_DB_POOL_SIZE: Input should be a valid integer"),
        ({"WARDEN_DATABASE_URL": ""}, "WARDEN_DATABASE_URL is not set"),
        (PRODUCTION | {"WARDEN_JWT_SECRET": DEFAULT_JWT_SECRET}, DEFAULT_SECRET_REFUSAL),
        (
            PRODUCTION
            | {
                "WARDEN_JWT_SECRET": DEFAULT_JWT_SECRET,  # keys cursors and API-key hashes
                "WARDEN_JWT_ALGORITHM": "RS256",
                "WARDEN_JWT_PUBLIC_KEY": "k",
            },
            DEFAULT_SECRET_REFUSAL,
        ),
        (PRODUCTION | {"WARDEN_SECRET_KEY": "short"}, "WARDEN_SECRET_KEY is shorter than 32"),
        (
            PRODUCTION
            | {
                "WARDEN_JWT_SECRET": "short",  # signs no token, but keys everything else
                "WARDEN_JWT_ALGORITHM": "RS256",
                "WARDEN_JWT_PUBLIC_KEY": "k",
            },
            "WARDEN_JWT_SECRET is shorter than 32",
        ),
    ],
)
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_configuration_mistake_is_one_line(
    command: str, env: dict[str, str], needle: str, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("WARDEN_REDIS_URL", "redis://127.0.0.1:1/0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err


async def test_history_takes_either_name_and_lists_the_types(api, client) -> None:
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    group = await api.group(owner, slug)
    for kind, rid in (
        ("provider", provider["id"]),
        ("providers", provider["id"]),
        ("provider-groups", group["id"]),
        ("provider_group", group["id"]),
    ):
        r = await client.get(f"/ws/{slug}/api/v1/history/{kind}/{rid}", headers=owner.headers)
        assert r.status_code == 200, (kind, r.text)
        assert len(r.json()["data"]) == 1, (kind, r.json())
    r = await client.get(f"/ws/{slug}/api/v1/history/widget/{rid}", headers=owner.headers)
    detail = assert_problem(r, 400)["detail"]
    assert detail.startswith("unknown resource type 'widget'; one of: ")
    for name in ("provider", "provider_group", "member", "role", "scan"):
        assert name in detail, detail
    outsider = await api.user("outsider")
    r = await client.get(f"/ws/{slug}/api/v1/history/widget/{rid}", headers=outsider.headers)
    assert_problem(r, 404)  # existence does not leak, whatever the type


async def test_enum_filters_ignore_case(api, client, settings) -> None:
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    await upload_scan(client, owner, slug, provider["id"], demo_report(provider["uid"]))
    await run_jobs(settings)
    url = f"/ws/{slug}/api/v1/findings"
    for params, count in (
        ({"status": "fail"}, 3),
        ({"status": "FAIL"}, 3),
        ({"severity": "High"}, 2),
        ({"severity__in": '["HIGH","critical"]'}, 3),
    ):
        r = await client.get(url, params=params, headers=owner.headers)
        assert r.status_code == 200, r.text
        assert len(r.json()["data"]) == count, (params, r.json())
    r = await client.get(url, params={"status": "failed"}, headers=owner.headers)
    assert "is not one of: FAIL, PASS, MANUAL" in assert_problem(r, 400)["detail"]
    r = await client.get(
        f"/ws/{slug}/api/v1/providers", params={"provider_type": "AWS"}, headers=owner.headers
    )
    assert [p["id"] for p in r.json()["data"]] == [provider["id"]]


async def test_an_import_of_only_foreign_records_fails_naming_them(api, client, settings) -> None:
    owner = await api.user("owner")
    slug = await api.workspace(owner)
    provider = await api.provider(owner, slug)
    theirs = report_bytes(sample_report("aws", "999999999999"))
    r = await upload_scan(client, owner, slug, provider["id"], theirs)
    assert r.status_code == 202, r.text
    await run_jobs(settings)
    task = (await client.get(r.headers["content-location"], headers=owner.headers)).json()
    assert task["state"] == "failed", task
    assert "Every record was rejected" in task["error"], task
    assert "aws:999999999999" in task["error"] and provider["uid"] in task["error"], task
    scan = await client.get(f"/ws/{slug}/api/v1/scans/{task['resource_id']}", headers=owner.headers)
    assert scan.json()["state"] == "failed", scan.json()
    findings = await client.get(f"/ws/{slug}/api/v1/findings", headers=owner.headers)
    assert findings.json()["data"] == []
