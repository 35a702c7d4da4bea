"""Render notices in zh, bo and en from the templates and glossaries in messages/.

Templates hold structure only; wording lives in messages/glossary/<lang>.toml; this module formats
numbers, times and place names per language. It is the only module that converts to local time.

Tibetan is Tibetan: a bo message is built from bo entries only, never from another language.
Every bo entry is ``sourced`` (quoted) or ``composed`` (built from attested terms, awaiting review);
``RenderOptions.bo_composed = "hold"`` keeps composed sentences from residents, and the bo text then
carries the sourced sentences plus one Tibetan line pointing to the full notice (issue 8 §3).

Each Message also carries a phone-sized push title and body (issue 8 §4): the shaking expected
where the resident is and one action, within PUSH_LIMITS; the full notice is at ``/n/{id}``.
"""

from __future__ import annotations

import functools
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Literal

import jinja2

from quakealert.core.gazetteer import Gazetteer, load_gazetteer
from quakealert.core.gazetteer import Place as GazPlace
from quakealert.core.intensity import FELT_DEGREE, STRONG_DEGREE, epicentral_km, roman
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
STATUSES = ("sourced", "composed")
TIBETAN_DIGITS = str.maketrans("0123456789", "༠༡༢༣༤༥༦༧༨༩")
# (title, body) character limits of a push per language: DESIGN.md "Residents, notices, delivery"
# and issue 8 §4 (a zh title must fit one notification line; bo needs about 2.5x the characters).
PUSH_LIMITS: Mapping[str, tuple[int, int]] = {"zh": (30, 120), "bo": (80, 400), "en": (80, 300)}
ELLIPSIS = "…"
# Han ideographs, CJK symbols/punctuation (【】“”《》、。), full-width forms and Bopomofo: none of
# these may appear in a bo text (issue 8 §3).
CJK = re.compile(r"[\u2e80-\u2fff\u3000-\u303f\u3100-\u312f\u3200-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")


def has_cjk(text: str) -> bool:
    """Whether a text contains any Chinese character or CJK punctuation."""
    return CJK.search(text) is not None


# ---------------------------------------------------------------- catalogue (load time only)


@dataclass(frozen=True, slots=True)
class Entry:
    """One glossary entry: wording (may hold {placeholders}), its provenance and sources."""

    text: str
    status: Literal["sourced", "composed"] = "sourced"
    source: str = ""
    terms: tuple[str, ...] = ()  # composed: each term or frame with its source


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
    """Templates, glossaries, residents' places and the gazetteer, read once from messages/."""

    env: jinja2.Environment
    glossary: Mapping[str, Mapping[str, Entry]]
    places: Mapping[str, Place]
    gazetteer: Gazetteer | None = None


class CatalogError(ValueError):
    """messages/ holds an entry the renderer must not use (unknown status, Chinese under bo)."""


def parse_glossary(lang: str, raw: Mapping[str, Any]) -> dict[str, Entry]:
    """Glossary entries of one language, checked: a known status, and bo text that is Tibetan."""
    out: dict[str, Entry] = {}
    for key, v in raw.items():
        status = v.get("status", "sourced")
        if status not in STATUSES:
            raise CatalogError(f"{lang}.toml [{key}]: status {status!r} is not one of {STATUSES}")
        text = v["text"]
        if lang == "bo" and (not text.strip() or has_cjk(text)):
            raise CatalogError(f"bo.toml [{key}]: bo text must be Tibetan, got {text!r}")
        if status == "composed" and not v.get("terms"):
            raise CatalogError(f"{lang}.toml [{key}]: a composed entry lists the sources of its terms")
        out[key] = Entry(text=text, status=status, source=v.get("source", ""),
                         terms=tuple(v.get("terms", ())))
    return out


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
            glossary[lang] = parse_glossary(lang, tomllib.load(f))
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
    gaz_path = directory / "gazetteer.csv"
    gazetteer = (load_gazetteer(gaz_path.read_text(encoding="utf-8"))
                 if gaz_path.is_file() else None)
    return MessageCatalog(env=env, glossary=glossary, places=places, gazetteer=gazetteer)


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
    """Key of the nearest residents' place (places.toml) of the given kinds, and its distance in km."""
    cat = catalog or default_catalog()
    wanted = set(kinds)
    best = min(
        (p for p in cat.places.values() if p.kind in wanted),
        key=lambda p: epicentral_km(lat, lon, p.lat, p.lon),
    )
    return best.key, epicentral_km(lat, lon, best.lat, best.lon)


def epicentre_place_key(lat: float, lon: float, catalog: MessageCatalog | None = None,
                        location: str | None = None) -> str | None:
    """The gazetteer key of the epicentre's county: the agency's named county (CENC LOCATION_C)
    when the gazetteer has it, else the county with the nearest seat; None far from every seat."""
    cat = catalog or default_catalog()
    if cat.gazetteer is None:
        return None
    place = cat.gazetteer.epicentre_county(lat, lon, location)
    return place.key if place is not None else None


def agency_place(place: str | None) -> str | None:
    """The agency's place string without the replay marker (notices carry `exercise` instead)."""
    if place is None:
        return None
    return place.removeprefix("[REPLAY]").strip() or None


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class RegionalContext:
    """CENC robot-report context line: M >= min within radius over the past years.

    ``count`` includes the quake itself (CENC's seed report names it as the largest "of them");
    ``largest_before_*`` is the largest earlier quake, said when this one is the largest.
    """

    radius_km: float
    years: int
    min_magnitude: float
    count: int  # this event included (CENC counts it: 本次地震是其中最大的一次)
    largest_magnitude: float
    is_largest: bool
    # the largest quake before this one (此前最大为2024年10月31日4.1级); None when none was
    largest_before_magnitude: float | None = None
    largest_before_at: datetime | None = None
    largest_at: datetime | None = None  # when the largest was (named when it is not this one)


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
        """The earlier title in one language ("" when that language was not sent)."""
        return dict(self.titles).get(lang, "")


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
    place_key: str | None = None  # gazetteer key of the epicentre's county
    place_text: str | None = None  # agency place string (CENC LOCATION_C), used to find the county
    recipient_place_key: str | None = None  # places.toml key of the resident's area
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
    same_swarm: bool = False  # a further felt quake of a swarm the resident was told about
    # felt quakes of this sequence the resident was not told about (the flood budget folded
    # them): how many, and the largest of them (its time and magnitude)
    folded_count: int = 0
    folded_largest: NotableEvent | None = None
    context: RegionalContext | None = None  # None: leave the count out (e.g. back-fill incomplete)
    outlook: OfficialStatement | None = None
    forecast: Mapping[str, str] | None = None  # our own estimate per lang; shown only if allowed
    previous: PreviousNotice | None = None
    # why a Cancel: the agency deleted the event, it was sent in error, or the agency retyped it
    # as a non-earthquake (event_type: QuakeML EventType such as "explosion", "quarry blast")
    cancel_reason: Literal["deleted", "error", "not_earthquake"] = "deleted"
    event_type: str | None = None
    exercise: bool = False
    url: str | None = None


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Per-deployment choices about wording ([messages] in the config)."""

    tibetan_digits: bool = True  # ༠-༩ in bo, as the CENC bo text writes them (messages.md §4.4)
    # "send": composed Tibetan reaches residents (demo, drills); "hold": only sourced sentences plus
    # one line pointing to the full notice, until a translator has reviewed them (issue 8 §3).
    bo_composed: Literal["send", "hold"] = "send"
    hotline: str | None = "12322"  # messages.md §2.2; [U] availability in TAR (§9 item 5)
    reference_place: str | None = "lhasa"  # "distance to Lhasa" line (messages.md §8 K2)
    max_reference_km: float = 500.0
    public_forecast: bool = (
        False  # in China only the authorities publish forecasts (messages.md §0.1)
    )
    quote_outlook: bool = True
    winter_months: tuple[int, ...] = (11, 12, 1, 2, 3)  # Beijing-time months for the cold block
    high_altitude: bool = True  # Lhasa region: the altitude line in K5 (messages.md §2.3)

    def __post_init__(self) -> None:
        if self.bo_composed not in ("send", "hold"):
            raise ValueError(f"[messages] bo_composed must be 'send' or 'hold', not {self.bo_composed!r}")


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
    """A rounded distance: whole km (CENC says 约110千米)."""
    return str(math.floor(km + 0.5))


def local(at: datetime) -> datetime:
    """An aware UTC instant in Beijing time (UTC+8)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: instants must be aware UTC")
    return at.astimezone(BEIJING)


def fmt_time(at: datetime, lang: str, *, short: bool = False) -> str:
    """Date and time in Beijing time, worded per language (CENC's 11月7日04时19分 in zh)."""
    t = local(at)
    if lang == "zh":
        clock = f"{t.month}月{t.day}日{t:%H}时{t:%M}分"
        return clock if short else f"北京时间{clock}"
    if lang == "bo":
        # PRC pattern with Beijing time and a 24-hour clock (tibetan-guidance.md §3 ex. 1).
        clock = f"ཟླ་{t.month}པའི་ཚེས་{t.day}ཉིན་གྱི་ཆུ་ཚོད་{t.hour}དང་སྐར་མ་{t.minute}"
        return clock if short else f"པེ་ཅིང་དུས་ཚོད་ཀྱི་ཕྱི་{clock}"
    if short:
        return f"{t:%H:%M} Beijing time, {t.day} {t:%b}"
    return f"{t:%H:%M} on {t.day} {t:%b %Y}, Beijing time (UTC+8)"


def fmt_date(at: datetime, lang: str, *, year: bool = False) -> str:
    """Date only, in Beijing time."""
    t = local(at)
    if lang == "zh":
        return (f"{t.year}年" if year else "") + f"{t.month}月{t.day}日"
    if lang == "bo":
        # {YYYY}ལོའི་ཟླ་{M}པའི་ཚེས་{D}ཉིན (messages.md §4.4 [S])
        return (f"{t.year}ལོའི་" if year else "") + f"ཟླ་{t.month}པའི་ཚེས་{t.day}ཉིན"
    return f"{t.day} {t:%b}" + (f" {t.year}" if year else "")


# Tibetan case particles chosen by the last letter of the syllable (la don and 'brel sgra).
_BO_SUFFIXES = set("གངདནབམའརལས")
_BO_LOCATIVE = {"ག": "ཏུ", "བ": "ཏུ", "ས": "སུ", "ད": "དུ", "ང": "དུ", "ན": "དུ", "མ": "དུ",
                "ར": "དུ", "ལ": "དུ"}
_BO_GENITIVE = {"ག": "གི", "ང": "གི", "ད": "ཀྱི", "བ": "ཀྱི", "ས": "ཀྱི", "ན": "གྱི", "མ": "གྱི",
                "ར": "གྱི", "ལ": "གྱི"}


def _bo_final(name: str) -> tuple[str, str | None]:
    """The name without trailing tsheg/shad, and its suffix letter (None for an open syllable)."""
    stripped = name.rstrip("་། ")
    syllable = stripped.rsplit("་", 1)[-1]
    last = syllable[-1:]
    # a one-letter syllable (ས in ལྷ་ས, བ in དྲ་བ) or one ending in a vowel sign is open
    if len(syllable) < 2 or last not in _BO_SUFFIXES or last == "འ":
        return stripped, None
    return stripped, last


def bo_locative(name: str) -> str:
    """A Tibetan place name with the locative particle (la don), e.g. ...རྫོང་དུ as in the CENC text."""
    stripped, last = _bo_final(name)
    if last is None:  # open syllable: ར fuses with it (ལྷ་སར)
        return f"{stripped}ར་"
    return f"{stripped}་{_BO_LOCATIVE[last]}་"


def bo_genitive(name: str) -> str:
    """A Tibetan noun with the genitive particle, e.g. ...དྲ་བའི, ...གྲོང་ཁྱེར་གྱི."""
    stripped, last = _bo_final(name)
    if last is None:
        return f"{stripped}འི་"
    return f"{stripped}་{_BO_GENITIVE[last]}་"


def intensity_band(degree: int) -> Literal["low", "mid", "high"]:
    """Guidance band: ≤ III reassurance, IV-V check the home, ≥ VI strong shaking (seismology.md §5.1)."""
    if degree <= FELT_DEGREE:
        return "low"
    if degree < STRONG_DEGREE:
        return "mid"
    return "high"


def shake_key(degree: int) -> str:
    """Glossary key of the shaking words for a push title."""
    if degree <= FELT_DEGREE:
        return "shake.weak"
    if degree == FELT_DEGREE + 1:
        return "shake.light"
    if degree < STRONG_DEGREE:
        return "shake.moderate"
    return "shake.strong"


class _Glossary:
    """Glossary lookups for one language; bo composed entries are held when the office says so."""

    def __init__(self, lang: str, catalog: MessageCatalog, options: RenderOptions):
        self.lang = lang
        self.catalog = catalog
        self.options = options

    def has(self, key: str) -> bool:
        return key in self.catalog.glossary[self.lang]

    def usable(self, key: str) -> bool:
        """Whether the entry may reach residents under the current options."""
        e = self.catalog.glossary[self.lang].get(key)
        if e is None:
            return False
        return not (self.lang == "bo" and e.status == "composed"
                    and self.options.bo_composed == "hold")

    def term(self, key: str) -> str:
        """A term's text (terms inside a sentence are used whatever the hold setting)."""
        e = self.catalog.glossary[self.lang].get(key)
        if e is None:
            raise KeyError(f"{self.lang}.toml has no entry {key!r}")
        return e.text


# Sentences that always go out in bo: the hold pointer and the drill marker (a drill must be
# recognisable as one in every language).
_ALWAYS = frozenset({"s.held", "title.exercise_prefix", "s.exercise"})


class _Sentences(Mapping[str, str]):
    """Glossary sentences of one language, formatted with that language's values."""

    def __init__(self, glossary: _Glossary, values: Mapping[str, Any]):
        self.glossary = glossary
        self._values = values

    def __getitem__(self, key: str) -> str:
        g = self.glossary
        if not g.has(key):
            raise KeyError(f"{g.lang}.toml has no entry {key!r}")
        if not g.usable(key) and key not in _ALWAYS:
            return ""
        return g.term(key).format_map(self._values)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.glossary.catalog.glossary[self.glossary.lang])

    def __len__(self) -> int:
        return len(self.glossary.catalog.glossary[self.glossary.lang])


# ---------------------------------------------------------------- places


def _gaz_names(p: GazPlace, gaz: Gazetteer, lang: str) -> tuple[str, str] | None:
    """(full, short) names of a gazetteer county in one language; None when it has no bo name."""
    pref = gaz.prefecture_of(p)
    if lang == "zh":
        return f"{p.province}{pref.zh if pref else ''}{p.zh}", p.zh
    if lang == "bo":
        if not p.bo:
            return None
        region = "བོད་ལྗོངས་" if p.province == "西藏" else ""  # TAR short form, S1
        parent = f"{pref.bo}་" if pref is not None and pref.bo else ""
        return f"{region}{parent}{p.bo}", p.bo
    return (f"{p.en}, {pref.en}" if pref else p.en), p.en


def place_names(ctx_key: str | None, text: str | None, lat: float, lon: float, lang: str,
                cat: MessageCatalog, num: Any = str) -> tuple[str, str]:
    """(full, short) name of an epicentre in one language; never bare coordinates (issue 8 §6).

    The county is the gazetteer's (CENC LOCATION_C or the nearest seat); with no Tibetan name it is
    named in bo by the nearest county that has one; far from every seat, by distance to the seat.
    """
    gaz = cat.gazetteer
    if gaz is None:
        return (text or ""), (text or "")
    county = gaz.get(ctx_key) if ctx_key else None
    if county is None and ctx_key is not None and ctx_key in cat.places:  # a residents' key
        county = gaz.by_zh_name(cat.places[ctx_key].zh)
    if county is None:
        county = gaz.epicentre_county(lat, lon, text)
    if county is not None:
        names = _gaz_names(county, gaz, lang)
        if names is not None:
            return names
    # no county in range, or no Tibetan name: the nearest seat that has a name in this language
    seat, km = gaz.nearest(lat, lon)
    if lang == "bo" and not seat.bo:
        named = [p for p in gaz.places if p.bo and p.kind != "prefecture"]
        seat = min(named, key=lambda p: epicentral_km(lat, lon, p.lat, p.lon))
        km = epicentral_km(lat, lon, seat.lat, seat.lon)
    d = num(fmt_km(km))
    if lang == "zh":
        if text:
            return text, text
        return f"{seat.zh}附近约{d}千米处", f"{seat.zh}附近"
    if lang == "bo":
        near = f"{bo_genitive(seat.bo)}ཉེ་འཁོར"  # ཉེ་འཁོར: S3
        return f"{seat.bo}ནས་བར་ཐག་སྤྱི་ལེ་{d}ཙམ་གྱི་ས་ཁུལ", near
    return f"about {d} km from {seat.en}", f"near {seat.en}"


def _recipient_name(key: str | None, lang: str, cat: MessageCatalog) -> str | None:
    p = cat.places.get(key) if key else None
    if p is None:
        return None
    return {"zh": p.zh, "bo": p.bo, "en": p.en}[lang] or None


# ---------------------------------------------------------------- values


def _values(
    ctx: NoticeContext,
    lang: str,
    g: _Glossary,
    cat: MessageCatalog,
    opts: RenderOptions,
    now: datetime,
) -> dict[str, Any]:
    """Formatted slot values for the glossary sentences of one language."""
    bo = lang == "bo"
    num = to_tibetan_digits if (bo and opts.tibetan_digits) else (lambda s: s)
    full, short = place_names(
        ctx.place_key, ctx.place_text, ctx.latitude, ctx.longitude, lang, cat, num
    )
    source = g.term(f"source.{ctx.source}") if g.has(f"source.{ctx.source}") else g.term(
        "source.other")
    v: dict[str, Any] = {
        "magnitude": num(fmt_magnitude(ctx.magnitude)),
        "depth": num(fmt_depth(ctx.depth_km)),
        "lat": num(f"{ctx.latitude:.2f}"),
        "lon": num(f"{ctx.longitude:.2f}"),
        "time": num(fmt_time(ctx.origin_at, lang)),
        "time_short": num(fmt_time(ctx.origin_at, lang, short=True)),
        "place_full": full,
        "place_short": short,
        "place_full_loc": bo_locative(full) if bo else full,
        "place_short_loc": bo_locative(short) if bo else short,
        "place_full_gen": bo_genitive(full) if bo else full,
        "place_short_gen": bo_genitive(short) if bo else short,
        "source": source,
        "source_gen": bo_genitive(source) if bo else source,
        "source_short": ctx.source.upper(),
        "auto": g.term("auto_provisional"),
        "hotline": num(opts.hotline or ""),
        "url": ctx.url or "",
        "sent_time": num(fmt_time(now, lang)),
        "_lang": lang,
    }
    auto = ctx.status == "automatic"
    which = "auto" if auto else "official"
    attrib_key = f"attrib.{which}.{ctx.source}"
    if not g.has(attrib_key):
        attrib_key = f"attrib.{which}"
    v["attrib"] = (g.term(attrib_key).format_map(v) if g.usable(attrib_key) else "")
    if opts.reference_place and opts.reference_place in cat.places:
        ref = cat.places[opts.reference_place]
        km = epicentral_km(ctx.latitude, ctx.longitude, ref.lat, ref.lon)
        v["ref_place"] = _recipient_name(ref.key, lang, cat) or ""
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
            largest_date=num(fmt_date(c.largest_at, lang, year=True)) if c.largest_at else "",
            before_magnitude=num(fmt_magnitude(c.largest_before_magnitude))
            if c.largest_before_magnitude is not None else "",
            before_date=num(fmt_date(c.largest_before_at, lang, year=True))
            if c.largest_before_at else "",
        )
    recipient = _recipient_name(ctx.recipient_place_key, lang, cat)
    if ctx.recipient_degree is not None and recipient is not None:
        d = ctx.recipient_degree
        v.update(
            roman=roman(d, lang),
            label=g.term(f"intensity.{d}.label"),
            felt=g.term(f"intensity.{d}.felt"),
            recipient_place=recipient,
            recipient_place_loc=bo_locative(recipient) if bo else recipient,
            shake=g.term(shake_key(d)),
        )
    if ctx.sequence_type is not None:
        type_key = f"type.{ctx.sequence_type}"
        v["type"] = g.term(type_key) if g.has(type_key) else g.term("type.undetermined")
        ts = g.term(f"source.{ctx.type_source or 'other'}")
        v["type_source"] = ts
        v["type_source_gen"] = bo_genitive(ts) if bo else ts
    if ctx.sequence_started_at is not None:
        v["start"] = num(fmt_date(ctx.sequence_started_at, lang))
    v["seq_count"] = num(str(ctx.sequence_count))
    v["seq_quakes"] = quakes_en(ctx.sequence_count)
    if ctx.notable:
        sep = g.term("list.sep")
        v["events"] = sep.join(
            g.term("notable").format(date=num(fmt_date(ev.origin_at, lang)),
                                     magnitude=num(fmt_magnitude(ev.magnitude)))
            for ev in ctx.notable)
    if ctx.folded_largest is not None:
        v.update(
            folded_count=num(str(ctx.folded_count)),
            folded_quakes=quakes_en(ctx.folded_count),
            folded_time=num(fmt_time(ctx.folded_largest.origin_at, lang, short=True)),
            folded_magnitude=num(fmt_magnitude(ctx.folded_largest.magnitude)),
        )
    if ctx.recent is not None:
        v.update(
            recent_hours=num(f"{ctx.recent.window_h:g}"),
            recent_count=num(str(ctx.recent.count)),
            recent_quakes=quakes_en(ctx.recent.count),
            recent_largest=num(fmt_magnitude(ctx.recent.largest_magnitude)),
        )
    if ctx.outlook is not None:
        osrc = g.term(f"source.{ctx.outlook.source}")
        v["outlook_source"] = osrc
        v["outlook_source_gen"] = bo_genitive(osrc) if bo else osrc
        v["outlook_text"] = ctx.outlook.text
    if ctx.forecast is not None:
        v["forecast_label"] = g.term("s.forecast_label")
        v["forecast_text"] = ctx.forecast.get(lang, "")  # never another language's text
    if ctx.previous is not None:
        p = ctx.previous
        _, pshort = place_names(p.place_key, p.place_text, p.latitude, p.longitude, lang, cat, num)
        v.update(
            prev_time=num(fmt_time(p.sent_at, lang)),
            prev_place=pshort,
            prev_place_gen=bo_genitive(pshort) if bo else pshort,
            prev_magnitude=num(fmt_magnitude(p.magnitude)),
            prev_title=_unmarked(p.title(lang), g),
            how=g.term("how.auto" if auto else "how.official"),
        )
        v["changes"] = _changes(ctx, p, lang, g, num)
    return v


def _unmarked(title: str, g: _Glossary) -> str:
    """An earlier title without its drill marker: the new title carries the marker once."""
    return title.removeprefix(g.term("title.exercise_prefix"))


def _changes(ctx: NoticeContext, p: PreviousNotice, lang: str, g: _Glossary, num: Any) -> str:
    """What changed between an earlier notice and now, worded per language."""
    parts: list[str] = []
    if fmt_magnitude(p.magnitude) != fmt_magnitude(ctx.magnitude):
        parts.append(g.term("change.magnitude").format(
            old=num(fmt_magnitude(p.magnitude)), new=num(fmt_magnitude(ctx.magnitude))))
    moved = epicentral_km(p.latitude, p.longitude, ctx.latitude, ctx.longitude)
    if moved >= 1.0:
        parts.append(g.term("change.location").format(km=num(fmt_km(moved))))
    if local(p.origin_at).replace(second=0, microsecond=0) != local(ctx.origin_at).replace(
        second=0, microsecond=0
    ):
        parts.append(g.term("change.time").format(time=num(fmt_time(ctx.origin_at, lang))))
    if fmt_depth(p.depth_km) != fmt_depth(ctx.depth_km):
        parts.append(g.term("change.depth").format(
            old=num(fmt_depth(p.depth_km)), new=num(fmt_depth(ctx.depth_km))))
    return g.term("clause.sep").join(parts)


def _flags(
    ctx: NoticeContext,
    values: Mapping[str, Any],
    opts: RenderOptions,
    *,
    after_report: bool,
) -> dict[str, Any]:
    """Template switches (no arithmetic in templates: every decision is made here)."""
    month = local(ctx.origin_at).month
    has_recipient = "recipient_place" in values
    c = ctx.context
    return {
        "automatic": ctx.status == "automatic",
        "has_distance": bool(values.get("_has_distance")),
        "has_context": c is not None,
        "context_key": "s.context_only" if c is not None and c.count == 1
        else "s.context_this_largest" if c is not None and c.is_largest
        else "s.context_other_largest",
        "has_before": c is not None and c.is_largest and c.largest_before_at is not None
        and c.largest_before_magnitude is not None,
        "has_recipient": has_recipient,
        "band": intensity_band(ctx.recipient_degree) if has_recipient and ctx.recipient_degree
        else "mid",
        "has_type": ctx.sequence_type is not None,
        "type": ctx.sequence_type,
        "type_official": ctx.type_official,
        "after_report": after_report,
        "same_swarm": ctx.same_swarm,
        "folded_key": "" if not ctx.folded_count or ctx.folded_largest is None
        else "s.folded_one" if ctx.folded_count == 1 else "s.folded_many",
        "hotline": bool(opts.hotline),
        "winter": month in opts.winter_months,
        "high_altitude": opts.high_altitude,
        "has_outlook": ctx.outlook is not None and opts.quote_outlook,
        # an official statement is quoted only in its own language; elsewhere we say it exists
        "outlook_key": "s.outlook_elsewhere"
        if ctx.outlook is not None and values.get("_lang") != ctx.outlook.lang
        else "s.outlook",
        "has_forecast": ctx.forecast is not None and opts.public_forecast
        and bool(values.get("forecast_text")),
        "has_events": bool(ctx.notable) and ctx.sequence_started_at is not None,
        "has_recent": ctx.recent is not None,
        "summary": ctx.summary,
        "has_changes": bool(values.get("changes")),
        "cancel_reason_key": _cancel_reason_key(ctx),
        "exercise": ctx.exercise,
        "url": bool(ctx.url),
    }


def _cancel_reason_key(ctx: NoticeContext) -> str:
    """The glossary sentence that says why a notice is withdrawn."""
    if ctx.cancel_reason == "not_earthquake":
        blast = any(w in (ctx.event_type or "") for w in ("explosion", "blast"))
        return "s.cancel_explosion" if blast else "s.cancel_not_earthquake"
    return "s.cancel_deleted" if ctx.cancel_reason == "deleted" else "s.cancel_error"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _fit(text: str, limit: int) -> str:
    """A text cut to ``limit`` characters with an ellipsis (the last resort of shortening)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _join(lang: str, parts: Iterable[str]) -> str:
    return (" " if lang in ("en", "bo") else "").join(p for p in parts if p)


def fit_title(parts: Iterable[tuple[str, int]], limit: int, short: str = "") -> str:
    """A push title within ``limit`` characters, shortened by the rank of its parts.

    Rank 0 is never shortened (the drill marker, the resident's own shaking); rank 2 and up are
    dropped whole, highest first (a category label such as 【有感地震】); then the rank-1 part
    (the quake's place and magnitude) becomes ``short`` (e.g. the magnitude alone), is dropped
    when even that does not fit, or, with no ``short``, is cut with an ellipsis. Only a title of
    rank-0 parts that is still too long is cut at its end.
    """
    kept = [(t, r) for t, r in parts if t]

    def size() -> int:
        return len("".join(t for t, _ in kept))

    while size() > limit and any(r >= 2 for _, r in kept):
        top = max(r for _, r in kept)
        del kept[max(i for i, (_, r) in enumerate(kept) if r == top)]
    main = next((i for i, (_, r) in enumerate(kept) if r == 1), None)
    if size() > limit and main is not None:
        text = kept[main][0]
        over = size() - limit
        if short:
            kept[main] = (short, 1)
            if size() > limit:  # a stub of a name says nothing: leave it to the body
                del kept[main]
                if main < len(kept):  # no separator left hanging at the join
                    kept[main] = (kept[main][0].lstrip("，、；;:： "), kept[main][1])
        else:
            kept[main] = (text[:max(0, len(text) - over - 1)].rstrip() + ELLIPSIS, 1)
    return _fit("".join(t for t, _ in kept), limit)


def fit_push(lang: str, title_parts: Iterable[tuple[str, int]], sentences: list[tuple[str, bool]],
             short: str = "") -> tuple[str, str]:
    """A push title and body within PUSH_LIMITS: optional parts go first, then an ellipsis.

    ``title_parts`` are (text, rank) as ``fit_title`` takes them; ``sentences`` are
    (text, essential) in order: optional sentences are dropped from the last one back.
    """
    max_title, max_body = PUSH_LIMITS[lang]
    title = fit_title(title_parts, max_title, short)
    kept = [(t, e) for t, e in sentences if t]
    while len(_join(lang, [t for t, _ in kept])) > max_body and any(not e for _, e in kept):
        last_optional = max(i for i, (_, e) in enumerate(kept) if not e)
        del kept[last_optional]
    return title, _fit(_join(lang, [t for t, _ in kept]), max_body)


def _push(kinds: tuple[str, ...], ctx: NoticeContext, lang: str, s: _Sentences,
          flags: Mapping[str, Any], full_title: str) -> tuple[str, str]:
    """The phone-sized title and body of a notice in one language (issue 8 §4).

    The body leads with the shaking estimated where the resident is and its one action, so a
    collapsed notification (title and one or two lines) already says what it means for them;
    the title carries the same shaking (rank 0 in ``fit_title``: never shortened).
    """
    k = kinds[0]
    short = ""
    recipient = flags["has_recipient"]
    band = [(s[f"push.band.{flags['band']}"], True)] if recipient else []
    folded = [(s[flags["folded_key"]], True)] if flags["folded_key"] else []
    marker = (s["title.exercise_prefix"], 0) if ctx.exercise else ("", 0)
    if k in ("quick_report", "official_report"):
        strong = "strong_guidance" in kinds
        which = ("auto" if flags["automatic"] and not strong else "strong" if strong
                 else "felt")
        # the resident's own shaking belongs to a report of this quake, not to a summary
        shake = s["push.shake_suffix"] if recipient else ""
        parts = [marker, (s[f"push.label.{which}"], 2), (s[f"push.title.{which}"], 1),
                 (shake, 0)]
        short = s[f"push.title_short.{which}"]
        if ctx.same_swarm:
            report = s["push.same_swarm"]
        else:
            report = s["push.report_auto" if flags["automatic"] else "push.report_official"]
        distance = s["s.distance"] if flags["has_distance"] else ""
        sentences = [*band, *folded, (report, True), (distance, False)]
    elif k == "swarm_advisory":
        parts = [marker, (full_title, 1)]
        swarm = "push.swarm_official" if flags["type_official"] else "push.swarm"
        sentences = [*folded, (s[swarm], True), (s["push.swarm_action"], True)]
    elif k == "update":
        parts = [marker, (full_title, 1)]
        sentences = [*band, (s["push.update"] if flags["has_changes"] else s["s.update"], True)]
    elif k == "cancel":
        parts = [marker, (full_title, 1)]
        sentences = [(s["s.cancel"], True)]
        if ctx.cancel_reason == "not_earthquake":  # the one thing the resident must learn
            sentences.append((s[flags["cancel_reason_key"]], True))
    else:
        parts = [marker, (full_title, 1)]
        sentences = [(s["s.test"], True)]
    if not "".join(t for t, r in parts if r):  # bo held: the sourced report title stands in
        parts = [marker, (s["title.official_report"] if k != "test" else s["event"], 1)]
    if s.glossary.lang == "bo" and s.glossary.options.bo_composed == "hold":
        sentences.append((s["s.held"], True))
    return fit_push(lang, parts, sentences, short)


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
    out: list[Message] = []
    for lang in wanted:
        g = _Glossary(lang, cat, opts)
        values = _values(ctx, lang, g, cat, opts, now)
        s = _Sentences(g, values)
        title = ""
        body: list[str] = []
        for i, k in enumerate(kinds):
            after_report = i > 0 and kinds[0] in ("quick_report", "official_report")
            tpl = cat.env.get_template(f"{k}.j2")
            tctx = tpl.new_context(
                {"s": s, "v": _flags(ctx, values, opts, after_report=after_report)}
            )
            if i == 0:
                title = "".join(tpl.blocks["title"](tctx)).strip()
            body += _lines("".join(tpl.blocks["body"](tctx)))
        flags = _flags(ctx, values, opts, after_report=False)
        footer = cat.env.get_template("_footer.j2").render(s=s, v=flags)
        body += _lines(footer)
        held = lang == "bo" and opts.bo_composed == "hold"
        if held:
            body.append(s["s.held"])
        push_title, push_body = _push(kinds, ctx, lang, s, flags, title)
        if not title:  # bo held: the sourced report title
            title = s["title.official_report"] if kinds[0] != "test" else s["event"]
        if ctx.exercise:
            title = s["title.exercise_prefix"] + title
        out.append(Message(lang=lang, title=title, body="\n".join(body),  # type: ignore[arg-type]
                           push_title=push_title, push_body=push_body))
    return tuple(out)


def exercise_title(title: str, lang: str, catalog: MessageCatalog | None = None) -> str:
    """A drill's title with its marker exactly once, in the title's language."""
    cat = catalog or default_catalog()
    entry = cat.glossary.get(lang, {}).get("title.exercise_prefix")
    if entry is None:
        return title
    return title if entry.text.strip() in title else entry.text + title


def push_texts(message: Message, *, exercise: bool = False) -> tuple[str, str]:
    """The phone-sized (title, body) of a message; a message stored before push texts existed
    is shortened to PUSH_LIMITS here, never dropped."""
    if message.push_title and message.push_body:
        title, body = message.push_title, message.push_body
    else:
        title, body = fit_push(message.lang if message.lang in PUSH_LIMITS else "en",
                               [(message.title, 1)], [(message.body, True)])
    if exercise:
        limit = PUSH_LIMITS.get(message.lang, PUSH_LIMITS["en"])[0]
        title = _fit(exercise_title(title, message.lang), limit)
    return title, body


def review_entries(catalog: MessageCatalog | None = None) -> dict[str, Entry]:
    """bo glossary entries still composed (awaiting a translator), for docs/tibetan-review.md."""
    cat = catalog or default_catalog()
    return {k: e for k, e in cat.glossary["bo"].items() if e.status == "composed"}


def unverified_terms(catalog: MessageCatalog | None = None) -> dict[str, str]:
    """bo glossary keys that are not sourced, with their status (the dashboard's review list)."""
    return {k: e.status for k, e in review_entries(catalog).items()}


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
