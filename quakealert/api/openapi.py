"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route this app serves.

Operations come from, in order: a route module's own ``OPENAPI_PATHS`` (paths object) and
``OPENAPI_SCHEMAS`` (component schemas), the hand-written SPECS below, and, for modules still
listed in PROVISIONAL_MODULES, a description read from the route table (path parameters and the
handler's docstring). A route in none of these is left out, and tests/api/test_openapi.py fails.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from aiohttp import web

from quakealert import __version__
from quakealert.api.auth import required_role
from quakealert.api.ratelimit import body_limit

# Route modules whose routes may be described from the route table alone, until they export
# OPENAPI_PATHS. Remove a module from here once it documents itself.
PROVISIONAL_MODULES = (
    "quakealert.api.sequences",
    "quakealert.api.subscriptions",
    "quakealert.api.cap",
    "quakealert.api.fdsnws",
)
HTTP_METHODS = ("get", "put", "post", "delete", "patch")

OPENAPI_DOC = web.AppKey("openapi_document", dict)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_: str, **extra: Any) -> dict[str, Any]:
    return {"type": [type_, "null"], **extra}


def _json(schema: dict[str, Any], description: str = "OK", **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}},
            **extra}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _obj(props: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": [k for k in props if k not in optional]}


TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = _nullable("string", format="date-time")
NUM_OR_NULL = _nullable("number")
STR_OR_NULL = _nullable("string")
STATUS = {"enum": ["automatic", "reviewed", "deleted"]}
ROLE = {"enum": ["read", "duty", "admin"]}
_PRINTABLE = r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]"
TOKEN_NAME = {"type": "string", "maxLength": 100,
              "pattern": rf"^{_PRINTABLE}*[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff]{_PRINTABLE}*$",
              "description": "who holds it; no control characters; trimmed"}
ETAG = {"ETag": {"schema": {"type": "string"}, "description": "strong validator of the body"}}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": _obj({"type": {"type": "string"}, "title": {"type": "string"},
                     "status": {"type": "integer"}, "detail": {"type": "string"},
                     "instance": {"type": "string"}}, optional=("instance",)),
    "Contributor": _obj({
        "source": {"type": "string"}, "source_id": {"type": "string"}, "time": TIME,
        "latitude": {"type": "number"}, "longitude": {"type": "number"},
        "depth_km": NUM_OR_NULL, "magnitude": NUM_OR_NULL, "mag_type": STR_OR_NULL,
        "status": STATUS, "event_type": STR_OR_NULL, "updated": TIME_OR_NULL}),
    "Event": _obj({
        "id": {"type": "string"}, "time": TIME,
        "latitude": {"type": "number", "minimum": -90, "maximum": 90},
        "longitude": {"type": "number", "minimum": -180, "maximum": 180},
        "depth_km": NUM_OR_NULL, "magnitude": NUM_OR_NULL, "mag_type": STR_OR_NULL,
        "status": STATUS, "event_type": STR_OR_NULL,
        "preferred_source": {"type": "string"}, "place": STR_OR_NULL,
        "updated": TIME_OR_NULL, "review_flags": {"type": "array", "items": {"type": "string"}},
        "sources": {"type": "array", "items": _ref("Contributor")}}),
    "HistoryEntry": _obj({
        "at": TIME, "change": {"type": "string"}, "detail": {"type": "string"},
        "source": {"type": "string"}, "source_id": {"type": "string"},
        "version": {"type": "integer", "minimum": 1}, "time": TIME,
        "latitude": {"type": "number"}, "longitude": {"type": "number"},
        "depth_km": NUM_OR_NULL, "magnitude": NUM_OR_NULL, "mag_type": STR_OR_NULL,
        "status": STATUS, "event_type": STR_OR_NULL, "updated": TIME_OR_NULL}),
    "SourceHealth": _obj({
        "name": {"type": "string"}, "kind": {"type": "string"}, "ok": {"type": "boolean"},
        "last_ok": TIME_OR_NULL, "last_error": STR_OR_NULL, "last_error_at": TIME_OR_NULL,
        "consecutive_failures": {"type": "integer", "minimum": 0},
        "backoff_until": TIME_OR_NULL, "polls": {"type": "integer"},
        "reports_total": {"type": "integer"}, "skipped_total": {"type": "integer"}}),
    "Token": _obj({"id": {"type": "string"}, "name": {"type": "string"}, "role": ROLE,
                   "created": TIME, "revoked": TIME_OR_NULL, "last_used": TIME_OR_NULL}),
    "AuditEntry": _obj({
        "id": {"type": "integer"}, "at": TIME, "actor_id": STR_OR_NULL,
        "actor_name": {"type": "string"}, "role": _nullable("string"),
        "action": {"type": "string"}, "target": {"type": "string"},
        "detail": {"type": "string"}}),
}
SCHEMAS["SourceStatus"] = {
    "allOf": [_ref("SourceHealth"),
              _obj({"lag_s": _nullable("number", minimum=0,
                                       description="seconds since the last successful poll")})]}


def _q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "pattern": "^[^/{}]+$"}}


_LAT = {"type": "number", "minimum": -90, "maximum": 90}
_LON = {"type": "number", "minimum": -180, "maximum": 180}
_MAG = {"type": "number", "minimum": -10, "maximum": 12}
EVENT_QUERY = [
    _q("starttime", TIME, "events at or after (ISO 8601, UTC if no offset)"), _q("start", TIME),
    _q("endtime", TIME, "events at or before"), _q("end", TIME),
    _q("minmagnitude", _MAG), _q("minmag", _MAG), _q("maxmagnitude", _MAG), _q("maxmag", _MAG),
    _q("latitude", _LAT, "circle centre (with maxradius_km)"), _q("lat", _LAT),
    _q("longitude", _LON), _q("lon", _LON),
    _q("maxradius_km", {"type": "number", "minimum": 0, "maximum": 20100},
       "needs latitude and longitude"),
    _q("minlatitude", _LAT), _q("maxlatitude", _LAT), _q("minlongitude", _LON),
    _q("maxlongitude", _LON, "smaller than minlongitude: the box crosses the antimeridian"),
    _q("source", {"type": "string"}, "only events a source contributed to"),
    _q("status", STATUS), _q("include_deleted", {"type": "boolean"}),
    _q("eventtype", {"type": "string", "pattern": r"\S"},
       "comma-separated QuakeML event types, * and ? wildcards (no type = earthquake)"),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    _q("cursor", {"type": "string"}, "next_cursor of the previous page"),
]
NOT_MODIFIED = {"description": "Not modified (If-None-Match matched the ETag)"}
BAD_REQUEST = _problem("Invalid parameter")
NOT_FOUND = _problem("No such object")

SPECS: dict[str, dict[str, dict[str, Any]]] = {
    "/healthz": {"get": {
        "summary": "Liveness plus per-source health", "tags": ["service"],
        "responses": {"200": _json(_obj({
            "status": {"enum": ["ok", "degraded"]}, "version": {"type": "string"}, "time": TIME,
            "events": {"type": "integer", "minimum": 0},
            "sources": {"type": "array", "items": _ref("SourceHealth")},
            "mode": {"type": "string", "description": "set when replaying a scenario"}},
            optional=("mode",)))}}},
    "/api/v1/events": {"get": {
        "summary": "Merged events, newest first", "tags": ["events"], "parameters": EVENT_QUERY,
        "responses": {
            "200": _json(_obj({"events": {"type": "array", "items": _ref("Event")},
                               "next_cursor": {"type": "string"}}, optional=("next_cursor",)),
                         headers=ETAG),
            "304": NOT_MODIFIED, "400": BAD_REQUEST}}},
    "/api/v1/events/{id}": {"get": {
        "summary": "One event with its contributors and review flags", "tags": ["events"],
        "parameters": [_path_param("id")],
        "responses": {"200": _json(_obj({"event": _ref("Event")}), headers=ETAG),
                      "304": NOT_MODIFIED, "404": NOT_FOUND}}},
    "/api/v1/events/{id}/history": {"get": {
        "summary": "Every report version and revision of one event, oldest first",
        "tags": ["events"], "parameters": [_path_param("id")],
        "responses": {"200": _json(_obj({"event_id": {"type": "string"}, "history": {
            "type": "array", "items": _ref("HistoryEntry")}}), headers=ETAG),
            "304": NOT_MODIFIED, "404": NOT_FOUND}}},
    "/api/v1/sources": {"get": {
        "summary": "Source health and lag", "tags": ["service"],
        "responses": {"200": _json(_obj({"sources": {"type": "array",
                                                     "items": _ref("SourceStatus")}}),
                                   headers=ETAG), "304": NOT_MODIFIED}}},
    "/metrics": {"get": {
        "summary": "Prometheus metrics (docs/metrics.md)", "tags": ["service"],
        "responses": {"200": {"description": "Prometheus text exposition",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    "/api/v1/openapi.json": {"get": {
        "summary": "This document", "tags": ["service"],
        "responses": {"200": _json({"type": "object"})}}},
    "/login": {
        "get": {"summary": "Login form", "tags": ["auth"],
                "parameters": [_q("next", {"type": "string"}, "local path to go to afterwards")],
                "responses": {"200": {"description": "HTML form",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}}},
        "post": {"summary": "Exchange a token for a session cookie", "tags": ["auth"],
                 "requestBody": {"required": True, "content": {
                     "application/x-www-form-urlencoded": {"schema": {
                         "type": "object", "required": ["token"],
                         "properties": {"token": {"type": "string"},
                                        "next": {"type": "string"}}}}}},
                 "responses": {
                     "303": {"description": "Logged in: Set-Cookie, then to `next`"},
                     "401": {"description": "Unknown or revoked token: the form again",
                             "content": {"text/html": {"schema": {"type": "string"}}}},
                     "403": _problem("Cross-site form post")}}},
    "/logout": {"post": {
        "summary": "End the login session", "tags": ["auth"],
        "responses": {"303": {"description": "Cookie cleared, to /login"},
                      "403": _problem("Cross-site form post")}}},
    "/api/v1/tokens": {
        "get": {"summary": "Every API token, without secrets", "tags": ["auth"],
                "responses": {"200": _json(_obj({"tokens": {"type": "array",
                                                            "items": _ref("Token")}}))}},
        "post": {"summary": "Create a token; the secret is shown once", "tags": ["auth"],
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["role", "name"], "properties": {
                         "role": ROLE, "name": TOKEN_NAME}}}}},
                 "responses": {"201": _json(_obj({"token": _ref("Token"),
                                                  "secret": {"type": "string"}}), "Created"),
                               "400": BAD_REQUEST}}},
    "/api/v1/tokens/{id}": {"delete": {
        "summary": "Revoke a token by its exact id; its sessions end", "tags": ["auth"],
        "parameters": [_path_param("id")],
        "responses": {"200": _json(_obj({"token": _ref("Token")})), "404": NOT_FOUND}}},
    "/api/v1/audit": {"get": {
        "summary": "The newest audit-log rows", "tags": ["auth"],
        "parameters": [_q("limit", {"type": "integer", "minimum": 1, "maximum": 1000,
                                    "default": 100})],
        "responses": {"200": _json(_obj({"audit": {"type": "array",
                                                   "items": _ref("AuditEntry")}})),
                      "400": BAD_REQUEST}}},
}


def _route_entries(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, OpenAPI path, handler) for every route; HEAD mirrors GET and is left out."""
    out = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path = path.rstrip("/") + "/{filename}"
        out.append((route.method.lower(), path, route.handler))
    return out


def _operation_id(method: str, path: str) -> str:
    return method + "_" + (re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root")


def _describe(method: str, path: str, handler: Any) -> dict[str, Any]:
    """An operation read from the route table: path parameters and the docstring's first line."""
    doc = (getattr(handler, "__doc__", None) or "").strip().splitlines()
    return {
        "summary": doc[0] if doc else f"{method.upper()} {path}",
        "tags": [handler.__module__.rsplit(".", 1)[-1]],
        "parameters": [_path_param(n) for n in re.findall(r"{(\w+)}", path)],
        "responses": {"default": {"description": "not yet described in detail"}},
        "x-provisional": True,
    }


def _module_specs() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """OPENAPI_PATHS and OPENAPI_SCHEMAS exported by the route modules that exist."""
    from quakealert.api.app import route_modules

    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for module in route_modules():
        for path, ops in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(copy.deepcopy(ops))
        schemas.update(copy.deepcopy(getattr(module, "OPENAPI_SCHEMAS", {})))
    return paths, schemas


def _secure(method: str, path: str, op: dict[str, Any]) -> None:
    """Add security, the auth/limit problem responses and the role from auth.POLICY."""
    role = required_role(method.upper(), path)
    responses = op.setdefault("responses", {})
    if role is None:
        op["security"] = []
        responses.setdefault("429", _problem("Rate limit: see Retry-After"))
    else:
        op["security"] = [{"bearerAuth": []}, {"sessionCookie": []}]
        op["x-required-role"] = role
        responses.setdefault("401", _problem("No valid token (WWW-Authenticate: Bearer)"))
        responses.setdefault("403", _problem(f"The token lacks the {role} role"))
    if body_limit(method.upper(), path, 1) is not None and "default" not in responses:
        responses.setdefault("413", _problem("Request body too large"))
        responses.setdefault("400", BAD_REQUEST)


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``app``'s routes (see the module docstring for sources)."""
    module_paths, module_schemas = _module_specs()
    paths: dict[str, dict[str, Any]] = {}
    for source in (SPECS, module_paths):
        for path, ops in source.items():
            for method, op in ops.items():
                paths.setdefault(path, {})[method] = copy.deepcopy(op)
    for method, path, handler in _route_entries(app):
        if method in paths.get(path, {}):
            continue
        if getattr(handler, "__module__", None) in PROVISIONAL_MODULES:
            paths.setdefault(path, {})[method] = _describe(method, path, handler)
    used: set[str] = {op["operationId"] for ops in paths.values() for op in ops.values()
                      if "operationId" in op}
    for path, ops in sorted(paths.items()):
        for method, op in ops.items():
            if "operationId" not in op:
                # "/fdsnws/event/1" and "/fdsnws/event/1/" would otherwise share an id.
                base = op_id = _operation_id(method, path)
                n = 1
                while op_id in used:
                    n += 1
                    op_id = f"{base}_{n}"
                op["operationId"] = op_id
                used.add(op_id)
            _secure(method, path, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "quakealert duty API",
            "version": __version__,
            "description": "Earthquake events, sequences, notices and service health for duty"
                           " staff; auth and limits in docs/api.md.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**SCHEMAS, **module_schemas},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "a token from `quakealert token create`"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "quakealert_session",
                                  "description": "set by POST /login"},
            },
        },
    }


def setup(app: web.Application) -> None:
    """Build the document once the router is complete (at startup), not per request."""

    async def build(app: web.Application) -> None:
        app[OPENAPI_DOC] = build_document(app)

    app.on_startup.append(build)


routes = web.RouteTableDef()


@routes.get("/api/v1/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    """This app's OpenAPI 3.1 document."""
    return web.Response(text=json.dumps(request.app[OPENAPI_DOC], ensure_ascii=False),
                        content_type="application/json")
