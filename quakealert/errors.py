"""Domain errors. Adapters raise them; the job and view boundaries catch them once."""

from __future__ import annotations


class QuakealertError(Exception):
    """Base class for every error quakealert raises on purpose."""


class ConfigError(QuakealertError):
    """The configuration file or a value in it is invalid."""


class StoreCorrupt(QuakealertError):
    """The database file is damaged or not a database: the daemon refuses to start on it."""


class SourceError(QuakealertError):
    """A catalogue source failed; the poller records it in the source's health."""

    def __init__(self, source: str, url: str, detail: str, *, retry_after_s: float | None = None):
        super().__init__(f"{source}: {detail} ({url})")
        self.source = source
        self.url = url
        self.detail = detail
        self.retry_after_s = retry_after_s


class SourceUnavailable(SourceError):
    """5xx, timeouts, refused connections: try again later."""


class SourceRejected(SourceError):
    """4xx other than 204/404-as-nodata: our request is wrong; retrying will not help soon."""


class ParseError(SourceError):
    """The body could not be read at all (truncated, invalid XML/JSON, wrong content type, too big)."""


class NotFound(QuakealertError):
    """A requested object does not exist (views map it to 404)."""


class InvalidRequest(QuakealertError):
    """A request parameter or body is invalid (views map it to 400)."""


class Conflict(QuakealertError):
    """The request clashes with the object's current state (views map it to 409)."""

    def __init__(self, message: str, **extra: object):
        super().__init__(message)
        self.extra = extra  # members added to the problem details


class Unprocessable(QuakealertError):
    """Well-formed but not acceptable content, e.g. over a length budget (views map it to 422)."""

    def __init__(self, message: str, **extra: object):
        super().__init__(message)
        self.extra = extra


class SubscriptionGone(QuakealertError):
    """A push service answered 404/410: the subscription no longer exists and is deleted."""
