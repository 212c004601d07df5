"""The OpenAPI contract, checked over every route of the live app: valid, problems documented
as problem+json, readable names, typed filters, headers, tags, examples. Routes added later are
covered the day they are added (a sample new list route shows what they get for free)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import jsonschema
import pytest
from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute
from openapi_spec_validator import validate
from sqlalchemy import select

from app.db.models import Scan
from app.errors import PROBLEM_JSON
from app.main import create_app
from app.openapi import TAGS, error_statuses
from app.openapi.examples import EXAMPLES
from app.query import Enum, Field, ListQuery, Resource, Text, Uuid
from app.security.audit import AuditedRoute
from app.security.deps import require
from app.security.principal import WorkspaceContext
from app.services.findings import FINDINGS

OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@pytest.fixture(scope="module")
def spec(app: Any) -> dict[str, Any]:
    app.openapi_schema = None
    return dict(app.openapi())


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def _routes(app: Any) -> list[tuple[APIRoute, str]]:
    return [
        (r, m)
        for r in app.routes
        if isinstance(r, APIRoute) and r.include_in_schema
        for m in sorted(r.methods)
    ]


def test_the_document_validates(spec: dict[str, Any]) -> None:
    validate(spec)


def test_operation_ids_are_readable_and_unique(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for op_id in ids:
        assert OPERATION_ID.match(op_id) and len(op_id) <= 40, op_id
    for op_id in ("providers_list", "providers_create", "scans_upload", "tasks_get"):
        assert op_id in ids, op_id


def test_model_names_are_readable(spec: dict[str, Any]) -> None:
    for name in spec["components"]["schemas"]:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), name
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_every_error_is_a_documented_problem(app: Any, spec: dict[str, Any]) -> None:
    for path, method, op in _operations(spec):
        for status, response in op["responses"].items():
            assert "X-Request-ID" in response.get("headers", {}), (path, method, status)
            if int(status) < 400:
                continue
            content = response["content"]
            assert list(content) == [PROBLEM_JSON], (path, method, status)
            ref = content[PROBLEM_JSON]["schema"]["$ref"]
            want = "ValidationProblem" if status == "422" else "Problem"
            assert ref == f"#/components/schemas/{want}", (path, method, status)
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], (path, method, status)
            if status == "401":
                assert "WWW-Authenticate" in response["headers"], (path, method)


def test_each_route_documents_what_its_dependencies_answer(app: Any, spec: dict[str, Any]) -> None:
    for route, method in _routes(app):
        op = spec["paths"][route.path][method.lower()]
        documented = {int(s) for s in op["responses"] if int(s) >= 400}
        assert set(error_statuses(route, method)) == documented, (route.path, method)
        if op.get("security"):
            assert 401 in documented, (route.path, method)
        if route.path.startswith("/ws/"):
            assert {401, 403, 404, 503} <= documented, (route.path, method)
            assert op.get("x-required-permission"), (route.path, method)
        if op.get("parameters") or op.get("requestBody"):
            assert 422 in documented, (route.path, method)
        if op.get("requestBody"):
            assert 413 in documented, (route.path, method)
        if method == "POST" and "202" in op["responses"] and route.path.startswith("/ws/"):
            assert "Content-Location" in op["responses"]["202"]["headers"], route.path


def _params(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", [])}


def test_list_filters_are_typed_query_parameters(spec: dict[str, Any]) -> None:
    findings = _params(spec["paths"]["/ws/{slug}/api/v1/findings"]["get"])
    for name in FINDINGS.fields:
        assert name in findings, name
    assert findings["severity"]["schema"] == {"$ref": "#/components/schemas/FindingSeverity"}
    assert findings["provider_id__in"]["schema"]["type"] == "string"
    assert findings["muted"]["schema"] == {"type": "boolean"}
    assert findings["region__exists"]["schema"] == {"type": "boolean"}
    assert "severity__contains" not in findings  # an enum takes no text operators
    assert "inserted_at__gte" in findings and "inserted_at__startswith" not in findings
    assert findings["limit"]["schema"]["maximum"] == 200
    search = _params(spec["paths"]["/ws/{slug}/api/v1/findings/search/{field}"]["post"])
    assert search["field"]["schema"]["enum"] == list(FINDINGS.fields)
    severity = spec["components"]["schemas"]["FindingOut"]["properties"]["severity"]
    assert severity["$ref"] == "#/components/schemas/FindingSeverity"


def test_fields_a_rule_hides_are_not_required(spec: dict[str, Any]) -> None:
    assert "uid" not in spec["components"]["schemas"]["ProviderOut"]["required"]
    assert "email" not in spec["components"]["schemas"]["MemberOut"]["required"]


def test_the_upload_is_binary(spec: dict[str, Any]) -> None:
    body = spec["paths"]["/ws/{slug}/api/v1/scans"]["post"]["requestBody"]["content"]
    ref = body["multipart/form-data"]["schema"]["$ref"].rpartition("/")[2]
    assert ref == "ScansUploadBody"
    assert spec["components"]["schemas"][ref]["properties"]["file"]["format"] == "binary"


def test_tags_are_declared_in_order(spec: dict[str, Any]) -> None:
    declared = [t["name"] for t in spec["tags"]]
    assert declared == [t["name"] for t in TAGS]
    assert all(t["description"] for t in spec["tags"])
    used = {tag for _, _, op in _operations(spec) for tag in op["tags"]}
    assert used == set(declared), used ^ set(declared)
    assert all(len(op["tags"]) == 1 for _, _, op in _operations(spec))


def test_examples_validate_against_their_schemas(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]
    checked = 0
    for name, component in components.items():
        for example in component.get("examples", []):
            ref = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
            jsonschema.validate(example, ref)
            checked += 1
    assert checked >= len(EXAMPLES)
    for path, method, op in _operations(spec):
        for status, response in op["responses"].items():
            for content in response.get("content", {}).values():
                if "example" in content and "$ref" in content["schema"]:
                    wrapper = {**content["schema"], "components": spec["components"]}
                    jsonschema.validate(content["example"], wrapper)


ITEMS = Resource(
    name="item",
    base=lambda: select(Scan),
    fields={
        "id": Field(Scan.id, Uuid()),
        "state": Field(Scan.state, Enum(("open", "closed"))),
        "file_name": Field(Scan.file_name, Text()),
    },
)


def test_a_route_added_later_gets_the_contract_for_free(settings: Any) -> None:
    """A new list route with nothing but its declarations: op id, filters, problems."""
    router = APIRouter(prefix="/ws/{slug}/api/v1/items", tags=["scans"], route_class=AuditedRoute)

    @router.get("")
    async def list_items(
        ctx: Annotated[WorkspaceContext, Depends(require("scan.read"))],
        query: Annotated[ListQuery, Depends(ITEMS.list_query)],
    ) -> dict[str, Any]:
        return {}

    app = create_app(settings)
    app.router.routes.extend(router.routes)
    spec = app.openapi()
    validate(spec)
    op = spec["paths"]["/ws/{slug}/api/v1/items"]["get"]
    assert op["operationId"] == "items_list"
    assert {"400", "401", "403", "404", "422", "503"} <= set(op["responses"])
    params = _params(op)
    assert params["state__in"]["in"] == "query" and "state__ne" in params
    assert params["state"]["schema"] == {"$ref": "#/components/schemas/ItemState"}
    assert "file_name__startswith" in params
