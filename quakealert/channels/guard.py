"""Where deliveries may connect, and how much of an answer they read (issue 9 §5).

Anyone can register a Web Push endpoint or a webhook URL, so a delivery must never become a
request into our own network (SSRF). The check is on the address a socket is about to connect
to, not on the URL: :class:`GuardedConnector` is an aiohttp ``TCPConnector`` whose
``socket_factory`` refuses every non-public address. aiohttp hands that factory the very
address it connects to after resolving the name, so a name that resolves to 127.0.0.1
(``localhost.``, a rebinding DNS server answering differently between a check and the connect)
and numeric spellings (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``)
are all caught at the one place they turn into a connection. :func:`check_endpoint` words the
refusal early for what can be seen in the URL itself.

``[webpush] allow_insecure_endpoints = true`` (tests, the local demo) turns the guard off.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from quakealert.errors import QuakealertError

MAX_RESPONSE_BYTES = 64 * 1024  # a push service or gateway says what it has to in a few bytes

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedEndpoint(QuakealertError):
    """A delivery target that is not a public https address: never connected to, not retried."""


class BlockedAddress(OSError):
    """Raised by the connector's socket factory for a non-public address."""


def blocked_reason(ip: _IPAddress) -> str | None:
    """Why ``ip`` must not be connected to (loopback, private, link-local, multicast, reserved,
    unspecified, shared, or an IPv4 one in IPv6 clothing), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{ip} embeds {embedded}: {inner}" if inner else None
        if ip.scope_id:
            return f"{ip} is scoped (link-local)"
    for attr in ("is_loopback", "is_unspecified", "is_link_local", "is_multicast",
                 "is_reserved", "is_private"):
        if getattr(ip, attr):
            return f"{ip} is {attr.removeprefix('is_').replace('_', '-')}"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


def literal_address(host: str) -> _IPAddress | None:
    """The address a URL host denotes without DNS: IPv4/IPv6 literals and the legacy numeric
    IPv4 forms that resolvers accept (``0x7f000001``, ``2130706433``, ``0177.0.0.1``, ``127.1``)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def check_endpoint(url: str) -> None:
    """BlockedEndpoint for a URL that is plainly not a public https target (scheme, localhost
    names, numeric hosts in any spelling); names are checked again at connect time."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise BlockedEndpoint("not a valid URL") from None
    if parts.scheme != "https":
        raise BlockedEndpoint(f"scheme {parts.scheme!r} is not https")
    name = host.rstrip(".")
    if not name or name == "localhost" or name.endswith((".localhost", ".local", ".internal")):
        raise BlockedEndpoint(f"host {host!r} is not public")
    ip = literal_address(host)
    if ip is not None:
        reason = blocked_reason(ip)
        if reason:
            raise BlockedEndpoint(f"host {host!r}: {reason}")


def public_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """aiohttp's ``socket_factory``: a socket for a public address, else BlockedAddress."""
    family, type_, proto, _, sockaddr = addr_info
    try:
        ip = ipaddress.ip_address(sockaddr[0])
    except ValueError:
        raise BlockedAddress(f"blocked: unparseable address {sockaddr[0]!r}") from None
    if isinstance(ip, ipaddress.IPv6Address) and len(sockaddr) > 3 and sockaddr[3]:
        reason: str | None = f"{ip} is scoped (link-local)"
    else:
        reason = blocked_reason(ip)
    if reason:
        raise BlockedAddress(f"blocked: {reason}")
    return socket.socket(family=family, type=type_, proto=proto)


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects to public addresses only (see the module docstring).

    Accepts TCPConnector's keywords; ``resolver`` lets tests map names to chosen addresses.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["socket_factory"] = public_socket
        super().__init__(**kwargs)


def delivery_session(*, allow_insecure: bool = False, limit: int = 100,
                     **kwargs: Any) -> aiohttp.ClientSession:
    """The ClientSession deliveries go through: guarded unless ``allow_insecure``, no proxies
    from the environment, no cookies kept between receivers."""
    connector_cls = aiohttp.TCPConnector if allow_insecure else GuardedConnector
    connector = connector_cls(limit=limit, **kwargs)
    return aiohttp.ClientSession(connector=connector, trust_env=False,
                                 cookie_jar=aiohttp.DummyCookieJar())


def is_guarded(session: aiohttp.ClientSession) -> bool:
    """True when ``session`` connects through a GuardedConnector."""
    return isinstance(session.connector, GuardedConnector)


def ensure_public(url: str, session: aiohttp.ClientSession, *, allow_insecure: bool) -> None:
    """The checks a channel makes before sending: the URL, and a session that checks the
    address it connects to (a plain session could be talked into 127.0.0.1 by DNS)."""
    if allow_insecure:
        return
    check_endpoint(url)
    if not is_guarded(session):
        raise BlockedEndpoint("delivery session does not check addresses (use delivery_session)")


async def read_capped(resp: aiohttp.ClientResponse, max_bytes: int = MAX_RESPONSE_BYTES) -> bytes:
    """At most ``max_bytes`` of a response body; the connection is dropped when there is more,
    so a receiver answering with 300 MB costs us 64 KB (it was read whole: a 749 MB peak)."""
    chunks: list[bytes] = []
    total = 0
    while total < max_bytes:
        chunk = await resp.content.read(max_bytes - total)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    if not resp.content.at_eof():
        resp.close()  # do not drain the rest into a kept-alive connection
    return b"".join(chunks)


async def post_capped(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str], *,
    timeout: aiohttp.ClientTimeout, allow_insecure: bool = False,
) -> tuple[int, str | None]:
    """POST ``body`` to a public ``url`` without following redirects, read at most
    MAX_RESPONSE_BYTES of the answer; (status, Retry-After). BlockedEndpoint when the target
    or the address it resolves to is not public (a final failure, never retried)."""
    ensure_public(url, session, allow_insecure=allow_insecure)
    try:
        async with session.post(url, data=body, headers=headers, timeout=timeout,
                                allow_redirects=False) as resp:
            await read_capped(resp)
            return resp.status, resp.headers.get("Retry-After")
    except aiohttp.ClientConnectorError as err:
        if isinstance(err.os_error, BlockedAddress):
            raise BlockedEndpoint(str(err.os_error)) from None
        raise
