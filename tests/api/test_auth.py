"""Access control: route policy, bearer tokens, login sessions, CORS, body limits, audit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from yarl import URL

from quakealert.api.app import make_app
from quakealert.api.auth import COOKIE, PRINCIPAL, required_role
from quakealert.config import Settings
from quakealert.store.auth import (
    audit,
    audit_log,
    create_session,
    create_token,
    find_token_id,
    list_tokens,
    revoke_token,
    session_principal,
)
from quakealert.store.sqlite import Store

NOW = datetime(2024, 11, 6, 20, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "q.sqlite")
    yield s
    s.close()


@pytest.fixture
def secrets_by_role(store: Store) -> dict[str, str]:
    return {role: create_token(store.conn, role, f"{role}-officer", now=NOW)[1]
            for role in ("read", "duty", "admin")}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def whoami(request: web.Request) -> web.Response:
    """Test route: echoes the principal the auth middleware set."""
    p = request.get(PRINCIPAL)
    return web.json_response(None if p is None else {"name": p.name, "role": p.role, "via": p.via})


async def dashboard(request: web.Request) -> web.Response:
    """Test route standing in for the dashboard page."""
    return web.Response(text="<h1>dash</h1>", content_type="text/html")


def build_app(store: Store, tmp_path: Path, **sections: dict) -> web.Application:
    app = make_app(Settings(store_path=tmp_path / "q.sqlite", sections=sections), store=store)
    app.router.add_get("/api/v1/test/whoami", whoami)
    app.router.add_get("/dashboard", dashboard)
    return app


@pytest.fixture
async def client(aiohttp_client, store, tmp_path):
    return await aiohttp_client(build_app(store, tmp_path))


@pytest.mark.parametrize(("method", "route", "role"), [
    ("GET", "/healthz", None),
    ("HEAD", "/healthz", None),
    ("GET", "/cap/feed.atom", None),
    ("GET", "/fdsnws/event/1/query", None),
    ("POST", "/api/v1/subscriptions", None),
    ("DELETE", "/api/v1/subscriptions/{id}", None),
    ("GET", "/api/v1/events", None),
    ("GET", "/api/v1/events/{id}/history", None),
    ("GET", "/api/v1/openapi.json", None),
    ("POST", "/login", None),
    ("GET", "/api/v1/sequences/{id}", "read"),
    ("GET", "/api/v1/sources", "read"),
    ("GET", "/dashboard/sequence/{id}", "read"),
    ("GET", "/metrics", "read"),
    ("GET", "/api/v1/notices", "read"),
    ("GET", "/api/v1/subscribers/counts", "read"),
    ("POST", "/api/v1/notices/{id}/approve", "duty"),
    ("POST", "/api/v1/notices/{id}/reject", "duty"),
    ("POST", "/api/v1/notices/{id}/edit", "duty"),
    ("POST", "/api/v1/tokens", "admin"),
    ("DELETE", "/api/v1/tokens/{id}", "admin"),
    # Writes to public read-only resources and routes nobody listed are never public.
    ("POST", "/api/v1/events", "read"),
    ("DELETE", "/api/v1/events/{id}", "read"),
    ("GET", "/api/v1/brand-new-thing", "read"),
    ("GET", "/some/page", "read"),
])
def test_policy_table(method, route, role):
    """Each route needs exactly the role the access rules give it."""
    assert required_role(method, route) == role


# Every public route the app may serve; anything else public is a policy mistake.
PUBLIC_ROUTES = {
    ("GET", "/healthz"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),
    ("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/events"), ("GET", "/api/v1/events/{id}"),
    ("GET", "/api/v1/events/{id}/history"), ("POST", "/api/v1/subscriptions"),
    ("DELETE", "/api/v1/subscriptions/{id}"), ("GET", "/api/v1/webpush/vapid-public-key"),
    ("GET", "/subscribe"), ("GET", "/sw.js"), ("GET", "/n/{id}"),
}


def test_no_route_is_public_by_accident(store, tmp_path):
    """Only the listed routes, CAP and FDSN are public; every other served route needs a role."""
    app = build_app(store, tmp_path)
    public = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        if required_role(route.method, path) is None and not path.startswith(("/cap", "/fdsnws/")):
            public.add((route.method, path))
    assert public <= PUBLIC_ROUTES, public - PUBLIC_ROUTES


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/events", "/api/v1/openapi.json", "/login"])
async def test_public_routes_need_no_token(client, path):
    """Public routes answer anonymous callers."""
    resp = await client.get(path)
    assert resp.status == 200


@pytest.mark.parametrize("path", ["/api/v1/sources", "/metrics", "/api/v1/audit",
                                  "/api/v1/test/whoami", "/api/v1/no-such-route"])
async def test_protected_routes_answer_401_problem(client, path):
    """Without credentials: 401 problem JSON with a Bearer challenge, even for unknown API paths."""
    resp = await client.get(path)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="quakealert"'
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 401


async def test_unknown_token_is_invalid_token(client):
    """An unknown bearer token gets 401 with error=invalid_token."""
    resp = await client.get("/api/v1/sources", headers=bearer("qat_not-a-real-token"))
    assert resp.status == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_unknown_token_is_ignored_on_public_routes(client):
    """A foreign bearer token (e.g. a subscription's) does not break a public route."""
    resp = await client.get("/api/v1/events", headers=bearer("someone-elses-token"))
    assert resp.status == 200


async def test_principal_is_set_for_handlers(client, secrets_by_role):
    """The handler sees request[PRINCIPAL] with the token's name and role."""
    resp = await client.get("/api/v1/test/whoami", headers=bearer(secrets_by_role["duty"]))
    assert resp.status == 200
    assert await resp.json() == {"name": "duty-officer", "role": "duty", "via": "bearer"}


@pytest.mark.parametrize(("role", "path", "status"), [
    ("read", "/api/v1/sources", 200),
    ("read", "/api/v1/audit", 403),
    ("duty", "/api/v1/audit", 200),
    ("duty", "/api/v1/tokens", 403),
    ("admin", "/api/v1/tokens", 200),
    ("read", "/api/v1/no-such-route", 404),
])
async def test_roles_are_ordered(client, secrets_by_role, role, path, status):
    """read < duty < admin: a lower role gets 403, a sufficient one reaches the handler."""
    resp = await client.get(path, headers=bearer(secrets_by_role[role]))
    assert resp.status == status
    if status == 403:
        assert resp.content_type == "application/problem+json"


async def test_revoked_token_is_rejected(client, store, secrets_by_role):
    """A revoked token stops working at once."""
    headers = bearer(secrets_by_role["read"])
    assert (await client.get("/api/v1/sources", headers=headers)).status == 200
    token = next(t for t in list_tokens(store.conn) if t.role == "read")
    revoke_token(store.conn, token.id, now=NOW)
    assert (await client.get("/api/v1/sources", headers=headers)).status == 401


def test_tokens_are_stored_only_as_hashes(store, secrets_by_role, tmp_path):
    """The database holds SHA-256 digests, never the token itself."""
    rows = store.conn.execute("SELECT token_hash FROM api_tokens").fetchall()
    digests = {hashlib.sha256(s.encode()).hexdigest() for s in secrets_by_role.values()}
    assert {r["token_hash"] for r in rows} == digests
    store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    raw = (tmp_path / "q.sqlite").read_bytes()
    assert not any(s.encode() in raw for s in secrets_by_role.values())


def test_revoke_by_prefix_must_be_unique(store):
    """An id prefix must name exactly one token; an ambiguous one is refused, not guessed."""
    from quakealert.errors import InvalidRequest, NotFound

    for token_id in ("abc11111", "abc22222"):
        store.conn.execute("INSERT INTO api_tokens (id, name, role, token_hash, created_at)"
                           " VALUES (?, 'x', 'read', ?, 0)", (token_id, token_id * 8))
    assert find_token_id(store.conn, "abc2").id == "abc22222"
    assert find_token_id(store.conn, "abc11111").id == "abc11111"
    with pytest.raises(InvalidRequest):
        find_token_id(store.conn, "abc")
    with pytest.raises(NotFound):
        find_token_id(store.conn, "abd")
    with pytest.raises(NotFound):
        find_token_id(store.conn, "%")  # LIKE wildcards are literal


async def test_login_sets_strict_httponly_session_cookie(client, store, secrets_by_role):
    """POST /login with a valid token: 303 to next, HttpOnly SameSite=Strict cookie, audit row."""
    resp = await client.post("/login", data={"token": secrets_by_role["read"],
                                             "next": "/dashboard"}, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/dashboard"
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http test server, cookie_secure = "auto"
    session_id = resp.cookies[COOKIE].value
    assert secrets_by_role["read"] not in cookie
    stored = store.conn.execute("SELECT session_hash FROM api_sessions").fetchone()[0]
    assert stored == hashlib.sha256(session_id.encode()).hexdigest()

    who = await client.get("/api/v1/test/whoami", cookies={COOKIE: session_id})
    assert await who.json() == {"name": "read-officer", "role": "read", "via": "session"}
    assert [r["action"] for r in audit_log(store.conn)] == ["login"]


async def test_logout_ends_the_session_on_the_server(client, store, secrets_by_role):
    """After POST /logout the old cookie value no longer authenticates."""
    resp = await client.post("/login", data={"token": secrets_by_role["duty"]},
                             allow_redirects=False)
    session_id = resp.cookies[COOKIE].value
    client.session.cookie_jar.clear()
    out = await client.post("/logout", cookies={COOKIE: session_id}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/login"
    assert f"{COOKIE}=\"\"" in out.headers["Set-Cookie"] or "Max-Age=0" in out.headers["Set-Cookie"]
    again = await client.get("/api/v1/sources", cookies={COOKIE: session_id})
    assert again.status == 401
    assert [r["action"] for r in audit_log(store.conn)] == ["logout", "login"]


async def test_bad_login_shows_the_form_again(client, store):
    """An unknown token: 401 with the HTML form, no cookie, no session."""
    resp = await client.post("/login", data={"token": "qat_wrong", "next": "/dashboard"},
                             allow_redirects=False)
    assert resp.status == 401
    assert resp.content_type == "text/html"
    assert "令牌无效" in await resp.text()  # the login page defaults to zh, like the console
    assert "Set-Cookie" not in resp.headers
    assert store.conn.execute("SELECT count(*) FROM api_sessions").fetchone()[0] == 0


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "\\\\evil", ""])
async def test_login_never_redirects_off_site(client, secrets_by_role, target):
    """`next` must be a local path; anything else lands on the dashboard."""
    resp = await client.post("/login", data={"token": secrets_by_role["read"], "next": target},
                             allow_redirects=False)
    assert resp.headers["Location"] == "/dashboard"


async def test_login_form_escapes_next(client):
    """The login form reflects `next` HTML-escaped."""
    text = await (await client.get("/login", params={"next": '/x"><script>'})).text()
    assert "<script>" not in text and "&#34;&gt;&lt;script&gt;" in text


async def test_secure_cookie_when_configured(aiohttp_client, store, tmp_path, secrets_by_role):
    """`[auth] cookie_secure = true` marks the cookie Secure even behind a plain-http proxy hop."""
    client = await aiohttp_client(build_app(store, tmp_path, auth={"cookie_secure": True,
                                                                   "session_ttl_s": 600}))
    resp = await client.post("/login", data={"token": secrets_by_role["read"]},
                             allow_redirects=False)
    assert "Secure" in resp.headers["Set-Cookie"]
    assert "Max-Age=600" in resp.headers["Set-Cookie"]


async def test_cross_site_post_with_cookie_is_refused(client, secrets_by_role):
    """A cookie-authenticated write from another Origin is refused (defence beside SameSite)."""
    resp = await client.post("/login", data={"token": secrets_by_role["read"]},
                             allow_redirects=False)
    session_id = resp.cookies[COOKIE].value
    client.session.cookie_jar.clear()
    evil = await client.post("/logout", cookies={COOKIE: session_id},
                             headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert evil.status == 403
    ok = await client.get("/api/v1/sources", cookies={COOKIE: session_id})
    assert ok.status == 200


async def test_dashboard_redirects_browsers_to_login(client):
    """A browser without a session is sent to the login form, keeping where it was going."""
    resp = await client.get("/dashboard?seq=s1&x=2", headers={"Accept": "text/html"},
                            allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert location.path == "/login" and location.query["next"] == "/dashboard?seq=s1&x=2"
    api = await client.get("/dashboard", headers={"Accept": "application/json"})
    assert api.status == 401


def test_session_expires_and_dies_with_its_token(store):
    """A session ends at its expiry, and when its token is revoked."""
    info, _ = create_token(store.conn, "duty", "night shift", now=NOW)
    sid = create_session(store.conn, info.id, ttl_s=60, now=NOW)
    assert session_principal(store.conn, sid, now=NOW + timedelta(seconds=59)) is not None
    assert session_principal(store.conn, sid, now=NOW + timedelta(seconds=61)) is None
    sid2 = create_session(store.conn, info.id, ttl_s=60, now=NOW)
    revoke_token(store.conn, info.id, now=NOW)
    assert session_principal(store.conn, sid2, now=NOW) is None


async def test_token_management_over_http_is_audited(client, store, secrets_by_role):
    """Admin creates a token over HTTP (secret shown once, works), revokes it; both audited."""
    admin = bearer(secrets_by_role["admin"])
    resp = await client.post("/api/v1/tokens", json={"role": "duty", "name": "pager"},
                             headers=admin)
    assert resp.status == 201
    body = await resp.json()
    assert body["token"]["role"] == "duty" and body["secret"].startswith("qat_")
    assert (await client.get("/api/v1/audit", headers=bearer(body["secret"]))).status == 200
    gone = await client.delete(f"/api/v1/tokens/{body['token']['id']}", headers=admin)
    assert gone.status == 200 and (await gone.json())["token"]["revoked"] is not None
    assert (await client.get("/api/v1/audit", headers=bearer(body["secret"]))).status == 401
    rows = audit_log(store.conn)
    assert [(r["action"], r["actor_name"], r["role"], r["target"]) for r in rows] == [
        ("token.revoke", "admin-officer", "admin", body["token"]["id"]),
        ("token.create", "admin-officer", "admin", body["token"]["id"]),
    ]
    listing = await (await client.get("/api/v1/tokens", headers=admin)).text()
    assert body["secret"] not in listing


@pytest.mark.parametrize("payload", [{"role": "root", "name": "x"}, {"role": "read"}, [1, 2],
                                     {"role": "read", "name": "   "},
                                     {"role": "read", "name": "ops\nFAKE admin line"}])
async def test_bad_token_requests_are_400(client, secrets_by_role, payload):
    """Invalid token-creation bodies are 400 problems."""
    resp = await client.post("/api/v1/tokens", json=payload,
                             headers=bearer(secrets_by_role["admin"]))
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"


def test_audit_accepts_a_plain_actor_name(store):
    """audit() records non-HTTP actors (the CLI, the daemon) by name."""
    audit(store.conn, "cli:ops", "token.create", "abcd1234", "role=read", now=NOW)
    (row,) = audit_log(store.conn)
    assert row == {"id": row["id"], "at": "2024-11-06T20:30:00Z", "actor_id": None,
                   "actor_name": "cli:ops", "role": None, "action": "token.create",
                   "target": "abcd1234", "detail": "role=read"}


async def test_json_bodies_have_a_smaller_limit(client, secrets_by_role):
    """A JSON body over the per-route cap is a 413 problem, with or without Content-Length."""
    admin = bearer(secrets_by_role["admin"])
    big = b'{"role": "read", "name": "' + b"x" * 20_000 + b'"}'
    resp = await client.post("/api/v1/tokens", data=big, headers={
        **admin, "Content-Type": "application/json"})
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"

    async def chunks():
        for _ in range(20):
            yield b"x" * 1000

    streamed = await client.post("/api/v1/tokens", data=chunks(), headers={
        **admin, "Content-Type": "application/json"})
    assert streamed.status == 413


async def test_cors_is_off_by_default(client):
    """Without [api] cors_origins no Access-Control headers are sent."""
    resp = await client.get("/api/v1/events", headers={"Origin": "https://map.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_for_configured_origins(aiohttp_client, store, tmp_path):
    """Listed origins get CORS headers (also on errors) and preflights; others get none."""
    client = await aiohttp_client(build_app(store, tmp_path,
                                            api={"cors_origins": ["https://map.example"]}))
    ok = await client.get("/api/v1/events", headers={"Origin": "https://map.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://map.example"
    assert "Origin" in ok.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in ok.headers
    denied = await client.get("/api/v1/sources", headers={"Origin": "https://map.example"})
    assert denied.status == 401
    assert denied.headers["Access-Control-Allow-Origin"] == "https://map.example"
    pre = await client.options("/api/v1/sources", headers={
        "Origin": "https://map.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert pre.status == 204
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    other = await client.get("/api/v1/events", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
