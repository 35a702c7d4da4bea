"""Who may call what: the route policy, bearer tokens, login sessions, and the audit log.

The login cookie holds a random session id whose SHA-256 is stored with an expiry, rather than
an HMAC-signed value: logout and token revocation end a session at once on the server, and
there is no signing key to generate, rotate or leak.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from quakealert.api.cors import setup_cors
from quakealert.api.keys import SETTINGS, STORE
from quakealert.api.offloop import in_thread
from quakealert.api.problems import Handler, problem
from quakealert.api.ratelimit import (
    DEFAULT_JSON_MAX_BYTES,
    RateLimiter,
    body_limit_middleware,
    client_key,
    limiter_from_settings,
    ratelimit_middleware,
)
from quakealert.errors import ConfigError, InvalidRequest
from quakealert.logs import client_ref
from quakealert.store.auth import ROLES, Principal, Role, TokenInfo, role_rank
from quakealert.store.base import Store

log = logging.getLogger(__name__)

__all__ = ["POLICY", "PRINCIPAL", "Principal", "required_role", "routes", "setup"]

PRINCIPAL = web.RequestKey("principal", Principal)  # set on every authenticated request
COOKIE = "quakealert_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = None
SESSION_TTL_S = 12 * 3600.0  # one duty shift; also the cookie's Max-Age


@dataclass(frozen=True, slots=True)
class Rule:
    """Requests whose method is in ``methods`` ("*" = any) and route matches ``pattern``."""

    methods: str
    pattern: str
    role: Role | None  # None: public

    def matches(self, method: str, route: str) -> bool:
        if method == "HEAD":
            method = "GET"
        return (self.methods == "*" or method in self.methods.split(",")) and fnmatchcase(
            route, self.pattern)


# First match wins. Patterns are matched against the route's canonical path
# ("/api/v1/notices/{id}/approve"), or the raw path when no route matched.
POLICY: tuple[Rule, ...] = (
    Rule("*", "/healthz", PUBLIC),
    Rule("GET,POST", "/login", PUBLIC),
    Rule("POST", "/logout", PUBLIC),
    Rule("GET", "/api/v1/openapi.json", PUBLIC),
    Rule("GET", "/cap", PUBLIC),
    Rule("GET", "/cap/*", PUBLIC),
    Rule("*", "/fdsnws/*", PUBLIC),
    Rule("POST", "/api/v1/subscriptions", PUBLIC),
    Rule("DELETE", "/api/v1/subscriptions/*", PUBLIC),  # proved by its own management token
    Rule("GET", "/api/v1/webpush/vapid-public-key", PUBLIC),  # browsers need it to subscribe
    Rule("GET", "/subscribe", PUBLIC),  # the residents' Web Push page (api/public.py)
    Rule("GET", "/sw.js", PUBLIC),  # its service worker
    Rule("GET", "/n/{id}", PUBLIC),  # a released notice as a page: where a push click leads
    # What residents were told about an event and why: duty staff only (before the public
    # events rule, which would match it too).
    Rule("GET", "/api/v1/events/{id}/notices", "read"),
    # Events are the same data the public FDSN service serves.
    Rule("GET", "/api/v1/events", PUBLIC),
    Rule("GET", "/api/v1/events/*", PUBLIC),
    Rule("GET", "/api/v1/sequences", "read"),  # carries forecasts: duty staff only
    Rule("GET", "/api/v1/sequences/*", "read"),
    Rule("GET", "/api/v1/sources", "read"),
    Rule("GET", "/api/v1/notices", "read"),
    Rule("GET", "/api/v1/notices/*", "read"),
    Rule("POST", "/api/v1/notices/*/approve", "duty"),
    Rule("POST", "/api/v1/notices/*/reject", "duty"),
    Rule("POST", "/api/v1/notices/*/edit", "duty"),
    Rule("GET", "/api/v1/audit", "duty"),
    Rule("*", "/api/v1/tokens", "admin"),
    Rule("*", "/api/v1/tokens/*", "admin"),
    Rule("GET", "/metrics", "read"),
    Rule("POST", "/dashboard/notices/*", "duty"),  # approve/reject a message from the console
    Rule("*", "/dashboard", "read"),
    Rule("*", "/dashboard/*", "read"),
    # Default deny: a route nobody listed above is never public by accident.
    Rule("*", "*", "read"),
)


def required_role(method: str, route: str) -> Role | None:
    """The least role ``method route`` needs under POLICY; None means public."""
    for rule in POLICY:
        if rule.matches(method, route):
            return rule.role
    return "read"


def route_of(request: web.Request) -> str:
    """The canonical path of the route that will serve ``request``, else its raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The `[auth]` table."""

    session_ttl_s: float = SESSION_TTL_S
    cookie_secure: bool | None = None  # None: Secure exactly when the request came over https

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> AuthConfig:
        unknown = set(section) - {"session_ttl_s", "cookie_secure"}
        if unknown:
            raise ConfigError(f"[auth] unknown keys: {', '.join(sorted(unknown))}")
        secure = section.get("cookie_secure", "auto")
        if secure not in ("auto", True, False):
            raise ConfigError('[auth] cookie_secure must be true, false or "auto"')
        ttl = float(section.get("session_ttl_s", SESSION_TTL_S))
        if ttl <= 0:
            raise ConfigError("[auth] session_ttl_s must be > 0")
        return cls(session_ttl_s=ttl, cookie_secure=None if secure == "auto" else secure)


AUTH_CONFIG = web.AppKey("auth_config", AuthConfig)
LIMITER = web.AppKey("rate_limiter", RateLimiter)


def _unauthorized(request: web.Request, detail: str, *, invalid: bool) -> web.Response:
    resp = problem(401, detail, instance=request.path)
    challenge = 'Bearer realm="quakealert"'
    if invalid:
        challenge += ', error="invalid_token"'
    resp.headers["WWW-Authenticate"] = challenge
    return resp


def _same_origin(request: web.Request) -> bool:
    """False when a browser says the request came from another site (or an opaque origin).

    ``Sec-Fetch-Site`` first: browsers set it on every request and no page can forge it, and
    it says ``same-origin`` for our own forms whatever the referrer policy. Without it (older
    browsers, scripts) the ``Origin`` header decides; a request with neither is not from a
    browser form. Policy and reasons: docs/dashboard.md, "Same-origin check".
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    # Compare host:port only: behind a TLS-terminating proxy our own scheme reads http.
    return origin.split("://", 1)[-1] == request.host


def auth_middleware(
    limiter: RateLimiter | None, *, trust_forwarded_for: bool = False
) -> Callable[..., Any]:
    """Resolve the principal, then apply POLICY: 401 without credentials, 403 without the role."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        store = request.app[STORE]
        need = required_role(request.method, route_of(request))
        now = datetime.now(UTC)
        principal = None
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, secret = header.strip().partition(" ")
            secret = secret.strip()
            # A token is printable ASCII (token_urlsafe); anything else is simply not one of
            # ours (a non-ASCII header answered 500). The lookup may update last_used_at: off
            # the loop, so a held write lock cannot stall it.
            if scheme.lower() == "bearer" and secret and secret.isascii() and (
                    secret.isprintable()):
                principal = await in_thread(
                    request.app, lambda s: s.auth.authenticate(secret, now=now))
            # Public routes ignore unknown tokens: DELETE /api/v1/subscriptions/{id} takes
            # the subscription's own management token in this header.
            if principal is None and need is not None:
                # Bad credentials count against the login bucket: guessing costs a lookup.
                client = client_key(request, trust_forwarded_for=trust_forwarded_for)
                wait = limiter.take("login", client) if limiter is not None else 0.0
                if wait > 0:
                    resp = problem(429, "too many failed authentications", instance=request.path)
                    resp.headers["Retry-After"] = str(max(1, math.ceil(min(wait, 86_400))))
                    return resp
                log.warning("rejected bearer credentials", extra={
                    "client": client_ref(client), "method": request.method, "path": request.path})
                return _unauthorized(request, "the bearer token is unknown or revoked",
                                     invalid=True)
        else:
            session_id = request.cookies.get(COOKIE)
            if session_id:
                principal = store.auth.session_principal(session_id, now=now)
                if principal is not None and request.method not in SAFE_METHODS and (
                        not _same_origin(request)):
                    return problem(403, "cross-site request refused", instance=request.path)
        if principal is not None:
            request[PRINCIPAL] = principal
        if need is None:
            if request.method not in SAFE_METHODS and request.path == "/login" and (
                    not _same_origin(request)):
                return problem(403, "cross-site request refused", instance=request.path)
            return await handler(request)
        if principal is None:
            if (request.method in SAFE_METHODS and request.path.startswith("/dashboard")
                    and "text/html" in request.headers.get("Accept", "")):
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
            return _unauthorized(request, "this resource needs a token: Authorization: Bearer"
                                 " <token>, or log in at /login", invalid=False)
        if role_rank(principal.role) < role_rank(need):
            return problem(403, f"this resource needs the {need} role; the token "
                           f"{principal.name!r} has {principal.role}", instance=request.path)
        return await handler(request)

    return middleware


def _group_of(request: web.Request) -> str | None:
    """The rate-limit group: public routes for anonymous callers, plus login and subscriptions."""
    route = route_of(request)
    if route == "/login" and request.method == "POST":
        return "login"
    if PRINCIPAL in request:
        return None  # duty staff, already authenticated
    if route.startswith("/api/v1/subscriptions") and request.method != "GET":
        return "subscriptions"
    if required_role(request.method, route) is None:
        return "public"
    return None


def setup(app: web.Application) -> None:
    """Install CORS, authentication, rate limits and body limits, outermost first."""
    settings = app[SETTINGS]
    app[AUTH_CONFIG] = AuthConfig.from_section(settings.section("auth"))
    api = settings.section("api")
    rl = settings.section("ratelimit")
    limiter = limiter_from_settings(rl)
    trust = bool(rl.get("trust_forwarded_for", False))
    if limiter is not None:
        app[LIMITER] = limiter
    origins = api.get("cors_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError("[api] cors_origins must be a list of origins")
    if origins:
        setup_cors(app, tuple(origins))
    app.middlewares.append(auth_middleware(limiter, trust_forwarded_for=trust))
    if limiter is not None:
        app.middlewares.append(ratelimit_middleware(limiter, _group_of,
                                                    trust_forwarded_for=trust))
    app.middlewares.append(body_limit_middleware(
        int(api.get("max_json_bytes", DEFAULT_JSON_MAX_BYTES))))


# -- login / logout -------------------------------------------------------------------------

routes = web.RouteTableDef()

def _safe_next(value: str | None) -> str:
    """A path on this host to go to after login; anything else goes to the dashboard.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/`` (WHATWG URL), so
    ``/%09/evil.example`` and ``/\\evil`` are other sites: only printable ASCII without a
    backslash, starting with one ``/``, with no scheme or host once parsed, is kept.
    """
    default = "/dashboard"
    if not value or len(value) > 2048 or not value.isascii() or not value.isprintable():
        return default
    if "\\" in value or not value.startswith("/") or value.startswith("//"):
        return default
    try:
        parts = urlsplit(value)
    except ValueError:
        return default
    if parts.scheme or parts.netloc:
        return default
    return value


def _login_page(next_path: str, message: str = "", status: int = 200, *,
                lang: str | None = None) -> web.Response:
    """The login form (api/templates/login.html.j2) in zh or en; ``message`` is a key of
    dashboard.LOGIN_MESSAGES."""
    from quakealert.api.dashboard import render_login  # the dashboard imports this module

    return render_login(next_path, message=message, status=status, lang=lang)


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    """The login form: paste a token to get a session cookie."""
    return _login_page(_safe_next(request.query.get("next")), lang=request.query.get("lang"))


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    """Exchange a token for an HttpOnly, SameSite=Strict session cookie; 303 to `next`."""
    try:
        form = await request.post()
    except ValueError as err:  # e.g. a multipart Content-Type without a boundary
        raise InvalidRequest(f"unreadable form: {err}") from None
    secret = form.get("token")
    next_path = _safe_next(str(form.get("next") or ""))
    now = datetime.now(UTC)
    config = request.app[AUTH_CONFIG]
    remote = request.remote

    def login_in_store(store: Store) -> tuple[Any, str | None]:
        if not isinstance(secret, str) or not secret.strip().isascii():
            return None, None
        principal = store.auth.authenticate(secret.strip(), now=now)
        if principal is None:
            return None, None
        session_id = store.auth.create_session(principal.token_id,
                                               ttl_s=config.session_ttl_s, now=now)
        store.auth.audit(principal, "login", detail=f"from {remote}", now=now)
        return principal, session_id

    principal, session_id = await in_thread(request.app, login_in_store)
    if principal is None or session_id is None:
        log.warning("failed login", extra={"client": client_ref(request.remote)})
        lang = form.get("lang")
        return _login_page(next_path, "invalid_token", status=401,
                           lang=lang if isinstance(lang, str) else None)
    resp = web.HTTPSeeOther(next_path)
    resp.set_cookie(COOKIE, session_id, max_age=int(config.session_ttl_s), path="/",
                    httponly=True, samesite="Strict",
                    secure=request.secure if config.cookie_secure is None else config.cookie_secure)
    resp.headers["Cache-Control"] = "no-store"
    raise resp


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    """End the login session (if any) and clear its cookie; 303 to the login form."""
    principal = request.get(PRINCIPAL)
    session_id = request.cookies.get(COOKIE)

    def logout_in_store(store: Store) -> None:
        if session_id:
            store.auth.end_session(session_id)
        if principal is not None:
            store.auth.audit(principal, "logout")

    await in_thread(request.app, logout_in_store)
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


# -- admin: tokens and the audit log ----------------------------------------------------------


def token_to_json(t: TokenInfo) -> dict[str, Any]:
    """A token record as JSON; never includes the secret."""
    def iso(at: datetime | None) -> str | None:
        return None if at is None else at.isoformat().replace("+00:00", "Z")

    return {"id": t.id, "name": t.name, "role": t.role, "created": iso(t.created_at),
            "revoked": iso(t.revoked_at), "last_used": iso(t.last_used_at)}


@routes.get("/api/v1/tokens")
async def get_tokens(request: web.Request) -> web.Response:
    """Every API token (admin), without secrets."""
    tokens = request.app[STORE].auth.list_tokens()
    return web.json_response({"tokens": [token_to_json(t) for t in tokens]})


@routes.post("/api/v1/tokens")
async def post_token(request: web.Request) -> web.Response:
    """Create a token (admin); the secret is in this response only."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body must be a JSON object {role, name}") from None
    if not isinstance(body, dict) or not isinstance(body.get("role"), str) or not isinstance(
            body.get("name"), str):
        raise InvalidRequest(f"body must be a JSON object with role ({', '.join(ROLES)}) and name")
    actor = request[PRINCIPAL]

    def create_in_store(store: Store) -> tuple[TokenInfo, str]:
        info, secret = store.auth.create_token(body["role"], body["name"],
                                               now=datetime.now(UTC))
        store.auth.audit(actor, "token.create", target=info.id,
              detail=f"role={info.role} name={info.name}")
        return info, secret

    info, secret = await in_thread(request.app, create_in_store)
    return web.json_response({"token": token_to_json(info), "secret": secret}, status=201,
                             headers={"Cache-Control": "no-store"},
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


@routes.delete("/api/v1/tokens/{id}")
async def delete_token(request: web.Request) -> web.Response:
    """Revoke a token by its exact id (admin); its login sessions end too."""
    actor, token_id = request[PRINCIPAL], request.match_info["id"]

    def revoke_in_store(store: Store) -> TokenInfo:
        info = store.auth.revoke_token(token_id, now=datetime.now(UTC))
        store.auth.audit(actor, "token.revoke", target=info.id, detail="via api")
        return info

    info = await in_thread(request.app, revoke_in_store)
    return web.json_response({"token": token_to_json(info)})


@routes.get("/api/v1/audit")
async def get_audit(request: web.Request) -> web.Response:
    """The newest audit-log rows: logins, approvals, token changes (duty)."""
    raw = request.query.get("limit", "100")
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequest(f"limit: {raw!r} is not an integer") from None
    if not 1 <= limit <= 1000:
        raise InvalidRequest(f"limit: {limit} is outside [1, 1000]")
    return web.json_response({"audit": request.app[STORE].auth.audit_log(limit=limit)},
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))
