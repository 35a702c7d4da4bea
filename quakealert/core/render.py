"""Render notices in zh, bo and en from the templates and glossaries in messages/.

Templates hold structure only; wording lives in messages/glossary/<lang>.toml; this module formats
numbers, times and place names per language. It is the only module that converts to local time.
Tibetan entries not yet confirmed by a source are used only when asked (RenderOptions.bo_unverified);
otherwise the Chinese entry stands in, so nothing machine-guessed reaches residents (messages.md §4, §9).
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal

import jinja2

from quakealert.core.intensity import epicentral_km, roman
from quakealert.model import Message

# messages/ sits at the top of the repository and ships inside the package (pyproject)
MESSAGES_DIR: Traversable = files("quakealert") / "messages"
BEIJING = timezone(timedelta(hours=8), "UTC+8")
LANGS = ("zh", "bo", "en")
KINDS = (
    "quick_report",
    "official_report",
    "felt_guidance",
    "swarm_advisory",
    "strong_guidance",
    "update",
    "cancel",
    "test",
)
# Guidance that follows a report inside one combined notice (policy.py sends them together).
GUIDANCE_KINDS = ("felt_guidance", "strong_guidance")
# Languages whose missing or unverified entries fall back to another language's entry.
FALLBACK = {"bo": "zh"}
TIBETAN_DIGITS = str.maketrans("0123456789", "༠༡༢༣༤༥༦༧༨༩")


# ---------------------------------------------------------------- catalogue (load time only)


@dataclass(frozen=True, slots=True)
class Entry:
    """One glossary entry: wording (may hold {placeholders}), its status and source."""

    text: str
    status: Literal["sourced", "unverified", "missing"] = "sourced"
    source: str = ""


@dataclass(frozen=True, slots=True)
class Place:
    """A named place (prefecture, district or county seat) in zh, bo and en."""

    key: str
    kind: str
    zh: str
    bo: str
    bo_status: str
    en: str
    lat: float
    lon: float
    parent: str | None = None
    zh_full: str | None = None


@dataclass(frozen=True)
class MessageCatalog:
    """Templates, glossaries and places, read once from messages/."""

    env: jinja2.Environment
    glossary: Mapping[str, Mapping[str, Entry]]
    places: Mapping[str, Place]


def load_catalog(directory: Traversable = MESSAGES_DIR) -> MessageCatalog:
    """Read templates, glossaries and places from a messages/ directory (or package resource)."""

    def template(name: str) -> str | None:
        resource = directory / "templates" / name
        return resource.read_text(encoding="utf-8") if resource.is_file() else None

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(template),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text; CAP and JSON builders escape for their own formats
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    glossary: dict[str, dict[str, Entry]] = {}
    for lang in LANGS:
        with (directory / "glossary" / f"{lang}.toml").open("rb") as f:
            raw = tomllib.load(f)
        glossary[lang] = {
            k: Entry(text=v["text"], status=v.get("status", "sourced"), source=v.get("source", ""))
            for k, v in raw.items()
        }
    with (directory / "places.toml").open("rb") as f:
        raw_places = tomllib.load(f)
    places = {
        k: Place(
            key=k,
            kind=v["kind"],
            zh=v["zh"],
            bo=v["bo"],
            bo_status=v["bo_status"],
            en=v["en"],
            lat=float(v["lat"]),
            lon=float(v["lon"]),
            parent=v.get("parent"),
            zh_full=v.get("zh_full"),
        )
        for k, v in raw_places.items()
    }
    return MessageCatalog(env=env, glossary=glossary, places=places)


@functools.cache
def default_catalog() -> MessageCatalog:
    """The catalogue bundled in the repository's messages/ directory (read once)."""
    return load_catalog()


def nearest_place(
    lat: float,
    lon: float,
    *,
    kinds: Iterable[str] = ("county", "district"),
    catalog: MessageCatalog | None = None,
) -> tuple[str, float]:
    """Key of the nearest place of the given kinds, and its distance in km."""
    cat = catalog or default_catalog()
    wanted = set(kinds)
    best = min(
        (p for p in cat.places.values() if p.kind in wanted),
        key=lambda p: epicentral_km(lat, lon, p.lat, p.lon),
    )
    return best.key, epicentral_km(lat, lon, best.lat, best.lon)


# Name an epicentre by the nearest county/district seat within this distance (county seats in
# Tibet lie up to ~60 km from parts of their county); beyond it, the agency's own place string.
PLACE_NAME_KM = 80.0


def epicentre_place_key(lat: float, lon: float, catalog: MessageCatalog | None = None
                        ) -> str | None:
    """The places.toml key naming an epicentre, or None when no seat is within PLACE_NAME_KM."""
    try:
        key, km = nearest_place(lat, lon, catalog=catalog)
    except ValueError:  # no places at all
        return None
    return key if km <= PLACE_NAME_KM else None


def agency_place(place: str | None) -> str | None:
    """The agency's place string without the replay marker (notices carry `exercise` instead)."""
    if place is None:
        return None
    return place.removeprefix("[REPLAY]").strip() or None


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class RegionalContext:
    """CENC robot-report context line: M >= min within radius over the past years."""

    radius_km: float
    years: int
    min_magnitude: float
    count: int  # this event included (CENC counts it: 本次地震是其中最大的一次)
    largest_magnitude: float
    is_largest: bool
    # the largest quake before this one (此前最大为2024年10月31日4.1级); None when none was
    largest_before_magnitude: float | None = None
    largest_before_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OfficialStatement:
    """An official outlook or type statement, quoted verbatim with its source."""

    text: str
    source: str  # glossary key suffix: "tibet_ea", "cenc"
    lang: str = "zh"  # the language it was published in


@dataclass(frozen=True, slots=True)
class NotableEvent:
    """One event listed in a swarm advisory."""

    origin_at: datetime
    magnitude: float


@dataclass(frozen=True, slots=True)
class RecentActivity:
    """Activity in the recent window, for the daily swarm summary."""

    window_h: float
    count: int
    largest_magnitude: float


@dataclass(frozen=True, slots=True)
class PreviousNotice:
    """What an earlier notice said, for updates and cancels."""

    notice_id: str
    sent_at: datetime
    titles: tuple[tuple[str, str], ...]  # (lang, title)
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float
    place_key: str | None = None
    place_text: str | None = None

    def title(self, lang: str) -> str:
        """The earlier title in one language (falling back to the first one)."""
        return dict(self.titles).get(lang, self.titles[0][1] if self.titles else "")


@dataclass(frozen=True, slots=True)
class NoticeContext:
    """Everything a notice may say about one event of one sequence to one kind of recipient."""

    event_id: str
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float
    mag_type: str | None = None
    status: Literal["automatic", "reviewed"] = "reviewed"
    source: str = "cenc"  # whose parameters these are (glossary "source.<source>")
    place_key: str | None = None  # messages/places.toml key of the nearest county/district
    place_text: str | None = None  # agency place string, used when place_key is None
    recipient_place_key: str | None = None
    recipient_degree: int | None = None  # predicted CSIS degree (mean + k·σ) at the recipient
    sequence_id: str | None = None
    sequence_type: str | None = None  # undetermined | swarm | mainshock_aftershock | ...
    type_official: bool = (
        False  # True only when an authority said so; ours is "automatic, provisional"
    )
    type_source: str | None = None  # glossary source key of the official type statement
    sequence_started_at: datetime | None = None
    sequence_count: int = 0
    notable: tuple[NotableEvent, ...] = ()
    recent: RecentActivity | None = None
    summary: bool = False  # the daily swarm summary rather than the first advisory
    context: RegionalContext | None = None
    outlook: OfficialStatement | None = None
    forecast: Mapping[str, str] | None = None  # our own estimate per lang; shown only if allowed
    previous: PreviousNotice | None = None
    cancel_reason: Literal["deleted", "error"] = "deleted"
    exercise: bool = False
    url: str | None = None


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Per-deployment choices about wording."""

    tibetan_digits: bool = True  # ༠-༩ in bo, as the CENC bo text writes them (messages.md §4.4)
    bo_unverified: Literal["zh", "candidate"] = (
        "zh"  # "candidate": show unverified Tibetan (review)
    )
    hotline: str | None = "12322"  # messages.md §2.2; [U] availability in TAR (§9 item 5)
    reference_place: str | None = "lhasa"  # "distance to Lhasa" line (messages.md §8 K2)
    max_reference_km: float = 500.0
    public_forecast: bool = (
        False  # in China only the authorities publish forecasts (messages.md §0.1)
    )
    quote_outlook: bool = True
    winter_months: tuple[int, ...] = (11, 12, 1, 2, 3)  # Beijing-time months for the cold block
    high_altitude: bool = True  # Lhasa region: the altitude line in K5 (messages.md §2.3)


# ---------------------------------------------------------------- formatting helpers


def quakes_en(n: int) -> str:
    """"1 earthquake", "3 earthquakes" (English sentences only; zh and bo need no plural)."""
    return f"{n} earthquake" if n == 1 else f"{n} earthquakes"


def to_tibetan_digits(text: str) -> str:
    """ASCII digits as Tibetan digits; the decimal point stays an ASCII full stop (messages.md §4.4)."""
    return text.translate(TIBETAN_DIGITS)


def fmt_magnitude(m: float) -> str:
    """Magnitude to one decimal, as agencies publish it."""
    return f"{m:.1f}"


def fmt_depth(d: float | None) -> str:
    """Depth in whole km unless it has a fraction."""
    if d is None:
        return "?"
    return f"{d:.0f}" if float(d).is_integer() else f"{d:.1f}"


def fmt_km(km: float) -> str:
    """A rounded distance: whole km (CENC says 约110公里)."""
    return str(math.floor(km + 0.5))


def local(at: datetime) -> datetime:
    """An aware UTC instant in Beijing time (UTC+8)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: instants must be aware UTC")
    return at.astimezone(BEIJING)


def fmt_time(at: datetime, lang: str, g: _Glossary) -> str:
    """Date and time in Beijing time, worded per language."""
    t = local(at)
    if lang == "zh":
        return f"{g.term('beijing_time')}{t.month}月{t.day}日{t.hour}时{t.minute}分"
    if lang == "bo":
        period_key, hour = _bo_period(t.hour)
        period = g.term(period_key, fallback=False) if period_key else None
        if period is None:  # no sourced day-part word: 24-hour clock, no period
            clock = f"ཆུ་ཚོད་{t.hour}"
        else:
            clock = f"{period}་ཆུ་ཚོད་{hour}"
        date = f"ཟླ་{t.month}པའི་ཚེས་{t.day}ཉིན་གྱི་{clock}དང་སྐར་མ་{t.minute}"
        label = g.term("beijing_time", fallback=False)
        return f"{label}་{date}" if label else date
    return f"{t:%H:%M} on {t.day} {t:%b %Y}, Beijing time (UTC+8)"


def fmt_date(at: datetime, lang: str) -> str:
    """Date only, in Beijing time."""
    t = local(at)
    if lang == "zh":
        return f"{t.month}月{t.day}日"
    if lang == "bo":
        return f"ཟླ་{t.month}པའི་ཚེས་{t.day}ཉིན"
    return f"{t.day} {t:%b}"


def _bo_period(hour: int) -> tuple[str | None, int]:
    # CENC wrote མཚན་དཀྱིལ་ཆུ་ཚོད་༤ for 04:19 (S1): a 12-hour clock with a day-part word [review].
    h12 = hour % 12 or 12
    if hour < 6:
        return "period.night", h12
    if hour < 12:
        return "period.morning", h12
    if hour < 18:
        return "period.afternoon", h12
    return "period.evening", h12


_BO_LOCATIVE = {
    "ག": "ཏུ",
    "བ": "ཏུ",
    "ས": "སུ",
    "ད": "དུ",
    "ང": "དུ",
    "ན": "དུ",
    "མ": "དུ",
    "ར": "དུ",
    "ལ": "དུ",
}


def bo_locative(name: str) -> str:
    """A Tibetan place name with the locative particle (la don), e.g. ...རྫོང་དུ as in the CENC text."""
    stripped = name.rstrip("་།")
    particle = _BO_LOCATIVE.get(stripped[-1:], "")
    if not particle:  # ends in a vowel sign or འ: the particle ར fuses with the syllable
        return f"{stripped}ར་"
    return f"{stripped}་{particle}་"


class _Glossary:
    """Glossary lookups for one language with the bo -> zh fallback."""

    def __init__(self, lang: str, catalog: MessageCatalog, options: RenderOptions):
        self.lang = lang
        self.catalog = catalog
        self.options = options

    def entry(self, key: str) -> tuple[str, Entry] | None:
        """(language actually used, entry) for a key, honouring statuses and fallback."""
        own = self.catalog.glossary[self.lang].get(key)
        if own is not None and self._usable(own):
            return self.lang, own
        fb = FALLBACK.get(self.lang)
        if fb is not None:
            other = self.catalog.glossary[fb].get(key)
            if other is not None and other.text:
                return fb, other
        return None

    def _usable(self, e: Entry) -> bool:
        if not e.text or e.status == "missing":
            return False
        return e.status == "sourced" or self.options.bo_unverified == "candidate"

    def term(self, key: str, *, fallback: bool = True) -> str | None:
        """A fixed term; None if neither the language nor (when allowed) its fallback has it."""
        own = self.catalog.glossary[self.lang].get(key)
        if own is not None and self._usable(own):
            return own.text
        if not fallback:
            return None
        found = self.entry(key)
        return found[1].text if found else None

    def first(self, *keys: str) -> str:
        """The first key this language has (before falling back), else the fallback's."""
        for k in keys:
            own = self.catalog.glossary[self.lang].get(k)
            if own is not None and self._usable(own):
                return k
        for k in keys:
            if self.entry(k) is not None:
                return k
        raise KeyError(keys[0])


class _Sentences(Mapping[str, str]):
    """Glossary sentences formatted with the values of the language they come from."""

    def __init__(
        self,
        glossaries: Mapping[str, _Glossary],
        values: Mapping[str, Mapping[str, Any]],
        lang: str,
    ):
        self.glossaries = glossaries
        self._by_lang = values
        self.lang = lang

    def __getitem__(self, key: str) -> str:
        found = self.glossaries[self.lang].entry(key)
        if found is None:
            raise KeyError(key)
        used_lang, e = found
        return e.text.format_map(self._by_lang[used_lang])

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.glossaries[self.lang].catalog.glossary[self.lang])

    def __len__(self) -> int:
        return len(self.glossaries[self.lang].catalog.glossary[self.lang])


# ---------------------------------------------------------------- values


def place_names(
    key: str | None,
    text: str | None,
    lat: float,
    lon: float,
    lang: str,
    cat: MessageCatalog,
    opts: RenderOptions,
) -> tuple[str, str]:
    """(full, short) name of a place in one language."""
    if key is None or key not in cat.places:
        fallback = text or f"{lat:.2f}°N {lon:.2f}°E"
        return fallback, fallback
    p = cat.places[key]
    parent = cat.places.get(p.parent) if p.parent else None
    if lang == "zh":
        if parent is None:
            return p.zh_full or p.zh, p.zh
        return f"{parent.zh_full or parent.zh}{p.zh}", f"{parent.zh}{p.zh}"
    if lang == "bo":

        def bo(pl: Place) -> str:
            ok = pl.bo_status == "sourced" or opts.bo_unverified == "candidate"
            return pl.bo if ok else pl.zh

        region = "བོད་ལྗོངས"  # TAR short form, EQ in the CENC text (tibetan-terms.md §4.1)
        if parent is None:
            return f"{region}་{bo(p)}", bo(p)
        return f"{region}་{bo(parent)}་{bo(p)}", f"{bo(parent)}་{bo(p)}"
    if parent is None:
        return f"{p.en}, Tibet", p.en
    return f"{p.en}, {parent.en}, Tibet", f"{p.en}, {parent.en}"


def _values(
    kinds: tuple[str, ...],
    ctx: NoticeContext,
    lang: str,
    g: _Glossary,
    cat: MessageCatalog,
    opts: RenderOptions,
    now: datetime,
) -> dict[str, Any]:
    """Formatted slot values for the glossary sentences of one language."""
    num = to_tibetan_digits if (lang == "bo" and opts.tibetan_digits) else (lambda s: s)
    full, short = place_names(
        ctx.place_key, ctx.place_text, ctx.latitude, ctx.longitude, lang, cat, opts
    )
    v: dict[str, Any] = {
        "magnitude": num(fmt_magnitude(ctx.magnitude)),
        "depth": num(fmt_depth(ctx.depth_km)),
        "lat": num(f"{ctx.latitude:.2f}"),
        "lon": num(f"{ctx.longitude:.2f}"),
        "time": num(fmt_time(ctx.origin_at, lang, g)),
        "place_full": full,
        "place_short": short,
        "place_full_loc": bo_locative(full) if lang == "bo" else full,
        "place_short_loc": bo_locative(short) if lang == "bo" else short,
        "source": g.term(f"source.{ctx.source}") or g.term("source.other"),
        "auto": g.term("auto_provisional") or "",
        "hotline": opts.hotline or "",
        "url": ctx.url or "",
        "sent_time": num(fmt_time(now, lang, g)),
    }
    auto = ctx.status == "automatic"
    attrib_key = g.first(
        f"attrib.{'auto' if auto else 'official'}.{ctx.source}",
        f"attrib.{'auto' if auto else 'official'}",
    )
    found = g.entry(attrib_key)
    v["attrib"] = found[1].text.format(source=v["source"]) if found else ""
    if opts.reference_place and opts.reference_place in cat.places:
        ref = cat.places[opts.reference_place]
        km = epicentral_km(ctx.latitude, ctx.longitude, ref.lat, ref.lon)
        v["ref_place"] = place_names(ref.key, None, ref.lat, ref.lon, lang, cat, opts)[1]
        v["distance"] = num(fmt_km(km))
        v["_has_distance"] = km <= opts.max_reference_km and ctx.place_key != ref.key
    if ctx.context is not None:
        c = ctx.context
        v.update(
            radius=num(fmt_km(c.radius_km)),
            years=num(str(c.years)),
            min_magnitude=num(f"{c.min_magnitude:g}"),
            count=num(str(c.count)),
            count_quakes=quakes_en(c.count),
            largest=num(fmt_magnitude(c.largest_magnitude)),
        )
    if ctx.recipient_degree is not None:
        d = ctx.recipient_degree
        v.update(
            roman=roman(d, lang),
            label=g.term(f"intensity.{d}.label") or "",
            felt=g.term(f"intensity.{d}.felt") or "",
            recipient_place=(
                place_names(ctx.recipient_place_key, None, 0, 0, lang, cat, opts)[1]
                if ctx.recipient_place_key in cat.places
                else g.term("term.here")
            ),
        )
    if ctx.sequence_type is not None:
        v["type"] = g.term(f"type.{ctx.sequence_type}") or ctx.sequence_type
        v["type_source"] = g.term(f"source.{ctx.type_source or 'other'}") or ""
    if ctx.sequence_started_at is not None:
        v["start"] = num(fmt_date(ctx.sequence_started_at, lang))
    v["seq_count"] = num(str(ctx.sequence_count))
    v["seq_quakes"] = quakes_en(ctx.sequence_count)
    notable_entry = g.entry("notable")
    if notable_entry is not None and ctx.notable:
        used, e = notable_entry
        sep = (g.entry("list.sep") or (used, Entry(", ")))[1].text
        used_num = to_tibetan_digits if (used == "bo" and opts.tibetan_digits) else (lambda s: s)
        items = []
        for ev in ctx.notable:
            t = local(ev.origin_at)
            items.append(
                e.text.format(
                    date=used_num(fmt_date(ev.origin_at, used)),
                    month=used_num(str(t.month)),
                    day=used_num(str(t.day)),
                    magnitude=used_num(fmt_magnitude(ev.magnitude)),
                )
            )
        v["events"] = sep.join(items)
    if ctx.recent is not None:
        v.update(
            recent_hours=num(f"{ctx.recent.window_h:g}"),
            recent_count=num(str(ctx.recent.count)),
            recent_quakes=quakes_en(ctx.recent.count),
            recent_largest=num(fmt_magnitude(ctx.recent.largest_magnitude)),
        )
    if ctx.outlook is not None:
        v["outlook_source"] = g.term(f"source.{ctx.outlook.source}") or ""
        v["outlook_text"] = ctx.outlook.text
    if ctx.forecast is not None:
        v["forecast_label"] = g.term("s.forecast_label") or ""
        v["forecast_text"] = ctx.forecast.get(lang) or ctx.forecast.get(
            FALLBACK.get(lang, lang), ""
        )
    if ctx.previous is not None:
        p = ctx.previous
        _, pshort = place_names(p.place_key, p.place_text, p.latitude, p.longitude, lang, cat, opts)
        v.update(
            prev_time=num(fmt_time(p.sent_at, lang, g)),
            prev_place=pshort,
            prev_magnitude=num(fmt_magnitude(p.magnitude)),
            prev_title=p.title(lang),
            how=g.term("how.auto" if auto else "how.official") or "",
        )
        v["changes"] = _changes(ctx, p, lang, g, num)
    return v


def _changes(ctx: NoticeContext, p: PreviousNotice, lang: str, g: _Glossary, num: Any) -> str:
    """What changed between an earlier notice and now, worded per language."""
    parts: list[str] = []

    def add(key: str, **kw: str) -> None:
        found = g.entry(key)
        if found is not None:
            parts.append(found[1].text.format(**kw))

    if fmt_magnitude(p.magnitude) != fmt_magnitude(ctx.magnitude):
        add(
            "change.magnitude",
            old=num(fmt_magnitude(p.magnitude)),
            new=num(fmt_magnitude(ctx.magnitude)),
        )
    moved = epicentral_km(p.latitude, p.longitude, ctx.latitude, ctx.longitude)
    if moved >= 1.0:
        add("change.location", km=num(fmt_km(moved)))
    if local(p.origin_at).replace(second=0, microsecond=0) != local(ctx.origin_at).replace(
        second=0, microsecond=0
    ):
        add("change.time", time=num(fmt_time(ctx.origin_at, lang, g)))
    if fmt_depth(p.depth_km) != fmt_depth(ctx.depth_km):
        add("change.depth", old=num(fmt_depth(p.depth_km)), new=num(fmt_depth(ctx.depth_km)))
    sep_entry = g.entry("clause.sep")
    return (sep_entry[1].text if sep_entry else "; ").join(parts)


def _flags(
    kind: str,
    ctx: NoticeContext,
    values: Mapping[str, Any],
    opts: RenderOptions,
    *,
    after_report: bool,
) -> dict[str, Any]:
    """Template switches (no arithmetic in templates: every decision is made here)."""
    month = local(ctx.origin_at).month
    return {
        "automatic": ctx.status == "automatic",
        "has_distance": bool(values.get("_has_distance")),
        "has_context": ctx.context is not None,
        "context_key": "s.context_this_largest"
        if ctx.context is not None and ctx.context.is_largest
        else "s.context_other_largest",
        "has_recipient": ctx.recipient_degree is not None,
        "has_type": ctx.sequence_type is not None,
        "type": ctx.sequence_type,
        "type_official": ctx.type_official,
        "after_report": after_report,
        "hotline": bool(opts.hotline),
        "winter": month in opts.winter_months,
        "high_altitude": opts.high_altitude,
        "has_outlook": ctx.outlook is not None and opts.quote_outlook,
        "has_forecast": ctx.forecast is not None and opts.public_forecast,
        "has_events": bool(ctx.notable) and ctx.sequence_started_at is not None,
        "has_recent": ctx.recent is not None,
        "summary": ctx.summary,
        "has_changes": bool(values.get("changes")),
        "cancel_reason_key": "s.cancel_deleted"
        if ctx.cancel_reason == "deleted"
        else "s.cancel_error",
        "exercise": ctx.exercise,
        "url": bool(ctx.url),
    }


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def render_notice(
    kind: str | tuple[str, ...],
    ctx: NoticeContext,
    langs: Iterable[str],
    *,
    now: datetime,
    options: RenderOptions | None = None,
    catalog: MessageCatalog | None = None,
) -> tuple[Message, ...]:
    """One Message per language; a tuple of kinds renders one combined notice (title of the first)."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"unknown message kind(s): {unknown or kinds}")
    opts = options or RenderOptions()
    cat = catalog or default_catalog()
    wanted = tuple(langs)
    bad = [lang for lang in wanted if lang not in LANGS]
    if bad:
        raise ValueError(f"unsupported language(s): {bad}")
    # values for every language: a bo sentence falling back to zh is formatted with zh values
    needed = tuple(dict.fromkeys(wanted + tuple(FALLBACK.get(lang, lang) for lang in wanted)))
    glossaries = {lang: _Glossary(lang, cat, opts) for lang in needed}
    values = {lang: _values(kinds, ctx, lang, glossaries[lang], cat, opts, now) for lang in needed}
    out: list[Message] = []
    for lang in wanted:
        s = _Sentences(glossaries, values, lang)
        title = ""
        body: list[str] = []
        for i, k in enumerate(kinds):
            after_report = i > 0 and kinds[0] in ("quick_report", "official_report")
            tpl = cat.env.get_template(f"{k}.j2")
            tctx = tpl.new_context(
                {"s": s, "v": _flags(k, ctx, values[lang], opts, after_report=after_report)}
            )
            if i == 0:
                title = "".join(tpl.blocks["title"](tctx)).strip()
            body += _lines("".join(tpl.blocks["body"](tctx)))
        footer = cat.env.get_template("_footer.j2").render(
            s=s, v=_flags(kinds[0], ctx, values[lang], opts, after_report=False)
        )
        body += _lines(footer)
        if ctx.exercise:
            title = s["title.exercise_prefix"] + title
        out.append(Message(lang=lang, title=title, body="\n".join(body)))  # type: ignore[arg-type]
    return tuple(out)


def unverified_terms(catalog: MessageCatalog | None = None) -> dict[str, str]:
    """bo glossary keys that are not sourced, with their status (for docs/tibetan-review.md)."""
    cat = catalog or default_catalog()
    return {k: e.status for k, e in cat.glossary["bo"].items() if e.status != "sourced"}


# ---------------------------------------------------------------- length budgets

# GSM 03.38 basic character set; the extension table characters cost two septets.
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€\f")
# RFC 8291 aes128gcm: 86-octet header (salt 16, rs 4, idlen 1, keyid 65) + 16-octet tag + 1 padding
# delimiter inside the 4096 octets push services must accept (RFC 8030 §7.2): 3993 octets of plaintext.
WEBPUSH_MAX_PLAINTEXT = 4096 - 86 - 16 - 1


@dataclass(frozen=True, slots=True)
class Budget:
    """Whether a message fits a channel: size in the channel's unit, SMS segments, reason."""

    ok: bool
    chars: int
    segments: int
    reason: str
    encoding: str = ""


def sms_text(message: Message) -> str:
    """The text an SMS gateway sends: title, newline, body."""
    return f"{message.title}\n{message.body}"


def webpush_payload(message: Message, **extra: Any) -> bytes:
    """The JSON a Web Push notification carries (title, body, lang, plus extra fields)."""
    data = {"title": message.title, "body": message.body, "lang": message.lang, **extra}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sms_segments(text: str) -> tuple[str, int, int]:
    """(encoding, units, segments) of an SMS: GSM-7 160/153 septets, else UCS-2 70/67 UTF-16 units."""
    if all(c in _GSM7 or c in _GSM7_EXT for c in text):
        units = sum(2 if c in _GSM7_EXT else 1 for c in text)
        single, multi, enc = 160, 153, "gsm7"
    else:
        # UTF-16 code units: characters outside the BMP take two (messages.md §4.5)
        units = len(text.encode("utf-16-le")) // 2
        single, multi, enc = 70, 67, "ucs2"
    return enc, units, 1 if units <= single else math.ceil(units / multi)


def check_budget(
    message: Message,
    channel: Literal["sms", "webpush"],
    *,
    max_sms_segments: int = 10,
    webpush_reserve_bytes: int = 256,
) -> Budget:
    """Check a message against a channel's length budget (SMS segments, Web Push payload bytes)."""
    if channel == "sms":
        enc, units, segments = sms_segments(sms_text(message))
        ok = segments <= max_sms_segments
        reason = f"{units} {enc} units in {segments} segment(s)" + (
            "" if ok else f" > {max_sms_segments} allowed"
        )
        return Budget(ok=ok, chars=units, segments=segments, reason=reason, encoding=enc)
    if channel == "webpush":
        size = len(webpush_payload(message)) + webpush_reserve_bytes
        ok = size <= WEBPUSH_MAX_PLAINTEXT
        reason = f"{size} bytes incl. {webpush_reserve_bytes} reserved" + (
            "" if ok else f" > {WEBPUSH_MAX_PLAINTEXT}"
        )
        return Budget(ok=ok, chars=size, segments=1, reason=reason, encoding="utf-8")
    raise ValueError(f"unknown channel {channel!r}")
