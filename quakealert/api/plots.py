"""Sequence plots for the duty dashboard: pure functions, data in, SVG bytes out (matplotlib Agg).

No pyplot: each call builds its own ``matplotlib.figure.Figure``. Text is written as SVG <text>
(``svg.fonttype = none``) so the browser shapes Chinese with its own fonts; matplotlib only needs
a CJK font to measure the labels, and without one the plot falls back to English labels.

matplotlib's font list is a JSON cache written on its first run and never compared with the disk
again, so fonts installed after that run stay invisible to it (a fresh server: first run, then
``apt-get install fonts-noto-cjk``). ``register_system_fonts`` asks fontconfig where the CJK and
Tibetan fonts are and adds those files to matplotlib's list, whatever its cache holds.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from xml.sax.saxutils import escape

import matplotlib
from matplotlib import dates as mdates
from matplotlib import font_manager, ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from quakealert.core.geo import destination, distance_km

matplotlib.use("Agg")  # never a GUI backend inside the daemon

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8), "Beijing")
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "Droid Sans Fallback")
FONTCONFIG_LANGS = ("zh-cn", "bo")  # fontconfig language tags: Simplified Chinese, Tibetan
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
FC_TIMEOUT_S = 30.0
MAP_RADIUS_KM = 200.0
LABEL_GAP_KM = 15.0  # closer seats keep their marker but not a label, so labels stay legible
# rcParams are process-global and svg.fonttype/hashsalt are read at save time: render one at a time.
_RENDER_LOCK = threading.Lock()

_LABELS = {
    "zh": {
        "mag": "震级", "time_bj": "时间（北京时间）", "time_utc": "时间（UTC）",
        "count": "累计地震次数", "n_ge": "N(≥M) 累计次数", "n_bin": "每0.1级次数",
        "fit": "b值拟合", "mc": "最小完整性震级 Mc", "lat": "纬度（°N）", "lon": "经度（°E）",
        "circle": "200公里范围", "largest": "最大地震", "seat": "县/区政府驻地",
        "no_data": "暂无数据",
    },
    "en": {
        "mag": "Magnitude", "time_bj": "Time (Beijing)", "time_utc": "Time (UTC)",
        "count": "Cumulative number of events", "n_ge": "N(≥M), cumulative", "n_bin": "per 0.1 bin",
        "fit": "b-value fit", "mc": "Completeness Mc", "lat": "Latitude (°)",
        "lon": "Longitude (°)", "circle": "200 km radius", "largest": "Largest event",
        "seat": "County/district seat", "no_data": "no data",
    },
}


@dataclass(frozen=True, slots=True)
class Quake:
    """One epicentre to plot."""

    at: datetime
    latitude: float
    longitude: float
    magnitude: float


@dataclass(frozen=True, slots=True)
class MapPlace:
    """A labelled seat on the map."""

    label: str
    latitude: float
    longitude: float


def fontconfig_files(lang: str) -> list[str]:
    """Font files fontconfig has for ``lang`` (``fc-list :lang=zh-cn file``); [] without fc-list."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        out = subprocess.run([fc_list, f":lang={lang}", "file"], capture_output=True, text=True,
                             timeout=FC_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("fc-list failed: %s", err, extra={"lang": lang})
        return []
    files = {line.strip().rstrip(":").strip() for line in out.splitlines()}
    return sorted(f for f in files if f.lower().endswith(FONT_SUFFIXES))


@functools.cache
def register_system_fonts() -> tuple[str, ...]:
    """Add fontconfig's CJK and Tibetan font files that matplotlib's font list lacks; returns
    the files added. Runs once per process (the dashboard calls it at start-up)."""
    manager = font_manager.fontManager
    known = {f.fname for f in manager.ttflist}
    added = []
    for lang in FONTCONFIG_LANGS:
        files = fontconfig_files(lang)
        if not files:
            log.warning("fontconfig has no font: plot labels fall back to English",
                        extra={"lang": lang})
        for path in files:
            if path in known:
                continue
            try:
                manager.addfont(path)
            except (OSError, RuntimeError, ValueError) as err:  # unreadable or not a font
                log.warning("font %s not added to matplotlib: %s", path, err)
                continue
            known.add(path)
            added.append(path)
    if added:  # addfont also clears matplotlib's findfont cache
        log.info("matplotlib font cache lacked %d font files; added from fontconfig: %s",
                 len(added), ", ".join(added))
    return tuple(added)


@functools.cache
def _cjk_family() -> str | None:
    """The first CJK font matplotlib knows (after registering fontconfig's), or None."""
    register_system_fonts()
    known = {f.name for f in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FAMILIES if name in known), None)
    if found is None:
        log.warning("no CJK font for plot labels (%s): zh plots use English labels",
                    ", ".join(CJK_FAMILIES))
    return found


def placeholder_svg(text: str, *, width: int = 720, height: int = 340) -> bytes:
    """A small SVG saying why a plot is missing; drawn without matplotlib so it cannot fail."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="#f3f4f6" '
            f'stroke="#cfd6de"/><text x="50%" y="50%" text-anchor="middle" '
            f'font-family="Noto Sans CJK SC, sans-serif" font-size="16" fill="#5b6570">'
            f"{escape(text)}</text></svg>").encode()


def _render(draw: Callable[[Figure, str, dict[str, str]], None], lang: str,
            size: tuple[float, float] = (7.2, 3.4)) -> bytes:
    """Build a figure with ``draw(fig, lang, labels)`` and return it as SVG bytes.

    zh falls back to English labels when matplotlib has no CJK font to measure them with.
    """
    cjk = _cjk_family()
    lang = "zh" if lang == "zh" and cjk is not None else "en"
    rc = {"svg.fonttype": "none", "svg.hashsalt": "quakealert",
          "font.family": ["DejaVu Sans"] + ([cjk] if cjk else [])}
    buf = io.BytesIO()
    with _RENDER_LOCK, matplotlib.rc_context(rc):
        fig = Figure(figsize=size, layout="constrained")
        draw(fig, lang, _LABELS[lang])
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "quakealert"})
    return buf.getvalue()


def _time_axis(ax: Axes, lang: str) -> None:
    tz = BEIJING if lang == "zh" else UTC
    locator = mdates.AutoDateLocator(tz=tz, maxticks=8)
    if lang == "zh":  # numeric dates: the default English month names are no use in zh
        fmt = mdates.ConciseDateFormatter(
            locator, tz=tz, formats=["%Y", "%Y-%m", "%m-%d", "%H:%M", "%H:%M", "%S.%f"],
            zero_formats=["", "%Y", "%Y-%m", "%m-%d", "%H:%M", "%H:%M"],
            offset_formats=["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"])
    else:
        fmt = mdates.ConciseDateFormatter(locator, tz=tz)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(fmt)


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _size(m: float, lowest: float) -> float:
    """Marker area growing with magnitude, relative to the smallest event."""
    return 12.0 * 2.2 ** (m - lowest)


def magnitude_time_svg(quakes: Sequence[Quake], *, lang: str = "zh") -> bytes:
    """Magnitude against origin time (Beijing time for zh, UTC for en), largest starred."""

    def draw(fig: Figure, lang: str, t: dict[str, str]) -> None:
        ax = fig.add_subplot()
        ax.set_xlabel(t["time_bj"] if lang == "zh" else t["time_utc"])
        ax.set_ylabel(t["mag"])
        ax.grid(True, color="0.9")
        if not quakes:
            _empty(ax, t["no_data"])
            return
        dense = len(quakes) > 3000
        xs = [mdates.date2num(q.at) for q in quakes]
        ms = [q.magnitude for q in quakes]
        lowest = min(ms)
        floor = math.floor(lowest) - 0.5
        ax.vlines(xs, floor, ms, color="#9db4d0", linewidth=0.6, rasterized=dense)
        ax.scatter(xs, ms, s=[_size(m, lowest) for m in ms], c="#1f5fa8", edgecolors="white",
                   linewidths=0.4, zorder=3, rasterized=dense)
        big = max(quakes, key=lambda q: q.magnitude)
        ax.scatter([mdates.date2num(big.at)], [big.magnitude], marker="*", s=180, c="#d62728",
                   edgecolors="black", linewidths=0.5, zorder=4,
                   label=f"{t['largest']} M{big.magnitude:.1f}")
        ax.set_ylim(floor, max(ms) + 0.5)
        _time_axis(ax, lang)
        if max(xs) == min(xs):
            ax.set_xlim(xs[0] - 1, xs[0] + 1)
        ax.legend(loc="upper right", fontsize="small")

    return _render(draw, lang)


def cumulative_count_svg(times: Sequence[datetime], *, lang: str = "zh") -> bytes:
    """Cumulative number of events against time, as a step line."""

    def draw(fig: Figure, lang: str, t: dict[str, str]) -> None:
        ax = fig.add_subplot()
        ax.set_xlabel(t["time_bj"] if lang == "zh" else t["time_utc"])
        ax.set_ylabel(t["count"])
        ax.grid(True, color="0.9")
        if not times:
            _empty(ax, t["no_data"])
            return
        xs = sorted(mdates.date2num(x) for x in times)
        ns = range(1, len(xs) + 1)
        ax.step(xs, ns, where="post", color="#1f5fa8", linewidth=1.6)
        ax.plot(xs, ns, "o", color="#1f5fa8", markersize=3, rasterized=len(xs) > 3000)
        ax.set_ylim(0, len(xs) * 1.05 + 0.5)
        _time_axis(ax, lang)
        if max(xs) == min(xs):
            ax.set_xlim(xs[0] - 1, xs[0] + 1)

    return _render(draw, lang)


def magnitude_frequency_svg(
    magnitudes: Sequence[float],
    *,
    b: float | None = None,
    mc: float | None = None,
    n_fit: int | None = None,
    bin_width: float = 0.1,
    lang: str = "zh",
) -> bytes:
    """Gutenberg-Richter plot: N(>=M) and counts per bin (log scale), with the stored b fit.

    The fit line is log10 N(>=M) = a - b M for M >= Mc, with a set so that the line passes
    through ``n_fit`` events at Mc (the number the b-value was estimated from).
    """

    def draw(fig: Figure, lang: str, t: dict[str, str]) -> None:
        ax = fig.add_subplot()
        ax.set_xlabel(t["mag"])
        ax.set_ylabel(t["n_ge"])
        ax.set_yscale("log")
        # plain counts (1, 2, 5, 10, ...) rather than 4x10^0 on short ranges
        ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, which="major", color="0.9")
        if not magnitudes:
            _empty(ax, t["no_data"])
            return
        per_bin = Counter(round(round(m / bin_width) * bin_width, 3) for m in magnitudes)
        bins = sorted(per_bin)
        cum, total = [], len(magnitudes)
        for x in bins:
            cum.append(total)
            total -= per_bin[x]
        ax.plot(bins, [per_bin[x] for x in bins], "^", color="#999999", markersize=4,
                label=t["n_bin"])
        ax.plot(bins, cum, "s", color="#1f5fa8", markersize=4, label=t["n_ge"])
        if b is not None and mc is not None:
            n = n_fit or sum(c for x, c in per_bin.items() if x >= mc - bin_width / 2)
            top = max(max(bins), mc + 0.5)
            if n > 0:
                a = math.log10(n) + b * mc
                ax.plot([mc, top], [10 ** (a - b * mc), 10 ** (a - b * top)], "-",
                        color="#d62728", linewidth=1.6,
                        label=f"{t['fit']}: b = {b:.2f}, Mc = {mc:.1f}")
            ax.axvline(mc, color="#d62728", linestyle=":", linewidth=1)
        ax.set_ylim(0.7, max(cum) * 1.6)
        ax.legend(loc="upper right", fontsize="small")

    return _render(draw, lang)


def circle_points(lat: float, lon: float, radius_km: float, n: int = 120) -> list[tuple[float, float]]:
    """Points of the small circle ``radius_km`` around (lat, lon), closed, as (lat, lon)."""
    pts = [destination(lat, lon, 360.0 * i / n, radius_km) for i in range(n)]
    return pts + pts[:1]


def map_svg(
    quakes: Sequence[Quake],
    *,
    centre: tuple[float, float],
    places: Sequence[MapPlace] = (),
    radius_km: float = MAP_RADIUS_KM,
    lang: str = "zh",
) -> bytes:
    """Epicentres sized by magnitude in a plain lat/lon frame, the radius circle and seats.

    The aspect is 1/cos(centre latitude), so a degree of longitude has its true ground length at
    the centre. No boundaries or coastlines are drawn on purpose (see docs/dashboard.md).
    """
    lat0, lon0 = centre
    ring = circle_points(lat0, lon0, radius_km)
    lats = [p[0] for p in ring] + [q.latitude for q in quakes]
    lons = [p[1] for p in ring] + [q.longitude for q in quakes]
    pad = 0.15
    west, east = min(lons) - pad, max(lons) + pad
    south, north = min(lats) - pad, max(lats) + pad

    def draw(fig: Figure, lang: str, t: dict[str, str]) -> None:
        ax = fig.add_subplot()
        ax.set_aspect(1.0 / math.cos(math.radians(lat0)))
        ax.set_xlim(west, east)
        ax.set_ylim(south, north)
        ax.set_xlabel(t["lon"])
        ax.set_ylabel(t["lat"])
        ax.grid(True, color="0.88", linewidth=0.6)
        ax.plot([p[1] for p in ring], [p[0] for p in ring], "--", color="#555555", linewidth=1,
                label=t["circle"] if radius_km == MAP_RADIUS_KM else f"{radius_km:g} km")
        shown = [p for p in places if west <= p.longitude <= east and south <= p.latitude <= north]
        if shown:
            ax.plot([p.longitude for p in shown], [p.latitude for p in shown], "s",
                    color="#2a7f3f", markersize=5, label=t["seat"])
        labelled: list[MapPlace] = []
        for p in shown:  # in the caller's order: the first of seats closer than LABEL_GAP_KM wins
            if all(distance_km(p.latitude, p.longitude, o.latitude, o.longitude) >= LABEL_GAP_KM
                   for o in labelled):
                labelled.append(p)
                ax.annotate(p.label, (p.longitude, p.latitude), xytext=(4, 3),
                            textcoords="offset points", fontsize=8, color="#1d5c2d")
        if quakes:
            dense = len(quakes) > 3000
            lowest = min(q.magnitude for q in quakes)
            ax.scatter([q.longitude for q in quakes], [q.latitude for q in quakes],
                       s=[_size(q.magnitude, lowest) for q in quakes], c="#1f5fa8", alpha=0.55,
                       edgecolors="#0b2f57", linewidths=0.4, zorder=3, rasterized=dense)
            big = max(quakes, key=lambda q: q.magnitude)
            ax.scatter([big.longitude], [big.latitude], marker="*", s=260, c="#d62728",
                       edgecolors="black", linewidths=0.6, zorder=4,
                       label=f"{t['largest']} M{big.magnitude:.1f}")
        ax.legend(loc="lower left", fontsize="small", framealpha=0.9)

    return _render(draw, lang, size=(7.2, 6.6))
