"""The OpenAPI document covers exactly the routes the app serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from quakealert.api.app import make_app
from quakealert.api.auth import required_role
from quakealert.api.openapi import build_document
from quakealert.config import Settings
from quakealert.store.sqlite import Store

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "q.sqlite")
    yield s
    s.close()


def served(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route; HEAD is implied by GET."""
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        if isinstance(route.resource, web.StaticResource):
            path = path.rstrip("/") + "/{filename}"
        out.add((route.method.lower(), path))
    return out


def documented(doc: dict) -> set[tuple[str, str]]:
    return {(m, p) for p, ops in doc["paths"].items() for m in ops if m in METHODS}


def mismatch(app: web.Application, doc: dict) -> str:
    missing = sorted(served(app) - documented(doc))
    extra = sorted(documented(doc) - served(app))
    if not missing and not extra:
        return ""
    return (f"routes served but not documented (add them to the module's OPENAPI_PATHS or"
            f" quakealert/api/openapi.py SPECS): {missing}; documented but not served: {extra}")


async def test_document_matches_the_routes_exactly(aiohttp_client, store, tmp_path):
    """Every served route is documented and every documented route is served."""
    app = make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store)
    client = await aiohttp_client(app)
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert mismatch(app, doc) == ""


async def undocumented(request: web.Request) -> web.Response:
    """A route someone added without documenting it."""
    return web.json_response({})


def test_an_undocumented_route_is_caught(store, tmp_path):
    """A new route outside the provisional modules is left out of the document, so the
    exact-match check above reports it."""
    app = make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store)
    app.router.add_get("/api/v1/new-thing", undocumented)
    problem = mismatch(app, build_document(app))
    assert "('get', '/api/v1/new-thing')" in problem


def test_a_documented_route_that_is_gone_is_caught(store, tmp_path):
    """A hand-written spec whose route the app no longer serves is reported too."""
    app = make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store)
    doc = build_document(app)
    doc["paths"]["/api/v1/removed"] = {"get": {"responses": {}}}
    assert "documented but not served: [('get', '/api/v1/removed')]" in mismatch(app, doc)


def test_security_follows_the_route_policy(store, tmp_path):
    """Public operations declare no security; the others name their role and 401/403."""
    app = make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store)
    doc = build_document(app)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            role = required_role(method.upper(), path)
            if role is None:
                assert op["security"] == [], (method, path)
                assert "429" in op["responses"]
            else:
                assert op["x-required-role"] == role, (method, path)
                assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_operation_ids_are_unique_and_refs_resolve(store, tmp_path):
    """operationIds are unique and every $ref names a component schema."""
    app = make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store)
    doc = build_document(app)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    refs: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    schemas = doc["components"]["schemas"]
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)


def test_event_schema_has_every_field_of_event_to_json(store, tmp_path):
    """The hand-written Event schema lists exactly the keys api/events.py emits."""
    from datetime import UTC, datetime

    from quakealert.api.events import event_to_json
    from quakealert.model import Contributor, Event

    at = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
    c = Contributor("cenc", "c1", at, 29.85, 92.25, 10.0, 4.5, "M", "reviewed", at)
    e = Event("e1", at, 29.85, 92.25, 10.0, 4.5, "M", "reviewed", "cenc", (c,))
    body = event_to_json(e)
    doc = build_document(make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store))
    event = doc["components"]["schemas"]["Event"]
    assert set(event["properties"]) == set(body) == set(event["required"])
    contributor = doc["components"]["schemas"]["Contributor"]
    assert set(contributor["properties"]) == set(body["sources"][0])
