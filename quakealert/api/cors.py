"""CORS for configured origins (`[api] cors_origins`); off when the list is empty (the default).

Credentials (cookies) are never allowed cross-origin: another site's script may call the API
with a bearer token it holds, but cannot ride on a duty officer's login session.
"""

from __future__ import annotations

from aiohttp import web

from quakealert.api.problems import Handler

ALLOW_METHODS = "GET, HEAD, POST, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, If-None-Match"
EXPOSE_HEADERS = "ETag, Last-Modified, Retry-After, WWW-Authenticate"
MAX_AGE_S = 600


def setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """Answer preflights and add Access-Control-* headers for ``origins`` ("*" = any)."""
    allow_any = "*" in origins
    allowed = frozenset(o.rstrip("/") for o in origins)

    def allowed_origin(request: web.BaseRequest) -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or not (allow_any or origin in allowed):
            return None
        return "*" if allow_any else origin

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
                and allowed_origin(request) is not None):
            return web.Response(status=204, headers={
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(MAX_AGE_S),
            })
        return await handler(request)

    # A signal rather than the middleware, so that error responses built further out get it too.
    async def add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
        origin = allowed_origin(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
            response.headers.add("Vary", "Origin")

    app.middlewares.append(preflight)
    app.on_response_prepare.append(add_headers)
