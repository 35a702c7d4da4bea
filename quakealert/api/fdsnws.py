"""FDSN event web service (fdsnws-event 1.2) over the merged catalogue, at ``/fdsnws/event/1/``.

Public and read-only. Errors use the spec's plain-text body and are returned, not raised, so
the problem-JSON middleware never rewrites them. reference/duty-api.md §1 has the facts.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from xml.sax.saxutils import escape as xml_escape

from aiohttp import web

from quakealert.api.cap import public_base_url
from quakealert.api.keys import SETTINGS, STORE
from quakealert.core.geo import KM_PER_DEG
from quakealert.errors import ConfigError, NotFound
from quakealert.formats.fdsn_out import (
    CATALOG,
    event_id_from_public_id,
    events_to_geojson,
    events_to_quakeml,
    events_to_text,
    served_type,
)
from quakealert.model import Event
from quakealert.store.base import Store

SERVICE_VERSION = "1.2.0"
PREFIX = "/fdsnws/event/1"
DOCS_PATH = f"{PREFIX}/"
DEFAULT_MAX_EVENTS = 20_000  # larger results answer 413: page with limit/offset
THREAD_ABOVE = 300  # write bigger QuakeML documents off the event loop
COMPRESS_ABOVE = 16 * 1024

CACHE_ENTRIES = 64
CACHE_MAX_BODY = 4_000_000


class ResponseCache:
    """Rendered query bodies keyed by the parsed query and the store's change counters.

    Clients such as SeisComP or a dashboard repeat the same query; a hit skips the store and
    the writer. Any write to the database changes the key, so an entry is never stale.
    """

    def __init__(self, max_entries: int = CACHE_ENTRIES, max_body: int = CACHE_MAX_BODY):
        self.max_entries = max_entries
        self.max_body = max_body
        self._entries: OrderedDict[tuple[object, ...], tuple[bytes, str]] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> tuple[bytes, str] | None:
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def put(self, key: tuple[object, ...], value: tuple[bytes, str]) -> None:
        if len(value[0]) > self.max_body:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


MAX_EVENTS = web.AppKey("fdsnws_max_events", int)
CACHE = web.AppKey("fdsnws_cache", ResponseCache)

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Param:
    """One query parameter as the WADL declares it."""

    name: str
    type: str  # WADL xs: type; obspy maps date/double/int/boolean/string
    default: str | None = None
    options: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


PARAMS: tuple[Param, ...] = (
    Param("starttime", "xs:dateTime", aliases=("start",)),
    Param("endtime", "xs:dateTime", aliases=("end",)),
    Param("minlatitude", "xs:double", "-90.0", aliases=("minlat",)),
    Param("maxlatitude", "xs:double", "90.0", aliases=("maxlat",)),
    Param("minlongitude", "xs:double", "-180.0", aliases=("minlon",)),
    Param("maxlongitude", "xs:double", "180.0", aliases=("maxlon",)),
    Param("latitude", "xs:double", "0.0", aliases=("lat",)),
    Param("longitude", "xs:double", "0.0", aliases=("lon",)),
    Param("minradius", "xs:double", "0.0"),
    Param("maxradius", "xs:double", "180.0"),
    Param("mindepth", "xs:double"),
    Param("maxdepth", "xs:double"),
    Param("minmagnitude", "xs:double", aliases=("minmag",)),
    Param("maxmagnitude", "xs:double", aliases=("maxmag",)),
    Param("magnitudetype", "xs:string", aliases=("magtype",)),
    Param("eventtype", "xs:string"),
    Param("includeallorigins", "xs:boolean", "false"),
    Param("includeallmagnitudes", "xs:boolean", "false"),
    Param("includearrivals", "xs:boolean", "false"),
    Param("eventid", "xs:string"),
    Param("limit", "xs:int"),
    Param("offset", "xs:int", "1"),
    Param("orderby", "xs:string", "time", ("time", "time-asc", "magnitude", "magnitude-asc")),
    Param("catalog", "xs:string", options=(CATALOG,)),
    Param("contributor", "xs:string"),
    Param("updatedafter", "xs:dateTime"),
    Param("format", "xs:string", "xml", ("xml", "text", "geojson")),
    Param("nodata", "xs:int", "204", ("204", "404")),
)
_BY_NAME = {p.name: p for p in PARAMS}
_CANONICAL = {alias: p.name for p in PARAMS for alias in (p.name, *p.aliases)}
# With eventid the spec allows only these (SeisComP and IPGP reject the rest).
_WITH_EVENTID = {"eventid", "includeallorigins", "includeallmagnitudes", "includearrivals",
                 "format", "nodata"}
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,6})?)?Z?$")


class FdsnError(Exception):
    """A request the service answers with an FDSN error body (400, 413, ...)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class FdsnQuery:
    """A validated fdsnws-event query; distances in km, depths in km, times UTC."""

    starttime: datetime | None = None
    endtime: datetime | None = None
    box: tuple[float, float, float, float] | None = None
    latitude: float = 0.0
    longitude: float = 0.0
    minradius_km: float | None = None
    maxradius_km: float | None = None
    mindepth_km: float | None = None
    maxdepth_km: float | None = None
    minmagnitude: float | None = None
    maxmagnitude: float | None = None
    magnitudetype: str | None = None
    eventtypes: tuple[str, ...] = ()
    all_origins: bool = False
    all_magnitudes: bool = False
    eventid: str | None = None
    limit: int | None = None
    offset: int = 1
    orderby: str = "time"
    contributor: str | None = None
    updatedafter: datetime | None = None
    format: str = "xml"
    nodata: int = 204


def _time(name: str, raw: str) -> datetime:
    if not _TIME.match(raw):
        raise FdsnError(400, f"{name}: {raw!r} is not a time (YYYY-MM-DD[Thh:mm:ss[.ffffff]])")
    try:
        at = datetime.fromisoformat(raw.removesuffix("Z"))
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except ValueError:
        raise FdsnError(400, f"{name}: {raw!r} is not a valid date") from None
    except OverflowError:
        raise FdsnError(400, f"{name}: {raw!r} is out of range") from None


def _float(name: str, raw: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise FdsnError(400, f"{name}: {raw!r} is not a number") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise FdsnError(400, f"{name}: {raw} is outside [{lo:g}, {hi:g}]")
    return value


XS_INT_MAX = 2**31 - 1  # the WADL says xs:int


def _int(name: str, raw: str, lo: int = 1, hi: int = XS_INT_MAX) -> int:
    if len(raw) > 12:  # int() of a huge string is slow, and SQLite cannot bind the result
        raise FdsnError(400, f"{name}: {raw[:20]!r}... is not an integer in [{lo}, {hi}]")
    try:
        value = int(raw)
    except ValueError:
        raise FdsnError(400, f"{name}: {raw!r} is not an integer") from None
    if value < lo:
        raise FdsnError(400, f"{name}: {value} is less than {lo}")
    if value > hi:
        raise FdsnError(400, f"{name}: {value} is more than {hi}")
    return value


def _bool(name: str, raw: str) -> bool:
    low = raw.lower()
    if low not in ("true", "false"):
        raise FdsnError(400, f"{name}: {raw!r} is not true or false")
    return low == "true"


def _choice(name: str, raw: str) -> str:
    options = _BY_NAME[name].options
    if raw not in options:
        raise FdsnError(400, f"{name}: {raw!r} is not one of {', '.join(options)}")
    return raw


def parse_query(items: Iterable[tuple[str, str]]) -> FdsnQuery:
    """Validate query parameters (names, aliases, values, consistency); raises FdsnError(400)."""
    raw: dict[str, str] = {}
    for key, value in items:
        name = _CANONICAL.get(key)
        if name is None:
            raise FdsnError(400, f"unknown parameter {key!r}")
        if name in raw:
            raise FdsnError(400, f"parameter {name!r} given more than once")
        if not value.strip():
            raise FdsnError(400, f"parameter {key!r} has no value")
        raw[name] = value.strip()
    if "eventid" in raw and set(raw) - _WITH_EVENTID:
        extra = ", ".join(sorted(set(raw) - _WITH_EVENTID))
        raise FdsnError(400, f"eventid cannot be combined with {extra}")

    f: dict[str, object] = {}
    for name in ("starttime", "endtime", "updatedafter"):
        if name in raw:
            f[name] = _time(name, raw[name])
    box_names = ("minlatitude", "maxlatitude", "minlongitude", "maxlongitude")
    if any(n in raw for n in box_names):
        la0 = _float("minlatitude", raw.get("minlatitude", "-90"), -90, 90)
        la1 = _float("maxlatitude", raw.get("maxlatitude", "90"), -90, 90)
        lo0 = _float("minlongitude", raw.get("minlongitude", "-180"), -180, 180)
        lo1 = _float("maxlongitude", raw.get("maxlongitude", "180"), -180, 180)
        if la0 > la1:
            raise FdsnError(400, "minlatitude must not exceed maxlatitude")
        f["box"] = (la0, la1, lo0, lo1)
    f["latitude"] = _float("latitude", raw.get("latitude", "0"), -90, 90)
    f["longitude"] = _float("longitude", raw.get("longitude", "0"), -180, 180)
    for name in ("minradius", "maxradius"):
        if name in raw:
            f[f"{name}_km"] = _float(name, raw[name], 0, 180) * KM_PER_DEG
    for name in ("mindepth", "maxdepth"):
        if name in raw:
            f[f"{name}_km"] = _float(name, raw[name], -20, 7000)
    for name in ("minmagnitude", "maxmagnitude"):
        if name in raw:
            f[name] = _float(name, raw[name], -10, 12)
    for lo, hi in (("starttime", "endtime"), ("minradius_km", "maxradius_km"),
                   ("mindepth_km", "maxdepth_km"), ("minmagnitude", "maxmagnitude")):
        a, b = f.get(lo), f.get(hi)
        if a is not None and b is not None and a > b:  # type: ignore[operator]
            lo_name, hi_name = lo.removesuffix("_km"), hi.removesuffix("_km")
            raise FdsnError(400, f"{lo_name} must not exceed {hi_name}")
    if "magnitudetype" in raw:
        f["magnitudetype"] = raw["magnitudetype"]
    if "eventtype" in raw:
        f["eventtypes"] = tuple(t.strip().lower() for t in raw["eventtype"].split(",") if t.strip())
    if "includeallorigins" in raw:
        f["all_origins"] = _bool("includeallorigins", raw["includeallorigins"])
    if "includeallmagnitudes" in raw:
        f["all_magnitudes"] = _bool("includeallmagnitudes", raw["includeallmagnitudes"])
    if "includearrivals" in raw and _bool("includearrivals", raw["includearrivals"]):
        raise FdsnError(400, "includearrivals=true is not supported: this catalogue has no picks")
    if "eventid" in raw:
        f["eventid"] = event_id_from_public_id(raw["eventid"])
    if "limit" in raw:
        f["limit"] = _int("limit", raw["limit"])
    if "offset" in raw:
        f["offset"] = _int("offset", raw["offset"])
    if "orderby" in raw:
        f["orderby"] = _choice("orderby", raw["orderby"])
    if "catalog" in raw:
        _choice("catalog", raw["catalog"])
    if "contributor" in raw:
        f["contributor"] = raw["contributor"]
    if "format" in raw:
        f["format"] = _choice("format", raw["format"])
    if "nodata" in raw:
        f["nodata"] = int(_choice("nodata", raw["nodata"]))
    return FdsnQuery(**f)  # type: ignore[arg-type]


def _type_matches(patterns: tuple[str, ...], event_type: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def _has_magnitude(e: Event, q: FdsnQuery) -> bool:
    """magnitudetype selects which magnitude the min/max limits test (any contributor's)."""
    want = (q.magnitudetype or "").lower()
    for c in e.contributors:
        if c.status == "deleted" or c.magnitude is None or (c.mag_type or "").lower() != want:
            continue
        if q.minmagnitude is not None and c.magnitude < q.minmagnitude:
            continue
        if q.maxmagnitude is not None and c.magnitude > q.maxmagnitude:
            continue
        return True
    return False


def select_events(store: Store, q: FdsnQuery, max_events: int) -> list[Event]:
    """The events a query selects, in order, after offset/limit; raises FdsnError(413)."""
    if q.eventid is not None:
        try:
            event = store.event(q.eventid)
        except NotFound:
            return []
        return [] if event.status == "deleted" else [event]
    # Incremental sync (updatedafter) must see deletions; they come as "not existing" events.
    with_deleted = q.updatedafter is not None
    by_magtype = q.magnitudetype is not None
    if q.limit is not None and q.limit > max_events:
        raise FdsnError(413, f"limit {q.limit} is over this service's {max_events} events per "
                             "request; page through the result with limit and offset")
    want = (q.limit if q.limit is not None else max_events + 1) + q.offset - 1
    circle = q.minradius_km is not None or q.maxradius_km is not None
    rows = store.events(
        starttime=q.starttime, endtime=q.endtime,
        minmagnitude=None if by_magtype else q.minmagnitude,
        maxmagnitude=None if by_magtype else q.maxmagnitude,
        latitude=q.latitude if circle else None, longitude=q.longitude if circle else None,
        maxradius_km=q.maxradius_km, minradius_km=q.minradius_km, box=q.box,
        mindepth_km=q.mindepth_km, maxdepth_km=q.maxdepth_km, source=q.contributor,
        include_deleted=with_deleted, changed_after=q.updatedafter, order=q.orderby,
        limit=None if (by_magtype or q.eventtypes) else want,
    )
    if by_magtype or q.eventtypes:
        rows = [e for e in rows
                if (not by_magtype or _has_magnitude(e, q))
                and _type_matches(q.eventtypes, served_type(e))]
    rows = rows[q.offset - 1:]
    if q.limit is None and len(rows) > max_events:
        raise FdsnError(413, f"the result has more than {max_events} events; narrow the query "
                             "or page through it with limit and offset")
    return rows if q.limit is None else rows[: q.limit]


_REASONS = {400: "Bad Request", 404: "Not Found", 413: "Request Entity Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}


def error_text(status: int, detail: str, url: str, at: datetime, docs_url: str) -> str:
    """The fdsnws error body: code and reason, detail, usage, request, time, version."""
    reason = _REASONS.get(status, "Error")
    return (
        f"Error {status}: {reason}\n\n{detail}\n\n"
        f"Usage details are available from {docs_url}\n\n"
        f"Request:\n{url}\n\n"
        f"Request Submitted:\n{at.strftime('%Y-%m-%dT%H:%M:%S.%f')}\n\n"
        f"Service version:\n{SERVICE_VERSION}\n"
    )


def build_wadl(base_url: str) -> bytes:
    """The WADL obspy's Client discovers: every supported parameter with style="query"."""
    params = []
    for p in PARAMS:
        attrs = f'name="{p.name}" style="query" type="{p.type}"'
        if p.default is not None:
            attrs += f' default="{p.default}"'
        if p.options:
            opts = "".join(f'<option value="{xml_escape(o)}"/>' for o in p.options)
            params.append(f"          <param {attrs}>{opts}</param>")
        else:
            params.append(f"          <param {attrs}/>")
    simple = "".join(
        f'    <resource path="{m}"><method id="{m}" name="GET"><response status="200">'
        f'<representation mediaType="{t}"/></response></method></resource>\n'
        for m, t in (("version", "text/plain"), ("catalogs", "application/xml"),
                     ("contributors", "application/xml"), ("application.wadl",
                                                           "application/xml")))
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<application xmlns="http://wadl.dev.java.net/2009/02"'
        ' xmlns:xs="http://www.w3.org/2001/XMLSchema">\n'
        f'  <resources base="{xml_escape(base_url)}">\n'
        '    <resource path="query">\n'
        '      <method id="query" name="GET">\n'
        "        <request>\n" + "\n".join(params) + "\n        </request>\n"
        '        <response status="200">'
        '<representation mediaType="application/xml"/>'
        '<representation mediaType="text/plain"/>'
        '<representation mediaType="application/geo+json"/></response>\n'
        '        <response status="204 400 404 413 500 503">'
        '<representation mediaType="text/plain"/></response>\n'
        "      </method>\n"
        "    </resource>\n" + simple +
        "  </resources>\n"
        "</application>\n"
    )
    return text.encode()


def _names_xml(root: str, child: str, names: Iterable[str]) -> bytes:
    items = "".join(f"<{child}>{xml_escape(n)}</{child}>" for n in names)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{items}</{root}>\n'.encode()


def _docs_url(request: web.Request) -> str:
    return public_base_url(request.app[SETTINGS]) + DOCS_PATH


def _error(request: web.Request, status: int, detail: str) -> web.Response:
    body = error_text(status, detail, str(request.url), datetime.now(UTC), _docs_url(request))
    return web.Response(status=status, text=body, content_type="text/plain")


def _render(events: list[Event], q: FdsnQuery) -> tuple[bytes, str]:
    if q.format == "text":
        return events_to_text(events).encode(), "text/plain"
    if q.format == "geojson":
        doc = events_to_geojson(events)
        return json.dumps(doc, ensure_ascii=False).encode(), "application/geo+json"
    return (events_to_quakeml(events, all_origins=q.all_origins,
                              all_magnitudes=q.all_magnitudes), "application/xml")


@routes.get(f"{PREFIX}/query")
async def query(request: web.Request) -> web.StreamResponse:
    """fdsnws-event ``query``: QuakeML (default), text or GeoJSON; 204 when nothing matches."""
    store, cache = request.app[STORE], request.app[CACHE]
    try:
        q = parse_query(request.query.items())
        version = store.version()
        key = (q, version)
        hit = cache.get(key) if version is not None else None
        if hit is None:
            events = select_events(store, q, request.app[MAX_EVENTS])
    except FdsnError as err:
        return _error(request, err.status, err.detail)
    if hit is not None:
        body, content_type = hit
    elif not events:
        body, content_type = b"", ""
    elif q.format == "xml" and len(events) > THREAD_ABOVE:
        body, content_type = await asyncio.to_thread(_render, events, q)
    else:
        body, content_type = _render(events, q)
    if hit is None and version is not None:
        cache.put(key, (body, content_type))
    if not body:
        if q.nodata == 404:
            return _error(request, 404, "No data matches the selection")
        return web.Response(status=204)
    resp = web.Response(body=body, content_type=content_type, charset="utf-8")
    if len(body) > COMPRESS_ABOVE:
        resp.enable_compression()
    return resp


@routes.get(f"{PREFIX}/version")
async def version(request: web.Request) -> web.Response:
    """The implemented spec version, as text."""
    return web.Response(text=SERVICE_VERSION, content_type="text/plain")


@routes.get(f"{PREFIX}/application.wadl")
async def wadl(request: web.Request) -> web.Response:
    """The WADL describing ``query`` and the other methods."""
    base = public_base_url(request.app[SETTINGS]) + DOCS_PATH  # not the Host header
    return web.Response(body=build_wadl(base), content_type="application/xml")


@routes.get(f"{PREFIX}/catalogs")
async def catalogs(request: web.Request) -> web.Response:
    """The catalogues served: only the merged one."""
    return web.Response(body=_names_xml("Catalogs", "Catalog", [CATALOG]),
                        content_type="application/xml")


@routes.get(f"{PREFIX}/contributors")
async def contributors(request: web.Request) -> web.Response:
    """The contributors: every source that has reports in the store."""
    return web.Response(body=_names_xml("Contributors", "Contributor",
                                        request.app[STORE].sources()),
                        content_type="application/xml")


@routes.get(PREFIX)
@routes.get(DOCS_PATH)
async def index(request: web.Request) -> web.Response:
    """A short HTML page naming the methods and parameters."""
    names = ", ".join(
        p.name + (f" ({'/'.join(p.aliases)})" if p.aliases else "") for p in PARAMS)
    links = "".join(f'<li><a href="{DOCS_PATH}{m}">{m}</a></li>'
                    for m in ("query", "version", "application.wadl", "catalogs",
                              "contributors"))
    html = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<title>quakealert fdsnws-event</title>"
        f"<h1>FDSN event service {SERVICE_VERSION}</h1>"
        "<p>The merged quakealert catalogue, as fdsnws-event 1.2.</p>"
        f"<ul>{links}</ul><p>query parameters: {escape(names)}</p>"
        "<p>format: xml (QuakeML 1.2, depth in m), text (depth in km), geojson. "
        "No match: 204 (nodata=404 for 404).</p></html>"
    )
    return web.Response(text=html, content_type="text/html")


def setup(app: web.Application) -> None:
    """Read the optional [fdsnws] settings section (``max_events``)."""
    section = app[SETTINGS].section("fdsnws")
    unknown = set(section) - {"max_events"}
    if unknown:
        raise ConfigError(f"[fdsnws] unknown keys: {', '.join(sorted(unknown))}")
    max_events = section.get("max_events", DEFAULT_MAX_EVENTS)
    if not isinstance(max_events, int) or max_events < 1:
        raise ConfigError("[fdsnws] max_events must be a positive integer")
    app[MAX_EVENTS] = max_events
    app[CACHE] = ResponseCache()

