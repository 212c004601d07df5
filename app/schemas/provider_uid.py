"""Per-type provider UID formats (SPEC section 5). Pure functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from urllib.parse import urlsplit


class ProviderType(StrEnum):
    aws = "aws"
    azure = "azure"
    gcp = "gcp"
    m365 = "m365"
    kubernetes = "kubernetes"
    github = "github"
    iac = "iac"
    oraclecloud = "oraclecloud"
    mongodbatlas = "mongodbatlas"
    alibabacloud = "alibabacloud"


def _regex(pattern: str, flags: int = 0) -> Callable[[str], bool]:
    # ASCII: in Unicode mode `\d` takes any script's digits and IGNORECASE folds "ſ", "ı" and
    # the Kelvin sign into `[a-z]`, so look-alikes would pass as account ids and domains.
    compiled = re.compile(pattern, flags | re.ASCII)
    return lambda uid: compiled.fullmatch(uid) is not None


_DOMAIN = _regex(
    r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.IGNORECASE
)
_SSH_GIT = _regex(r"git@[A-Za-z0-9.-]+:[A-Za-z0-9._/-]+")


def _git_url(uid: str) -> bool:
    if _SSH_GIT(uid):
        return True
    if any(ch.isspace() for ch in uid):
        return False
    parts = urlsplit(uid)
    host = parts.hostname or ""
    return (
        parts.scheme in ("https", "http", "ssh", "git")
        and parts.password is None  # a credential in the uid would be echoed in every response
        and _DOMAIN(host)
        and len(parts.path.strip("/")) > 0
    )


RULES: dict[ProviderType, tuple[Callable[[str], bool], str]] = {
    ProviderType.aws: (_regex(r"\d{12}"), "an AWS account id is 12 digits"),
    ProviderType.azure: (
        _regex(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.I),
        "an Azure subscription id is a UUID v4",
    ),
    ProviderType.gcp: (
        _regex(r"[a-z][a-z0-9-]{5,29}"),
        "a GCP project id is 6-30 characters: lowercase letters, digits, hyphens, "
        "starting with a letter",
    ),
    ProviderType.m365: (_DOMAIN, "an M365 tenant is a domain name, e.g. contoso.onmicrosoft.com"),
    ProviderType.kubernetes: (
        _regex(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{1,250}"),
        "a Kubernetes context is 2-251 characters",
    ),
    ProviderType.github: (
        _regex(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"),
        "a GitHub account is 1-39 letters, digits or single hyphens",
    ),
    ProviderType.iac: (
        _git_url,
        "an IaC provider uid is a git URL (https://… or git@host:path) without credentials",
    ),
    ProviderType.oraclecloud: (
        _regex(r"ocid1\.[a-z0-9_-]+\.oc[0-9]+\.[a-z0-9_-]*\.[a-z0-9]{1,255}"),
        "an Oracle Cloud uid is an OCID, e.g. ocid1.tenancy.oc1..aaaa…",
    ),
    ProviderType.mongodbatlas: (
        _regex(r"[0-9a-fA-F]{24}"),
        "a MongoDB Atlas organization id is 24 hex characters",
    ),
    ProviderType.alibabacloud: (_regex(r"\d{16}"), "an Alibaba Cloud account id is 16 digits"),
}


def uid_error(provider_type: ProviderType, uid: str) -> str | None:
    """None if `uid` is valid for `provider_type`, else a message saying what is expected."""
    check, message = RULES[provider_type]
    return None if check(uid) else message
