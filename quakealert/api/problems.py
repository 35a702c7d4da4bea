"""Errors as JSON problem details (RFC 9457), raised from views and mapped in one middleware."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from quakealert.errors import Conflict, InvalidRequest, NotFound, Unprocessable

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    """A problem-details response with the standard members plus ``extra``."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False),
                        content_type=PROBLEM_TYPE)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors -> 4xx problems; aiohttp HTTP errors keep their status; the rest -> 500."""
    try:
        return await handler(request)
    except NotFound as err:
        return problem(404, str(err), instance=request.path)
    except InvalidRequest as err:
        return problem(400, str(err), instance=request.path)
    except Conflict as err:
        return problem(409, str(err), instance=request.path, **err.extra)
    except Unprocessable as err:
        return problem(422, str(err), instance=request.path, **err.extra)
    except web.HTTPException as err:
        if err.status < 400 or err.content_type == PROBLEM_TYPE or request.path.startswith(
            "/fdsnws/"
        ):
            raise
        resp = problem(err.status, err.text or err.reason, instance=request.path)
        for name in ("Allow", "Retry-After", "WWW-Authenticate", "Location"):
            if name in err.headers:
                resp.headers[name] = err.headers[name]
        return resp
    except Exception:
        log.exception("unhandled error", extra={"method": request.method, "path": request.path})
        return problem(500, "internal error; the duty log has the details", instance=request.path)
